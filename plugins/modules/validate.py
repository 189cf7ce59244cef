# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This action runs on the controller only; the code is plugins/action/validate.py.

from __future__ import annotations

DOCUMENTATION = r"""
module: validate
short_description: Check a role's variables against every rule of the collection, on the controller, before anything changes
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Runs the one validator of the collection on the variables of one of its roles and fails with every problem at once,
    each message naming the variable and saying what it must be. Each role calls it as its first task, so bad input is
    refused before anything on the host changes.
  - The role's argument spec checks types and choices. This checks the rest - patterns, ranges and rules across variables -
    and, for the P(zerodown.deploy.app#role) role, every rule of the roles its variables are passed to.
  - Runs on the controller only and never connects to the host. Files the variables name on the controller (an archive, a
    local source directory, hook task files) are looked up there.
  - The rules that need the host's state (does the Unix socket exist with the right group, is anything deployed) stay in the
    roles' task files.
options:
  role:
    description:
      - The role whose variables are checked. They are read from the task's variables by their prefix (V(app) reads C(app_*)),
        each templated when a rule needs it, together with C(ansible_play_batch), C(ansible_play_hosts_all) and C(groups).
    type: str
    required: true
    choices: [app, nginx_upstream, release, socket_service]
  entry:
    description:
      - The role's entry point, which decides the rules that apply.
      - V(deploy), V(rollback) or V(verify) for V(app); V(main) or V(rollback) for V(release); V(main) or V(preflight) for
        V(socket_service); V(main) for V(nginx_upstream).
      - Defaults to the first of them.
    type: str
  settings:
    description:
      - "Values to check instead of the task's variables of the same names, such as C({app_name: shop}). A variable not given
        here is read from the task's variables (inside the role: its defaults)."
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - It only reads, so it runs the same in check mode.
  connection:
    support: none
  delegation:
    support: none
    details:
      - It runs on the controller whatever the host is.
  diff_mode:
    support: none
  platform:
    platforms: all
seealso:
  - module: ansible.builtin.validate_argument_spec
    description: Checks types and choices, as the roles' argument specs do at their entry points.
"""

EXAMPLES = r"""
- name: Validate every input before anything on the host changes
  zerodown.deploy.validate:
    role: app
    entry: deploy

- name: Check values of my own before passing them to the role
  zerodown.deploy.validate:
    role: socket_service
    settings:
      socket_service_name: hello
      socket_service_exec_start: /usr/bin/python3 -m http.server
      socket_service_listen: ["127.0.0.1:8000"]
"""

RETURN = r"""
validated:
  description: The variables the rules read, in the order they were read.
  returned: always
  type: list
  elements: str
  sample: [app_name, app_base_path, app_exec_start]
messages:
  description: One message per broken rule, each starting with the role's name; empty when every value is valid.
  returned: always
  type: list
  elements: str
  sample: ["app: app_instances must be between 1 and 64 (got 0)."]
msg:
  description: The messages joined with C( | ), or how many variables were valid.
  returned: always
  type: str
  sample: "app: app_instances must be between 1 and 64 (got 0). | app: app_keep_releases must be 1 or more (got 0)."
"""
