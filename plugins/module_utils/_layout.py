# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The directories of a release layout, its environment file and its shared links (internal; the ``release`` module).

Who owns what, and why:

* root owns BASE, BASE/releases, BASE/shared and BASE/.zerodown (group: the
  app's, so the deploy user and the app reach their parts). Neither the
  deploy user nor the app can plant a symbolic link there that a task
  running as root would follow.
* the deploy user owns the repository cache (0700) and each release (the
  state machine creates those);
* the app user owns what it writes at run time: its shared directories and
  files, and ``shared/.env`` (0600: the secrets are the app's alone).

The module runs as root, so nothing here follows a symbolic link that the
deploy user or the app could have planted: every path is walked with
``lstat``, a link where a directory must be is refused (in root's part of the
layout) or replaced (inside a release, where it came with the code).

Standard library only.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write

ENV_NAME = '.env'


class LayoutError(Exception):
    """The layout cannot be made as asked; nothing unsafe was done."""


def uid_of(user: str) -> int:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise LayoutError('user %s does not exist on the target' % user) from None


def gid_of(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise LayoutError('group %s does not exist on the target' % group) from None


def mode_of(value) -> int:
    """An octal mode given as '0750', '750' or an int."""
    if isinstance(value, int):
        return value
    return int(str(value), 8)


class Changes:
    """What a run changed (or would change in check mode): paths, and whether the environment file's content moved."""

    def __init__(self, check_mode: bool):
        self.check_mode = check_mode
        self.paths: t.List[str] = []

    def note(self, path: str) -> None:
        if path not in self.paths:
            self.paths.append(path)

    @property
    def changed(self) -> bool:
        return bool(self.paths)


def _attributes(path: str, info: os.stat_result, uid: int, gid: int, mode: int, changes: Changes) -> None:
    if (info.st_uid, info.st_gid) != (uid, gid):
        changes.note(path)
        if not changes.check_mode:
            os.lchown(path, uid, gid)
    if stat.S_IMODE(info.st_mode) != mode:
        changes.note(path)
        if not changes.check_mode:
            os.chmod(path, mode)


def ensure_dir(path: str, uid: int, gid: int, mode: int, changes: Changes) -> None:
    """A real directory (never a link) with exactly these attributes."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        changes.note(path)
        if changes.check_mode:
            return
        os.mkdir(path, mode)
        info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise LayoutError('%s exists and is not a directory (a symbolic link is refused here); move it away' % path)
    _attributes(path, info, uid, gid, mode, changes)


def ensure_file(path: str, content: t.Optional[str], uid: int, gid: int, mode: int, changes: Changes) -> bool:
    """A regular file with these attributes; its content replaced when ``content`` is given. True when the content changed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise LayoutError('%s exists and is not a regular file (a symbolic link is refused here); move it away' % path)
    content_changed = False
    if info is None or content is not None:
        current = None
        if info is not None:
            with open(path, encoding='utf-8', errors='replace') as handle:
                current = handle.read()
        wanted = content if content is not None else ''
        if info is None or current != wanted:
            content_changed = info is not None
            changes.note(path)
            if not changes.check_mode:
                # Written with its final mode, so the secret is never readable by others for an instant.
                atomic_write(path, wanted, mode=mode)
                os.lchown(path, uid, gid)
            if changes.check_mode:
                return content_changed
            info = os.lstat(path)
    _attributes(path, info, uid, gid, mode, changes)
    return content_changed


def make_layout(base: str, group: str, mode, owner: t.Optional[str] = None, git_cache: bool = False,
                env_content: t.Optional[str] = None, env_owner: t.Optional[str] = None, check_mode: bool = False) -> dict:
    """BASE, releases/, shared/, .zerodown/ (root:group mode), the repository cache and shared/.env."""
    changes = Changes(check_mode)
    gid = gid_of(group)
    dir_mode = mode_of(mode)
    for path in (base, os.path.join(base, 'releases'), os.path.join(base, 'shared'), os.path.join(base, '.zerodown')):
        if check_mode and not os.path.isdir(os.path.dirname(path)):
            changes.note(path)
            continue
        ensure_dir(path, 0, gid, dir_mode, changes)
    if git_cache:
        cache = os.path.join(base, '.zerodown', 'repo')
        if check_mode and not os.path.isdir(os.path.dirname(cache)):
            changes.note(cache)
        else:
            ensure_dir(cache, uid_of(owner or 'root'), gid, 0o700, changes)
    env_changed = False
    if env_content is not None:
        env = os.path.join(base, 'shared', ENV_NAME)
        if check_mode and not os.path.isdir(os.path.dirname(env)):
            changes.note(env)
            env_changed = True
        else:
            env_changed = ensure_file(env, env_content, uid_of(env_owner or 'root'), gid, 0o600, changes)
    return {'changed': changes.changed, 'changed_paths': changes.paths, 'env_changed': env_changed}


def ensure_users(users: list, run_command, changes: Changes) -> None:
    """Groups and users (system accounts, no login shell) the layout's owners need; existing ones only gain missing groups.

    ``users`` is a list of ``{'name', 'group'?, 'groups'?: [...], 'home'?, 'create_home'?: bool}``; a user's ``group``
    (its primary group) is created first when missing. ``run_command(argv)`` returns ``(rc, out, err)``.
    """
    def run(argv):
        changes.note(argv[-1])
        if changes.check_mode:
            return
        rc, out, err = run_command(argv)
        if rc != 0:
            raise LayoutError('%s failed with rc %d: %s' % (' '.join(argv), rc, (err or out).strip()))

    for user in users:
        for group in [user.get('group')] + list(user.get('groups') or []):
            if group and group != 'root':
                try:
                    grp.getgrnam(group)
                except KeyError:
                    run(['groupadd', '--system', group])
        name = user['name']
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            account = None
        if account is None:
            argv = ['useradd', '--system', '--shell', '/usr/sbin/nologin']
            if user.get('group'):
                argv += ['--gid', user['group']]
            else:
                argv += ['--user-group']
            if user.get('groups'):
                argv += ['--groups', ','.join(user['groups'])]
            argv += ['--create-home'] if user.get('create_home') else ['--no-create-home']
            if user.get('home'):
                argv += ['--home-dir', user['home']]
            run(argv + [name])
            continue
        have = set(group.gr_name for group in grp.getgrall() if name in group.gr_mem)
        try:
            have.add(grp.getgrgid(account.pw_gid).gr_name)
        except KeyError:
            pass
        missing = [group for group in user.get('groups') or [] if group not in have]
        if missing:
            run(['usermod', '--append', '--groups', ','.join(missing), name])


def _clear(path: str) -> None:
    """Remove whatever is at path, a link itself and not its target."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def _release_dirs(release_path: str, relative: str, uid: int, gid: int, mode: int, changes: Changes) -> None:
    """The parents of ``relative`` inside the release as real directories; a link that came with the code is replaced."""
    current = release_path
    for part in [p for p in os.path.dirname(relative).split('/') if p]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and not stat.S_ISLNK(info.st_mode):
            continue
        changes.note(current)
        if changes.check_mode:
            continue
        if info is not None:
            _clear(current)
        os.mkdir(current, mode)
        os.lchown(current, uid, gid)


def link_shared(base: str, release_path: str, shared_dirs: list, shared_files: list, group: str, app_user: str,
                env_file: bool = False, check_mode: bool = False) -> dict:
    """Shared paths live in BASE/shared and are linked into the release; so is the environment file."""
    changes = Changes(check_mode)
    gid = gid_of(group)
    app_uid = uid_of(app_user)
    shared = os.path.join(base, 'shared')
    try:
        release_info = os.lstat(release_path)
    except FileNotFoundError:
        raise LayoutError('release directory %s does not exist' % release_path) from None
    if stat.S_ISLNK(release_info.st_mode) or not stat.S_ISDIR(release_info.st_mode):
        raise LayoutError('%s is not a release directory' % release_path)
    owner_uid = release_info.st_uid
    release_mode = stat.S_IMODE(release_info.st_mode)
    paths = [p for p in list(shared_dirs) + list(shared_files) if p != ENV_NAME]
    # In shared/, the parents of shared paths belong to root, so the app cannot swap one for a link that root would follow.
    for parent in sorted(set(os.path.dirname(p) for p in paths if os.path.dirname(p))):
        walked = shared
        for part in parent.split('/'):
            walked = os.path.join(walked, part)
            ensure_dir(walked, 0, gid, 0o750, changes)
    for directory in shared_dirs:
        if directory != ENV_NAME:
            ensure_dir(os.path.join(shared, directory), app_uid, gid, 0o750, changes)
    for name in shared_files:
        path = os.path.join(shared, name)
        if name != ENV_NAME and not os.path.lexists(path):
            ensure_file(path, None, app_uid, gid, 0o640, changes)
    links = paths + ([ENV_NAME] if env_file else [])
    for relative in links:
        target = os.path.join(shared, relative)
        link = os.path.join(release_path, relative)
        _release_dirs(release_path, relative, owner_uid, gid, release_mode, changes)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        changes.note(link)
        if changes.check_mode:
            continue
        if os.path.lexists(link):
            _clear(link)
        os.symlink(target, link)
        os.lchown(link, owner_uid, gid)
    return {'changed': changes.changed, 'changed_paths': changes.paths}
