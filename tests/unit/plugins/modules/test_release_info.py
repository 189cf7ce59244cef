# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the release_info module through main(), on a real temporary layout: it reports, and never writes."""

from __future__ import annotations

import os

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._lock import acquire_lease
from ansible_collections.zerodown.deploy.plugins.modules import release_info as release_info_module
from ansible_collections.zerodown.deploy.plugins.modules import release as release_module
from ansible_collections.zerodown.deploy.tests.unit.plugins.module_utils.release_tree import deploy, mgr, statuses
from ansible_collections.zerodown.deploy.tests.unit.plugins.modules.test_release import snapshot


@pytest.fixture
def base(tmp_path):
    return tmp_path / 'srv' / 'shop'


@pytest.fixture
def info(module_runner):
    def run(check=False, **args):
        return module_runner(release_info_module.main, check=check, **args)
    return run


def three_releases(base):
    deploy(base, '20261101T000000Z-aaaaaaa', revision='aaaaaaa')
    deploy(base, '20261102T000000Z-bbbbbbb', revision='bbbbbbb')
    deploy(base, '20261103T000000Z-ccccccc', revision='ccccccc')
    mgr(base).mark_bad('20261102T000000Z-bbbbbbb', 'leaks memory')


@pytest.mark.parametrize('check', [False, True])
def test_it_reports_current_the_rollback_target_and_every_release_and_writes_nothing(info, base, check):
    three_releases(base)
    before = snapshot(base)
    res = info(check=check, path=str(base))
    assert snapshot(base) == before
    assert res['changed'] is False and 'failed' not in res
    assert res['current'] == res['release'] == '20261103T000000Z-ccccccc'
    assert res['release_path'] == os.path.join(str(base), 'releases', '20261103T000000Z-ccccccc')
    # The bad one is never a rollback target.
    assert res['previous_good'] == '20261101T000000Z-aaaaaaa'
    assert statuses(res) == {'20261101T000000Z-aaaaaaa': 'good', '20261102T000000Z-bbbbbbb': 'bad', '20261103T000000Z-ccccccc': 'good'}
    assert [r['reason'] for r in res['releases']] == [None, 'leaks memory', None]
    assert res['manifest_rebuilt'] is False and res['lock'] is None
    # Only what the module documents: no result of a change.
    assert 'previous' not in res and 'removed' not in res


def test_the_same_as_the_deprecated_query_state_which_warns(info, module_runner, base):
    three_releases(base)
    res = info(path=str(base))
    old = module_runner(release_module.main, path=str(base), state='query')
    # ansible-core >= 2.19 structures them ({"event": {"msg": ...}}); before, {"msg": ...}.
    messages = [(d.get('event') or d).get('msg', '') for d in old.get('deprecations', [])]
    assert any('release_info' in message for message in messages), old.get('deprecations')
    for key in ('current', 'release', 'release_path', 'previous_good', 'releases', 'manifest_rebuilt', 'lock'):
        assert res[key] == old[key], key


def test_a_lease_held_is_shown(info, base):
    three_releases(base)
    acquire_lease(os.path.join(str(base), '.zerodown'), 'deploy-41', ttl=600, owner='ci', host='ctl', pid=41, play='Deploy shop')
    lock = info(path=str(base))['lock']
    assert lock['lock_id'] == 'deploy-41' and lock['owner'] == 'ci' and lock['play'] == 'Deploy shop' and lock['ttl'] == 600


def test_a_base_that_does_not_exist_reads_as_nothing_deployed_and_is_not_created(info, base):
    res = info(path=str(base))
    assert res['current'] is None and res['releases'] == [] and res['previous_good'] is None and res['lock'] is None
    assert not os.path.lexists(str(base))


def test_a_corrupt_manifest_is_read_from_the_disk_and_left_as_it_is(info, base):
    three_releases(base)
    path = os.path.join(str(base), '.zerodown', 'manifest.json')
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('{"version": 1, "releases": ')
    before = snapshot(base)
    res = info(path=str(base))
    assert snapshot(base) == before
    assert res['manifest_rebuilt'] is True and res['current'] == '20261103T000000Z-ccccccc'
    assert any('rebuilt' in warning for warning in res['warnings']), res['warnings']


def test_a_relative_path_is_refused(info):
    res = info(path='srv/shop')
    assert res['failed'] and res['msg'] == 'path must be an absolute path, got "srv/shop"'


def test_the_release_module_needs_a_state(module_runner, base):
    res = module_runner(release_module.main, path=str(base))
    assert res['failed'] and 'missing required arguments: state' in res['msg']
    assert not os.path.lexists(str(base))
