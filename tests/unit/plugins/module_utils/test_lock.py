# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _lock
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import (
    FileLock,
    LockError,
    LockLost,
    LockTimeout,
    acquire,
    acquire_lease,
    check_lease,
    read_holder,
    read_lease,
    release,
    release_lease,
)

HOLDER_SCRIPT = textwrap.dedent('''
    import sys, time
    from ansible_collections.zerodown.deploy.plugins.module_utils._lock import FileLock
    lock = FileLock(sys.argv[1], play=sys.argv[2], owner='alice', host='ctl.example')
    lock.acquire()
    print('ready', flush=True)
    time.sleep(120)
''')


def _child_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
    return env


@pytest.fixture
def holder_process(tmp_path):
    """Start a separate process that takes the lock and sleeps; yields (proc, lock_path)."""
    procs = []

    def start(lock_path, play='Deploy shop'):
        proc = subprocess.Popen([sys.executable, '-c', HOLDER_SCRIPT, lock_path, play], stdout=subprocess.PIPE,
                                text=True, env=_child_env())
        procs.append(proc)
        assert proc.stdout.readline().strip() == 'ready'
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_acquire_release_and_sidecar(tmp_path):
    path = str(tmp_path / '.zerodown' / 'lock')
    lock = FileLock(path, play='Deploy shop', owner='bob', host='h1')
    lock.acquire()
    try:
        record = read_holder(path)
        assert record['owner'] == 'bob'
        assert record['host'] == 'h1'
        assert record['pid'] == os.getpid()
        assert record['play'] == 'Deploy shop'
        assert record['started'].endswith('Z')
        assert lock.is_held()
    finally:
        lock.release()
    assert read_holder(path) is None
    assert not lock.is_held()
    lock.release()  # idempotent


def test_context_manager_and_functional_api(tmp_path):
    path = str(tmp_path / 'lock')
    with FileLock(path) as lock:
        assert lock.is_held()
        with pytest.raises(LockTimeout):
            FileLock(path).acquire()  # flock conflicts between open file descriptions, even in one process
    again = acquire(path, timeout=0)
    assert again.is_held()
    release(again)
    release(None)


def test_second_acquirer_times_out_naming_holder(tmp_path, holder_process):
    path = str(tmp_path / 'lock')
    proc = holder_process(path)
    start = time.monotonic()
    with pytest.raises(LockTimeout) as exc:
        FileLock(path, timeout=0.5, poll_interval=0.05).acquire()
    waited = time.monotonic() - start
    assert 0.4 <= waited < 5
    msg = str(exc.value)
    assert 'owner=alice' in msg
    assert 'host=ctl.example' in msg
    assert 'pid=%d' % proc.pid in msg
    assert 'since=' in msg
    assert '"Deploy shop"' in msg
    assert exc.value.holder['pid'] == proc.pid


def test_holder_death_frees_lock(tmp_path, holder_process):
    path = str(tmp_path / 'lock')
    proc = holder_process(path)
    with pytest.raises(LockTimeout):
        FileLock(path, timeout=0).acquire()
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup code runs; the kernel drops the flock
    proc.wait()
    assert read_holder(path)['pid'] == proc.pid  # the record is left over ...
    lock = FileLock(path, timeout=5, poll_interval=0.05)
    lock.acquire()  # ... but does not block anybody
    try:
        assert lock.broken_holder is None
        assert read_holder(path)['pid'] == os.getpid()
    finally:
        lock.release()


def test_waiter_gets_lock_when_holder_releases(tmp_path, holder_process):
    path = str(tmp_path / 'lock')
    proc = holder_process(path)
    start = time.monotonic()
    lock = FileLock(path, timeout=10, poll_interval=0.05)

    def kill_later():
        time.sleep(0.3)
        proc.terminate()

    import threading
    threading.Thread(target=kill_later).start()
    lock.acquire()
    assert time.monotonic() - start >= 0.25
    lock.release()


def test_ttl_breaks_stale_holder(tmp_path):
    path = str(tmp_path / 'lock')
    stale = FileLock(path, play='hung')
    stale.acquire()
    old_inode = os.stat(path).st_ino
    future = time.time() + 1000
    breaker = FileLock(path, ttl=60, timeout=0, clock=lambda: future)
    breaker.acquire()
    try:
        assert breaker.broken_holder['token'] == stale.token
        assert breaker.broken_holder['play'] == 'hung'
        assert os.stat(path).st_ino != old_inode  # the lock file was replaced
        assert breaker.is_held()
        assert not stale.is_held()
        with pytest.raises(LockLost):
            stale.verify()
        stale.release()  # must not delete the new holder's record
        assert read_holder(path)['token'] == breaker.token
        with pytest.raises(LockTimeout) as exc:
            FileLock(path, timeout=0).acquire()
        assert 'pid=%d' % os.getpid() in str(exc.value)
    finally:
        breaker.release()
        stale.release()
    assert not [n for n in os.listdir(tmp_path) if '.new-' in n]


def test_no_ttl_never_breaks(tmp_path):
    path = str(tmp_path / 'lock')
    holder = FileLock(path)
    holder.acquire()
    try:
        future = time.time() + 10 ** 6
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0.1, poll_interval=0.02, clock=lambda: future).acquire()
        # a fresh record is not stale even with a TTL
        with pytest.raises(LockTimeout):
            FileLock(path, ttl=3600, timeout=0.1, poll_interval=0.02).acquire()
        assert holder.is_held()
    finally:
        holder.release()


def test_refresh_keeps_holder_fresh(tmp_path):
    now = [1000.0]
    path = str(tmp_path / 'lock')
    holder = FileLock(path, clock=lambda: now[0])
    holder.acquire()
    try:
        now[0] = 1100.0
        holder.refresh()
        with pytest.raises(LockTimeout):
            FileLock(path, ttl=60, timeout=0, clock=lambda: 1130.0).acquire()
    finally:
        holder.release()


# ------------------------------------------------------------------ lease

def _state_dir(tmp_path):
    return str(tmp_path / 'app' / '.zerodown')


def test_lease_acquire_renew_release(tmp_path):
    sd = _state_dir(tmp_path)
    res = acquire_lease(sd, 'run-1', ttl=600, play='deploy', owner='alice', host='ctl', pid=4242)
    assert res['changed'] and not res['renewed'] and not res['taken_over']
    lease, error = read_lease(sd)
    assert error is None
    assert lease['lock_id'] == 'run-1' and lease['pid'] == 4242 and lease['ttl'] == 600
    res = acquire_lease(sd, 'run-1', ttl=600)
    assert not res['changed'] and res['renewed']
    assert res['lease']['started'] == lease['started']
    res = release_lease(sd, 'run-1')
    assert res['changed'] and res['previous_holder']['lock_id'] == 'run-1'
    assert read_lease(sd) == (None, None)
    assert release_lease(sd, 'run-1')['changed'] is False
    assert not os.path.exists(os.path.join(sd, 'lock.json'))


def test_lease_second_deploy_times_out_naming_holder(tmp_path):
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'run-1', play='Deploy shop', owner='alice', host='ctl.example', pid=77)
    start = time.monotonic()
    with pytest.raises(LockTimeout) as exc:
        acquire_lease(sd, 'run-2', timeout=1, poll_interval=0.1)
    assert 0.9 <= time.monotonic() - start < 10
    msg = str(exc.value)
    for part in ('lock_id=run-1', 'owner=alice', 'host=ctl.example', 'pid=77', 'since=', '"Deploy shop"'):
        assert part in msg
    assert exc.value.holder['lock_id'] == 'run-1'


def test_lease_expired_is_taken_over(tmp_path):
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'old-run', ttl=60, clock=lambda: time.time() - 3600)
    res = acquire_lease(sd, 'new-run', ttl=60)
    assert res['changed'] and res['taken_over']
    assert res['previous_holder']['lock_id'] == 'old-run'
    assert any('took over' in w for w in res['warnings'])
    assert read_lease(sd)[0]['lock_id'] == 'new-run'


def test_lease_corrupt_file_is_replaced(tmp_path):
    sd = _state_dir(tmp_path)
    os.makedirs(sd)
    with open(os.path.join(sd, _lock.LEASE_FILE), 'w') as f:
        f.write('{not json')
    res = acquire_lease(sd, 'run-1')
    assert res['taken_over'] and 'error' in res['previous_holder']


def test_lease_release_by_wrong_id_refused(tmp_path):
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'run-1')
    with pytest.raises(LockError, match='refusing to release'):
        release_lease(sd, 'run-2')
    assert read_lease(sd)[0]['lock_id'] == 'run-1'
    res = release_lease(sd, 'run-2', force=True)
    assert res['changed'] and res['warnings']
    assert read_lease(sd) == (None, None)


def test_lease_check_mode_writes_nothing(tmp_path):
    sd = _state_dir(tmp_path)
    res = acquire_lease(sd, 'run-1', check_mode=True)
    assert res['changed']
    assert not os.path.exists(sd)
    acquire_lease(sd, 'run-1')
    before = sorted(os.listdir(sd))
    assert release_lease(sd, 'run-1', check_mode=True)['changed']
    assert read_lease(sd)[0]['lock_id'] == 'run-1'
    assert sorted(os.listdir(sd)) == before


def test_check_lease_rules(tmp_path):
    sd = _state_dir(tmp_path)
    assert check_lease(sd, None)[0] is True
    ok, msg, dummy, dummy2 = check_lease(sd, 'run-1')
    assert not ok and 'no deploy lock is held' in msg
    acquire_lease(sd, 'run-1', ttl=100)
    assert check_lease(sd, 'run-1')[0] is True
    ok, msg, lease, dummy = check_lease(sd, None)
    assert not ok and 'lock_id=run-1' in msg and lease['lock_id'] == 'run-1'
    ok, msg, dummy, dummy2 = check_lease(sd, 'run-2')
    assert not ok and 'not by lock_id run-2' in msg
    ok, dummy, dummy2, warnings = check_lease(sd, None, force=True)
    assert ok and warnings
    # expired: free for everybody; still accepted (with a warning) for its own id
    later = time.time() + 1000
    assert check_lease(sd, None, now=later)[0] is True
    ok, dummy, dummy2, warnings = check_lease(sd, 'run-1', now=later)
    assert ok and any('expired' in w for w in warnings)


RACE_SCRIPT = textwrap.dedent('''
    import sys, time
    from ansible_collections.zerodown.deploy.plugins.module_utils._lock import acquire_lease, LockTimeout
    sd, lock_id, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    while time.time() < start_at:
        pass
    try:
        acquire_lease(sd, lock_id, timeout=0)
        print('won')
    except LockTimeout:
        print('lost')
''')


def test_lease_race_has_exactly_one_winner(tmp_path):
    sd = _state_dir(tmp_path)
    os.makedirs(sd)
    start_at = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, '-c', RACE_SCRIPT, sd, 'run-%d' % i, str(start_at)],
                              stdout=subprocess.PIPE, text=True, env=_child_env()) for i in range(8)]
    outcomes = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outcomes) == ['lost'] * 7 + ['won']
    winner = read_lease(sd)[0]['lock_id']
    assert outcomes[int(winner.split('-')[1])] == 'won'


def test_lease_file_is_json(tmp_path):
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'run-1', ttl=10)
    with open(os.path.join(sd, 'deploy.lock')) as f:
        data = json.load(f)
    assert data['expires_epoch'] - data['renewed_epoch'] == pytest.approx(10)


# ------------------------------------------------------------------ who holds the lease (early takeover only on proof)

HOLDER = {'machine_id': 'm-web1', 'boot_id': 'boot-1', 'pid_namespace': 'pid:[4026531836]', 'pid_start': 5000}


@pytest.fixture
def here(monkeypatch):
    """Make this machine look like ``HOLDER``'s (override per test); ``procs`` maps running PIDs to their start times."""
    view = dict(HOLDER, host='web1', boot_time=time.time() - 86400, procs={4242: 5000}, stat_readable=True)
    monkeypatch.setattr(_lock, 'read_machine_id', lambda: view['machine_id'])
    monkeypatch.setattr(_lock, 'read_boot_id', lambda: view['boot_id'])
    monkeypatch.setattr(_lock, 'read_pid_namespace', lambda: view['pid_namespace'])
    monkeypatch.setattr(_lock, 'read_boot_time', lambda: view['boot_time'])
    monkeypatch.setattr(_lock, 'current_host', lambda: view['host'])

    def process_start(pid):
        if not view['stat_readable']:
            return None, None
        return (True, view['procs'][pid]) if pid in view['procs'] else (False, None)

    monkeypatch.setattr(_lock, 'process_start', process_start)
    return view


def _held(tmp_path, identity=None, pid=4242):
    identity = HOLDER if identity is None else identity
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'run-1', ttl=600, owner='alice', host='web1', pid=pid, play='Deploy shop', identity=identity)
    return sd


def _not_taken_over(sd, reason):
    with pytest.raises(LockTimeout) as exc:
        acquire_lease(sd, 'run-2', timeout=0)
    msg = str(exc.value)
    assert 'pid=4242' in msg and 'host=web1' in msg and reason in msg
    assert 'could not be proven dead' in msg and 'free only when it expires at ' in msg
    assert read_lease(sd)[0]['lock_id'] == 'run-1'
    return msg


def _taken_over(sd, reason):
    res = acquire_lease(sd, 'run-2', timeout=0)
    assert res['changed'] and res['taken_over'] and res['previous_holder']['lock_id'] == 'run-1'
    assert any('before it expired' in w and reason in w for w in res['warnings'])
    assert read_lease(sd)[0]['lock_id'] == 'run-2'


def test_lease_records_the_holder_identity_and_a_renewal_keeps_it(tmp_path, here):
    sd = _held(tmp_path)
    lease = read_lease(sd)[0]
    assert {key: lease[key] for key in HOLDER} == HOLDER and lease['pid'] == 4242
    acquire_lease(sd, 'run-1', ttl=600)
    assert {key: read_lease(sd)[0][key] for key in HOLDER} == HOLDER
    # Renewed for another process without its identity: the old one would describe the wrong process.
    acquire_lease(sd, 'run-1', ttl=600, pid=4343)
    assert not set(HOLDER) & set(read_lease(sd)[0])


def test_lease_unreadable_identity_fields_are_not_recorded(tmp_path, here):
    sd = _held(tmp_path, identity=dict(HOLDER, pid_namespace=None, pid_start=None))
    lease = read_lease(sd)[0]
    assert 'pid_namespace' not in lease and 'pid_start' not in lease and lease['machine_id'] == 'm-web1'
    _not_taken_over(sd, "does not record the holder's pid_namespace, pid_start")


def test_lease_same_host_name_on_another_machine_is_not_taken_over(tmp_path, here):
    sd = _held(tmp_path)
    here['machine_id'] = 'm-web1-clone'
    here['procs'] = {}  # the PID means nothing here
    _not_taken_over(sd, 'another machine with the same host name: machine-id differs')


def test_lease_of_another_pid_namespace_is_not_taken_over(tmp_path, here):
    sd = _held(tmp_path)
    here['pid_namespace'] = 'pid:[4026532999]'
    here['procs'] = {}
    _not_taken_over(sd, 'pid 4242 is in another PID namespace')


def test_lease_whose_pid_is_gone_is_taken_over_at_once(tmp_path, here):
    sd = _held(tmp_path)
    here['procs'] = {}
    _taken_over(sd, 'pid 4242 no longer runs')


def test_lease_whose_pid_was_reused_is_taken_over_at_once(tmp_path, here):
    sd = _held(tmp_path)
    here['procs'] = {4242: 9000}
    _taken_over(sd, 'pid 4242 is now another process (its start time differs)')


def test_lease_whose_holder_still_runs_is_not_taken_over(tmp_path, here):
    sd = _held(tmp_path)
    _not_taken_over(sd, 'pid 4242 still runs')


def test_lease_of_a_previous_boot_is_taken_over_at_once(tmp_path, here):
    sd = _held(tmp_path)
    here.update(boot_id='boot-2', boot_time=time.time() + 5, procs={4242: 5000})  # a PID and start may repeat after a reboot
    _taken_over(sd, 'this machine rebooted since (boot_id differs)')


def test_lease_renewed_after_this_boot_by_a_clone_with_the_same_machine_id_is_not_taken_over(tmp_path, here):
    sd = _held(tmp_path)
    here.update(boot_id='boot-2', procs={})
    _not_taken_over(sd, 'another machine with the same machine-id (a cloned image)')


def test_lease_of_an_older_version_waits_for_its_ttl(tmp_path, here):
    sd = _state_dir(tmp_path)
    acquire_lease(sd, 'run-1', ttl=60, host='web1', pid=4242, clock=lambda: time.time() - 30)
    here['procs'] = {}
    _not_taken_over(sd, "does not record the holder's machine_id, boot_id, pid_namespace, pid_start (an older lease")
    acquire_lease(sd, 'run-1', ttl=60, clock=lambda: time.time() - 90)  # renewed by its holder, 30 s later expired
    res = acquire_lease(sd, 'run-2', timeout=0)
    assert res['taken_over'] and any(w.startswith('took over the expired deploy lock') for w in res['warnings'])


def test_lease_without_a_pid_is_never_taken_over_early(tmp_path, here):
    sd = _held(tmp_path, pid=None)
    with pytest.raises(LockTimeout, match='the lease names no holder process'):
        acquire_lease(sd, 'run-2', timeout=0)


def test_lease_holder_hidden_from_proc_counts_as_alive(tmp_path, here):
    sd = _held(tmp_path)
    here['stat_readable'] = False
    _not_taken_over(sd, 'whether pid 4242 still runs cannot be told (/proc/4242 is not readable here)')


@pytest.mark.parametrize('reader', ['read_machine_id', 'read_boot_id', 'read_pid_namespace'])
def test_lease_holder_counts_as_alive_when_this_side_cannot_be_read(tmp_path, here, monkeypatch, reader):
    sd = _held(tmp_path)
    here['procs'] = {}
    monkeypatch.setattr(_lock, reader, lambda: None)
    _not_taken_over(sd, 'cannot be read')


def test_lease_takeover_in_check_mode_writes_nothing(tmp_path, here):
    sd = _held(tmp_path)
    here['procs'] = {}
    assert acquire_lease(sd, 'run-2', check_mode=True)['taken_over']
    assert read_lease(sd)[0]['lock_id'] == 'run-1'


# ------------------------------------------------------------------ the identity readers

def _fake_proc(tmp_path, monkeypatch, stats):
    """A /proc of our namespace holding only ``stats`` (PID -> /proc/PID/stat bytes)."""
    proc = tmp_path / 'proc'
    proc.mkdir()
    os.symlink(str(os.getpid()), str(proc / 'self'))
    for pid, raw in stats.items():
        (proc / str(pid)).mkdir()
        (proc / str(pid) / 'stat').write_bytes(raw)
    monkeypatch.setattr(_lock, 'PROC', str(proc))


def _stat(comm, state='S', start=123456):
    return b'%d (%s) %s ' % (77, comm, state.encode()) + b' '.join(b'%d' % n for n in range(4, 22)) + b' %d 0 0\n' % start


def test_process_start_reads_field_22_after_a_command_name_with_spaces_and_parentheses(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, {77: _stat(b'a) S 1 (b c) 99')})
    assert _lock.process_start(77) == (True, 123456)


def test_process_start_a_zombie_has_ended(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, {77: _stat(b'ansible-playboo', state='Z')})
    assert _lock.process_start(77) == (False, None)


@pytest.mark.parametrize('kill_says, expected', [(False, (False, None)), (True, (None, None)), (None, (None, None))])
def test_process_start_missing_from_proc_is_gone_only_when_kill_agrees(tmp_path, monkeypatch, kill_says, expected):
    # hidepid=2 hides other users' live processes from /proc; kill(pid, 0) still answers EPERM for them.
    _fake_proc(tmp_path, monkeypatch, {})
    monkeypatch.setattr(_lock, '_pid_alive', lambda pid: kill_says)
    assert _lock.process_start(77) == expected


def test_process_start_cannot_tell_through_a_proc_of_another_namespace(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, {77: _stat(b'x')})
    os.unlink(str(tmp_path / 'proc' / 'self'))
    os.symlink('1', str(tmp_path / 'proc' / 'self'))
    assert _lock.process_start(77) == (None, None)


def test_process_start_unparsable_stat_cannot_tell(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, {77: b'77 (x S 1 2\n'})
    assert _lock.process_start(77) == (None, None)


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='needs Linux /proc')
def test_lease_of_a_real_process_is_taken_over_once_it_has_exited(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    try:
        identity = _lock.process_identity(proc.pid)
        assert identity['pid_start'] == _lock.process_start(proc.pid)[1] and isinstance(identity['pid_start'], int)
        sd = _state_dir(tmp_path)
        acquire_lease(sd, 'run-1', ttl=600, pid=proc.pid, identity=identity)
        if None in identity.values():
            pytest.skip('this machine does not show every identity field: %r' % identity)
        with pytest.raises(LockTimeout, match='pid %d still runs' % proc.pid):
            acquire_lease(sd, 'run-2', timeout=0)
    finally:
        proc.kill()
        proc.wait()
    res = acquire_lease(sd, 'run-2', timeout=0)
    assert res['taken_over'] and res['previous_holder']['pid'] == proc.pid


def test_read_boot_time_finds_btime_after_long_lines(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, {})
    (tmp_path / 'proc' / 'stat').write_text('cpu  1 2 3\nintr %s\nctxt 9\nbtime 1700000000\nprocesses 5\n' % ' '.join(['0'] * 20000))
    assert _lock.read_boot_time() == 1700000000.0


def test_read_machine_id_falls_back_to_dbus_while_systemd_has_none(tmp_path, monkeypatch):
    systemd, dbus = tmp_path / 'machine-id', tmp_path / 'dbus-machine-id'
    systemd.write_text('uninitialized\n')
    dbus.write_text('0123abcd\n')
    monkeypatch.setattr(_lock, 'MACHINE_ID_FILES', (str(systemd), str(dbus)))
    assert _lock.read_machine_id() == '0123abcd'
    dbus.unlink()
    assert _lock.read_machine_id() is None
