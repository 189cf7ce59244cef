# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_release: the release state machine, driven through ReleaseManager (the module's tests are in
tests/unit/plugins/modules/test_release.py)."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import threading
import time

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _release
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import FileLock
from ansible_collections.zerodown.deploy.plugins.module_utils._release import ReleaseError, ReleaseRefused, validate_release_id
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


@pytest.fixture
def base(tmp_path):
    return tmp_path / 'srv' / 'shop'


# ------------------------------------------------------------------ ID validation

@pytest.mark.parametrize('bad', ['../x', 'a/b', '.', '..', '', ' ', 'a b', '-rf', '.hidden', 'x' * 129, 'a\nb', 'rel\x00',
                                 '/abs', 'ü', 'abc\n', 'abc/', None, 42])
def test_invalid_ids_rejected(bad):
    with pytest.raises(ReleaseError, match='Invalid release ID'):
        validate_release_id(bad)


@pytest.mark.parametrize('good', ['20261121T101500Z-3f2a9c1', 'v1.2.3', 'a', 'A_b-c.d', 'x' * 128, '1'])
def test_valid_ids_accepted(good):
    assert validate_release_id(good) == good


# ------------------------------------------------------------------ prepare

def test_prepare_without_revision_uses_timestamp_and_suffixes(base):
    def clock():
        return 1795256100.0  # 2026-11-21T10:15:00Z

    first = mgr(base, clock=clock).prepare()
    second = mgr(base, clock=clock).prepare()
    third = mgr(base, clock=clock).prepare()
    assert first['release'] == '20261121T101500Z'
    assert second['release'] == '20261121T101500Z-2'
    assert third['release'] == '20261121T101500Z-3'
    with_rev = mgr(base, clock=clock).prepare(revision='ab/cd!ef-0123')
    assert with_rev['release'] == '20261121T101500Z-abcdef0'


# ------------------------------------------------------------------ switch

def test_switch_atomic_under_concurrent_reader(base):
    """A reader never sees current missing or dangling during 2000 switches made by the module."""
    deploy(base, 'a')
    deploy(base, 'b')
    current = os.path.join(str(base), 'current')
    stop = threading.Event()
    failures = []
    seen = set()

    def reader():
        while not stop.is_set():
            try:
                target = os.readlink(current)
                os.stat(current)
                seen.add(target)
            except OSError as exc:  # pragma: no cover - the failure being tested for
                failures.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(2000):
            res = mgr(base).switch('a' if i % 2 == 0 else 'b')
            assert res['changed'] is True
    finally:
        stop.set()
        thread.join()
    assert len(failures) == 0
    assert seen == {'releases/a', 'releases/b'}
    assert not [n for n in os.listdir(str(base)) if n.startswith('.') and n != '.zerodown']


# ------------------------------------------------------------------ rollback

def test_rollback_prefers_most_recently_switched_among_older(base):
    for rid in ('r1', 'r2', 'r3'):
        mgr(base).prepare(rid)
    mgr(base).switch('r2')
    mgr(base).switch('r1')
    mgr(base).switch('r3')
    set_mtimes(base, ['r2', 'r3', 'r1'])
    res = mgr(base).rollback()
    assert res['current'] == 'r1'  # r1 was live right before r3, although r2 was created later


def test_rollback_never_chooses_bad_or_unfinished(base):
    deploy(base, 'r1')
    mgr(base).prepare('r2')  # unfinished, never live
    deploy(base, 'r3')
    deploy(base, 'r4')
    mgr(base).mark_bad('r3')
    res = mgr(base).rollback()
    assert res['current'] == 'r1'


def test_rollback_repairs_dangling_current(base):
    deploy(base, 'r1')
    deploy(base, 'r2')
    os.rename(os.path.join(str(base), 'releases', 'r2'), os.path.join(str(base), 'gone'))
    info = mgr(base).info()
    assert info['current'] is None
    res = mgr(base).rollback()
    assert res['current'] == 'r1' and current_of(base) == 'releases/r1'


# ------------------------------------------------------------------ prune

def test_prune_bad_and_unfinished_do_not_count(base):
    deploy(base, 'g1')
    deploy(base, 'g2')
    mgr(base).prepare('u1')
    mgr(base).prepare('b1')
    mgr(base).mark_bad('b1')
    deploy(base, 'g3')
    mgr(base).prepare('b2')
    mgr(base).mark_bad('b2')
    mgr(base).prepare('u2')  # newest: maybe a deploy in progress
    res = mgr(base).prune(3)
    assert res['removed'] == ['u1', 'b1', 'b2']
    assert sorted(statuses(res)) == ['g1', 'g2', 'g3', 'u2']
    assert statuses(res)['u2'] == 'unfinished'


def test_prune_keeps_newest_unfinished_only(base):
    deploy(base, 'g1')
    mgr(base).prepare('u1')
    mgr(base).prepare('u2')
    res = mgr(base).prune(1)
    assert res['removed'] == ['u1']
    deploy(base, 'g2')
    res = mgr(base).prune(1)
    assert res['removed'] == ['u2']
    assert sorted(statuses(res)) == ['g1', 'g2']  # g1: previous good, g2: current


def test_prune_never_removes_current_even_if_marked_bad_externally(base):
    deploy(base, 'r1')
    deploy(base, 'r2')
    deploy(base, 'r3')
    data = manifest(base)
    data['releases']['r3']['status'] = 'bad'
    with open(os.path.join(str(base), '.zerodown', 'manifest.json'), 'w') as f:
        json.dump(data, f)
    deploy_other = mgr(base)
    res = deploy_other.prune(1)
    assert 'r3' not in res['removed'] and os.path.isdir(os.path.join(str(base), 'releases', 'r3'))
    assert any('marked bad' in w for w in deploy_other.warnings)


def test_prune_cleans_leftovers_of_interrupted_prune(base):
    deploy(base, 'r1')
    leftover = os.path.join(str(base), 'releases', '.prune-r0.del-1-abc')
    os.makedirs(os.path.join(leftover, 'sub'))
    ro = os.path.join(leftover, 'sub')
    with open(os.path.join(ro, 'f'), 'w') as f:
        f.write('x')
    os.chmod(ro, 0o500)
    res = mgr(base).prune(5)
    assert res['changed'] is True and res['removed'] == []
    assert not os.path.lexists(leftover)


def test_prune_interrupted_before_delete_is_finished_by_next_prune(base, monkeypatch):
    for i in range(1, 5):
        deploy(base, 'r%d' % i)
    releases = os.path.join(str(base), 'releases')
    # simulate a crash between the rename to the hidden name and the deletion
    monkeypatch.setattr(_release, '_rmtree', lambda path: None)
    res = mgr(base).prune(1)
    assert res['removed'] == ['r1', 'r2']
    hidden = sorted(n for n in os.listdir(releases) if n.startswith('.'))
    assert len(hidden) == 2 and all(n.startswith('.prune-') for n in hidden)
    assert sorted(statuses(mgr(base).info())) == ['r3', 'r4']  # hidden ones are not releases
    monkeypatch.undo()
    res = mgr(base).prune(1)
    assert res['changed'] is True and res['removed'] == []
    assert sorted(os.listdir(releases)) == ['r3', 'r4']


# ------------------------------------------------------------------ manifest recovery

def test_manifest_rebuild_on_switch_to_current_reports_change(base):
    deploy(base, 'v1')
    os.unlink(os.path.join(str(base), '.zerodown', 'manifest.json'))
    res = mgr(base).switch('v1')
    assert res['changed'] is True and res['manifest_rebuilt'] is True
    res = mgr(base).switch('v1')
    assert res['changed'] is False and res['manifest_rebuilt'] is False


def test_manifest_drops_vanished_and_adopts_foreign(base):
    deploy(base, 'r1')
    deploy(base, 'r2')
    deploy(base, 'r3')
    shutil.rmtree(os.path.join(str(base), 'releases', 'r1'))
    os.mkdir(os.path.join(str(base), 'releases', 'manual'))
    m = mgr(base)
    res = m.info()
    assert statuses(res) == {'manual': 'unknown', 'r2': 'good', 'r3': 'good'}
    assert res['manifest_rebuilt'] is False
    assert any('r1' in w and 'gone' in w for w in m.warnings)
    assert any('manual' in w and 'adopted' in w for w in m.warnings)
    assert [r['id'] for r in res['releases']][0] == 'manual'  # adopted ones sort as oldest
    mgr(base).prune(5)
    assert set(manifest(base)['releases']) == {'manual', 'r2', 'r3'}


def test_manifest_ignores_non_release_entries(base):
    deploy(base, 'r1')
    rel = os.path.join(str(base), 'releases')
    with open(os.path.join(rel, 'README'), 'w') as f:
        f.write('x')
    os.mkdir(os.path.join(rel, 'bad name'))
    os.symlink('r1', os.path.join(rel, 'alias'))
    assert sorted(statuses(mgr(base).info())) == ['r1']


def test_interrupted_switch_is_adopted_as_good(base):
    deploy(base, 'r1')
    mgr(base).prepare('r2')
    os.unlink(os.path.join(str(base), 'current'))
    os.symlink('releases/r2', os.path.join(str(base), 'current'))  # as if we crashed after the rename
    m = mgr(base)
    res = m.info()
    assert statuses(res)['r2'] == 'good' and res['current'] == 'r2'


def test_absolute_current_link_is_understood(base):
    deploy(base, 'r1')
    os.unlink(os.path.join(str(base), 'current'))
    os.symlink(os.path.join(str(base), 'releases', 'r1'), os.path.join(str(base), 'current'))
    assert mgr(base).info()['current'] == 'r1'
    assert mgr(base).switch('r1')['changed'] is False


# ------------------------------------------------------------------ the short lock

def test_short_lock_is_released_after_each_run(base):
    deploy(base, 'r1')
    with FileLock(os.path.join(str(base), '.zerodown', 'lock'), timeout=0):
        pass
    assert not os.path.exists(os.path.join(str(base), '.zerodown', 'lock.json'))


def test_mutation_waits_for_short_lock_then_fails_naming_holder(base):
    deploy(base, 'r1')
    with FileLock(os.path.join(str(base), '.zerodown', 'lock'), play='other run'):
        with pytest.raises(ReleaseError) as exc:
            mgr(base, lock_wait=0.2).prune(1)
    assert 'other run' in exc.value.msg and 'pid=%d' % os.getpid() in exc.value.msg


# ------------------------------------------------------------------ one-call deploy steps: reuse, build, remove, report, layout

def test_prepare_reuses_the_live_release_of_the_same_revision(base):
    mgr(base).prepare(revision='abc1234')
    first = mgr(base).info()['releases'][0]['id']
    mgr(base).switch(first)
    again = mgr(base).prepare(revision='abc1234', reuse_live=True)
    assert again['new'] is False and again['release'] == first and not again['changed']
    assert 'nothing to deploy' in again['msg']
    other = mgr(base).prepare(revision='def5678', reuse_live=True)
    assert other['new'] is True and other['release'] != first
    forced = mgr(base).prepare(revision='abc1234')
    assert forced['new'] is True


def test_prepare_never_reuses_a_bad_current(base):
    deploy(base, 'r1', revision='abc1234')
    state = json.load(open(os.path.join(str(base), '.zerodown', 'manifest.json'), encoding='utf-8'))
    state['releases']['r1']['status'] = 'bad'
    with open(os.path.join(str(base), '.zerodown', 'manifest.json'), 'w', encoding='utf-8') as handle:
        json.dump(state, handle)
    assert mgr(base).prepare(revision='abc1234', reuse_live=True)['new'] is True


def test_mark_bad_with_remove_deletes_the_directory_and_keeps_the_record(base):
    deploy(base, 'r1')
    mgr(base).prepare('r2')
    result = mgr(base).mark_bad('r2', 'build failed', remove=True)
    assert result['removed'] == ['r2'] and not os.path.exists(os.path.join(str(base), 'releases', 'r2'))
    assert manifest(base)['releases']['r2']['status'] == 'bad'


class Commands:
    def __init__(self, rcs):
        self.rcs = list(rcs)
        self.calls = []

    def __call__(self, argv, cwd=None, environ_update=None):
        self.calls.append((argv, cwd, environ_update))
        rc = self.rcs.pop(0)
        return rc, 'out\n', 'syntax error in app.py\n' if rc else ''


def test_build_runs_the_commands_in_the_release_and_stops_at_the_first_failure(base):
    mgr(base).prepare('r1')
    group = __import__('grp').getgrgid(os.getegid()).gr_name
    user = __import__('pwd').getpwuid(os.geteuid()).pw_name
    run = Commands([0, 3, 0])
    with pytest.raises(ReleaseError) as exc:
        mgr(base).build('r1', [], [], group, user, commands=['echo one', ['make', 'all'], 'echo never'],
                        environment={'ZERODOWN_RELEASE_ID': 'r1'}, run_as=None, run_command=run)
    assert exc.value.msg == 'the build command make all failed (rc 3): syntax error in app.py'
    assert exc.value.details['rc'] == 3 and exc.value.details['item'] == 'make all'
    assert [call[0] for call in run.calls] == [['/bin/sh', '-c', 'echo one'], ['make', 'all']]
    assert run.calls[0][1] == os.path.join(str(base), 'releases', 'r1') and run.calls[0][2] == {'ZERODOWN_RELEASE_ID': 'r1'}


def test_build_runs_as_the_deploy_user_through_runuser_when_root(base, monkeypatch):
    mgr(base).prepare('r1')
    group = __import__('grp').getgrgid(os.getegid()).gr_name
    user = __import__('pwd').getpwuid(os.geteuid()).pw_name
    monkeypatch.setattr(_release.os, 'geteuid', lambda: 0)
    run = Commands([0])
    result = mgr(base).build('r1', [], [], group, user, commands=['true'], run_as='deploy', run_command=run)
    assert run.calls[0][0] == ['runuser', '-u', 'deploy', '--', '/bin/sh', '-c', 'true']
    assert result['commands'][0]['rc'] == 0 and result['changed']


def test_unlock_writes_the_report_before_giving_the_lease_back(base):
    mgr(base).prepare('r1')
    mgr(base).lock('run-1')
    path = os.path.join(str(base), '.zerodown', 'reports', 'T-deploy.json')
    result = mgr(base, lock_id='run-1').unlock('run-1', report={'outcome': 'deployed'}, report_path=path)
    assert result['report_path'] == path and json.load(open(path, encoding='utf-8')) == {'outcome': 'deployed'}
    assert oct(os.stat(path).st_mode & 0o777) == '0o640'
    assert result['lock'] is None


@pytest.mark.skipif(os.geteuid() != 0, reason='root owns the layout: chown to root needs root')
def test_lock_with_a_layout_makes_it_under_the_lease(base):
    group = __import__('grp').getgrgid(os.getegid()).gr_name
    result = mgr(base).lock('run-1', layout={'group': group, 'mode': '0750', 'users': []})
    assert result['lock']['lock_id'] == 'run-1' and result['changed']
    assert str(base) in result['changed_paths'] and os.path.isdir(os.path.join(str(base), 'releases'))


def test_unlock_can_prune_first_under_the_lease(base):
    for rid in ('r1', 'r2', 'r3'):
        deploy(base, rid)
    mgr(base).lock('run-1')
    result = mgr(base, lock_id='run-1').unlock('run-1', prune_keep=1)
    # r3 is current, r2 the previous good one: both stay whatever keep says; r1 goes.
    assert result['removed'] == ['r1'] and result['changed'] and result['lock'] is None
    assert sorted(os.listdir(os.path.join(str(base), 'releases'))) == ['r2', 'r3']


@pytest.mark.parametrize('path', ['/', '//', '/srv/../etc', '/srv/shop/..'])
def test_the_root_and_paths_with_dotdot_are_no_base(path):
    with pytest.raises(ReleaseError, match='a directory below / without ".." components'):
        mgr(path)


def test_an_id_time_in_other_digits_than_ascii_is_refused(base):
    # Python's \\d matches Arabic-Indic digits; a release ID made of them would sort and parse like no other.
    with pytest.raises(ReleaseError, match='Invalid id_time'):
        mgr(base).prepare(revision='abc1234', id_time='\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0661T101500Z')


# ------------------------------------------------------------------ a manifest write that fails after current moved (issue 21, 2)

def _manifest_path(base):
    return os.path.join(str(base), '.zerodown', 'manifest.json')


def test_a_switch_whose_manifest_cannot_be_written_switches_back_and_says_where_current_is(base, monkeypatch):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(_manifest_path(base)))
    with pytest.raises(ReleaseError) as exc:
        mgr(base).switch('v2')
    assert current_of(base) == 'releases/v1'
    assert 'No space left on device' in exc.value.msg and 'switched back: current points at releases/v1' in exc.value.msg
    assert exc.value.details == {'current': 'v1', 'current_target': 'releases/v1'}
    monkeypatch.undo()
    assert statuses(mgr(base).info()) == {'v1': 'good', 'v2': 'unfinished'}  # as before the failed switch
    assert mgr(base).switch('v2')['current'] == 'v2'


def test_a_first_switch_whose_manifest_cannot_be_written_says_current_moved(base, monkeypatch):
    mgr(base).prepare('v1')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(_manifest_path(base)))
    with pytest.raises(ReleaseError) as exc:
        mgr(base).switch('v1')
    # nothing was live before: there is nothing to go back to, so the failure says that current moved
    assert current_of(base) == 'releases/v1' and exc.value.details['current'] == 'v1'
    assert 'current points at releases/v1 now, but the manifest' in exc.value.msg
    monkeypatch.undo()
    res = mgr(base).info()
    assert res['current'] == 'v1' and statuses(res) == {'v1': 'good'}


def test_when_switching_back_fails_too_the_failure_names_the_new_release(base, monkeypatch):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(_manifest_path(base)))
    real_symlink, calls = _release.atomic_symlink, []

    def symlink_once(target, link):
        calls.append(target)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), link)
        real_symlink(target, link)
    monkeypatch.setattr(_release, 'atomic_symlink', symlink_once)
    with pytest.raises(ReleaseError) as exc:
        mgr(base).switch('v2')
    assert calls == ['releases/v2', 'releases/v1']
    assert current_of(base) == 'releases/v2' and exc.value.details['current'] == 'v2'
    assert 'switching current back to releases/v1 failed' in exc.value.msg and 'current points at releases/v2 now' in exc.value.msg


def test_a_rollback_whose_manifest_cannot_be_written_stays_on_the_good_release(base, monkeypatch):
    deploy(base, 'r1')
    deploy(base, 'r2')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(_manifest_path(base)))
    with pytest.raises(ReleaseError) as exc:
        mgr(base).rollback(mark_current_bad=True, reason='502s')
    # going back would put the broken release live again over a bookkeeping error
    assert current_of(base) == 'releases/r1' and exc.value.details['current'] == 'r1'
    assert 'current points at releases/r1 now' in exc.value.msg and 'r2 is not recorded as bad' in exc.value.msg


def test_a_link_swap_that_fails_says_current_did_not_move(base, monkeypatch):
    deploy(base, 'v1')
    mgr(base).prepare('v2')

    def full(target, link):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), link)
    monkeypatch.setattr(_release, 'atomic_symlink', full)
    with pytest.raises(ReleaseError) as exc:
        mgr(base).switch('v2')
    assert exc.value.details['current'] == 'v1' and exc.value.msg.endswith('current points at releases/v1')


# ------------------------------------------------------------------ current resolving into a release, or somewhere unknown (issue 21, 3)

def _point_current(base, target):
    current = os.path.join(str(base), 'current')
    os.unlink(current)
    os.symlink(target, current)


def test_prune_keeps_the_release_current_resolves_into(base):
    for rid in ('r1', 'r2', 'r3', 'r4'):
        deploy(base, rid)
    os.mkdir(os.path.join(str(base), 'releases', 'r1', 'public'))
    _point_current(base, 'releases/r1/public')
    m = mgr(base)
    res = m.prune(1)
    assert res['removed'] == ['r2', 'r3']  # r4: the newest and the last one switched to
    assert os.path.isdir(os.path.join(str(base), 'current'))
    assert any('into or through release r1' in w for w in m.warnings)


def test_prune_keeps_every_release_a_chain_of_links_passes_through(base):
    for rid in ('r1', 'r2', 'r3', 'r4', 'r5'):
        deploy(base, rid)
    releases = os.path.join(str(base), 'releases')
    os.makedirs(os.path.join(releases, 'r1', 'app', 'public'))
    os.symlink('../r1/app', os.path.join(releases, 'r2', 'app'))  # r2's app is r1's
    os.symlink('releases/r2/app/public', os.path.join(str(base), 'web'))
    _point_current(base, 'web')  # current -> web -> releases/r2/app/public, real path releases/r1/app/public
    res = mgr(base).prune(1)
    assert res['removed'] == ['r3', 'r4']
    assert os.path.isdir(os.path.join(str(base), 'current'))


@pytest.mark.parametrize('shape', ['outside', 'dangling', 'inside'])
def test_switch_and_rollback_refuse_a_current_the_module_did_not_make(base, tmp_path, shape):
    for rid in ('r1', 'r2'):
        deploy(base, rid)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.mkdir(os.path.join(str(base), 'releases', 'r2', 'public'))
    target = {'outside': str(elsewhere), 'dangling': 'releases/r9/public', 'inside': 'releases/r2/public'}[shape]
    _point_current(base, target)
    for run in (lambda: mgr(base).switch('r1'), lambda: mgr(base).rollback(), lambda: mgr(base).rollback('r1')):
        with pytest.raises(ReleaseRefused, match='refusing to .*current -> %s' % target):
            run()
        assert current_of(base) == target
    assert mgr(base).prepare('r3')['changed'] is True  # what does not touch current or delete still runs
    if shape == 'inside':
        assert mgr(base).prune(1)['removed'] == ['r1']  # r2 stays: current resolves into it
    else:
        with pytest.raises(ReleaseRefused, match='refusing to prune'):
            mgr(base).prune(1)
        assert sorted(os.listdir(os.path.join(str(base), 'releases'))) == ['r1', 'r2', 'r3']


def test_prune_refuses_while_current_is_gone_with_its_release_and_rollback_repairs_it(base):
    for rid in ('r1', 'r2', 'r3'):
        deploy(base, rid)
    shutil.rmtree(os.path.join(str(base), 'releases', 'r3'))
    with pytest.raises(ReleaseRefused, match='refusing to prune: .* dangles: release directory r3 is gone'):
        mgr(base).prune(1)
    assert mgr(base).rollback()['current'] == 'r2'
    assert mgr(base).prune(1)['removed'] == []  # r1: the previous good release of r2


def test_mark_bad_refuses_the_release_current_resolves_into(base):
    deploy(base, 'r1')
    deploy(base, 'r2')
    os.mkdir(os.path.join(str(base), 'releases', 'r1', 'public'))
    _point_current(base, 'releases/r1/public')
    with pytest.raises(ReleaseRefused, match='release r1 is what .* resolves into'):
        mgr(base).mark_bad('r1', remove=True)
    assert os.path.isdir(os.path.join(str(base), 'current')) and statuses(mgr(base).info())['r1'] == 'good'


# ------------------------------------------------------------------ a corrupt manifest: backup, set aside, refusals (issue 21, 4)

def _good_bad_good(base):
    """g1, g2, b3 (bad), g4 (current): g2 is the previous good release."""
    deploy(base, 'g1')
    deploy(base, 'g2')
    mgr(base).prepare('b3')
    mgr(base).mark_bad('b3', 'tests failed')
    deploy(base, 'g4')


def test_a_truncated_manifest_is_restored_from_its_backup_and_set_aside(base):
    _good_bad_good(base)
    path = _manifest_path(base)
    with open(path, encoding='utf-8') as handle:
        truncated = handle.read()[:80]
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(truncated)
    m = mgr(base)
    res = m.prune(1)
    # the previous good release g2 is still known and kept; without the backup it would be "unknown" and pruned
    assert res['removed'] == ['g1', 'b3'] and res['previous_good'] == 'g2' and res['manifest_rebuilt'] is True
    assert any('rebuilt from its backup' in w for w in m.warnings)
    aside = glob.glob(path + '.corrupt-*')
    assert len(aside) == 1 and open(aside[0], encoding='utf-8').read() == truncated
    assert any('moved the unusable manifest' in w and aside[0] in w for w in m.warnings)
    assert manifest(base)['releases']['g2']['status'] == 'good'
    with open(path + '.bak', encoding='utf-8') as handle:
        assert json.load(handle) == manifest(base)
    assert mgr(base).info()['manifest_rebuilt'] is False


def test_read_only_and_check_mode_runs_leave_a_corrupt_manifest_where_it_is(base):
    _good_bad_good(base)
    with open(_manifest_path(base), 'w', encoding='utf-8') as handle:
        handle.write('{"version": 1, "rel')
    before = snapshot(base)
    assert statuses(mgr(base).info())['b3'] == 'bad'  # read from the backup
    assert mgr(base, check_mode=True).prune(1)['removed'] == ['g1', 'b3']
    assert snapshot(base) == before


def _corrupt_both(base):
    for path in (_manifest_path(base), _manifest_path(base) + '.bak'):
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('{"version": 1, "rel')


def test_a_manifest_rebuilt_from_the_disk_refuses_prune_until_forced(base):
    _good_bad_good(base)
    _corrupt_both(base)
    m = mgr(base)
    with pytest.raises(ReleaseRefused, match='refusing to prune b3, g1, g2: .* force_rebuilt=true'):
        m.prune(1)
    assert sorted(os.listdir(os.path.join(str(base), 'releases'))) == ['b3', 'g1', 'g2', 'g4']
    assert any('cannot be used either' in w for w in m.warnings)
    # the mark of the rebuild outlives the runs that write the manifest, until a forced run accepts it
    mgr(base).prepare('n5')
    assert manifest(base)['rebuilt'].startswith('at ')
    with pytest.raises(ReleaseRefused, match='refusing to prune'):
        mgr(base).prune(1)
    forced = mgr(base, force_rebuilt=True)
    assert forced.prune(1)['removed'] == ['b3', 'g1', 'g2']  # what the operator accepted: g2's history is lost
    assert any('force_rebuilt: accepting' in w for w in forced.warnings)
    assert 'rebuilt' not in manifest(base)
    assert mgr(base).prune(1)['removed'] == []


def test_a_manifest_rebuilt_from_the_disk_refuses_unknown_releases_but_a_deploy_and_its_rollback_run(base):
    _good_bad_good(base)
    _corrupt_both(base)
    for run in (lambda: mgr(base).switch('b3'), lambda: mgr(base).rollback('g2')):
        with pytest.raises(ReleaseRefused, match='whose status is unknown'):
            run()
    assert current_of(base) == 'releases/g4'
    # a new release may go live, and a failed one rolls back to the release current was seen on (good, not unknown)
    mgr(base).prepare('n5')
    assert mgr(base).switch('n5')['current'] == 'n5'
    res = mgr(base).rollback(mark_current_bad=True, reason='health gate')
    assert res['current'] == 'g4' and statuses(res)['n5'] == 'bad'
    assert mgr(base, force_rebuilt=True).rollback('g2')['current'] == 'g2'


def test_unlock_gives_the_lease_back_when_its_prune_is_refused(base):
    _good_bad_good(base)
    _corrupt_both(base)
    mgr(base).lock('run-1')
    m = mgr(base, lock_id='run-1')
    result = m.unlock('run-1', prune_keep=1)
    assert result['lock'] is None and result['removed'] == []
    assert any(w.startswith('did not prune: refusing to prune') for w in m.warnings)


def test_a_backup_that_cannot_be_written_costs_a_warning_not_the_run(base, monkeypatch):
    deploy(base, 'v1')
    mgr(base).prepare('v2')
    monkeypatch.setattr(_release, 'atomic_write', no_space_for(_manifest_path(base) + '.bak'))
    m = mgr(base)
    assert m.switch('v2')['current'] == 'v2'
    assert any('could not write the backup manifest' in w for w in m.warnings)
    assert manifest(base)['releases']['v2']['status'] == 'good'


# ------------------------------------------------------------------ temporary files of a killed run (issue 21, 7)

def test_temporary_files_of_a_killed_run_are_removed_by_the_next_change(base):
    deploy(base, 'r1')
    state = os.path.join(str(base), '.zerodown')
    old = time.time() - 3600

    def leave(path, kind, age=old):
        if kind == 'link':
            os.symlink('releases/r1', path)
        elif kind == 'dir':
            os.mkdir(path)
        else:
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write('{"version": 1')
        os.utime(path, (age, age), follow_symlinks=False)
        return path

    stale = [leave(os.path.join(str(base), '.current.new-4242-0123456789ab'), 'link'),
             leave(os.path.join(state, '.manifest.json.tmp-4242-0123456789ab'), 'file'),
             leave(os.path.join(state, '.manifest.json.bak.tmp-4242-0123456789ab'), 'file')]
    kept = [leave(os.path.join(str(base), '.current.new-4243-0123456789ab'), 'link', time.time()),  # a live writer's, maybe
            leave(os.path.join(state, '.manifest.json.tmp-4243-0123456789ab'), 'file', time.time()),
            leave(os.path.join(str(base), '.current.new-by-hand'), 'link'),  # not a name temp_name() makes
            leave(os.path.join(state, '.manifest.json.tmp-4244-0123456789ab'), 'dir'),  # not the kind it makes
            leave(os.path.join(str(base), '.current.new-4245-0123456789ab'), 'file')]
    mgr(base, check_mode=True).prune(1)
    mgr(base).info()
    assert all(os.path.lexists(path) for path in stale + kept)  # check mode and reads remove nothing
    m = mgr(base)
    assert m.prune(5)['changed'] is False
    assert not any(os.path.lexists(path) for path in stale)
    assert all(os.path.lexists(path) for path in kept)
    assert any('interrupted run' in w and stale[0] in w for w in m.warnings)
    assert os.path.isdir(os.path.join(str(base), 'releases', 'r1'))


# ------------------------------------------------------------------ deleting without following links (issue 21, 8)

def _outside_tree(tmp_path):
    outside = tmp_path / 'outside'
    (outside / 'sub').mkdir(parents=True)
    (outside / 'keep.txt').write_text('precious')
    (outside / 'sub' / 'deep.txt').write_text('also precious')
    os.chmod(str(outside / 'sub'), 0o555)
    os.chmod(str(outside), 0o550)
    return outside


def test_rmtree_deletes_a_tree_with_read_only_directories(tmp_path):
    tree = tmp_path / 'tree'
    (tree / 'a' / 'b').mkdir(parents=True)
    (tree / 'a' / 'b' / 'f').write_text('x')
    (tree / 'c').mkdir()
    (tree / 'c' / 'g').write_text('y')
    for path, mode in ((tree / 'a' / 'b', 0o555), (tree / 'a', 0o500), (tree / 'c', 0o000), (tree, 0o555)):
        os.chmod(str(path), mode)
    assert _release._rmtree(str(tree)) is None
    assert not os.path.lexists(str(tree))


def test_rmtree_unlinks_links_and_never_touches_their_targets(tmp_path):
    outside = _outside_tree(tmp_path)
    before = snapshot(outside)
    tree = tmp_path / 'tree'
    (tree / 'deep').mkdir(parents=True)
    os.symlink(str(outside), str(tree / 'to-dir'))
    os.symlink(str(outside / 'sub'), str(tree / 'deep' / 'to-sub'))
    os.symlink(str(outside / 'keep.txt'), str(tree / 'deep' / 'to-file'))
    os.chmod(str(tree / 'deep'), 0o555)
    assert _release._rmtree(str(tree)) is None
    assert not os.path.lexists(str(tree))
    assert snapshot(outside) == before
    assert stat.S_IMODE(os.stat(str(outside)).st_mode) == 0o550 and stat.S_IMODE(os.stat(str(outside / 'sub')).st_mode) == 0o555


def test_rmtree_never_follows_a_directory_swapped_for_a_link_while_it_runs(tmp_path, monkeypatch):
    outside = _outside_tree(tmp_path)
    before = snapshot(outside)
    tree = tmp_path / 'tree'
    (tree / 'sub' / 'inner').mkdir(parents=True)
    (tree / 'sub' / 'inner' / 'f').write_text('x')
    os.chmod(str(tree / 'sub'), 0o555)
    real, swapped = _release._entry_names, []

    def racing(fd):
        names = real(fd)
        if 'sub' in names and not swapped:
            # the deploy user's move between the listing and the descent: sub becomes a link to a directory root owns
            os.chmod(str(tree / 'sub'), 0o755)
            shutil.rmtree(str(tree / 'sub'))
            os.symlink(str(outside), str(tree / 'sub'))
            swapped.append(True)
        return names
    monkeypatch.setattr(_release, '_entry_names', racing)
    assert _release._rmtree(str(tree)) is None
    assert swapped and not os.path.lexists(str(tree))
    assert snapshot(outside) == before  # no chmod, no listing, no deletion behind the link


def test_prune_of_a_release_holding_a_link_out_leaves_the_target_alone(base, tmp_path):
    outside = _outside_tree(tmp_path)
    before = snapshot(outside)
    for rid in ('r1', 'r2', 'r3'):
        deploy(base, rid)
    os.symlink(str(outside), os.path.join(str(base), 'releases', 'r1', 'uploads'))
    assert mgr(base).prune(1)['removed'] == ['r1']
    assert snapshot(outside) == before


# ------------------------------------------------------------------ switched, until the health gate passed

def test_a_pending_switch_is_switched_until_verified_and_never_a_rollback_target(base):
    deploy(base, 'r1')
    mgr(base).prepare('r2', revision='b2')
    result = mgr(base).switch('r2', pending=True)
    assert result['changed'] and current_of(base) == 'releases/r2'
    assert statuses(mgr(base).info()) == {'r1': 'good', 'r2': 'switched'}
    # The automatic rollback target is still the last verified release, and a named rollback refuses the unverified one.
    assert mgr(base).info()['previous_good'] == 'r1'
    mgr(base).prepare('r3', revision='c3')
    mgr(base).switch('r3', pending=True)
    assert mgr(base).rollback()['release'] == 'r1'
    with pytest.raises(ReleaseError, match='release r2 was switched to but never passed its health gate'):
        mgr(base).rollback('r2')


def test_the_unlock_that_names_the_verified_release_records_it_good(base):
    deploy(base, 'r1')
    run = mgr(base, lock_id='run-1')
    assert run.lock('run-1')['changed']
    mgr(base, lock_id='run-1').prepare('r2', revision='b2')
    mgr(base, lock_id='run-1').switch('r2', pending=True)
    result = mgr(base, lock_id='run-1').unlock('run-1', verified='r2')
    assert result['changed']
    assert statuses(mgr(base).info()) == {'r1': 'good', 'r2': 'good'}
    assert [entry['action'] for entry in manifest(base)['history']][-2:] == ['switch', 'verify']
    # Naming a release that is already good changes nothing.
    assert mgr(base).verify('r2')['changed'] is False


def test_a_deploy_of_the_revision_of_an_unverified_current_resumes_its_activation(base):
    """The controller was killed after the switch: the same revision again is not 'nothing to deploy'."""
    deploy(base, 'r1', revision='a1')
    mgr(base).prepare('r2', revision='b2')
    mgr(base).switch('r2', pending=True)
    again = mgr(base).prepare(revision='b2', reuse_live=True)
    assert again['new'] is False and again['resume'] is True and again['release'] == 'r2'
    assert again['previous'] == 'r1' and 'never passed its health gate' in again['msg']
    mgr(base).verify('r2')
    done = mgr(base).prepare(revision='b2', reuse_live=True)
    assert done['resume'] is False and 'nothing to deploy' in done['msg']


def test_a_plain_switch_still_records_good(base):
    deploy(base, 'r1')
    assert statuses(mgr(base).info()) == {'r1': 'good'}
