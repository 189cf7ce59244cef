# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the release module: its options and results through main(), like Ansible runs it.

The state machine itself is tested in tests/unit/plugins/module_utils/test_release_manager.py.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

import pytest


from ansible_collections.zerodown.deploy.plugins.module_utils._lock import acquire_lease, read_lease
from ansible_collections.zerodown.deploy.plugins.module_utils import _release
from ansible_collections.zerodown.deploy.plugins.module_utils._release import ReleaseError
from ansible_collections.zerodown.deploy.plugins.modules import release as release_module
from ansible_collections.zerodown.deploy.tests.unit.plugins.module_utils.release_tree import (
    current_of,
    deploy,
    manifest,
    mgr,
    no_space_for,
    set_mtimes,
    snapshot,
    statuses,
)


# ------------------------------------------------------------------ helpers

HOST_FACTS = {'pid1': 'systemd', 'systemd_version': 252, 'os': 'debian 12', 'os_family': 'debian', 'python': '3.11.2',
              'sudo': True, 'su': True, 'become_method': 'sudo'}


@pytest.fixture
def base(tmp_path):
    return tmp_path / 'srv' / 'shop'


@pytest.fixture
def run_module(module_runner, monkeypatch):
    """run_module(check=False, diff=False, **args): the module's main() run like Ansible would, on a host that has what a deploy
    needs (this machine's PID 1 need not be systemd; test_host.py checks the host check itself)."""
    monkeypatch.setattr(release_module, 'check_host', lambda *args, **kwargs: (dict(HOST_FACTS), []))

    def run(check=False, diff=False, **args):
        return module_runner(release_module.main, check=check, diff=diff, **args)
    return run


# ------------------------------------------------------------------ ID validation

@pytest.mark.parametrize('bad', ['../x', 'a/b', '.', '..', '', 'has space', '-leading-dash', 'x' * 129])
@pytest.mark.parametrize('state', ['prepare', 'switch', 'mark_bad', 'rollback'])
def test_invalid_ids_rejected_by_module(run_module, base, bad, state):
    res = run_module(path=str(base), state=state, release=bad)
    assert res['failed']
    assert 'Invalid release ID' in res['msg'] or 'release' in res['msg']
    assert not os.path.lexists(str(base))
    assert not os.path.lexists(os.path.join(str(base.parent), 'x'))


def test_relative_path_rejected(run_module):
    res = run_module(path='srv/shop', state='prepare')
    assert res['failed'] and 'absolute' in res['msg']
    assert not os.path.exists('srv')


def test_keep_releases_must_be_positive(run_module, base):
    res = run_module(path=str(base), state='prune', keep_releases=0)
    assert res['failed'] and 'keep_releases' in res['msg']
    with pytest.raises(ReleaseError, match='keep_releases'):
        mgr(base).prune(0)


# ------------------------------------------------------------------ prepare

def test_prepare_generated_id_creates_layout(run_module, base):
    res = run_module(path=str(base), state='prepare', revision='3f2a9c1e77d0aa')
    assert res['changed'] is True
    assert re.match(r'^\d{8}T\d{6}Z-3f2a9c1$', res['release'])
    assert res['release_path'] == os.path.join(str(base), 'releases', res['release'])
    assert os.path.isdir(res['release_path'])
    for sub in ('releases', 'shared', '.zerodown'):
        assert os.path.isdir(os.path.join(str(base), sub))
    assert statuses(res) == {res['release']: 'unfinished'}
    assert res['current'] is None and res['previous'] is None
    assert res['manifest_rebuilt'] is False
    entry = manifest(base)['releases'][res['release']]
    assert entry['status'] == 'unfinished' and entry['revision'] == '3f2a9c1e77d0aa'


def test_prepare_id_time_gives_every_host_the_same_id(run_module, tmp_path):
    # Two hosts of one deploy, preparing at different moments with the deploy's one id_time.
    ids = [run_module(path=str(tmp_path / host), state='prepare', revision='3f2a9c1e77d0aa', id_time='20261121T101500Z')['release']
           for host in ('web1', 'web2')]
    assert ids == ['20261121T101500Z-3f2a9c1', '20261121T101500Z-3f2a9c1']


@pytest.mark.parametrize('bad', ['2026-11-21T10:15:00Z', '20261121T101500', 'now', '20261121T101500Z/..'])
def test_prepare_rejects_a_malformed_id_time_and_creates_nothing(run_module, base, bad):
    res = run_module(path=str(base), state='prepare', revision='abc', id_time=bad)
    assert res['failed'] is True
    assert 'Invalid id_time' in res['msg'] and 'YYYYMMDDTHHMMSSZ' in res['msg']
    assert not os.path.exists(os.path.join(str(base), 'releases'))


def test_prepare_named_is_idempotent_while_unfinished(run_module, base):
    res = run_module(path=str(base), state='prepare', release='v1')
    assert res['changed'] is True
    before = snapshot(base)
    res = run_module(path=str(base), state='prepare', release='v1')
    assert res['changed'] is False and res['release'] == 'v1'
    after = snapshot(base)
    # the short lock's holder record was created and removed in .zerodown, nothing else may differ
    del before['.zerodown'], after['.zerodown']
    assert after == before


@pytest.mark.parametrize('status', ['good', 'bad'])
def test_prepare_named_existing_other_status_fails(run_module, base, status):
    deploy(base, 'v1')
    deploy(base, 'v2')
    if status == 'bad':
        mgr(base).mark_bad('v1')
    res = run_module(path=str(base), state='prepare', release='v1')
    assert res['failed'] and 'already exists with status %s' % status in res['msg']


def test_prepare_applies_mode(run_module, base):
    res = run_module(path=str(base), state='prepare', release='v1', mode='0750')
    assert stat.S_IMODE(os.stat(res['release_path']).st_mode) == 0o750
    res = run_module(path=str(base), state='prepare', release='v1', mode='0750')
    assert res['changed'] is False
    res = run_module(path=str(base), state='prepare', release='v1', mode='0700')
    assert res['changed'] is True
    assert stat.S_IMODE(os.stat(res['release_path']).st_mode) == 0o700


# ------------------------------------------------------------------ switch

def test_switch_end_to_end_with_diff(run_module, base):
    run_module(path=str(base), state='prepare', release='v1')
    res = run_module(path=str(base), state='switch', release='v1', diff=True)
    assert res['changed'] is True
    assert res['previous'] is None and res['current'] == 'v1'
    assert res['diff']['before'] == '' and res['diff']['after'] == 'releases/v1\n'
    assert current_of(base) == 'releases/v1'  # relative target
    run_module(path=str(base), state='prepare', release='v2')
    res = run_module(path=str(base), state='switch', release='v2', diff=True)
    assert res['previous'] == 'v1' and res['current'] == 'v2'
    assert res['diff'] == {'before': 'releases/v1\n', 'after': 'releases/v2\n',
                           'before_header': os.path.join(str(base), 'current'),
                           'after_header': os.path.join(str(base), 'current')}
    assert statuses(res) == {'v1': 'good', 'v2': 'good'}
    entry = [r for r in res['releases'] if r['id'] == 'v2'][0]
    assert entry['switched_at'] and entry['current'] is True
    assert res['previous_good'] == 'v1'
    # again: nothing to do
    res = run_module(path=str(base), state='switch', release='v2', diff=True)
    assert res['changed'] is False
    assert res['diff']['before'] == res['diff']['after'] == 'releases/v2\n'
    assert not [n for n in os.listdir(str(base)) if n.startswith('.current')]


def test_switch_to_bad_release_fails(run_module, base):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    mgr(base).mark_bad('v2', reason='build failed')
    res = run_module(path=str(base), state='switch', release='v2')
    assert res['failed'] and 'marked bad' in res['msg'] and 'build failed' in res['msg']
    assert current_of(base) == 'releases/v1'


def test_switch_to_missing_release_fails(run_module, base):
    deploy(base, 'v1')
    res = run_module(path=str(base), state='switch', release='nope')
    assert res['failed'] and 'does not exist' in res['msg']
    res = run_module(path=str(base), state='switch')
    assert res['failed'] and 'release' in res['msg']


def test_a_switch_that_cannot_write_the_manifest_fails_saying_where_current_points(run_module, base, monkeypatch):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(os.path.join(str(base), '.zerodown', 'manifest.json')))
    res = run_module(path=str(base), state='switch', release='v2', diff=True)
    assert res['failed'] and res['current'] == 'v1' and res['current_target'] == 'releases/v1'
    assert 'No space left on device' in res['msg'] and 'current points at releases/v1' in res['msg']
    assert current_of(base) == 'releases/v1'


def test_switch_refuses_real_directory_current(run_module, base):
    mgr(base).prepare('v1')
    os.mkdir(os.path.join(str(base), 'current'))
    res = run_module(path=str(base), state='switch', release='v1')
    assert res['failed'] and 'not a symbolic link' in res['msg']
    assert os.path.isdir(os.path.join(str(base), 'current'))


# ------------------------------------------------------------------ mark_bad

def test_mark_bad(run_module, base):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    res = run_module(path=str(base), state='mark_bad', release='v2', reason='tests failed')
    assert res['changed'] is True and statuses(res)['v2'] == 'bad'
    assert [r['reason'] for r in res['releases'] if r['id'] == 'v2'] == ['tests failed']
    res = run_module(path=str(base), state='mark_bad', release='v2')
    assert res['changed'] is False
    res = run_module(path=str(base), state='mark_bad', release='v2', reason='tests failed')
    assert res['changed'] is False


def test_mark_bad_current_refused(run_module, base):
    deploy(base, 'v1')
    deploy(base, 'v2')
    res = run_module(path=str(base), state='mark_bad', release='v2')
    assert res['failed'] and 'roll back first' in res['msg']
    assert statuses(mgr(base).info())['v2'] == 'good'


# ------------------------------------------------------------------ rollback

def test_rollback_uses_manifest_order_not_mtime(run_module, base):
    for rid in ('r1', 'r2', 'r3', 'r4'):
        deploy(base, rid)
    mgr(base).mark_bad('r3', reason='broken')
    # mtimes claim r1 is the newest and r2 the oldest: an mtime based choice would pick r1
    set_mtimes(base, ['r1', 'r4', 'r3', 'r2'])
    res = run_module(path=str(base), state='rollback')
    assert res['changed'] is True
    assert res['previous'] == 'r4' and res['current'] == 'r2'  # r3 is bad, r2 is the newest good before r4
    assert current_of(base) == 'releases/r2'
    res = run_module(path=str(base), state='rollback')
    assert res['current'] == 'r1'
    res = run_module(path=str(base), state='rollback')
    assert res['failed'] and 'no good release older than' in res['msg']
    assert current_of(base) == 'releases/r1'


@pytest.mark.parametrize('status', ['bad', 'unfinished'])
def test_named_rollback_to_bad_or_unfinished_fails(run_module, base, status):
    deploy(base, 'r1')
    deploy(base, 'r2')
    mgr(base).prepare('r3')
    deploy(base, 'r4')
    target = 'r1' if status == 'bad' else 'r3'
    if status == 'bad':
        mgr(base).mark_bad('r1', reason='data loss')
    res = run_module(path=str(base), state='rollback', release=target)
    assert res['failed'] and status in res['msg']
    assert current_of(base) == 'releases/r4'


def test_named_rollback_and_mark_current_bad(run_module, base):
    for rid in ('r1', 'r2', 'r3'):
        deploy(base, rid)
    res = run_module(path=str(base), state='rollback', release='r1', mark_current_bad=True, reason='502s', diff=True)
    assert res['changed'] and res['previous'] == 'r3' and res['current'] == 'r1'
    assert res['diff']['before'] == 'releases/r3\n' and res['diff']['after'] == 'releases/r1\n'
    assert statuses(res) == {'r1': 'good', 'r2': 'good', 'r3': 'bad'}
    assert [r['reason'] for r in res['releases'] if r['id'] == 'r3'] == ['502s']
    res = run_module(path=str(base), state='rollback', release='r1')
    assert res['changed'] is False
    res = run_module(path=str(base), state='rollback', release='r1', mark_current_bad=True)
    assert res['failed']
    res = run_module(path=str(base), state='switch', release='r3')
    assert res['failed'] and 'bad' in res['msg']


def test_rollback_without_any_release_fails(run_module, base):
    res = run_module(path=str(base), state='rollback')
    assert res['failed'] and 'no current release' in res['msg']
    deploy(base, 'only')
    res = run_module(path=str(base), state='rollback')
    assert res['failed'] and 'no good release' in res['msg']


# ------------------------------------------------------------------ prune

def test_prune_keeps_n_good_plus_current_and_previous_good(run_module, base):
    for i in range(1, 8):
        deploy(base, 'r%d' % i)
    mgr(base).rollback(release='r2')  # current is old now; previous good is r1
    res = run_module(path=str(base), state='prune', keep_releases=2)
    assert res['changed'] is True
    assert res['removed'] == ['r3', 'r4', 'r5']
    assert sorted(os.listdir(os.path.join(str(base), 'releases'))) == ['r1', 'r2', 'r6', 'r7']
    assert res['current'] == 'r2' and res['previous_good'] == 'r1'
    res = run_module(path=str(base), state='prune', keep_releases=2)
    assert res['changed'] is False and res['removed'] == []


def test_prune_check_mode_lists_without_deleting(run_module, base):
    for i in range(1, 5):
        deploy(base, 'r%d' % i)
    before = snapshot(base)
    res = run_module(path=str(base), state='prune', keep_releases=1, check=True)
    assert res['changed'] is True and res['removed'] == ['r1', 'r2']
    assert sorted(statuses(res)) == ['r3', 'r4']
    assert snapshot(base) == before
    res = run_module(path=str(base), state='prune', keep_releases=1)
    assert res['removed'] == ['r1', 'r2']


def test_prune_on_missing_base_is_noop(run_module, base):
    res = run_module(path=str(base), state='prune')
    assert res['changed'] is False and res['removed'] == []
    assert not os.path.exists(str(base))


# ------------------------------------------------------------------ manifest recovery

def _write_manifest_text(base, text):
    with open(os.path.join(str(base), '.zerodown', 'manifest.json'), 'w') as f:
        f.write(text)


@pytest.mark.parametrize('damage', [
    'missing',
    'not json',
    'truncated',
    'list',
    'no releases',
    'bad status',
    'bad version',
    'entry not dict',
    'bad id',
])
def test_manifest_recovery(run_module, base, damage):
    deploy(base, '20261101T000000Z-aaaaaaa')
    deploy(base, '20261102T000000Z-bbbbbbb')
    deploy(base, '20261103T000000Z-ccccccc')
    path = os.path.join(str(base), '.zerodown', 'manifest.json')
    good = manifest(base)
    if damage == 'missing':
        os.unlink(path)
    elif damage == 'not json':
        _write_manifest_text(base, 'this is not json')
    elif damage == 'truncated':
        _write_manifest_text(base, json.dumps(good)[:50])
    elif damage == 'list':
        _write_manifest_text(base, '[1, 2, 3]')
    elif damage == 'no releases':
        _write_manifest_text(base, json.dumps({'version': 1, 'seq': 3}))
    elif damage == 'bad status':
        good['releases']['20261101T000000Z-aaaaaaa']['status'] = 'great'
        _write_manifest_text(base, json.dumps(good))
    elif damage == 'bad version':
        good['version'] = 99
        _write_manifest_text(base, json.dumps(good))
    elif damage == 'entry not dict':
        good['releases']['20261101T000000Z-aaaaaaa'] = 'good'
        _write_manifest_text(base, json.dumps(good))
    elif damage == 'bad id':
        good['releases']['../evil'] = good['releases']['20261101T000000Z-aaaaaaa']
        _write_manifest_text(base, json.dumps(good))
    os.unlink(path + '.bak')  # the last-good copy is gone too: only the directories are left to rebuild from

    # query: reports, never writes
    before = snapshot(base)
    res = run_module(path=str(base), state='query')
    assert res['changed'] is False and res['manifest_rebuilt'] is True
    assert snapshot(base) == before
    assert res['current'] == '20261103T000000Z-ccccccc'
    assert statuses(res) == {
        '20261101T000000Z-aaaaaaa': 'unknown',
        '20261102T000000Z-bbbbbbb': 'unknown',
        '20261103T000000Z-ccccccc': 'good',
    }
    assert any('rebuilt' in w for w in res.get('warnings', []))
    rebuilt = [r for r in res['releases'] if r['id'] == '20261101T000000Z-aaaaaaa'][0]
    assert rebuilt['created'] == '2026-11-01T00:00:00Z' and rebuilt['revision'] == 'aaaaaaa'
    # unknown releases are not automatic rollback targets ...
    assert res['previous_good'] is None
    res = run_module(path=str(base), state='rollback')
    assert res['failed'] and 'no good release' in res['msg']
    # ... a named rollback to one is refused until the rebuilt state is accepted (an unknown release may be one that failed) ...
    res = run_module(path=str(base), state='rollback', release='20261102T000000Z-bbbbbbb')
    assert res['failed'] and 'force_rebuilt=true' in res['msg'] and current_of(base) == 'releases/20261103T000000Z-ccccccc'
    # ... and with force_rebuilt a mutating state writes the rebuilt manifest, and a named rollback may use them
    res = run_module(path=str(base), state='rollback', release='20261102T000000Z-bbbbbbb', force_rebuilt=True)
    assert res['changed'] is True and res['manifest_rebuilt'] is True
    assert res['current'] == '20261102T000000Z-bbbbbbb'
    res = run_module(path=str(base), state='query')
    assert res['manifest_rebuilt'] is False
    assert statuses(res)['20261102T000000Z-bbbbbbb'] == 'good'
    assert manifest(base)['version'] == 1


def test_manifest_missing_without_releases_is_not_a_rebuild(run_module, base):
    res = run_module(path=str(base), state='query')
    assert res['manifest_rebuilt'] is False and res['releases'] == [] and res['current'] is None


# ------------------------------------------------------------------ check mode

def _check_mode_case(base, state):
    """Set up a tree and return module args for ``state``."""
    for i in range(1, 5):
        deploy(base, 'r%d' % i)
    mgr(base).prepare('r5')
    args = {'path': str(base), 'state': state}
    if state == 'prepare':
        args['release'] = 'r6'
    elif state == 'switch':
        args['release'] = 'r5'
    elif state == 'mark_bad':
        args['release'] = 'r2'
    elif state == 'rollback':
        args['mark_current_bad'] = True
    elif state == 'prune':
        args['keep_releases'] = 1
    elif state in ('lock', 'unlock'):
        args['lock_id'] = 'run-1'
        if state == 'unlock':
            acquire_lease(os.path.join(str(base), '.zerodown'), 'run-1')
    return args


@pytest.mark.parametrize('state', ['prepare', 'switch', 'mark_bad', 'rollback', 'prune', 'query', 'lock', 'unlock'])
def test_check_mode_changes_nothing(run_module, base, state):
    args = _check_mode_case(base, state)
    before = snapshot(base)
    predicted = run_module(check=True, diff=True, **args)
    assert not predicted.get('failed'), predicted
    assert snapshot(base) == before
    real = run_module(diff=True, **args)
    assert not real.get('failed'), real
    assert predicted['changed'] == real['changed']
    assert predicted['current'] == real['current']
    assert predicted['previous'] == real['previous']
    assert predicted['removed'] == real['removed']
    assert predicted['diff'] == real['diff']
    if state != 'prepare':
        assert statuses(predicted) == statuses(real)
    if state != 'query':
        assert real['changed'] is True


def test_check_mode_prepare_on_missing_base(run_module, base):
    res = run_module(check=True, path=str(base), state='prepare', revision='abc', mode='0755')
    assert res['changed'] is True and res['release'].endswith('-abc')
    assert not os.path.exists(str(base))


def test_check_mode_with_corrupt_manifest_writes_nothing(run_module, base):
    deploy(base, 'r1')
    _write_manifest_text(base, '{')
    before = snapshot(base)
    res = run_module(check=True, path=str(base), state='switch', release='r1')
    assert res['changed'] is True and res['manifest_rebuilt'] is True
    assert snapshot(base) == before


# ------------------------------------------------------------------ deploy lock (lease) through the module

def test_lock_records_the_holder_identity_and_a_waiter_sees_it(run_module, base):
    holder = {'machine_id': 'm-ctl', 'boot_id': 'b-1', 'pid_namespace': 'pid:[4026531836]', 'pid_start': 5000}
    res = run_module(path=str(base), state='lock', lock_id='run-1', lock_host='ctl.example', lock_pid=4242, lock_holder=holder)
    assert {key: res['lock'][key] for key in holder} == holder
    res = run_module(path=str(base), state='lock', lock_id='run-2')
    assert res['failed'] and res['holder']['machine_id'] == 'm-ctl' and 'machine-id differs' in res['msg']


def test_lock_protocol(run_module, base):
    res = run_module(path=str(base), state='lock', lock_id='run-1', lock_play='Deploy shop', lock_owner='alice',
                     lock_host='ctl.example', lock_pid=4242, lock_ttl=600)
    assert res['changed'] is True and res['lock_taken_over'] is False
    assert res['lock']['lock_id'] == 'run-1' and res['lock']['pid'] == 4242 and res['lock']['expired'] is False
    # same id again: renewal
    res = run_module(path=str(base), state='lock', lock_id='run-1')
    assert res['changed'] is False
    # another deploy waits, then fails naming the holder
    start = time.monotonic()
    res = run_module(path=str(base), state='lock', lock_id='run-2', lock_timeout=1)
    assert time.monotonic() - start >= 0.9
    assert res['failed']
    for part in ('lock_id=run-1', 'owner=alice', 'host=ctl.example', 'pid=4242', 'since=', 'Deploy shop'):
        assert part in res['msg']
    assert res['holder']['lock_id'] == 'run-1'
    # mutations: without lock_id refused, with the wrong one refused, with ours fine, with force fine
    res = run_module(path=str(base), state='prepare', release='v1')
    assert res['failed'] and 'another deploy holds the deploy lock' in res['msg']
    res = run_module(path=str(base), state='prepare', release='v1', lock_id='run-2')
    assert res['failed'] and 'not by lock_id run-2' in res['msg']
    assert not os.path.exists(os.path.join(str(base), 'releases', 'v1'))
    res = run_module(path=str(base), state='prepare', release='v1', lock_id='run-1')
    assert res['changed'] is True
    res = run_module(path=str(base), state='switch', release='v1', force=True)
    assert res['changed'] is True and any('force' in w for w in res['warnings'])
    # query shows the lease
    res = run_module(path=str(base), state='query')
    assert res['lock']['lock_id'] == 'run-1'
    # unlock: wrong id refused, own id fine
    res = run_module(path=str(base), state='unlock', lock_id='run-2')
    assert res['failed'] and 'refusing to release' in res['msg']
    res = run_module(path=str(base), state='unlock', lock_id='run-1')
    assert res['changed'] is True and res['lock'] is None and res['previous_holder']['lock_id'] == 'run-1'
    res = run_module(path=str(base), state='unlock', lock_id='run-1')
    assert res['changed'] is False
    # lock_id given but lease gone
    res = run_module(path=str(base), state='prune', lock_id='run-1')
    assert res['failed'] and 'no deploy lock is held' in res['msg']


def test_lock_ttl_expired_is_taken_over(run_module, base):
    sd = os.path.join(str(base), '.zerodown')
    acquire_lease(sd, 'stuck-run', ttl=60, play='old deploy', clock=lambda: time.time() - 7200)
    res = run_module(path=str(base), state='prune')  # an expired lease blocks nobody
    assert not res.get('failed')
    assert any('ignoring the expired deploy lock' in w and 'stuck-run' in w for w in res['warnings'])
    res = run_module(path=str(base), state='lock', lock_id='run-2')
    assert res['changed'] is True and res['lock_taken_over'] is True
    assert res['previous_holder']['lock_id'] == 'stuck-run'
    assert any('took over' in w for w in res['warnings'])
    assert read_lease(sd)[0]['lock_id'] == 'run-2'
    # the old run notices at its next mutation
    res = run_module(path=str(base), state='prepare', lock_id='stuck-run')
    assert res['failed'] and 'taken over' in res['msg']


def test_force_unlock(run_module, base):
    acquire_lease(os.path.join(str(base), '.zerodown'), 'run-1')
    res = run_module(path=str(base), state='unlock', force=True)
    assert res['changed'] is True and res['previous_holder']['lock_id'] == 'run-1'


def test_unlock_requires_lock_id(run_module, base):
    res = run_module(path=str(base), state='unlock')
    assert res['failed'] and 'lock_id' in res['msg']
    res = run_module(path=str(base), state='lock')
    assert res['failed'] and 'lock_id' in res['msg']


# ------------------------------------------------------------------ the exit

def test_a_domain_error_fails_with_its_details_and_an_os_error_with_its_type(run_module, base, monkeypatch):
    deploy(base, 'v1')
    res = run_module(path=str(base), state='switch', release='nope')
    assert res['failed'] and res['releases'] == ['v1']  # ReleaseError's details go into the result

    def denied(self):
        raise PermissionError(13, 'Permission denied', str(base))
    monkeypatch.setattr(_release.ReleaseManager, 'info', denied)
    res = run_module(path=str(base), state='query')
    assert res['failed'] and res['msg'] == "PermissionError: [Errno 13] Permission denied: '%s'" % base


def test_a_lock_on_a_host_without_what_a_deploy_needs_fails_first_and_changes_nothing(module_runner, monkeypatch, base):
    monkeypatch.setattr(release_module, 'check_host', lambda *args, **kwargs: (dict(HOST_FACTS, pid1='init'), ['PID 1 is init, not systemd']))
    res = module_runner(release_module.main, path=str(base), state='lock', lock_id='run-1', group='root')
    assert res['failed'] and res['msg'] == 'this host cannot be deployed to, and nothing on it was changed: PID 1 is init, not systemd.'
    assert res['host_facts']['pid1'] == 'init'
    assert not os.path.lexists(str(base))


def test_a_lock_reports_the_host_facts(run_module, base):
    res = run_module(path=str(base), state='lock', lock_id='run-1')
    assert res['host_facts'] == HOST_FACTS
