# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_revision
short_description: The revision of a directory on the controller, a hash of its entries
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - A SHA-256 over one line per entry of the directory (its path, its mode, and the SHA-1 of a file's content, or the target of
    a symbolic link), in path order, so the same tree gives the same revision and any change to a file, a mode or a link gives
    another.
  - Entries whose path has a component matching one of O(exclude) (shell patterns such as V(.git) or V(*.pyc)) are left out.
  - It runs on the controller in the filter itself, so reading the tree costs no task.
positional: exclude
options:
  _input:
    description: The directory, an absolute path on the controller.
    type: path
    required: true
  exclude:
    description: Names or shell patterns of path components to leave out.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Show the revision of a source tree
  ansible.builtin.debug:
    msg: "{{ '/src/shop' | zerodown.deploy.tree_revision(['.git']) }}"
"""

RETURN = r"""
_value:
  description: The hex SHA-256.
  type: str
"""

import fnmatch
import hashlib
import os
import stat

from ansible.errors import AnsibleFilterError


def _excluded(relative: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(part, pattern) for part in relative.split('/') for pattern in patterns)


def _file_sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def tree_revision(path, exclude=()):
    root = str(path).rstrip('/') or '/'
    if not os.path.isdir(root):
        raise AnsibleFilterError('tree_revision: %s is not a directory on the controller' % root)
    patterns = [str(pattern) for pattern in exclude]
    lines = []
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, root)
            if _excluded(relative, patterns):
                continue
            info = os.lstat(full)
            mode = '%04o' % stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                what = 'link ' + os.readlink(full)
            elif stat.S_ISDIR(info.st_mode):
                what = 'dir'
            else:
                what = _file_sha1(full)
            lines.append('%s %s %s\n' % (relative, mode, what))
        dirs[:] = [name for name in dirs if not _excluded(os.path.relpath(os.path.join(directory, name), root), patterns)]
    return hashlib.sha256(''.join(sorted(lines)).encode('utf-8', 'surrogateescape')).hexdigest()


class FilterModule:
    """The ``tree_revision`` filter."""

    def filters(self):
        return {'tree_revision': tree_revision}
