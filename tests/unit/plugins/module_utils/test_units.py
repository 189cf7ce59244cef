# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_units: the one-call install and start of a socket-activated service's units.

The unit directory, the staging directory and sysctl's files are temporary
directories; systemd is a fake that keeps unit states and records what it
was asked, so every decision (skip, verify, guard, install, stop, start,
restart one at a time, diagnose) is checked without a real systemd.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _units
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import SystemdError
from ansible_collections.zerodown.deploy.plugins.module_utils._units import Rollout, Spec, UnitsError

SOCKET = '[Socket]\nListenStream=/run/hello.sock\n'
SERVICE = '[Service]\nExecStart=/usr/bin/app\n'


class FakeSystemd:
    """What Rollout asks of systemd, answered from ``states`` ({unit: {ActiveState, UnitFileState, MainPID, ...}})."""

    def __init__(self, states=None, verify=(True, ''), score=1.0, journal=''):
        self.states = states or {}
        self.calls = []
        self.verify_answer = verify
        self.score = score
        self.journal_text = journal
        self.fail_start = set()
        self.pid = 1000

    def verify(self, paths):
        self.calls.append(('verify', tuple(os.path.basename(p) for p in paths)))
        return self.verify_answer

    def security(self, unit, offline=False):
        self.calls.append(('security', os.path.basename(unit), offline))
        return self.score, ['\u2717 PrivateNetwork='], ''

    def is_active(self, unit):
        return self.states.get(unit, {}).get('ActiveState') == 'active'

    def _state(self, unit):
        return self.states.setdefault(unit, {'ActiveState': 'inactive', 'UnitFileState': 'disabled', 'MainPID': 0, 'LoadState': 'loaded'})

    def run(self, verb, units, check=True, extra=()):
        self.calls.append((verb,) + tuple(extra) + tuple(units))
        for unit in units:
            state = self._state(unit)
            if verb in ('start', 'restart'):
                if unit in self.fail_start:
                    state.update(ActiveState='failed', Result='exit-code', ExecMainCode='1', ExecMainStatus='226')
                    if check:
                        raise SystemdError('systemctl %s %s failed' % (verb, unit))
                    continue
                self.pid += 1
                state.update(ActiveState='active', MainPID=self.pid)
            elif verb in ('stop', 'disable'):
                state.update(ActiveState='inactive', MainPID=0)
                if verb == 'disable':
                    state['UnitFileState'] = 'disabled'
            if verb == 'enable':
                state['UnitFileState'] = 'enabled'
        return {'rc': 0}

    def daemon_reload(self):
        self.calls.append(('daemon-reload',))

    def list_units(self, patterns):
        return dict((unit, 'loaded') for unit, state in self.states.items()
                    if state.get('ActiveState') == 'active' and unit.endswith('.service'))

    def show_many(self, units, properties=()):
        return dict((unit, dict(self._state(unit))) for unit in units)

    def show(self, unit):
        return dict(self._state(unit))

    def main_pid(self, unit):
        return self._state(unit).get('MainPID', 0)

    def sleep(self, seconds):
        """The settle after a start without a health path: what happens meanwhile (``after_sleep``) happens here."""
        self.calls.append(('sleep', seconds))
        for unit, changes in getattr(self, 'after_sleep', {}).items():
            self._state(unit).update(changes)

    def wait(self, unit, deadline, accept, fail=None, what='ready'):
        state = self.show(unit)
        if accept(state):
            return state
        reason = fail(state) if fail else None
        raise SystemdError('%s %s' % (unit, reason or 'not %s' % what))

    def call(self, argv):
        self.calls.append(tuple(argv))
        return 0, '', ''

    def journal(self, units, lines=20, since=None):
        self.journal_units = list(units)
        return self.journal_text


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    unit_dir = tmp_path / 'units'
    unit_dir.mkdir()
    (tmp_path / 'proc').write_text('128\n')
    monkeypatch.setattr(_units, 'SYSCTL_SOMAXCONN', str(tmp_path / 'proc'))
    monkeypatch.setattr(_units, 'SYSCTL_DIR', str(tmp_path))
    monkeypatch.setattr(_units, 'DROPIN_DIRS', (str(unit_dir),))
    return tmp_path


def params(dirs, **overrides):
    base = dict(name='hello', units={'hello.socket': SOCKET, 'hello.service': SERVICE}, mode='socket', socket=None,
                services=['hello.service'], obsolete=['hello@.service'], unit_dir=str(dirs / 'units'),
                staging_dir=str(dirs / 'stage'), state='started', restart_on_change=True, allow_socket_restart=False,
                exposure_file='hello.service', exposure_unit='hello.service', exposure_limit=1.5, hardening_profile='default',
                hardening_strict=False, health_endpoint=None, health_path='', ready_timeout=5, backlog=4096,
                manage_somaxconn=True, proxy=None)
    base.update(overrides)
    return base


def install(dirs, files):
    for name, text in files.items():
        (dirs / 'units' / name).write_text(text)


def test_first_install_verifies_scores_installs_and_starts(dirs):
    systemd = FakeSystemd()
    result = Rollout(Spec(params(dirs)), systemd).run()
    assert result['changed'] and result['verified'] and result['changed_units'] == ['hello.socket', 'hello.service']
    assert ('verify', ('hello.socket', 'hello.service')) in systemd.calls
    assert ('security', 'hello.service', True) in systemd.calls
    assert (dirs / 'units' / 'hello.service').read_text() == SERVICE
    assert ('daemon-reload',) in systemd.calls
    assert result['started'] == ['hello.socket', 'hello.service'] and result['restarted'] == []
    # somaxconn (128 here) is raised to the backlog, with a file for the next boot.
    assert result['somaxconn'] == 4096
    assert 'net.core.somaxconn = 4096' in (dirs / '60-zerodown-hello.conf').read_text()
    assert result['exposure'] == 1.0


def test_templates_are_verified_as_their_instance_1(dirs):
    # systemd-analyze verify instantiates a template file as "i": ListenStream=127.0.0.%i:8201 would not be an address.
    spec = Spec(params(dirs, units={'hello.socket': SOCKET, 'hello@.service': SERVICE}, obsolete=[]))
    assert spec.staged('hello@.service') == os.path.join(spec.staging_dir, 'hello@1.service')
    assert spec.staged('hello@.socket') == os.path.join(spec.staging_dir, 'hello@1.socket')
    assert spec.staged('hello.socket') == os.path.join(spec.staging_dir, 'hello.socket')
    systemd = FakeSystemd()
    Rollout(spec, systemd).run()
    assert ('verify', ('hello.socket', 'hello@1.service')) in systemd.calls
    assert (dirs / 'units' / 'hello@.service').read_text() == SERVICE


def test_unchanged_units_are_not_staged_verified_or_scored(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello.service': SERVICE})
    (dirs / 'proc').write_text('4096\n')
    states = dict((unit, {'ActiveState': 'active', 'UnitFileState': 'enabled', 'MainPID': 5, 'LoadState': 'loaded'})
                  for unit in ('hello.socket', 'hello.service'))
    systemd = FakeSystemd(states)
    result = Rollout(Spec(params(dirs)), systemd).run()
    assert not result['changed'] and not result['verified']
    assert [call for call in systemd.calls if call[0] in ('verify', 'security', 'daemon-reload', 'start', 'restart')] == []
    assert not (dirs / 'stage').exists()


def test_a_unit_that_does_not_verify_changes_nothing(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello.service': 'old\n'})
    systemd = FakeSystemd(verify=(False, 'hello.service: Unknown key name PrivateNetwrk'))
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs)), systemd).run()
    assert 'failed `systemd-analyze verify`' in exc.value.msg
    assert 'the installed units and the running service are unchanged' in exc.value.msg
    assert 'Unknown key name PrivateNetwrk' in exc.value.msg
    assert (dirs / 'units' / 'hello.service').read_text() == 'old\n'


def test_exposure_above_the_limit_installs_nothing(dirs):
    systemd = FakeSystemd(score=9.6)
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs, hardening_profile='none')), systemd).run()
    assert 'scores 9.6' in exc.value.msg and 'above the limit 1.5' in exc.value.msg and 'Nothing was installed' in exc.value.msg
    assert not (dirs / 'units' / 'hello.service').exists()


def test_a_changed_listening_socket_is_refused_without_the_opt_in(dirs):
    install(dirs, {'hello.socket': 'old socket\n', 'hello.service': SERVICE})
    systemd = FakeSystemd({'hello.socket': {'ActiveState': 'active'}})
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs)), systemd).run()
    assert 'set socket_service_allow_socket_restart: true' in exc.value.msg
    assert (dirs / 'units' / 'hello.socket').read_text() == 'old socket\n'


def test_with_the_opt_in_the_instances_stop_before_the_socket_restarts(dirs):
    install(dirs, {'hello.socket': 'old socket\n', 'hello.service': SERVICE})
    systemd = FakeSystemd({'hello.socket': {'ActiveState': 'active', 'UnitFileState': 'enabled'},
                           'hello.service': {'ActiveState': 'active', 'UnitFileState': 'enabled', 'MainPID': 7}})
    result = Rollout(Spec(params(dirs, allow_socket_restart=True)), systemd).run()
    assert result['socket_restarted']
    verbs = [call[0] for call in systemd.calls]
    assert verbs.index('stop') < verbs.index('restart')


def test_a_changed_service_restarts_running_instances_one_at_a_time(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello@.service': 'old\n'})
    units = ['hello@1.service', 'hello@2.service']
    states = dict((unit, {'ActiveState': 'active', 'UnitFileState': 'enabled', 'MainPID': 10 + i, 'LoadState': 'loaded'})
                  for i, unit in enumerate(['hello.socket'] + units))
    systemd = FakeSystemd(states)
    result = Rollout(Spec(params(dirs, units={'hello.socket': SOCKET, 'hello@.service': SERVICE}, services=units,
                                 obsolete=['hello.service'], exposure_file='hello@.service', exposure_unit='hello@1.service')),
                     systemd).run()
    assert result['restarted'] == units
    assert [call for call in systemd.calls if call[0] == 'restart'] == [('restart', 'hello@1.service'), ('restart', 'hello@2.service')]


def test_no_restart_when_the_caller_restarts_under_load(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello.service': 'old\n'})
    systemd = FakeSystemd({'hello.socket': {'ActiveState': 'active', 'UnitFileState': 'enabled'},
                           'hello.service': {'ActiveState': 'active', 'UnitFileState': 'enabled', 'MainPID': 7}})
    result = Rollout(Spec(params(dirs, restart_on_change=False)), systemd).run()
    assert result['changed_units'] == ['hello.service'] and result['restarted'] == []


def test_scaling_down_stops_the_instances_no_longer_wanted_and_removes_the_other_shape(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello@.service': SERVICE})
    systemd = FakeSystemd({'hello@1.service': {'ActiveState': 'active'}, 'hello@2.service': {'ActiveState': 'active'},
                           'hello.socket': {'ActiveState': 'active', 'UnitFileState': 'enabled'}})
    result = Rollout(Spec(params(dirs)), systemd).run()
    assert result['stopped'] == ['hello@1.service', 'hello@2.service']
    assert ('disable', '--now', 'hello@1.service', 'hello@2.service') in systemd.calls
    assert result['removed_units'] == ['hello@.service'] and not (dirs / 'units' / 'hello@.service').exists()


def test_proxy_files_of_another_app_are_not_removed(dirs):
    # hello-app@.service may be the unit of an app called hello-app: only this app's public proxy marks them as its own.
    install(dirs, {'hello.socket': SOCKET, 'hello.service': SERVICE, 'hello-app@.service': 'theirs\n'})
    rollout = Rollout(Spec(params(dirs, obsolete=['hello@.service', 'hello-app@.service'])), FakeSystemd())
    assert rollout.obsolete_present == []


def test_check_mode_reports_the_change_and_touches_nothing(dirs):
    systemd = FakeSystemd()
    result = Rollout(Spec(params(dirs)), systemd, check_mode=True).run()
    assert result['changed'] and result['changed_units'] == ['hello.socket', 'hello.service']
    assert systemd.calls == [] and not (dirs / 'units' / 'hello.service').exists()


def test_a_service_that_does_not_start_is_diagnosed_as_hardening(dirs):
    systemd = FakeSystemd(journal='touch: cannot touch /srv/x: Read-only file system')
    systemd.fail_start.add('hello.service')
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs)), systemd).run()
    assert 'hello did not become ready' in exc.value.msg
    assert 'looks caused by hardening' in exc.value.msg and 'Read-only file system' in exc.value.msg


def test_the_strict_tier_names_jit_runtimes(dirs):
    systemd = FakeSystemd(journal='hello.service: Main process exited, code=dumped, status=5/TRAP')
    systemd.fail_start.add('hello.service')
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs, hardening_strict=True)), systemd).run()
    assert 'MemoryDenyWriteExecute=yes (the strict tier) kills JIT runtimes' in exc.value.msg


def test_a_failure_without_hardening_does_not_blame_it(dirs):
    systemd = FakeSystemd(journal='ImportError: no module named app')
    systemd.fail_start.add('hello.service')
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs, hardening_profile='none')), systemd).run()
    assert 'hardening' not in exc.value.msg.split('Unit state')[0]


def test_a_dropin_gets_the_installed_unit_scored_even_when_nothing_changed(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello.service': SERVICE})
    (dirs / 'units' / 'hello.service.d').mkdir()
    (dirs / 'proc').write_text('4096\n')
    states = dict((unit, {'ActiveState': 'active', 'UnitFileState': 'enabled', 'MainPID': 5}) for unit in ('hello.socket', 'hello.service'))
    systemd = FakeSystemd(states, score=4.2)
    with pytest.raises(UnitsError) as exc:
        Rollout(Spec(params(dirs)), systemd).run()
    assert 'scores 4.2 as installed, above the limit 1.5' in exc.value.msg and 'drop-in' in exc.value.msg


def test_units_must_hold_the_socket(dirs):
    with pytest.raises(UnitsError, match='must contain the socket unit hello.socket'):
        Spec(params(dirs, units={'hello.service': SERVICE}))


def test_one_socket_per_slot_needs_the_socket_template_and_the_servers_dir(dirs):
    slot_units = {'hello@.socket': SOCKET, 'hello@.service': SERVICE}
    spec = Spec(params(dirs, mode='instances', units=slot_units, services=[], slots={'servers_dir': str(dirs / 'servers')}))
    assert spec.socket == 'hello@.socket' and spec.instances_layout
    with pytest.raises(UnitsError, match='must contain the socket unit hello@.socket'):
        Spec(params(dirs, mode='instances', units={'hello@.service': SERVICE}, slots={'servers_dir': str(dirs / 'servers')}))
    with pytest.raises(UnitsError, match='needs the nginx servers directory'):
        Spec(params(dirs, mode='instances', units=slot_units))


def test_unit_names_are_file_names(dirs):
    with pytest.raises(UnitsError, match='not a unit file name'):
        Spec(params(dirs, units={'hello.socket': SOCKET, '../evil.service': SERVICE}))


def test_diff_shows_before_and_after(dirs):
    install(dirs, {'hello.socket': SOCKET, 'hello.service': 'old\n'})
    diff = Rollout(Spec(params(dirs)), FakeSystemd()).diff()
    assert diff == [{'before_header': str(dirs / 'units' / 'hello.service'), 'after_header': str(dirs / 'units' / 'hello.service'),
                     'before': 'old\n', 'after': SERVICE}]


def test_the_diagnosis_reads_the_journal_of_this_apps_units_only(dirs):
    # hello* would take in the journal of an app called hello-admin.
    systemd = FakeSystemd(journal='ImportError: no module named app')
    systemd.fail_start.add('hello.service')
    with pytest.raises(UnitsError):
        Rollout(Spec(params(dirs)), systemd).run()
    assert 'hello.service' in systemd.journal_units and 'hello@*.service' in systemd.journal_units
    assert all(unit.startswith(('hello.', 'hello@', 'hello-app@', 'hello-slot@')) for unit in systemd.journal_units), systemd.journal_units


def test_without_a_health_path_a_service_must_stay_up_after_it_was_active(dirs):
    """A process that exits at once (touch on a read-only path) is 'active' for an instant; the settle sees it go."""
    systemd = FakeSystemd()
    systemd.after_sleep = {'hello.service': {'ActiveState': 'activating', 'SubState': 'auto-restart', 'Result': 'exit-code',
                                             'ExecMainStatus': '1', 'MainPID': 0}}
    with pytest.raises(UnitsError, match='hello.service exited and is waiting to be restarted'):
        Rollout(Spec(params(dirs)), systemd).run()
    assert ('sleep', _units.SETTLE_SECONDS) in systemd.calls
