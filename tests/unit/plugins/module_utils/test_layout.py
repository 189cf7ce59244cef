# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_layout: the layout's directories, the environment file, the users and the shared links.

They run in a temporary directory; owners are the user running the tests (and its group), so they pass as root and as
anyone else. What root must never do, follow a link someone planted, is checked with planted links.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._layout import (
    Changes,
    LayoutError,
    ensure_users,
    link_shared,
    make_layout,
)

ME = pwd.getpwuid(os.geteuid()).pw_name
MY_GROUP = grp.getgrgid(os.getegid()).gr_name


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def as_root_or_skip():
    if os.geteuid() != 0:
        pytest.skip('root owns the layout: chown to root needs root')


def test_make_layout_creates_the_directories_and_the_env_file(tmp_path, as_root_or_skip):
    base = str(tmp_path / 'app')
    result = make_layout(base, MY_GROUP, '0750', owner=ME, git_cache=True, env_content='SECRET=1\n', env_owner=ME)
    assert result['changed'] and result['env_changed'] is False  # a new file is not a changed secret
    for sub in ('', '/releases', '/shared', '/.zerodown'):
        assert mode(base + sub) == 0o750 and os.lstat(base + sub).st_uid == 0
    assert mode(base + '/.zerodown/repo') == 0o700
    assert mode(base + '/shared/.env') == 0o600
    assert open(base + '/shared/.env', encoding='utf-8').read() == 'SECRET=1\n'
    again = make_layout(base, MY_GROUP, '0750', owner=ME, git_cache=True, env_content='SECRET=1\n', env_owner=ME)
    assert not again['changed'] and again['changed_paths'] == []
    changed = make_layout(base, MY_GROUP, '0750', env_content='SECRET=2\n', env_owner=ME)
    assert changed['env_changed'] and changed['changed_paths'] == [base + '/shared/.env']


def test_make_layout_in_check_mode_changes_nothing(tmp_path):
    base = str(tmp_path / 'app')
    result = make_layout(base, MY_GROUP, '0750', env_content='X=1\n', env_owner=ME, check_mode=True)
    assert result['changed'] and not os.path.exists(base)


def test_make_layout_refuses_a_link_where_a_directory_must_be(tmp_path, as_root_or_skip):
    base = tmp_path / 'app'
    base.mkdir()
    (tmp_path / 'elsewhere').mkdir()
    os.symlink(str(tmp_path / 'elsewhere'), str(base / 'shared'))
    with pytest.raises(LayoutError, match='is not a directory'):
        make_layout(str(base), MY_GROUP, '0750')


def test_make_layout_refuses_a_link_in_place_of_the_env_file(tmp_path, as_root_or_skip):
    base = str(tmp_path / 'app')
    make_layout(base, MY_GROUP, '0750')
    os.symlink('/etc/passwd', base + '/shared/.env')
    with pytest.raises(LayoutError, match='not a regular file'):
        make_layout(base, MY_GROUP, '0750', env_content='X=1\n', env_owner=ME)
    assert os.path.islink(base + '/shared/.env')


def release_dir(tmp_path):
    base = tmp_path / 'app'
    (base / 'shared').mkdir(parents=True)
    release = base / 'releases' / 'R1'
    (release / 'storage' / 'logs').mkdir(parents=True)
    (release / 'storage' / 'logs' / '.keep').write_text('')
    (release / 'config').mkdir()
    (release / 'config' / 'local.ini').write_text('from the code\n')
    return str(base), str(release)


def test_link_shared_replaces_what_the_code_has_with_links(tmp_path):
    base, release = release_dir(tmp_path)
    result = link_shared(base, release, ['storage/logs', 'media'], ['config/local.ini'], MY_GROUP, ME, env_file=True)
    assert result['changed']
    for relative in ('storage/logs', 'media', 'config/local.ini', '.env'):
        assert os.readlink(os.path.join(release, relative)) == os.path.join(base, 'shared', relative)
    # The shared directory took the code's place; the code's file did not move into shared/.
    assert not os.path.exists(os.path.join(base, 'shared', 'storage', 'logs', '.keep'))
    assert open(os.path.join(base, 'shared', 'config', 'local.ini'), encoding='utf-8').read() == ''
    assert mode(os.path.join(base, 'shared', 'storage', 'logs')) == 0o750
    assert mode(os.path.join(base, 'shared', 'config', 'local.ini')) == 0o640
    again = link_shared(base, release, ['storage/logs', 'media'], ['config/local.ini'], MY_GROUP, ME, env_file=True)
    assert not again['changed']


def test_link_shared_keeps_the_content_of_existing_shared_files(tmp_path):
    base, release = release_dir(tmp_path)
    os.makedirs(os.path.join(base, 'shared', 'config'))
    with open(os.path.join(base, 'shared', 'config', 'local.ini'), 'w', encoding='utf-8') as handle:
        handle.write('the operator wrote this\n')
    link_shared(base, release, [], ['config/local.ini'], MY_GROUP, ME)
    assert open(os.path.join(release, 'config', 'local.ini'), encoding='utf-8').read() == 'the operator wrote this\n'


def test_link_shared_never_follows_a_link_the_code_planted(tmp_path):
    base, release = release_dir(tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir()
    # The code ships "data" as a link out of the release; data/uploads is a shared directory.
    os.symlink(str(outside), os.path.join(release, 'data'))
    link_shared(base, release, ['data/uploads'], [], MY_GROUP, ME)
    assert os.listdir(str(outside)) == []
    assert not os.path.islink(os.path.join(release, 'data')) and os.path.isdir(os.path.join(release, 'data'))
    assert os.readlink(os.path.join(release, 'data', 'uploads')) == os.path.join(base, 'shared', 'data', 'uploads')


def test_link_shared_in_check_mode_changes_nothing(tmp_path):
    base, release = release_dir(tmp_path)
    before = sorted(os.walk(release))
    result = link_shared(base, release, ['storage/logs'], [], MY_GROUP, ME, check_mode=True)
    assert result['changed'] and sorted(os.walk(release)) == before


def test_link_shared_needs_a_release_directory(tmp_path):
    base, release = release_dir(tmp_path)
    with pytest.raises(LayoutError, match='does not exist'):
        link_shared(base, release + '-missing', [], [], MY_GROUP, ME)


class Recorder:
    def __init__(self, rc=0):
        self.calls = []
        self.rc = rc

    def __call__(self, argv):
        self.calls.append(argv)
        return self.rc, '', 'useradd: boom' if self.rc else ''


def test_ensure_users_creates_what_is_missing_only():
    run = Recorder()
    changes = Changes(False)
    ensure_users([{'name': 'zd-no-such-user', 'group': 'zd-no-such-group', 'home': '/nonexistent', 'create_home': False},
                  {'name': ME, 'groups': [MY_GROUP]}], run, changes)
    assert run.calls == [
        ['groupadd', '--system', 'zd-no-such-group'],
        ['useradd', '--system', '--shell', '/usr/sbin/nologin', '--gid', 'zd-no-such-group', '--no-create-home',
         '--home-dir', '/nonexistent', 'zd-no-such-user'],
    ]
    assert changes.paths == ['zd-no-such-group', 'zd-no-such-user']


def test_ensure_users_adds_a_missing_group_to_an_existing_user():
    run = Recorder()
    ensure_users([{'name': ME, 'groups': ['zd-no-such-group']}], run, Changes(False))
    assert run.calls == [['groupadd', '--system', 'zd-no-such-group'],
                         ['usermod', '--append', '--groups', 'zd-no-such-group', ME]]


def test_ensure_users_in_check_mode_runs_nothing_and_a_failure_says_why():
    run = Recorder()
    changes = Changes(True)
    ensure_users([{'name': 'zd-no-such-user'}], run, changes)
    assert run.calls == [] and changes.paths == ['zd-no-such-user']
    with pytest.raises(LayoutError, match='useradd: boom'):
        ensure_users([{'name': 'zd-no-such-user'}], Recorder(rc=9), Changes(False))
