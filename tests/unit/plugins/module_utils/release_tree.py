# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers of the release tests (tests/unit/plugins/{module_utils/test_release_manager,modules/test_release}.py): a release tree
in a temporary directory, driven through module_utils/_release's ReleaseManager."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time

from ansible_collections.zerodown.deploy.plugins.module_utils import _release
from ansible_collections.zerodown.deploy.plugins.module_utils._release import ReleaseManager


def mgr(base, **kwargs):
    return ReleaseManager(str(base), **kwargs)


def deploy(base, rid, **kwargs):
    mgr(base).prepare(rid, **kwargs)
    return mgr(base).switch(rid)


def manifest(base):
    with open(os.path.join(str(base), '.zerodown', 'manifest.json')) as f:
        return json.load(f)


def statuses(result):
    return {r['id']: r['status'] for r in result['releases']}


def current_of(base):
    return os.readlink(os.path.join(str(base), 'current'))


def set_mtimes(base, newest_first):
    """Make directory mtimes lie: the first ID gets the newest mtime."""
    now = time.time()
    for i, rid in enumerate(newest_first):
        stamp = now - 1000 * i
        os.utime(os.path.join(str(base), 'releases', rid), (stamp, stamp))


def snapshot(root):
    """Everything observable about a tree: types, inodes, modes, sizes, mtimes, link targets, content hashes."""
    root = str(root)
    if not os.path.lexists(root):
        return None
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [''] + dirnames + filenames:
            path = os.path.join(dirpath, name) if name else dirpath
            if path in snap:
                continue
            st = os.lstat(path)
            item = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                item += (os.readlink(path),)
            elif stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as f:
                    item += (hashlib.sha256(f.read()).hexdigest(),)
            snap[os.path.relpath(path, root)] = item
    return snap


def no_space_for(path):
    """An atomic_write for module_utils/_release that fails like a full disk for ``path`` only."""
    real = _release.atomic_write

    def write(target, *args, **kwargs):
        if target == str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        return real(target, *args, **kwargs)
    return write
