# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""End-to-end tests of health_check.

The module runs in-process against a REAL HTTP server on a Unix socket or
loopback TCP. Only systemd is faked: ``systemctl`` and ``journalctl`` scripts
placed first on PATH read the unit states (a timeline per unit: the n-th
``show`` of a unit prints the n-th state, the last one repeats) and the
journal from a JSON file, and log every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.deploy.plugins.modules import health_check


# ------------------------------------------------------------------ fake systemctl and journalctl

FAKE_SYSTEMCTL = r'''#!%(python)s
"""A fake systemctl for unit tests: only show, from a timeline of states per unit."""
import json
import os
import sys

STATE = %(state)r
LOG = %(log)r


def main(argv):
    with open(STATE) as f:
        state = json.load(f)
    with open(LOG, 'a') as f:
        f.write(json.dumps({'cmd': 'systemctl', 'argv': argv, 'lc_all': os.environ.get('LC_ALL')}) + '\n')
    if state.get('systemctl_rc'):
        sys.stderr.write(state.get('systemctl_stderr', 'Failed to connect to bus\n'))
        return state['systemctl_rc']
    args = [a for a in argv if not a.startswith('--')]
    props = [a.split('=', 1)[1].split(',') for a in argv if a.startswith('--property=')]
    if args[0] != 'show':
        sys.stderr.write('fake systemctl: unsupported verb %%s\n' %% args[0])
        return 2
    for index, name in enumerate(args[1:]):
        timeline = state['units'].get(name)
        if timeline is None:
            shown = dict(LoadState='not-found', ActiveState='inactive', SubState='dead', Result='success', MainPID=0)
        else:
            seen = state['calls'].get(name, 0)
            state['calls'][name] = seen + 1
            shown = timeline[min(seen, len(timeline) - 1)]
        shown = dict(shown, Id=name)
        if index:
            print()
        for key in (props[0] if props else sorted(shown)):
            print('%%s=%%s' %% (key, shown.get(key, '')))
    tmp = '%%s.%%d.tmp' %% (STATE, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(state, f)
    os.replace(tmp, STATE)
    return 0


sys.exit(main(sys.argv[1:]))
'''

FAKE_JOURNALCTL = r'''#!%(python)s
"""A fake journalctl: prints the journal text of the state file."""
import json
import sys

with open(%(state)r) as f:
    state = json.load(f)
with open(%(log)r, 'a') as f:
    f.write(json.dumps({'cmd': 'journalctl', 'argv': sys.argv[1:]}) + '\n')
sys.stdout.write(state.get('journal', ''))
sys.exit(state.get('journal_rc', 0))
'''

RUNNING = dict(LoadState='loaded', ActiveState='active', SubState='running', Result='success', MainPID=4242, Type='notify',
               ExecMainCode=0, ExecMainStatus=0)
FAILED = dict(RUNNING, ActiveState='failed', SubState='failed', Result='exit-code', MainPID=0, ExecMainCode=1, ExecMainStatus=3)
INACTIVE = dict(RUNNING, ActiveState='inactive', SubState='dead', MainPID=0)
DEACTIVATING = dict(RUNNING, ActiveState='deactivating', SubState='stop-sigterm')
ACTIVATING = dict(RUNNING, ActiveState='activating', SubState='start', MainPID=4242)


class FakeSystem:
    """The fake systemctl and journalctl on PATH, their state file and their log."""

    def __init__(self, directory, units, journal='', **extra):
        self.state_path = os.path.join(directory, 'systemd-state.json')
        self.log_path = os.path.join(directory, 'calls.log')
        self.bin_dir = os.path.join(directory, 'bin')
        os.mkdir(self.bin_dir)
        state = {'units': dict((name, timeline if isinstance(timeline, list) else [timeline]) for name, timeline in units.items()),
                 'calls': {}, 'journal': journal}
        state.update(extra)
        with open(self.state_path, 'w', encoding='utf-8') as f:
            json.dump(state, f)
        for name, template in (('systemctl', FAKE_SYSTEMCTL), ('journalctl', FAKE_JOURNALCTL)):
            script = os.path.join(self.bin_dir, name)
            with open(script, 'w', encoding='utf-8') as f:
                f.write(template % {'python': sys.executable, 'state': self.state_path, 'log': self.log_path})
            os.chmod(script, os.stat(script).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def log(self, cmd=None):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, encoding='utf-8') as f:
            entries = [json.loads(line) for line in f]
        return [e for e in entries if cmd is None or e['cmd'] == cmd]

    def shows(self, unit):
        with open(self.state_path, encoding='utf-8') as f:
            return json.load(f)['calls'].get(unit, 0)


# ------------------------------------------------------------------ real test servers


class _Handler(BaseHTTPRequestHandler):
    """Answers every GET with the server's next scripted answer."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # keep test output clean

    def address_string(self):
        return 'test-client'  # Unix socket clients have no address; the default would fail

    def do_GET(self):
        status, body = self.server.next_answer(self.path, self.headers.get('Host'))
        payload = body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(payload)))
        self.send_header('Connection', 'close')
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up


class _Scripted:
    """The answers a server gives, in order; the last one repeats for ever. An answer is a status or (status, body)."""

    def script(self, answers):
        self.lock = threading.Lock()
        self.answers = [(a, 'ok' if 200 <= a < 300 else 'nope') if isinstance(a, int) else tuple(a) for a in answers]
        self.seen = []

    def next_answer(self, path, host):
        with self.lock:
            self.seen.append((path, host))
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _TCPServer(_Scripted, ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _UnixServer(_Scripted, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def _serving(server, answers):
    server.script(answers)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def servers(sock_dir):
    """servers.unix(*answers) / servers.tcp(*answers): a real server; .target is what to pass as target."""
    with contextlib.ExitStack() as stack:
        class Make:
            @staticmethod
            def unix(*answers):
                path = os.path.join(sock_dir, 'app.sock')
                server = stack.enter_context(_serving(_UnixServer(path, _Handler), answers or (200,)))
                server.path = path
                server.target = 'unix:' + path
                return server

            @staticmethod
            def tcp(*answers):
                server = stack.enter_context(_serving(_TCPServer(('127.0.0.1', 0), _Handler), answers or (200,)))
                server.target = '127.0.0.1:%d' % server.server_address[1]
                return server

        yield Make


@pytest.fixture
def fake_system(sock_dir, monkeypatch):
    """fake_system(units, journal='', **state): fake systemctl and journalctl first on PATH."""
    def make(units, journal='', **extra):
        system = FakeSystem(sock_dir, units, journal, **extra)
        monkeypatch.setenv('PATH', system.bin_dir + os.pathsep + os.environ.get('PATH', ''))
        return system
    return make


@pytest.fixture
def run_module(module_runner):
    """run_module(check=False, **args): the module's main() run like Ansible would; fast probing by default."""
    def run(check=False, **args):
        options = dict(interval=0.01, timeout=10)  # generous: only the tests that expect a timeout set a short one
        options.update(args)
        return module_runner(health_check.main, check=check, **options)
    return run


REPORTED = ('LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'ExecMainStatus')


def _reported(state):
    shown = dict((key, str(state[key])) for key in REPORTED)
    shown['MainPID'] = int(state['MainPID'])
    return shown


# ------------------------------------------------------------------ healthy


def test_healthy_server_is_ok(servers, run_module):
    server = servers.unix(200)
    result = run_module(target=server.target)
    assert not result.get('failed'), result['msg']
    assert result['changed'] is False
    assert result['target'] == server.target
    assert result['attempts'] == 3 and result['streak'] == 3
    assert result['answers'] == {'HTTP 200': 3}
    assert result['last'] == {'status': 200, 'kind': None, 'error': None, 'body': 'ok'}
    assert isinstance(result['elapsed_s'], float) and 0 <= result['elapsed_s'] < 10
    assert result['units'] == {}
    assert result['warnings'] == []
    assert server.seen == [('/health', 'localhost')] * 3


def test_bare_socket_path_is_normalised_and_options_are_used(servers, run_module):
    server = servers.unix(200)
    result = run_module(target=server.path, path='/ready?deep=1', successes=5, host_header='shop.example.com')
    assert not result.get('failed'), result['msg']
    assert result['target'] == 'unix:' + server.path
    assert result['attempts'] == 5 and result['answers'] == {'HTTP 200': 5}
    assert server.seen == [('/ready?deep=1', 'shop.example.com')] * 5


def test_tcp_target_and_its_default_host_header(servers, run_module):
    server = servers.tcp(200)
    result = run_module(target=server.target, successes=1)
    assert not result.get('failed'), result['msg']
    assert result['target'] == server.target and result['attempts'] == 1
    assert server.seen == [('/health', server.target)]


def test_flapping_server_needs_consecutive_successes(servers, run_module):
    server = servers.unix(200, 200, 503, 200, 302, 200, 200, 200)
    result = run_module(target=server.target)
    assert not result.get('failed'), result['msg']
    assert result['attempts'] == 8
    assert result['answers'] == {'HTTP 200': 6, 'HTTP 503': 1, 'HTTP 302': 1}


def test_http_url_with_a_path_warns_and_probes_path(servers, run_module):
    server = servers.tcp(200)
    result = run_module(target='http://%s/status?verbose=1' % server.target, successes=1)
    assert not result.get('failed'), result['msg']
    assert result['target'] == server.target
    assert result['warnings'] == ['the path /status?verbose=1 in target is ignored; the probes go to path']
    assert server.seen == [('/health', server.target)]


@pytest.mark.parametrize('suffix', ['', '/'])
def test_http_url_without_a_path_does_not_warn(servers, run_module, suffix):
    server = servers.tcp(200)
    result = run_module(target='http://%s%s' % (server.target, suffix), successes=1)
    assert not result.get('failed'), result['msg']
    assert result['warnings'] == [] and result['target'] == server.target


def test_check_mode_still_probes_and_changes_nothing(servers, run_module):
    server = servers.unix(200)
    result = run_module(check=True, target=server.target)
    assert not result.get('failed'), result['msg']
    assert result['changed'] is False and result['attempts'] == 3
    assert len(server.seen) == 3


def test_check_mode_still_fails_when_unhealthy(servers, run_module):
    server = servers.unix(503)
    result = run_module(check=True, target=server.target, timeout=0.3)
    assert result['failed'] is True and result['changed'] is False
    assert 'did not answer 2xx 3 times in a row within timeout (0.3 s)' in result['msg']
    assert len(server.seen) == result['attempts'] >= 1


def test_boundary_values_are_accepted(servers, run_module):
    server = servers.unix(200)
    result = run_module(target=server.target, successes=1, timeout=3600, probe_timeout=300, interval=0, journal_lines=200)
    assert not result.get('failed'), result['msg']
    assert result['attempts'] == 1


# ------------------------------------------------------------------ unhealthy


def test_server_answering_503_fails_after_the_timeout(servers, run_module):
    server = servers.unix((503, 'down for maintenance\n'))
    result = run_module(target=server.target, path='/health', timeout=0.5)
    assert result['failed'] is True and result['changed'] is False
    attempts = result['attempts']
    assert attempts >= 2 and result['answers'] == {'HTTP 503': attempts} and result['streak'] == 0
    assert result['last'] == {'status': 503, 'kind': 'http_5xx', 'error': 'HTTP 503 Service Unavailable', 'body': 'down for maintenance\n'}
    assert result['elapsed_s'] >= 0.5  # it waited out the timeout
    assert result['msg'] == ("health check GET /health through %s did not answer 2xx 3 times in a row within timeout (0.5 s); "
                             "last answer: HTTP 503 'down for maintenance'; answers: HTTP 503 x%d" % (server.target, attempts))
    assert result['target'] == server.target and result['units'] == {}
    assert len(server.seen) == attempts


def test_nothing_listening_fails_with_connect_refused(sock_dir, run_module):
    target = 'unix:' + os.path.join(sock_dir, 'nobody.sock')
    result = run_module(target=target, timeout=0.3)
    assert result['failed'] is True
    assert result['answers'] == {'connect_refused': result['attempts']}
    assert result['last']['kind'] == 'connect_refused' and result['last']['status'] is None and result['last']['body'] is None
    assert 'through %s did not answer 2xx' % target in result['msg']
    assert 'last answer: connect_refused (' in result['msg']


# ------------------------------------------------------------------ watched units


def test_watched_unit_running_and_healthy(servers, fake_system, run_module):
    server = servers.unix(200)
    system = fake_system({'app.service': RUNNING, 'app.socket': dict(RUNNING, SubState='listening', MainPID=0)})
    result = run_module(target=server.target, units=['app.service', 'app.socket'])
    assert not result.get('failed'), result['msg']
    assert result['attempts'] == 3
    assert result['units'] == {'app.service': _reported(RUNNING),
                               'app.socket': _reported(dict(RUNNING, SubState='listening', MainPID=0))}
    shows = system.log('systemctl')
    assert shows and all(e['lc_all'] == 'C' for e in shows)
    properties = [a for a in shows[0]['argv'] if a.startswith('--property=')][0].split('=', 1)[1].split(',')
    assert {'ActiveState', 'LoadState', 'Result', 'MainPID', 'ExecMainStatus'} <= set(properties)
    assert system.log('journalctl') == []  # no journal on success


def test_watched_unit_that_failed_stops_the_wait_early(servers, fake_system, run_module):
    server = servers.unix(503)
    fake_system({'app.service': FAILED})
    result = run_module(target=server.target, units=['app.service'], timeout=30)
    assert result['failed'] is True
    assert 'stopped early because app.service failed (Result=exit-code, exit status 3)' in result['msg']
    assert 'did not answer' not in result['msg']
    assert result['attempts'] == 1  # the first look at the unit ended it
    assert result['elapsed_s'] < 30
    assert result['units'] == {'app.service': _reported(FAILED)}


def test_unit_that_dies_during_the_wait(servers, fake_system, run_module):
    # The unit is starting for three looks, then fails: the wait ends at the fourth look, not at the timeout.
    server = servers.unix(503)
    system = fake_system({'hello-preflight.service': [ACTIVATING, ACTIVATING, RUNNING, FAILED]})
    result = run_module(target=server.target, units=['hello-preflight.service'], timeout=30)
    assert result['failed'] is True
    assert result['attempts'] == 4 and len(server.seen) == 4
    assert 'through %s stopped early because hello-preflight.service failed (' % server.target in result['msg']
    assert result['units']['hello-preflight.service']['ActiveState'] == 'failed'
    assert system.shows('hello-preflight.service') == 5  # four looks between probes, one for the report


@pytest.mark.parametrize('state', [INACTIVE, DEACTIVATING], ids=['inactive', 'deactivating'])
def test_stopped_unit_fails_fast(servers, fake_system, run_module, state):
    server = servers.unix(503)
    fake_system({'app.service': state})
    result = run_module(target=server.target, units=['app.service'], timeout=30)
    assert result['failed'] is True
    assert 'stopped early because app.service stopped (ActiveState=%s, Result=success)' % state['ActiveState'] in result['msg']
    assert result['attempts'] == 1 and result['elapsed_s'] < 30


def test_unknown_unit_fails_fast(servers, fake_system, run_module):
    server = servers.unix(503)
    fake_system({})
    result = run_module(target=server.target, units=['ghost.service'], timeout=30)
    assert result['failed'] is True
    assert 'stopped early because ghost.service is not loaded (LoadState=not-found)' in result['msg']
    assert result['attempts'] == 1
    assert result['units']['ghost.service']['LoadState'] == 'not-found'


def test_systemctl_failing_counts_as_not_loaded(servers, fake_system, run_module):
    server = servers.unix(503)
    fake_system({'app.service': RUNNING}, systemctl_rc=1, systemctl_stderr='Failed to connect to bus: No such file or directory\n')
    result = run_module(target=server.target, units=['app.service'], timeout=30)
    assert result['failed'] is True
    assert 'stopped early because app.service is not loaded (LoadState=error)' in result['msg']
    assert result['attempts'] == 1
    assert result['units'] == {'app.service': {'LoadState': 'error', 'ActiveState': None, 'SubState': None, 'Result': None,
                                               'MainPID': None, 'ExecMainStatus': None}}


def test_the_first_failing_unit_is_named(servers, fake_system, run_module):
    server = servers.unix(503)
    fake_system({'a.service': RUNNING, 'b.service': FAILED, 'c.service': INACTIVE})
    result = run_module(target=server.target, units=['a.service', 'b.service', 'c.service'], timeout=30)
    assert result['failed'] is True
    assert 'stopped early because b.service failed' in result['msg'] and 'c.service' not in result['msg']
    assert set(result['units']) == {'a.service', 'b.service', 'c.service'}


def test_healthy_before_the_unit_is_looked_at_wins(servers, fake_system, run_module):
    # successes=1: the first answer ends the wait, so the unit is only read for the report.
    server = servers.unix(200)
    system = fake_system({'app.service': FAILED})
    result = run_module(target=server.target, units=['app.service'], successes=1)
    assert not result.get('failed'), result['msg']
    assert result['units']['app.service']['ActiveState'] == 'failed'
    assert system.shows('app.service') == 1


# ------------------------------------------------------------------ journal


def test_journal_lines_are_included_on_failure(servers, fake_system, run_module):
    server = servers.unix(503)
    system = fake_system({'app.service': FAILED}, journal='Starting app...\n\n  Traceback: boom  \napp.service: Main process exited\n')
    result = run_module(target=server.target, units=['app.service'], journal_lines=5, timeout=30)
    assert result['failed'] is True
    assert result['msg'].endswith('; last journal lines: Starting app... | Traceback: boom | app.service: Main process exited')
    (call,) = system.log('journalctl')
    assert '--lines=5' in call['argv'] and '--unit=app.service' in call['argv'] and '--no-pager' in call['argv']


def test_journal_of_every_unit_on_timeout(servers, fake_system, run_module):
    server = servers.unix(503)
    system = fake_system({'app.service': RUNNING, 'app.socket': RUNNING}, journal='still starting\n')
    result = run_module(target=server.target, units=['app.service', 'app.socket'], timeout=0.3)
    assert result['failed'] is True
    assert 'within timeout (0.3 s)' in result['msg']
    assert result['msg'].endswith('; last journal lines: still starting')
    (call,) = system.log('journalctl')
    assert '--lines=20' in call['argv']  # the default
    assert [a for a in call['argv'] if a.startswith('--unit=')] == ['--unit=app.service', '--unit=app.socket']


@pytest.mark.parametrize('journal_lines, journal_rc, journal', [(0, 0, 'something\n'), (20, 1, 'something\n'), (20, 0, '\n  \n')],
                         ids=['disabled', 'journalctl-fails', 'empty'])
def test_no_journal_part_without_lines(servers, fake_system, run_module, journal_lines, journal_rc, journal):
    server = servers.unix(503)
    system = fake_system({'app.service': FAILED}, journal=journal, journal_rc=journal_rc)
    result = run_module(target=server.target, units=['app.service'], journal_lines=journal_lines, timeout=30)
    assert result['failed'] is True and 'stopped early because app.service failed' in result['msg']
    assert 'last journal lines' not in result['msg'] and 'something' not in result['msg']
    assert len(system.log('journalctl')) == (0 if journal_lines == 0 else 1)


def test_no_journal_without_units(servers, fake_system, run_module):
    server = servers.unix(503)
    system = fake_system({}, journal='unrelated\n')
    result = run_module(target=server.target, timeout=0.2)
    assert result['failed'] is True and 'last journal lines' not in result['msg']
    assert system.log() == []  # neither systemctl nor journalctl ran


# ------------------------------------------------------------------ rejected input


@pytest.mark.parametrize('target, fragment', [
    ('localhost', 'a port is required'),
    ('127.0.0.1:99999', 'out of range'),
    ('https://127.0.0.1', 'https is not supported'),
    ('ftp://127.0.0.1:21', 'unsupported scheme'),
    ('', 'empty'),
    ('unix:', 'empty Unix socket path'),
    ('/run/my app.sock', 'whitespace'),
    ('http://', 'empty host'),
])
def test_bad_target_is_rejected(run_module, target, fragment):
    result = run_module(target=target)
    assert result['failed'] is True
    assert result['msg'].startswith('target: invalid endpoint ')
    assert fragment in result['msg']
    assert 'attempts' not in result  # nothing was probed


@pytest.mark.parametrize('args, message', [
    (dict(path='health'), 'path must start with "/" and contain no whitespace or control characters, got \'health\''),
    (dict(path='/he alth'), 'path must start with "/" and contain no whitespace or control characters, got \'/he alth\''),
    (dict(path='/health\t'), 'path must start with "/" and contain no whitespace or control characters, got \'/health\\t\''),
    (dict(path='/health\x7f'), 'path must start with "/" and contain no whitespace or control characters, got \'/health\\x7f\''),
    (dict(host_header='shop.example.com\r\nX-Evil: 1'), 'host_header must not contain line breaks'),
    (dict(host_header='shop.example.com\n'), 'host_header must not contain line breaks'),
    (dict(successes=0), 'successes must be >= 1 and <= 100, got 0'),
    (dict(successes=101), 'successes must be >= 1 and <= 100, got 101'),
    (dict(timeout=0), 'timeout must be > 0 and <= 3600, got 0'),
    (dict(timeout=-5), 'timeout must be > 0 and <= 3600, got -5'),
    (dict(timeout=4000), 'timeout must be > 0 and <= 3600, got 4000'),
    (dict(probe_timeout=0), 'probe_timeout must be > 0 and <= 300, got 0'),
    (dict(probe_timeout=301), 'probe_timeout must be > 0 and <= 300, got 301'),
    (dict(interval=-1), 'interval must be >= 0 and <= 60, got -1'),
    (dict(interval=61), 'interval must be >= 0 and <= 60, got 61'),
    (dict(journal_lines=201), 'journal_lines must be >= 0 and <= 200, got 201'),
    (dict(journal_lines=-1), 'journal_lines must be >= 0 and <= 200, got -1'),
    (dict(units=['app']), "units: 'app' is not a unit name ending in .service or .socket"),
    (dict(units=['app.timer']), "units: 'app.timer' is not a unit name ending in .service or .socket"),
    (dict(units=['my app.service']), "units: 'my app.service' is not a unit name ending in .service or .socket"),
    (dict(units=['-app.service']), "units: '-app.service' is not a unit name ending in .service or .socket"),
    (dict(units=['app.service', 'app.service\n']), "units: 'app.service\\n' is not a unit name ending in .service or .socket"),
    # The roles' rule (module_utils/_validate): no ':' or '\\' in the base name, at most 64 characters.
    (dict(units=['a:b_c-d.service']), "units: 'a:b_c-d.service' is not a unit name ending in .service or .socket"),
    (dict(units=['dev-disk-by\\x2dlabel.service']), "units: 'dev-disk-by\\\\x2dlabel.service' is not a unit name ending in .service or .socket"),
    (dict(units=['x' * 65 + '.service']), "units: '%s.service' is not a unit name ending in .service or .socket" % ('x' * 65)),
])
def test_bad_input_is_rejected_before_probing(servers, fake_system, run_module, args, message):
    server = servers.unix(200)
    system = fake_system({'app.service': RUNNING})
    result = run_module(target=server.target, **args)
    assert result['failed'] is True
    assert result['msg'] == message
    assert 'attempts' not in result
    assert server.seen == [] and system.log() == []  # nothing was probed, no unit was read


@pytest.mark.parametrize('unit', ['hello@1.service', 'hello.socket', 'a_b-c.d.service', 'hello@a:b.service', 'x' * 64 + '.service'])
def test_unit_names_the_roles_allow_are_accepted(servers, fake_system, run_module, unit):
    server = servers.unix(200)
    fake_system({unit: RUNNING})
    result = run_module(target=server.target, units=[unit])
    assert not result.get('failed'), result['msg']
    assert result['units'] == {unit: _reported(RUNNING)}
