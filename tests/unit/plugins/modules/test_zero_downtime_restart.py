# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""End-to-end tests of zero_downtime_restart.

The module runs in-process against a REAL HTTP server on a Unix socket. Only
systemd is faked: a ``systemctl`` script placed first on PATH keeps the units
in a JSON state file, logs every call, and on ``restart`` changes the unit's
MainPID and tells the server (through the same state file) to stop accepting
for a while (connections queue in the backlog, as with systemd holding the
socket), to close its socket (connections are refused), or to answer slowly.
"""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import sys
import threading
import time

import pytest


from ansible_collections.zerodown.deploy.plugins.modules import zero_downtime_restart as zdr_module


# ------------------------------------------------------------------ the fake systemctl

FAKE_SYSTEMCTL = r'''#!%(python)s
"""A fake systemctl for unit tests: show, restart, reload over a JSON state file."""
import json
import os
import sys
import time

STATE = %(state)r
LOG = %(log)r


def load():
    with open(STATE) as f:
        return json.load(f)


def save(state):
    tmp = '%%s.%%d.tmp' %% (STATE, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(state, f)
    os.replace(tmp, STATE)


def log(**entry):
    entry['t'] = time.time()
    with open(LOG, 'a') as f:
        f.write(json.dumps(entry) + '\n')


def view(name, unit):
    if unit is None:
        return dict(Id=name, LoadState='not-found', ActiveState='inactive', SubState='dead', Result='success', MainPID=0, Type='')
    shown = dict(Id=name, LoadState='loaded', ActiveState=unit['ActiveState'], SubState=unit.get('SubState', 'running'),
                 Result=unit.get('Result', 'success'), MainPID=unit['MainPID'], Type=unit.get('Type', 'exec'))
    if time.time() < unit.get('ready_at', 0):
        shown.update(ActiveState='activating', SubState='start', MainPID=0)
    return shown


def behaviour(state, name):
    rules = state.get('behaviour') or {}
    return rules.get(name) or rules.get('*') or {}


def restart(state, name):
    unit = state['units'][name]
    rule = behaviour(state, name)
    log(cmd='restart', unit=name, event='begin', old=unit['MainPID'])
    if rule.get('effect'):
        state['server'] = dict(effect=rule['effect'], until=time.time() + rule.get('down_s', 0), delay_s=rule.get('delay_s', 0))
    unit.update(ActiveState='deactivating', SubState='stop-sigterm')
    save(state)
    time.sleep(rule.get('block_s', 0))
    if rule.get('fail'):
        unit.update(ActiveState='failed', SubState='failed', Result='exit-code', MainPID=0)
        save(state)
        log(cmd='restart', unit=name, event='failed')
        sys.stderr.write('Job for %%s failed because the control process exited with error code.\n' %% name)
        return 1
    state['next_pid'] += 1
    unit.update(ActiveState='active', SubState='running', MainPID=state['next_pid'], ready_at=time.time() + rule.get('ready_after_s', 0))
    state['marker'] = str(unit['MainPID'])
    if 'health_status_after' in rule:
        state['health_status'] = rule['health_status_after']
    save(state)
    log(cmd='restart', unit=name, event='end', new=unit['MainPID'], ready_at=unit['ready_at'])
    return 0


def main(argv):
    args = [a for a in argv if not a.startswith('--')]
    props = [a.split('=', 1)[1].split(',') for a in argv if a.startswith('--property=')]
    verb, names = args[0], args[1:]
    state = load()
    if verb == 'show':
        for index, name in enumerate(names):
            shown = view(name, state['units'].get(name))
            log(cmd='show', unit=name, state=shown)
            if index:
                print()
            for key in (props[0] if props else sorted(shown)):
                print('%%s=%%s' %% (key, shown.get(key, '')))
        return 0
    log(cmd=verb, units=names)
    missing = [n for n in names if n not in state['units']]
    if missing:
        sys.stderr.write('Failed to %%s %%s: Unit %%s not found.\n' %% (verb, missing[0], missing[0]))
        return 5
    rc = 0
    for name in names:
        if verb == 'restart':
            rc = rc or restart(state, name)
            state = load()
        elif verb == 'reload':
            state['units'][name]['reloads'] = state['units'][name].get('reloads', 0) + 1
            save(state)
        else:
            sys.stderr.write('fake systemctl: unsupported verb %%s\n' %% verb)
            return 2
    return rc


sys.exit(main(sys.argv[1:]))
'''


class FakeSystem:
    """The fake systemctl on PATH, its state file and its log."""

    def __init__(self, directory, units, behaviour=None, health_status=200):
        self.dir = directory
        self.state_path = os.path.join(directory, 'systemd-state.json')
        self.log_path = os.path.join(directory, 'systemctl.log')
        self.bin_dir = os.path.join(directory, 'bin')
        os.mkdir(self.bin_dir)
        self.save({
            'units': dict((name, {'MainPID': pid, 'ActiveState': 'active'}) for name, pid in units.items()),
            'behaviour': behaviour or {},
            'next_pid': 1000,
            'marker': str(sorted(units.values())[0]) if units else '1',
            'server': {},
            'health_status': health_status,
        })
        script = os.path.join(self.bin_dir, 'systemctl')
        with open(script, 'w') as f:
            f.write(FAKE_SYSTEMCTL % {'python': sys.executable, 'state': self.state_path, 'log': self.log_path})
        os.chmod(script, os.stat(script).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def save(self, state):
        tmp = self.state_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def state(self):
        with open(self.state_path) as f:
            return json.load(f)

    def log(self, cmd=None):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            entries = [json.loads(line) for line in f]
        return [e for e in entries if cmd is None or e['cmd'] == cmd]


# ------------------------------------------------------------------ the real test server


class FakeApp:
    """A tiny HTTP/1.1 server on a Unix socket, steered by the fake systemd's state file.

    ``server.effect`` in the state: ``queue`` stops accepting (the socket stays, connections
    wait in the backlog), ``refuse`` closes and removes the socket, ``slow`` delays answers,
    each until ``server.until``. Every answer names the current "process" in X-Served-By;
    ``/health`` answers ``health_status``.
    """

    def __init__(self, path, state_path):
        self.path = path
        self.state_path = state_path
        self.requests = 0
        self.health_requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seen = None
        self.state = {}
        self.listener = None
        self._listen()
        self._refresh()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _listen(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(256)
        self.listener = listener

    def _unlisten(self):
        self.listener.close()
        self.listener = None
        os.unlink(self.path)

    def _refresh(self):
        try:
            st = os.stat(self.state_path)
        except FileNotFoundError:
            return
        if (st.st_ino, st.st_mtime_ns) == self._seen:
            return
        try:
            with open(self.state_path) as f:
                self.state = json.load(f)
            self._seen = (st.st_ino, st.st_mtime_ns)
        except (OSError, ValueError):
            pass  # replaced under us; read it on the next turn

    def _effect(self):
        server = self.state.get('server') or {}
        if server.get('effect') and time.time() < server.get('until', 0):
            return server['effect']
        return None

    def _loop(self):
        while not self._stop.is_set():
            self._refresh()
            effect = self._effect()
            if effect == 'refuse':
                if self.listener is not None:
                    self._unlisten()
                time.sleep(0.005)
                continue
            if self.listener is None:
                self._listen()
            if effect == 'queue':
                time.sleep(0.005)
                continue
            readable = select.select([self.listener], [], [], 0.01)[0]
            if readable:
                conn = self.listener.accept()[0]
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(5)
            data = b''
            while b'\r\n\r\n' not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b'\r\n\r\n', 1)
            lines = head.decode('latin-1').split('\r\n')
            method, path = lines[0].split(' ')[:2]
            length = 0
            for line in lines[1:]:
                name, sep, value = line.partition(':')
                if sep and name.strip().lower() == 'content-length':
                    length = int(value.strip())
            while len(body) < length:
                body += conn.recv(65536)
            server = self.state.get('server') or {}
            if self._effect() == 'slow':
                time.sleep(server.get('delay_s', 0))
            with self._lock:
                if path == '/health':
                    self.health_requests += 1
                else:
                    self.requests += 1
            status = self.state.get('health_status', 200) if path == '/health' else 200
            reply = ('%s %s' % (method, path)).encode()
            conn.sendall(b'HTTP/1.1 %d X\r\nContent-Length: %d\r\nX-Served-By: %s\r\nConnection: close\r\n\r\n%s'
                         % (status, len(reply), self.state.get('marker', '?').encode(), reply))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self.thread.join(5)
        if self.listener is not None:
            self.listener.close()


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def world(sock_dir, monkeypatch):
    """Build a fake system and a real server: world(units, behaviour=..., health_status=...)."""
    made = []

    def make(units, behaviour=None, health_status=200):
        system = FakeSystem(sock_dir, units, behaviour, health_status)
        monkeypatch.setenv('PATH', system.bin_dir + os.pathsep + os.environ.get('PATH', ''))
        app = FakeApp(os.path.join(sock_dir, 'app.sock'), system.state_path)
        made.append(app)
        system.app = app
        system.target = 'unix:' + app.path
        return system

    yield make
    for app in made:
        app.close()


@pytest.fixture
def run_module(module_runner):
    """run_module(check=False, **args): the module's main() run like Ansible would."""
    return lambda check=False, **args: module_runner(zdr_module.main, check=check, **args)


# Light, short load: every module run below takes about a second.
FAST = dict(before_seconds=0.3, after_seconds=0.3, workers=2, rate=200, health_path='/health', ready_timeout=5, max_duration=20)


def fast(system, **args):
    options = dict(FAST, service='hello', target=system.target)
    options.update(args)
    return options


def assert_phase_shape(result):
    assert set(result['phases']) == {'before', 'during', 'after'}
    for phase in result['phases'].values():
        assert {'requests', 'ok', 'failed', 'failures_by_kind', 'latency_ms', 'duration_s', 'requests_per_s'} <= set(phase)
        assert {'p50', 'p90', 'p99', 'max'} <= set(phase['latency_ms'])
    assert sum(p['requests'] for p in result['phases'].values()) == result['requests']


# ------------------------------------------------------------------ restart modes


def test_plain_restart_with_queued_connections_drops_nothing(world, run_module):
    # The restart blocks 0.3 s (like Type=notify until READY=1) while the server does not accept:
    # connections wait in the backlog, nothing fails, the latency and the gap show the pause.
    system = world({'hello.service': 100}, {'*': {'effect': 'queue', 'down_s': 0.3, 'block_s': 0.3}})
    result = run_module(**fast(system, service='hello.service'))
    assert not result.get('failed'), result['msg']
    assert result['changed'] is True and result['mode'] == 'restart' and result['units'] == ['hello.service']
    assert result['failed_requests'] == 0 and result['requests'] > 50 and result['ok_requests'] == result['requests']
    assert 'failed' not in result  # Ansible's flag: absent on success, never a count
    assert set(result['failures_by_kind'].values()) == {0}
    assert result['pids'] == {'hello.service': {'old': 100, 'new': 1001}}
    assert result['markers'] == ['100', '1001']
    assert result['phases']['during']['latency_ms']['max'] >= 200 and result['gap_ms'] >= 200
    assert result['phases']['before']['failed'] == result['phases']['after']['failed'] == 0
    assert result['phases']['after']['requests'] > 0 and result['phases']['after']['requests_per_s'] > 0
    assert 0.25 <= result['phases']['before']['duration_s'] <= 1.0
    assert result['action_duration_s'] >= 0.3
    assert result['load_covered_action'] is True and result['stopped_by'] == 'stop'
    assert result['methods']['POST'] > 0 and result['methods']['GET'] > 0
    assert result['report'].startswith('hello: restart of 1 instance, %d requests, 0 failed, during p99 ' % result['requests'])
    assert [e['unit'] for e in system.log('restart') if e.get('event') == 'begin'] == ['hello.service']
    (step,) = result['steps']
    assert step['rc'] == 0 and step['argv'][1:] == ['--no-ask-password', 'restart', 'hello.service']
    assert step['started_ms'] <= step['returned_ms'] <= step['ready_ms']
    assert result['timeline_path'] is None and result['latency_ratio'] is not None
    assert_phase_shape(result)


def test_rolling_restart_waits_for_each_instance(world, run_module):
    # Each instance reports "activating" (no MainPID) for 0.3 s after systemctl returns: the
    # module must wait for it to be active with a new PID and healthy before the next one.
    system = world({'hello@1.service': 100, 'hello@2.service': 200}, {'*': {'ready_after_s': 0.3}})
    result = run_module(**fast(system, instances=2, mode='rolling'))
    assert not result.get('failed'), result['msg']
    assert result['mode'] == 'rolling' and result['units'] == ['hello@1.service', 'hello@2.service']
    assert result['failed_requests'] == 0
    assert result['pids'] == {'hello@1.service': {'old': 100, 'new': 1001}, 'hello@2.service': {'old': 200, 'new': 1002}}

    restarts = system.log('restart')
    begins = [e for e in restarts if e.get('event') == 'begin']
    ends = dict((e['unit'], e) for e in restarts if e.get('event') == 'end')
    assert [e['unit'] for e in begins] == ['hello@1.service', 'hello@2.service']
    second = begins[1]['t']
    # The second restart began only after the first instance was ready ...
    assert second >= ends['hello@1.service']['ready_at']
    # ... which the module saw through systemctl show, and confirmed with health probes in between.
    seen_ready = [e for e in system.log('show') if e['unit'] == 'hello@1.service' and e['state']['ActiveState'] == 'active'
                  and e['state']['MainPID'] == 1001]
    assert seen_ready and seen_ready[0]['t'] < second
    first_step, second_step = result['steps']
    assert first_step['units'] == ['hello@1.service'] and second_step['units'] == ['hello@2.service']
    assert first_step['returned_ms'] + 150 <= first_step['ready_ms'] <= second_step['started_ms']
    assert system.app.health_requests >= 6  # three consecutive 2xx per instance
    assert result['report'].startswith('hello: rolling restart of 2 instances, ')
    assert_phase_shape(result)


@pytest.mark.parametrize('mode, instances, expected_mode, restart_calls', [
    ('auto', 2, 'rolling', [['hello@1.service'], ['hello@2.service']]),
    ('auto', 1, 'restart', [['hello.service']]),
    ('restart', 2, 'restart', [['hello@1.service', 'hello@2.service']]),
])
def test_mode_auto_and_restart_all_at_once(world, run_module, mode, instances, expected_mode, restart_calls):
    units = {'hello.service': 50} if instances == 1 else {'hello@1.service': 100, 'hello@2.service': 200}
    system = world(units)
    result = run_module(**fast(system, mode=mode, instances=instances, before_seconds=0.1, after_seconds=0.1))
    assert not result.get('failed'), result['msg']
    assert result['mode'] == expected_mode and result['failed_requests'] == 0
    assert [e['units'] for e in system.log('restart') if 'units' in e] == restart_calls
    assert all(p['new'] not in (None, 0, p['old']) for p in result['pids'].values())


def test_reload_mode(world, run_module):
    system = world({'hello.service': 100})
    result = run_module(**fast(system, mode='reload', before_seconds=0.1, after_seconds=0.1))
    assert not result.get('failed'), result['msg']
    assert result['mode'] == 'reload' and result['pids'] == {'hello.service': {'old': 100, 'new': 100}}
    assert system.state()['units']['hello.service']['reloads'] == 1
    assert result['report'].startswith('hello: reload of 1 instance, ')


def test_command_mode(world, run_module, tmp_path):
    system = world({'hello.service': 100})
    flag = str(tmp_path / 'ran')
    command = [sys.executable, '-c', 'import sys; open(sys.argv[1], "w").write("ran")', flag]
    result = run_module(**fast(system, mode='command', command=command, before_seconds=0.1, after_seconds=0.1))
    assert not result.get('failed'), result['msg']
    assert result['mode'] == 'command' and result['command'] == command and result['changed'] is True
    with open(flag) as f:
        assert f.read() == 'ran'
    assert system.log('restart') == [] and result['steps'][0]['argv'] == command
    assert result['pids'] == {'hello.service': {'old': 100, 'new': 100}}
    assert result['report'].startswith('hello: command %s, ' % ' '.join(command))

    # A failing command fails the task with its output, and still reports the load.
    failing = [sys.executable, '-c', 'import sys; sys.stderr.write("boom"); sys.exit(3)']
    result = run_module(**fast(system, mode='command', command=failing, before_seconds=0.1, after_seconds=0.1))
    assert result['failed'] and 'failed with rc 3: boom' in result['msg']
    assert result['changed'] is True and result['requests'] > 0 and result['steps'][0]['rc'] == 3


# ------------------------------------------------------------------ verdicts


def test_refused_connections_fail_the_task_with_counts(world, run_module):
    # The "restart" closes the socket for 0.3 s: clients get connection refused.
    system = world({'hello.service': 100}, {'*': {'effect': 'refuse', 'down_s': 0.3, 'block_s': 0.3}})
    result = run_module(**fast(system))
    assert result['failed'] is True and result['changed'] is True
    assert result['failures_by_kind']['connect_refused'] > 0
    failed = sum(result['failures_by_kind'].values())
    assert result['failed_requests'] == failed
    assert failed == result['phases']['during']['failed'] > 0
    assert result['phases']['before']['failed'] == 0
    assert '%d of %d requests failed (max_failed 0): ' % (failed, result['requests']) in result['msg']
    assert 'connect_refused=%d' % result['failures_by_kind']['connect_refused'] in result['msg']
    assert result['failure_examples'] and result['failure_examples'][0]['kind'] in result['failures_by_kind']
    assert result['pids']['hello.service']['new'] == 1001 and result['report'] in result['msg']

    # The same failures within max_failed pass, and are still reported.
    allowed = run_module(**fast(system, max_failed=100000))
    assert 'failed' not in allowed and allowed['failures_by_kind']['connect_refused'] > 0
    assert allowed['failed_requests'] == sum(allowed['failures_by_kind'].values()) > 0


def test_latency_ratio_bound(world, run_module):
    # Answers take 500 ms longer while the "restart" runs: p99 during >> p99 baseline, with a wide
    # margin because a loaded test machine can push the baseline p99 to tens of milliseconds.
    system = world({'hello.service': 100}, {'*': {'effect': 'slow', 'delay_s': 0.5, 'down_s': 0.6, 'block_s': 0.3}})
    result = run_module(**fast(system, max_latency_ratio=3, before_seconds=0.5))
    details = json.dumps({k: result.get(k) for k in ('msg', 'phases', 'steps', 'latency_ratio', 'warnings')})
    assert result.get('failed') is True, details
    assert result['failures_by_kind']['connect_refused'] == 0 and result['latency_ratio'] > 3, details
    assert 'above max_latency_ratio 3' in result['msg'] and 'times the baseline' in result['msg']
    assert result['phases']['during']['latency_ms']['p99'] >= 500


def test_unit_that_does_not_exist_fails_before_any_load(world, run_module):
    system = world({'hello.service': 100})
    result = run_module(**fast(system, service='nosuch'))
    assert result['failed'] is True and not result.get('changed')
    assert 'nosuch.service does not exist' in result['msg'] and 'LoadState=not-found' in result['msg']
    assert system.log('restart') == [] and system.app.requests == 0


def test_unit_that_fails_to_start_fails_with_its_state(world, run_module):
    system = world({'hello@1.service': 100, 'hello@2.service': 200}, {'*': {'fail': True, 'block_s': 0.05}})
    result = run_module(**fast(system, instances=2))
    assert result['failed'] is True and result['changed'] is True
    assert 'restart hello@1.service failed with rc 1' in result['msg'] and 'ActiveState=failed' in result['msg']
    # Rolling stopped at the first instance; the load was measured anyway.
    assert [e['unit'] for e in system.log('restart') if e.get('event') == 'begin'] == ['hello@1.service']
    assert result['requests'] > 0 and result['pids']['hello@2.service'] == {'old': None, 'new': None}


def test_health_path_never_ready_fails_after_ready_timeout(world, run_module):
    system = world({'hello.service': 100}, {'*': {'health_status_after': 503}})
    started = time.monotonic()
    result = run_module(**fast(system, ready_timeout=0.5))
    assert time.monotonic() - started < 5
    assert result['failed'] is True
    assert 'health check GET /health through unix:' in result['msg'] and 'answers: HTTP 503 x' in result['msg']
    assert result['steps'][0]['ready_ms'] is None and result['failed_requests'] == 0


def test_health_gate_in_the_same_call_after_a_restart_that_passed(world, run_module):
    system = world({'hello.service': 100}, {'*': {'effect': 'queue', 'down_s': 0.1}})
    result = run_module(**fast(system, gate_successes=5, gate_timeout=5))
    assert not result.get('failed'), result['msg']
    gate = result['gate']
    assert gate['answers'] == {'HTTP 200': 5} and gate['streak'] == 5 and gate['target'] == system.target
    assert gate['units']['hello.service']['ActiveState'] == 'active'
    # The gate comes after the load: the probes are the last health requests, none of them part of the measurement.
    assert system.app.health_requests >= 3 + 5


def test_no_gate_without_gate_successes(world, run_module):
    system = world({'hello.service': 100})
    result = run_module(**fast(system))
    assert not result.get('failed'), result['msg']
    assert result['gate'] is None


def test_health_gate_fails_when_a_serving_unit_dies_after_the_restart(world, run_module):
    # The restart and its readiness pass; then the new process dies: the gate names the unit, the measurement stays reported.
    system = world({'hello.service': 100})

    def kill_after_ready():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ended = [e for e in system.log('restart') if e.get('event') == 'end']
            if ended and system.app.health_requests >= 3:
                state = system.state()
                state['units']['hello.service'].update(ActiveState='failed', SubState='failed', Result='signal', MainPID=0)
                system.save(state)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_ready, daemon=True)
    killer.start()
    result = run_module(**fast(system, gate_successes=5, gate_timeout=5))
    killer.join()
    assert result['failed'] is True
    assert result['msg'].startswith('the health gate after the restart failed: health check GET /health through unix:')
    assert 'stopped early because hello.service' in result['msg'] and 'Result=signal' in result['msg']
    assert result['failed_requests'] == 0 and result['gate']['units']['hello.service']['ActiveState'] == 'failed'


def test_health_gate_bounds_are_checked(world, run_module):
    system = world({'hello.service': 100})
    result = run_module(**fast(system, gate_successes=101))
    assert result['failed'] is True and 'gate_successes must be' in result['msg']
    result = run_module(**fast(system, gate_successes=1, gate_timeout=0))
    assert result['failed'] is True and 'gate_timeout must be > 0' in result['msg']
    assert system.log() == [] and system.app.requests == 0


# ------------------------------------------------------------------ check mode, timeline


def test_check_mode_does_nothing(world, run_module, tmp_path):
    system = world({'hello@1.service': 100, 'hello@2.service': 200})
    timeline = str(tmp_path / 'timeline.json')
    options = fast(system, instances=2, timeline_path=timeline, health_target='http://127.0.0.1:9/ignored')
    result = run_module(check=True, **options)
    assert result['changed'] is True and not result.get('failed')
    assert result['mode'] == 'rolling' and result['units'] == ['hello@1.service', 'hello@2.service']
    assert result['target'] == system.target and result['health_target'] == '127.0.0.1:9'
    assert result['bounds'] == {'max_duration': 20.0, 'max_requests': 50000, 'before_seconds': 0.3, 'after_seconds': 0.3,
                                'ready_timeout': 5.0, 'workers': 2, 'rate': 200.0}
    assert result['report'].startswith('hello: would run a rolling restart of 2 instances under load on unix:')
    assert any('/ignored in health_target is ignored' in w for w in result['warnings'])
    assert 'requests' not in result
    time.sleep(0.1)
    assert system.log() == [] and system.app.requests == 0 and system.app.health_requests == 0
    assert not os.path.exists(timeline)


def test_timeline_directory_created_when_missing(world, run_module, tmp_path):
    # A deploy after a killed first one has no report directory yet: the restart creates it.
    system = world({'hello.service': 100}, {'*': {'effect': 'queue', 'down_s': 0.2, 'block_s': 0.2}})
    path = str(tmp_path / 'reports' / 'deep' / 'timeline.json')
    result = run_module(**fast(system, timeline_path=path))
    assert not result.get('failed'), result['msg']
    assert result['timeline_path'] == path and os.path.isfile(path)


def test_timeline_written_as_json(world, run_module, tmp_path):
    system = world({'hello.service': 100}, {'*': {'effect': 'queue', 'down_s': 0.2, 'block_s': 0.2}})
    path = str(tmp_path / 'timeline.json')
    result = run_module(**fast(system, timeline_path=path))
    assert not result.get('failed'), result['msg']
    assert result['timeline_path'] == path
    with open(path) as f:
        entries = json.load(f)
    assert len(entries) == result['requests']
    assert set(entries[0]) == {'t_ms', 'latency_ms', 'ok', 'kind', 'status', 'method', 'phase', 'marker'}
    assert [e['t_ms'] for e in entries] == sorted(e['t_ms'] for e in entries)
    assert {e['phase'] for e in entries} == {'before', 'during', 'after'}
    for phase in ('before', 'during', 'after'):
        assert sum(1 for e in entries if e['phase'] == phase) == result['phases'][phase]['requests']
    assert {e['marker'] for e in entries} == {'100', '1001'} and all(e['ok'] for e in entries)
    assert [n for n in os.listdir(str(tmp_path)) if 'timeline' in n] == ['timeline.json']  # no temporary file left


# ------------------------------------------------------------------ argument validation


@pytest.mark.parametrize('args, message', [
    (dict(service='../x'), 'service must be a unit base name'),
    (dict(service='a b'), 'service must be a unit base name'),
    (dict(service='hello@2'), 'not an instance or template'),
    (dict(service='hello.socket'), 'not its socket'),
    (dict(instances=0), 'instances must be >= 1 and <= 256, got 0'),
    (dict(workers=0), 'workers must be >= 1 and <= 64, got 0'),
    (dict(workers=65), 'workers must be >= 1 and <= 64, got 65'),
    (dict(max_duration=0), 'max_duration must be > 0 and <= 3600 seconds, got 0'),
    (dict(max_duration=4000), 'max_duration must be > 0 and <= 3600 seconds, got 4000'),
    (dict(max_duration=0.5), 'max_duration (0.5 s) must exceed before_seconds + after_seconds (0.6 s)'),
    (dict(max_requests=0), 'max_requests must be >= 1 and <= 1000000, got 0'),
    (dict(post_ratio=1.5), 'post_ratio must be >= 0 and <= 1, got 1.5'),
    (dict(rate=0), 'rate must be > 0 and <= 1e+06 requests/s, got 0'),
    (dict(timeout=0), 'timeout must be > 0 and <= 300 seconds, got 0'),
    (dict(ready_timeout=-1), 'ready_timeout must be > 0'),
    (dict(before_seconds=-1), 'before_seconds must be >= 0'),
    (dict(after_seconds=3601), 'after_seconds must be >= 0 and <= 3600 seconds, got 3601'),
    (dict(max_failed=-1), 'max_failed must be >= 0, got -1'),
    (dict(max_latency_ratio=0), 'max_latency_ratio must be > 0'),
    (dict(max_latency_ratio=2, before_seconds=0), 'max_latency_ratio needs a baseline: before_seconds must be > 0'),
    (dict(mode='command'), 'mode=command requires command'),
    (dict(mode='restart', command=['true']), 'command is only used with mode=command'),
    (dict(mode='bogus'), 'value of mode must be one of'),
    (dict(target='nowhere'), "target: invalid endpoint 'nowhere': a port is required"),
    (dict(target='ftp://host:21'), 'target: invalid endpoint'),
    (dict(target='https://example.com'), 'https is not supported'),
    (dict(health_target='host:99999'), 'health_target: invalid endpoint'),
    (dict(path='health'), 'path must start with "/"'),
    (dict(health_path='/a b'), 'health_path must start with "/"'),
    (dict(host_header='a\nb'), 'host_header must not contain line breaks'),
    (dict(marker_header='X Bad'), 'marker_header must be an HTTP header name'),
    (dict(timeline_path='/etc/hostname/t.json'), 'timeline_path: /etc/hostname is not a directory'),
])
def test_argument_validation(world, run_module, args, message):
    system = world({'hello.service': 100})
    result = run_module(**fast(system, **args))
    assert result['failed'] is True and message in result['msg']
    assert system.log() == [] and system.app.requests == 0


def test_defaults_and_http_target_path(world, run_module):
    # The default target is the socket_service role's default socket; an http:// URL path is ignored with a warning.
    system = world({'hello.service': 100})
    result = run_module(check=True, service='hello')
    assert result['target'] == 'unix:/run/hello.sock' == result['health_target'] and result['mode'] == 'restart'
    assert result['bounds']['max_duration'] == 120.0 and result['bounds']['max_requests'] == 50000 and result['bounds']['workers'] == 4
    result = run_module(check=True, service='hello', target='http://127.0.0.1/path-ignored')
    assert result['target'] == '127.0.0.1:80' and any('/path-ignored in target is ignored' in w for w in result['warnings'])
    assert system.log() == []


def test_the_old_phase_option_names_are_aliases(world, run_module):
    # baseline_seconds and tail_seconds were the names of before_seconds and after_seconds: playbooks that use them still work.
    system = world({'hello.service': 100})
    result = run_module(check=True, service='hello', baseline_seconds=1.5, tail_seconds=0.5)
    assert not result.get('failed'), result.get('msg')
    assert (result['bounds']['before_seconds'], result['bounds']['after_seconds']) == (1.5, 0.5)
    assert system.log() == []
