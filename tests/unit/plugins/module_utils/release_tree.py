# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers of the release tests (tests/unit/plugins/{module_utils/test_release_manager,modules/test_release}.py): a release tree
in a temporary directory, driven through module_utils/_release's ReleaseManager."""

from __future__ import annotations

import json
import os
import time

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
