# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.zerodown.deploy.plugins.plugin_utils import _controller


def test_a_module_of_ansible_core_resolves_and_a_missing_collection_does_not():
    # In a process of its own, with the plugin loader initialised as ansible-playbook does it (not this test run's).
    # The directory that holds ansible_collections/ (the file is ansible_collections/zerodown/deploy/plugins/plugin_utils/).
    top = os.path.abspath(_controller.__file__)
    for dummy in range(6):
        top = os.path.dirname(top)
    code = ("from ansible.plugins.loader import init_plugin_loader; init_plugin_loader(); "
            "from ansible_collections.zerodown.deploy.plugins.plugin_utils import _controller as c; "
            "print(c.has_module('ansible.builtin.command'), c.has_module('zerodown.nothere.synchronize'))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([top] + sys.path))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, check=False)
    assert done.stdout.split() == ['True', 'False'], done.stderr


def test_the_facts_say_whether_the_rsync_copy_can_run(monkeypatch):
    monkeypatch.setattr(_controller, 'has_module', lambda name: name == 'ansible.posix.synchronize')
    assert _controller.controller_facts() == {'controller_synchronize': True}
    monkeypatch.setattr(_controller, 'has_module', lambda name: False)
    assert _controller.controller_facts() == {'controller_synchronize': False}
