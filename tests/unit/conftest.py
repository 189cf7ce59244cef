# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the unit tests of modules and module_utils."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common import warnings as warnings_module

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
        with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
            yield


@pytest.fixture
def sock_dir(tmp_path):
    """A directory for Unix sockets; pytest's tmp_path can exceed the 107-byte socket path limit."""
    if len(str(tmp_path)) < 80:
        yield str(tmp_path)
        return
    path = tempfile.mkdtemp(prefix='zd-test-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _clear_warnings():
    """Module warnings are collected in a process global; do not let one test's warnings leak into the next."""
    for name in ('_global_warnings', '_global_deprecations'):
        registry = getattr(warnings_module, name, None)
        if registry is not None:
            registry.clear()


@pytest.fixture
def module_runner(capsys):
    """run(main, check=False, diff=False, **args): run a module's main() like Ansible would.

    Returns the parsed result, with ``failed`` set on failure and warnings
    reduced to their messages (ansible-core >= 2.19 returns structured ones).
    """
    def run(main, check=False, diff=False, **args):
        args = dict(args)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        _clear_warnings()
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                main()
        result = json.loads(capsys.readouterr().out)
        result['warnings'] = [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]
        assert (exc.value.code not in (0, None)) == bool(result.get('failed'))
        return result

    return run
