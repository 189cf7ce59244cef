# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role documents exactly the variables its defaults define, and the same defaults.

meta/argument_specs.yml is the role's interface (validated on every run and
rendered by antsibull-docs); defaults/main.yml is what runs. They drift
apart silently unless something compares them.
"""

from __future__ import annotations

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(name for name in os.listdir(os.path.join(ROOT, 'roles')) if os.path.isdir(os.path.join(ROOT, 'roles', name)))


def _load(role, *parts):
    with open(os.path.join(ROOT, 'roles', role, *parts), encoding='utf-8') as handle:
        return yaml.safe_load(handle) or {}


def _comparable(value):
    """Spec defaults of templated values are written for humans (NAME, BASE/...); only literal ones must match."""
    return not (isinstance(value, str) and '{{' in value) and not (isinstance(value, list) and any('{{' in str(v) for v in value))


@pytest.mark.parametrize('role', ROLES)
def test_main_entry_point_documents_every_default_and_nothing_else(role):
    defaults = _load(role, 'defaults', 'main.yml')
    options = _load(role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert sorted(set(defaults) - set(options)) == [], 'defaults without a spec'
    required = set(name for name, spec in options.items() if spec.get('required'))
    assert sorted(set(options) - set(defaults) - required) == [], 'spec options without a default'


@pytest.mark.parametrize('role', ROLES)
def test_literal_defaults_match_the_spec(role):
    defaults = _load(role, 'defaults', 'main.yml')
    options = _load(role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    mismatches = dict((name, (defaults[name], options[name].get('default'))) for name in defaults
                      if name in options and _comparable(defaults[name]) and 'default' in options[name]
                      and options[name]['default'] != defaults[name]
                      and not (defaults[name] in ('', None) and options[name].get('required')))
    assert mismatches == {}


@pytest.mark.parametrize('role', ROLES)
def test_every_variable_is_prefixed_with_the_role_name(role):
    defaults = _load(role, 'defaults', 'main.yml')
    assert [name for name in defaults if not name.startswith(role + '_')] == []
