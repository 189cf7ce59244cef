# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_systemd: the one systemd client, its predicates, and its parsing of systemctl's output.

systemctl, journalctl and systemd-analyze are a fake ``run_command`` that
answers from a table and records every call; the clock is a fake too, so
the waits and the step times are exact.
"""

from __future__ import annotations

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import (
    DESCRIBED_PROPERTIES,
    SHOW_PROPERTIES,
    Systemd,
    SystemdError,
    command_failure,
    describe_state,
    loaded,
    parse_show,
    parse_show_many,
    relative_steps,
    running,
    start_failure,
    stopped_failure,
    unit_failure,
)


# -- parsing and predicates ---------------------------------------------------------------


SHOW_OUTPUT = """Id=app.service
LoadState=loaded
ActiveState=active
SubState=running
Result=success
MainPID=4242
Type=notify
ExecMainCode=0
ExecMainStatus=0
"""


def test_parse_show():
    state = parse_show(SHOW_OUTPUT)
    assert state == {'Id': 'app.service', 'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running', 'Result': 'success',
                     'MainPID': 4242, 'Type': 'notify', 'ExecMainCode': '0', 'ExecMainStatus': '0'}


def test_parse_show_keeps_equals_signs_in_values_and_skips_other_lines():
    state = parse_show('Environment=A=1 B=2\n\nnot a property\n  Result = exit-code  \n')
    assert state == {'Environment': 'A=1 B=2', 'Result': 'exit-code', 'MainPID': 0}


@pytest.mark.parametrize('text, pid', [('', 0), ('MainPID=\n', 0), ('MainPID=abc\n', 0), ('MainPID=17\n', 17)])
def test_parse_show_main_pid_is_always_an_int(text, pid):
    assert parse_show(text)['MainPID'] == pid


def test_show_properties_start_with_id_and_include_the_exit_status():
    assert SHOW_PROPERTIES[0] == 'Id'
    assert {'LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'ExecMainStatus'} <= set(SHOW_PROPERTIES)


def test_describe_state():
    assert describe_state('app.service', parse_show(SHOW_OUTPUT)) == (
        'app.service: LoadState=loaded ActiveState=active SubState=running Result=success MainPID=4242 Type=notify')


def test_describe_state_missing_keys_and_chosen_properties():
    assert describe_state('x.service', {'ActiveState': 'failed'}) == (
        'x.service: LoadState=? ActiveState=failed SubState=? Result=? MainPID=? Type=?')
    assert describe_state('x.service', {'ActiveState': 'failed', 'ExecMainStatus': '3'}, ('ActiveState', 'ExecMainStatus')) == (
        'x.service: ActiveState=failed ExecMainStatus=3')


@pytest.mark.parametrize('state, reason', [
    ({'LoadState': 'not-found', 'ActiveState': 'inactive'}, 'is not loaded (LoadState=not-found)'),
    ({'LoadState': 'masked', 'ActiveState': 'inactive'}, 'is not loaded (LoadState=masked)'),
    ({'LoadState': 'error', 'error': 'Failed to connect to bus'}, 'is not loaded (LoadState=error)'),
    ({'LoadState': 'loaded', 'ActiveState': 'failed', 'Result': 'exit-code', 'ExecMainStatus': '3'}, 'failed (Result=exit-code, exit status 3)'),
    ({'LoadState': 'loaded', 'ActiveState': 'failed', 'Result': 'signal', 'ExecMainStatus': '0'}, 'failed (Result=signal)'),
    ({'LoadState': 'loaded', 'ActiveState': 'failed', 'Result': 'timeout', 'ExecMainStatus': ''}, 'failed (Result=timeout)'),
    ({'LoadState': 'loaded', 'ActiveState': 'failed'}, 'failed (Result=?)'),
    ({'ActiveState': 'failed', 'Result': 'core-dump', 'ExecMainStatus': '11'}, 'failed (Result=core-dump, exit status 11)'),
])
def test_unit_failure_reasons(state, reason):
    assert unit_failure(state) == reason


@pytest.mark.parametrize('active', ['active', 'activating', 'reloading', 'inactive', 'deactivating'])
def test_unit_failure_is_none_unless_failed_or_not_loaded(active):
    assert unit_failure({'LoadState': 'loaded', 'ActiveState': active, 'SubState': 'running', 'Result': 'success', 'MainPID': 1}) is None


def test_unit_failure_of_parsed_running_unit_is_none():
    assert unit_failure(parse_show(SHOW_OUTPUT)) is None
    assert unit_failure({}) is None


def test_start_failure_reasons():
    assert start_failure({'LoadState': 'loaded', 'ActiveState': 'activating', 'SubState': 'start'}) is None
    assert start_failure({'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running'}) is None
    assert 'waiting to be restarted' in start_failure({'LoadState': 'loaded', 'ActiveState': 'activating', 'SubState': 'auto-restart'})
    assert 'failed' in start_failure({'LoadState': 'loaded', 'ActiveState': 'failed', 'Result': 'exit-code'})
    assert 'stopped' in start_failure({'LoadState': 'loaded', 'ActiveState': 'inactive'})
    assert 'not loaded' in start_failure({'LoadState': 'not-found', 'ActiveState': 'inactive'})


@pytest.mark.parametrize('state, reason', [
    ({'LoadState': 'loaded', 'ActiveState': 'active'}, None),
    ({'LoadState': 'loaded', 'ActiveState': 'activating'}, None),
    ({'LoadState': 'loaded', 'ActiveState': 'inactive', 'Result': 'success'}, 'stopped (ActiveState=inactive, Result=success)'),
    ({'LoadState': 'loaded', 'ActiveState': 'deactivating'}, 'stopped (ActiveState=deactivating, Result=?)'),
    ({'LoadState': 'loaded', 'ActiveState': 'failed', 'Result': 'exit-code'}, 'failed (Result=exit-code)'),
    ({'LoadState': 'error'}, 'is not loaded (LoadState=error)'),
])
def test_stopped_failure_counts_a_stopped_unit_too(state, reason):
    assert stopped_failure(state) == reason


def test_loaded_and_running():
    assert loaded({'LoadState': 'loaded'}) and not loaded({'LoadState': 'not-found'}) and not loaded({})
    assert running({'LoadState': 'loaded', 'ActiveState': 'active'})
    assert not running({'LoadState': 'loaded', 'ActiveState': 'activating'}) and not running({'LoadState': 'masked', 'ActiveState': 'active'})


def test_parse_show_many_splits_the_blocks():
    text = 'Id=a.service\nMainPID=1\n\nId=b.service\nMainPID=x\n\n\nId=c.socket\n'
    assert parse_show_many(text) == [{'Id': 'a.service', 'MainPID': 1}, {'Id': 'b.service', 'MainPID': 0}, {'Id': 'c.socket', 'MainPID': 0}]
    assert parse_show_many('') == []


def test_command_failure_names_the_command_its_output_and_the_units():
    assert command_failure(['systemctl', 'restart', 'a.service'], 1, '', 'Job failed.\n', ['a.service: ActiveState=failed']) == (
        'systemctl restart a.service failed with rc 1: Job failed.; a.service: ActiveState=failed')
    assert command_failure(['/bin/x', 3], 2, 'out\n', '') == '/bin/x 3 failed with rc 2: out'
    assert command_failure(['x'], 2, '', '') == 'x failed with rc 2: (no output)'
    assert command_failure(['x'], 2, '', 'e' * 3000).endswith('e' * 2000 + '') and len(command_failure(['x'], 2, '', 'e' * 3000)) < 2100


def test_relative_steps_in_seconds_and_milliseconds():
    steps = [{'units': ['a.service'], 'argv': ['systemctl', 'restart', 'a.service'], 'rc': 0, 'started': 10.5, 'returned': 10.75,
              'ready': None}]
    assert relative_steps(steps, 10.0) == [{'units': ['a.service'], 'argv': ['systemctl', 'restart', 'a.service'], 'rc': 0,
                                            'started_s': 0.5, 'returned_s': 0.75, 'ready_s': None}]
    (step,) = relative_steps(steps, 10.0, scale=1000.0, suffix='_ms')
    assert (step['started_ms'], step['returned_ms'], step['ready_ms']) == (500.0, 750.0, None)


# -- the client -----------------------------------------------------------------------------


class FakeSystem:
    """run_command: answers from ``answers`` (argv tuple, or its verb, to (rc, out, err)), unit states from ``states``."""

    def __init__(self, states=None, answers=None):
        self.states = states or {}
        self.answers = answers or {}
        self.calls = []
        self.now = 100.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def __call__(self, argv, environ_update=None):
        assert environ_update == {'LC_ALL': 'C'}
        self.calls.append(list(argv))
        self.now += 0.01
        verb = next((arg for arg in argv[1:] if not str(arg).startswith('--')), None)
        for key in (tuple(argv), verb, argv[0]):
            if key in self.answers:
                answer = self.answers[key]
                return answer(argv) if callable(answer) else answer
        if verb == 'show':
            units = [a for a in argv[2:] if not a.startswith('--')]
            blocks = []
            for unit in units:
                state = self.states.get(unit, {'LoadState': 'not-found', 'ActiveState': 'inactive'})
                if callable(state):
                    state = state()
                blocks.append(''.join('%s=%s\n' % item for item in dict(state, Id=unit).items()))
            return 0, '\n'.join(blocks), ''
        return 0, '', ''


def client(fake, **kwargs):
    return Systemd(fake, clock=fake.clock, sleep=fake.sleep, **kwargs)


ACTIVE = {'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running', 'Result': 'success', 'MainPID': '42', 'Type': 'exec'}
FAILED = {'LoadState': 'loaded', 'ActiveState': 'failed', 'SubState': 'failed', 'Result': 'exit-code', 'MainPID': '0', 'Type': 'exec',
          'ExecMainStatus': '3'}


def test_run_records_a_step_with_its_times():
    fake = FakeSystem({'a.service': ACTIVE})
    systemd = client(fake)
    step = systemd.run('restart', ['a.service'])
    assert fake.calls == [['systemctl', '--no-ask-password', 'restart', 'a.service']]
    assert step == {'units': ['a.service'], 'argv': ['systemctl', '--no-ask-password', 'restart', 'a.service'], 'rc': 0,
                    'started': 100.0, 'returned': 100.01, 'ready': None}
    assert systemd.steps == [step]
    systemd.run('start', ['b.socket'], extra=('--no-block',))
    assert fake.calls[-1] == ['systemctl', '--no-ask-password', 'start', '--no-block', 'b.socket']


def test_run_failure_describes_the_units():
    fake = FakeSystem({'a.service': FAILED}, answers={'restart': (1, '', 'Job for a.service failed.\n')})
    systemd = client(fake)
    with pytest.raises(SystemdError) as exc:
        systemd.run('restart', ['a.service'])
    assert str(exc.value) == ('systemctl --no-ask-password restart a.service failed with rc 1: Job for a.service failed.; '
                              'a.service: LoadState=loaded ActiveState=failed SubState=failed Result=exit-code MainPID=0 Type=exec')
    assert systemd.steps[0]['rc'] == 1
    step = systemd.run('restart', ['a.service'], check=False)
    assert step['rc'] == 1


def test_step_runs_any_command_and_describes_only_the_units_asked_for():
    fake = FakeSystem({'a.service': ACTIVE}, answers={'/usr/local/bin/switch': (3, '', 'boom')})
    systemd = client(fake, systemctl=None)
    with pytest.raises(SystemdError) as exc:
        systemd.step(['/usr/local/bin/switch', '--now'], ['a.service', 'b.service'], described=[])
    assert str(exc.value) == '/usr/local/bin/switch --now failed with rc 3: boom'
    assert systemd.steps[0]['units'] == ['a.service', 'b.service'] and not systemd.available


def test_record_is_a_step_of_what_is_not_a_command():
    systemd = client(FakeSystem())
    step = systemd.record(['symlink', '/run/x/slot-1.sock', '/var/lib/x/live.sock'], [])
    assert step['rc'] is None and step['started'] == 100.0 and systemd.steps == [step]


def test_show_and_its_failure():
    fake = FakeSystem({'a.service': ACTIVE}, answers={('systemctl', 'show', '--property=Id', 'gone.service'): (1, '', 'Failed to connect to bus\n')})
    systemd = client(fake)
    state = systemd.show('a.service')
    assert state['MainPID'] == 42 and state['ActiveState'] == 'active'
    assert fake.calls[0] == ['systemctl', 'show', '--property=' + ','.join(SHOW_PROPERTIES), 'a.service']
    with pytest.raises(SystemdError, match='failed with rc 1: Failed to connect to bus'):
        systemd.show('gone.service', properties=('Id',))
    assert systemd.main_pid('a.service') == 42
    assert systemd.steps == []  # questions are not steps


def test_show_many_in_one_call():
    fake = FakeSystem({'a.service': ACTIVE, 'b.socket': dict(ACTIVE, SubState='listening', MainPID='0')})
    states = client(fake).show_many(['a.service', 'b.socket'])
    assert len(fake.calls) == 1 and states['a.service']['MainPID'] == 42 and states['b.socket']['SubState'] == 'listening'
    assert client(fake).show_many([]) == {}


def test_describe_with_other_properties_and_when_show_fails():
    fake = FakeSystem({'a.service': FAILED}, answers={('systemctl', 'show', '--property=' + ','.join(SHOW_PROPERTIES), 'x.service'): (1, '', 'no bus')})
    systemd = client(fake)
    assert systemd.describe('a.service') == describe_state('a.service', parse_show('\n'.join('%s=%s' % i for i in FAILED.items())))
    assert systemd.describe('a.service', DESCRIBED_PROPERTIES + ('ExecMainStatus',)).endswith(' Type=exec ExecMainStatus=3')
    assert systemd.describe('x.service').startswith('x.service: systemctl show ') and 'no bus' in systemd.describe('x.service')


def test_first_not_loaded():
    systemd = client(FakeSystem({'a.service': ACTIVE, 'b.socket': ACTIVE}))
    assert systemd.first_not_loaded(['a.service', 'b.socket']) is None
    unit, state = systemd.first_not_loaded(['a.service', 'c.service', 'd.service'])
    assert unit == 'c.service' and state['LoadState'] == 'not-found'


def test_is_active_is_enabled_and_list_units():
    fake = FakeSystem(answers={
        'is-active': (3, 'inactive\n', ''),
        ('systemctl', 'is-active', 'a.service'): (0, 'active\n', ''),
        ('systemctl', 'is-enabled', 'a.socket', 'a.service'): (0, 'enabled\ndisabled\n', ''),
        ('systemctl', 'is-enabled', 'a.socket'): (0, 'enabled\n', ''),
        'list-units': (0, 'a.service loaded active running A\nb.socket not-found inactive dead b.socket\n\n', ''),
    })
    systemd = client(fake)
    assert systemd.is_active('a.service') and not systemd.is_active('b.service')
    assert not systemd.is_enabled(['a.socket', 'a.service']) and systemd.is_enabled(['a.socket'])
    assert systemd.list_units(['a*', 'b*']) == {'a.service': 'loaded', 'b.socket': 'not-found'}
    assert fake.calls[-1] == ['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--type=service,socket', 'a*', 'b*']


def test_journal_lines_since_a_time_and_when_there_is_none():
    fake = FakeSystem(answers={'journalctl': (0, 'one\n\n  two  \n', '')})
    systemd = client(fake)
    assert systemd.journal(['a.service', 'b.service'], lines=5, since=1700000000.7) == 'one | two'
    assert fake.calls[-1] == ['journalctl', '--no-pager', '--output=cat', '--lines=5', '--unit=a.service', '--unit=b.service',
                              '--since=@1700000000']
    assert systemd.journal([], lines=5) == '' and systemd.journal(['a.service'], lines=0) == ''
    assert client(fake, journalctl=None).journal(['a.service']) == ''
    assert client(FakeSystem(answers={'journalctl': (1, 'no journal', '')})).journal(['a.service']) == ''


def test_daemon_reload_and_reset_failed():
    fake = FakeSystem(answers={'reset-failed': (1, '', 'not loaded')})
    systemd = client(fake)
    systemd.daemon_reload()
    systemd.reset_failed(['a.service'])  # never fails
    systemd.reset_failed([])
    assert fake.calls == [['systemctl', '--no-ask-password', 'daemon-reload'], ['systemctl', 'reset-failed', 'a.service']]
    assert len(systemd.steps) == 1


# -- waits ----------------------------------------------------------------------------------


def timeline(*states):
    """A unit state per show, the last one repeating."""
    seen = []

    def state():
        seen.append(1)
        return states[min(len(seen), len(states)) - 1]
    return state


def test_wait_until_accepted():
    fake = FakeSystem({'a.service': timeline(dict(ACTIVE, ActiveState='activating'), dict(ACTIVE, ActiveState='activating'), ACTIVE)})
    systemd = client(fake)
    state = systemd.wait('a.service', fake.now + 10, running)
    assert state['ActiveState'] == 'active' and len(fake.calls) == 3


def test_wait_fails_at_once_with_the_reason_and_the_state():
    fake = FakeSystem({'a.service': timeline(dict(ACTIVE, ActiveState='activating'), FAILED)})
    with pytest.raises(SystemdError) as exc:
        client(fake).wait('a.service', fake.now + 10, running)
    assert str(exc.value) == ('a.service failed (Result=exit-code, exit status 3): '
                              'a.service: LoadState=loaded ActiveState=failed SubState=failed Result=exit-code MainPID=0 Type=exec')
    assert fake.now < 101


def test_wait_gives_up_at_the_deadline_saying_what_and_within_what():
    fake = FakeSystem({'a.service': dict(ACTIVE, ActiveState='activating')})
    systemd = client(fake)
    with pytest.raises(SystemdError) as exc:
        systemd.wait('a.service', fake.now + 1, running)
    assert str(exc.value).startswith('a.service was not ready in time: a.service: LoadState=loaded ActiveState=activating')
    assert 101 <= fake.now < 101.2
    with pytest.raises(SystemdError) as exc:
        systemd.wait('a.service', fake.now + 0.5, running, what='active', within='within ready_timeout (0.5 s)', interval=0.1,
                     described=False)
    assert str(exc.value) == 'a.service was not active within ready_timeout (0.5 s)'


def test_wait_with_a_caller_reason():
    fake = FakeSystem({'a.service': FAILED})
    with pytest.raises(SystemdError) as exc:
        client(fake).wait('a.service', fake.now + 5, running, fail=lambda state: 'did not come back' if unit_failure(state) else None)
    assert str(exc.value).startswith('a.service did not come back: a.service: LoadState=loaded ActiveState=failed')


# -- systemd-analyze and the module ----------------------------------------------------------


def test_verify_counts_warnings_as_failures():
    ok = client(FakeSystem(answers={'systemd-analyze': (0, '', '')})).verify(['/tmp/a.service'])
    assert ok == (True, '')
    warned = client(FakeSystem(answers={'systemd-analyze': (0, '', "/tmp/a.service:3: Unknown key name 'Foo' in section 'Service', ignoring.\n")}))
    passed, said = warned.verify(['/tmp/a.service'])
    assert not passed and 'Unknown key' in said


def test_security_reads_the_score_and_the_weak_lines():
    out = ('  NAME  DESCRIPTION  EXPOSURE\n\u2717 PrivateNetwork=  Service has access to the host network  0.5\n'
           '\u2713 User=  Service runs under a static non-root user identity\n'
           '\u2192 Overall exposure level for a.service: 1.3 OK \U0001f642\n')
    fake = FakeSystem(answers={'systemd-analyze': (0, out, '')})
    score, weakest, text = client(fake).security('a.service', offline=True)
    assert score == 1.3 and weakest == ['\u2717 PrivateNetwork= Service has access to the host network 0.5'] and text == out
    assert fake.calls[-1] == ['systemd-analyze', 'security', '--no-pager', '--offline=yes', 'a.service']


def test_for_module_takes_the_binaries_from_the_module():
    class Module:
        def __init__(self):
            self.asked = []

        def run_command(self, argv, environ_update=None):
            return 0, '', ''

        def get_bin_path(self, name, required=False):
            self.asked.append((name, required))
            return None if name == 'journalctl' else '/usr/bin/' + name

    module = Module()
    systemd = Systemd.for_module(module, required=False)
    assert (systemd.systemctl, systemd.journalctl, systemd.analyze) == ('/usr/bin/systemctl', None, '/usr/bin/systemd-analyze')
    assert ('systemctl', False) in module.asked and systemd.run_command == module.run_command and systemd.available
