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
