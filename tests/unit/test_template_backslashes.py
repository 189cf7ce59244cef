# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No template doubles a backslash: Ansible keeps a Jinja string literal's backslashes as written.

'(^|\\\\s)' in a YAML block scalar reaches the regex as two characters, a backslash and an s,
so the pattern never matched: the distribution's default site stayed (nginx -t then refused two
default servers) and a failed hook was reported as a failed fetch.
"""

from __future__ import annotations

import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def test_no_template_in_roles_or_playbooks_doubles_a_backslash():
    files = glob.glob(os.path.join(ROOT, 'roles', '**', '*.yml'), recursive=True) + \
        glob.glob(os.path.join(ROOT, 'playbooks', '**', '*.yml'), recursive=True)
    assert len(files) > 20
    doubled = []
    for path in files:
        with open(path, encoding='utf-8') as handle:
            data = yaml.safe_load(handle)
        doubled.extend('%s: %s' % (os.path.relpath(path, ROOT), text.strip()[:120])
                       for text in strings(data) if '{{' in text and '\\\\' in text)
    assert doubled == []
