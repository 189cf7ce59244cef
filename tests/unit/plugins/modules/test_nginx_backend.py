# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""End-to-end tests of nginx_backend.

The module runs in-process on a real servers directory. nginx is played by
real processes: a master that forks "worker" children and, on SIGHUP (a
reload), forks new workers and tells the old ones to exit after a delay,
like nginx's graceful worker shutdown. The module finds them in the real
/proc. Only the two commands are fake: ``nginx -t`` (its answer comes from a
JSON file) and ``systemctl reload`` (sends SIGHUP to the pid file's master);
both log every call.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _nginx_backend
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import FileLock
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import HEADER, LOCK_NAME, file_name, render
from ansible_collections.zerodown.deploy.plugins.modules import nginx_backend

FAKE_MASTER = r'''
"""nginx's master, roughly: N workers; SIGHUP starts N new ones, then asks the old ones to exit (they take old_exit_delay s)."""
import json, os, signal, sys, time

PID_FILE, CONTROL = sys.argv[1], sys.argv[2]
WORKERS = 2
flags = {"hup": False, "term": False}


def control():
    with open(CONTROL) as f:
        return json.load(f)


def worker():
    quit_at = []
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, lambda *a: quit_at.append(time.monotonic() + control()["old_exit_delay"]))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    while not quit_at or time.monotonic() < quit_at[0]:
        time.sleep(0.01)
    os._exit(0)


def spawn():
    pids = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            worker()
        pids.append(pid)
    return pids


signal.signal(signal.SIGHUP, lambda *a: flags.update(hup=True))
signal.signal(signal.SIGTERM, lambda *a: flags.update(term=True))
workers = spawn()
with open(PID_FILE + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(PID_FILE + ".tmp", PID_FILE)
old = []
while not flags["term"]:
    time.sleep(0.01)
    if flags["hup"]:
        flags["hup"] = False
        time.sleep(control()["new_worker_delay"])
        old, workers = old + workers, spawn()
        for pid in old:
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
    for pid in list(old):
        if os.waitpid(pid, os.WNOHANG)[0]:
            old.remove(pid)
for pid in old + workers:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
'''

FAKE_COMMAND = r'''#!%(python)s
import json, os, signal, sys
with open(%(state)r) as f:
    state = json.load(f)
with open(%(log)r, "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
if os.path.basename(sys.argv[0]) == "nginx":
    sys.stderr.write(state["nginx_t_output"])
    sys.exit(state["nginx_t_rc"])
if sys.argv[1:] != ["reload", "nginx"] or state["reload_rc"]:
    sys.stderr.write("Job for nginx.service failed.\n")
    sys.exit(state["reload_rc"] or 1)
with open(state["pid_file"]) as f:
    os.kill(int(f.read()), signal.SIGHUP)
'''

OPTIONS = 'max_fails=3 fail_timeout=10s'


class Nginx:
    """The fake nginx: a master process tree, the two fake commands and their state."""

    def __init__(self, directory):
        self.directory = directory
        self.bin_dir = os.path.join(directory, 'bin')
        self.servers_dir = os.path.join(directory, 'shop.servers')
        self.pid_file = os.path.join(directory, 'nginx.pid')
        self.control_path = os.path.join(directory, 'control.json')
        self.state_path = os.path.join(directory, 'state.json')
        self.log_path = os.path.join(directory, 'calls.log')
        os.mkdir(self.bin_dir)
        os.mkdir(self.servers_dir)
        self.control(old_exit_delay=0.2, new_worker_delay=0.0)
        self.state(nginx_t_rc=0, nginx_t_output='nginx: configuration file /etc/nginx/nginx.conf test is successful\n', reload_rc=0)
        for name in ('nginx', 'systemctl'):
            path = os.path.join(self.bin_dir, name)
            with open(path, 'w') as handle:
                handle.write(FAKE_COMMAND % {'python': sys.executable, 'state': self.state_path, 'log': self.log_path})
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        self.master = None

    def control(self, **values):
        with open(self.control_path, 'w') as handle:
            json.dump(values, handle)

    def state(self, **values):
        current = {'pid_file': self.pid_file}
        if os.path.exists(self.state_path):
            with open(self.state_path) as handle:
                current = json.load(handle)
        current.update(values)
        with open(self.state_path, 'w') as handle:
            json.dump(current, handle)

    def start(self):
        self.master = subprocess.Popen([sys.executable, '-c', FAKE_MASTER, self.pid_file, self.control_path], start_new_session=True)
        deadline = time.monotonic() + 10
        # The master writes its pid file once it has forked all its workers: before that, a loaded machine may show only some.
        while not (self._pid_file_names(self.master.pid) and self.workers()):
            assert time.monotonic() < deadline, 'the fake nginx master did not start'
            time.sleep(0.01)
        return self.workers()

    def _pid_file_names(self, pid):
        try:
            with open(self.pid_file) as handle:
                return handle.read().strip() == str(pid)
        except OSError:
            return False

    def workers(self):
        if self.master is None:
            return []
        return sorted(int(name) for name in os.listdir('/proc') if name.isdigit() and _ppid(name) == self.master.pid)

    def stop(self):
        if self.master is None:
            return
        if self.master.poll() is None:
            os.killpg(self.master.pid, signal.SIGTERM)
            try:
                self.master.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # A worker forked just before the SIGTERM may not have its own handler yet and would outlive
        # the test: kill whatever is left of the process group.
        try:
            os.killpg(self.master.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def calls(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as handle:
            return [json.loads(line) for line in handle]

    def write(self, backend, down=False, options=OPTIONS):
        name = file_name(backend)
        with open(os.path.join(self.servers_dir, name), 'w') as handle:
            handle.write(render(backend, options, down))
        return os.path.join(self.servers_dir, name)

    def listing(self):
        return sorted(os.listdir(self.servers_dir))


def _ppid(pid):
    """Parent of a running process (not a zombie), read independently of the module's own /proc reader."""
    try:
        with open('/proc/%s/stat' % pid) as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(')') + 2:].split()
    return None if fields[0] == 'Z' else int(fields[1])


def read(path):
    with open(path) as handle:
        return handle.read()


@pytest.fixture
def nginx(tmp_path, monkeypatch):
    fake = Nginx(str(tmp_path))
    monkeypatch.setenv('PATH', fake.bin_dir + os.pathsep + os.environ.get('PATH', ''))
    yield fake
    fake.stop()


@pytest.fixture
def run(module_runner, nginx):
    def run_module(check=False, diff=False, **args):
        args = dict(dict(servers_dir=nginx.servers_dir, nginx_binary=os.path.join(nginx.bin_dir, 'nginx'), pid_file=nginx.pid_file), **args)
        return module_runner(nginx_backend.main, check=check, diff=diff, **args)
    return run_module


def lb(nginx):
    """Two app hosts, both up, and nginx running."""
    a = nginx.write('app1:8000')
    nginx.write('app2:8000')
    return a, nginx.start()


# ------------------------------------------------------------------ drain and undrain

def test_down_reloads_and_waits_until_the_old_workers_exited(nginx, run):
    path, old = lb(nginx)
    started = time.monotonic()
    result = run(backend='app1:8000', state='down')
    assert result['changed'] and result['reloaded'] and result['drained']
    assert result['previous_state'] == 'up' and result['state'] == 'down' and result['path'] == path
    assert sorted(result['old_workers']) == old
    # The workers exit 0.2 s after the reload; the module returned only then.
    assert 0.15 <= result['drain_seconds'] <= time.monotonic() - started
    assert not set(old) & set(nginx.workers()) and nginx.workers()
    assert read(path) == HEADER + 'server app1:8000 max_fails=3 fail_timeout=10s down;\n'
    assert nginx.calls() == [['nginx', '-t'], ['systemctl', 'reload', 'nginx']]
    assert nginx.listing() == ['.nginx_backend.lock', 'app1_8000.conf', 'app2_8000.conf']


def test_up_reloads_and_waits_only_for_a_new_worker(nginx, run):
    path = nginx.write('app1:8000', down=True)
    nginx.write('app2:8000')
    old = nginx.start()
    nginx.control(old_exit_delay=30, new_worker_delay=0.1)
    result = run(backend='app1:8000', state='up')
    assert result['changed'] and result['reloaded'] and not result['drained']
    assert result['previous_state'] == 'down' and sorted(result['old_workers']) == old
    assert 0.09 <= result['drain_seconds'] < 5
    assert read(path) == HEADER + 'server app1:8000 max_fails=3 fail_timeout=10s;\n'


def test_the_same_state_again_changes_nothing_and_does_not_reload(nginx, run):
    lb(nginx)
    assert run(backend='app1:8000', state='down')['changed']
    calls = nginx.calls()
    again = run(backend='app1:8000', state='down')
    assert not again['changed'] and not again['reloaded'] and not again['drained']
    assert again['previous_state'] == 'down' and again['old_workers'] == [] and again['drain_seconds'] == 0
    assert nginx.calls() == calls


def test_drain_and_undrain_keep_the_options(nginx, run):
    path = nginx.write('app1:8000', options='max_fails=0 fail_timeout=30s weight=2')
    nginx.write('app2:8000')
    nginx.start()
    before = read(path)
    run(backend='app1:8000', state='down')
    assert read(path).endswith('server app1:8000 max_fails=0 fail_timeout=30s weight=2 down;\n')
    run(backend='app1:8000', state='up')
    assert read(path) == before


def test_absent_removes_the_file_and_drains(nginx, run):
    path, old = lb(nginx)
    result = run(backend='app1:8000', state='absent')
    assert result['changed'] and result['drained'] and result['previous_state'] == 'up'
    assert not os.path.exists(path)
    assert run(backend='app1:8000', state='absent')['changed'] is False


def test_a_new_backend_is_added_up_with_the_default_options(nginx, run):
    lb(nginx)
    result = run(backend='[fd00::5]:8000')
    assert result['changed'] and result['previous_state'] == 'absent' and not result['drained']
    assert read(result['path']) == HEADER + 'server [fd00::5]:8000 max_fails=3 fail_timeout=10s;\n'
    assert result['path'] == os.path.join(nginx.servers_dir, '_fd00__5__8000.conf')


# ------------------------------------------------------------------ refusals and failures

def test_marking_the_last_server_up_down_is_refused(nginx, run):
    a = nginx.write('app1:8000')
    b = nginx.write('app2:8000', down=True)
    nginx.write('app3:8000', down=True)
    before = (read(a), read(b))
    nginx.start()
    result = run(backend='app1:8000', state='down')
    assert result['failed']
    assert result['msg'].startswith('refusing to mark app1:8000 down: it is the last server that is up in %s '
                                    '(the others: app2:8000 down, app3:8000 down)' % nginx.servers_dir)
    assert 'nginx would answer 502' in result['msg'] and 'allow_last_down: true' in result['msg']
    assert (read(a), read(b)) == before and nginx.calls() == []


def test_allow_last_down_drains_the_last_server(nginx, run):
    path = nginx.write('app1:8000')
    nginx.start()
    result = run(backend='app1:8000', state='down', allow_last_down=True)
    assert result['changed'] and result['drained'] and read(path).endswith(' down;\n')


def test_a_failed_nginx_t_puts_the_previous_content_back(nginx, run):
    path, old = lb(nginx)
    before = read(path)
    nginx.state(nginx_t_rc=1, nginx_t_output='nginx: [emerg] host not found in upstream "app1:8000" in '
                                             '/etc/nginx/conf.d/shop.servers/app1_8000.conf:3\n'
                                             'nginx: configuration file /etc/nginx/nginx.conf test failed\n')
    result = run(backend='app1:8000', state='down')
    assert result['failed'] and not result['changed'] and not result['reloaded']
    assert result['msg'].startswith('nginx -t rejected the configuration with app1:8000 down in %s: nginx: [emerg] host not found' % path)
    assert result['msg'].endswith('The previous content of %s is back and nginx was not reloaded: nothing changed.' % path)
    assert read(path) == before
    assert nginx.calls() == [['nginx', '-t']] and nginx.workers() == old
    assert nginx.listing() == ['.nginx_backend.lock', 'app1_8000.conf', 'app2_8000.conf']


def test_a_failed_nginx_t_removes_a_new_file_again(nginx, run):
    lb(nginx)
    nginx.state(nginx_t_rc=1, nginx_t_output='nginx: [emerg] invalid port\n')
    result = run(backend='app3:8000', state='up')
    assert result['failed'] and 'nginx: [emerg] invalid port' in result['msg']
    assert nginx.listing() == ['.nginx_backend.lock', 'app1_8000.conf', 'app2_8000.conf']


def test_a_failed_reload_puts_the_previous_content_back(nginx, run):
    path, old = lb(nginx)
    before = read(path)
    nginx.state(reload_rc=1)
    result = run(backend='app1:8000', state='down')
    assert result['failed'] and not result['changed'] and not result['reloaded']
    assert 'systemctl reload nginx failed with app1:8000 down' in result['msg'] and 'Job for nginx.service failed.' in result['msg']
    assert read(path) == before


def test_old_workers_that_do_not_exit_fail_the_drain_and_the_server_stays_down(nginx, run):
    path = nginx.write('app1:8000')
    nginx.write('app2:8000')
    old = nginx.start()
    nginx.control(old_exit_delay=30, new_worker_delay=0)
    result = run(backend='app1:8000', state='down', drain_timeout=0.5)
    assert result['failed'] and result['changed'] and result['reloaded'] and not result['drained']
    assert 0.5 <= result['drain_seconds'] < 3
    assert result['msg'].startswith('app1:8000 is marked down and nginx was reloaded, but 2 worker process(es) from before the '
                                    'reload (PIDs %s, %s) were still running after 0.5 s' % tuple(old))
    assert 'It stays down in %s' % path in result['msg']
    assert read(path).endswith(' down;\n')


def test_a_reload_that_starts_no_new_worker_fails(nginx, run):
    lb(nginx)
    nginx.control(old_exit_delay=0, new_worker_delay=5)
    result = run(backend='app1:8000', state='down', drain_timeout=0.3)
    assert result['failed'] and result['changed'] and not result['drained']
    assert 'no new worker process appeared within 0.3 s' in result['msg']


def test_without_a_pid_file_nothing_is_changed(nginx, run):
    path = nginx.write('app1:8000')
    nginx.write('app2:8000')
    before = read(path)
    result = run(backend='app1:8000', state='down')
    assert result['failed']
    assert result['msg'].startswith("cannot read nginx's pid file %s" % nginx.pid_file)
    assert result['msg'].endswith('Nothing was changed.')
    assert read(path) == before and nginx.calls() == []


def test_reload_false_only_writes_the_file(nginx, run):
    nginx.write('app2:8000')
    result = run(backend='app1:8000', state='up', reload=False, server_options='max_fails=0  fail_timeout=10s')
    assert result['changed'] and not result['reloaded'] and not result['drained'] and result['old_workers'] == []
    assert read(result['path']).endswith('server app1:8000 max_fails=0 fail_timeout=10s;\n')
    assert nginx.calls() == []
    assert not run(backend='app1:8000', state='up', reload=False, server_options='max_fails=0 fail_timeout=10s')['changed']


@pytest.mark.parametrize('state', ['up', 'down'])
def test_a_missing_servers_dir_fails_clearly(nginx, run, state):
    result = run(backend='app1:8000', state=state, servers_dir=nginx.servers_dir + '-missing')
    assert result['failed'] and result['msg'] == ('servers_dir %s-missing does not exist; the nginx_upstream role creates it with '
                                                  'nginx_upstream_servers_include: true' % nginx.servers_dir)


def test_absent_from_a_missing_servers_dir_is_nothing_to_do(nginx, run):
    result = run(backend='app1:8000', state='absent', servers_dir=nginx.servers_dir + '-missing')
    assert not result.get('failed') and not result['changed'] and result['previous_state'] == 'absent'
    assert not os.path.exists(nginx.servers_dir + '-missing')


# ------------------------------------------------------------------ check and diff mode

def test_check_mode_reports_the_change_and_touches_nothing(nginx, run):
    path, old = lb(nginx)
    before = read(path)
    result = run(check=True, diff=True, backend='app1:8000', state='down')
    assert result['changed'] and not result['reloaded'] and result['state'] == 'down' and result['previous_state'] == 'up'
    after = HEADER + 'server app1:8000 max_fails=3 fail_timeout=10s down;\n'
    assert result['diff'] == {'before': before, 'after': after, 'before_header': path, 'after_header': path}
    assert read(path) == before and nginx.calls() == [] and nginx.workers() == old
    assert nginx.listing() == ['app1_8000.conf', 'app2_8000.conf']


def test_check_mode_refuses_the_last_server_up_too(nginx, run):
    nginx.write('app1:8000')
    result = run(check=True, backend='app1:8000', state='down')
    assert result['failed'] and result['msg'].startswith('refusing to mark app1:8000 down')


def test_check_mode_on_a_directory_not_created_yet(nginx, run):
    result = run(check=True, diff=True, backend='app1:8000', servers_dir=nginx.servers_dir + '-new')
    assert result['changed'] and result['previous_state'] == 'absent' and result['diff']['before'] == ''
    assert not os.path.exists(nginx.servers_dir + '-new')


def test_diff_mode_without_check(nginx, run):
    lb(nginx)
    result = run(diff=True, backend='app1:8000', state='absent')
    assert result['diff']['after'] == '' and 'server app1:8000' in result['diff']['before']


# ------------------------------------------------------------------ arguments

@pytest.mark.parametrize('args, message', [
    ({'backend': 'app1:8000;'}, "backend must not contain ';'"),
    ({'backend': 'app1 :8000'}, 'backend must not contain spaces'),
    ({'backend': 'app1:8000\nserver x:1'}, 'backend must not contain line breaks'),
    ({'backend': 'app1'}, "backend 'app1' is malformed"),
    ({'backend': 'app1:8000', 'server_options': 'weight=2;'}, "server_options must not contain ';'"),
    ({'backend': 'app1:8000', 'server_options': 'weight=2 down'}, "server_options must not contain 'down'"),
    ({'backend': 'app1:8000', 'drain_timeout': 0}, 'drain_timeout must be > 0 and <= 86400 seconds, got 0'),
    ({'backend': 'app1:8000', 'drain_timeout': -1}, 'drain_timeout must be > 0 and <= 86400 seconds, got -1'),
    ({'backend': 'app1:8000', 'state': 'drained'}, 'value of state must be one of: up, down, absent'),
])
def test_bad_arguments_are_refused_before_anything_happens(nginx, run, args, message):
    nginx.write('app2:8000')
    result = run(**args)
    assert result['failed'] and message in result['msg'], result['msg']
    assert nginx.listing() == ['app2_8000.conf'] and nginx.calls() == []


def test_a_foreign_file_is_not_overwritten(nginx, run):
    with open(os.path.join(nginx.servers_dir, 'app1_8000.conf'), 'w') as handle:
        handle.write('server app1:8000; server extra:80;\n')
    result = run(backend='app1:8000', state='down', reload=False)
    assert result['failed'] and 'should hold the one server app1:8000 but holds app1:8000, extra:80' in result['msg']


def test_runs_on_one_directory_take_turns_on_its_lock(nginx, run, monkeypatch):
    """A second run waits for the first one's lock (here: gives up after drain_timeout + LOCK_EXTRA_SECONDS)."""
    path = nginx.write('app1:8000')
    nginx.write('app2:8000')
    before = read(path)
    monkeypatch.setattr(_nginx_backend, 'LOCK_EXTRA_SECONDS', 0.2)
    with FileLock(os.path.join(nginx.servers_dir, LOCK_NAME), play='another drain', create_dirs=False):
        started = time.monotonic()
        result = run(backend='app1:8000', state='down', drain_timeout=0.3)
        waited = time.monotonic() - started
    assert result['failed'] and result['msg'].startswith('another run is changing %s: Timed out after' % nginx.servers_dir)
    assert 0.5 <= waited < 5
    assert read(path) == before and nginx.calls() == []
