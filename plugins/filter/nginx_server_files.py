# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_server_files
short_description: The server files of an nginx upstream in include mode, as the nginx_backend module writes them
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Returns one file name and content per upstream server, every server up, in the format and with the names
    M(zerodown.deploy.nginx_backend) reads and writes, from the same code.
positional: options
options:
  _input:
    description: The upstream servers, such as V([web1.internal:80, web2.internal:80]).
    type: list
    elements: str
    required: true
  options:
    description: The parameters of every server statement, such as V(max_fails=3 fail_timeout=10s).
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Show the server files of two app hosts
  ansible.builtin.debug:
    msg: "{{ ['web1:80', 'web2:80'] | zerodown.deploy.nginx_server_files('max_fails=3 fail_timeout=10s') }}"
"""

RETURN = r"""
_value:
  description: File name to content.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendError, check_backend, file_name, render


def nginx_server_files(servers, options=''):
    files = {}
    for server in servers:
        try:
            backend = check_backend(str(server))
        except BackendError as exc:
            raise AnsibleFilterError(str(exc)) from None
        files[file_name(backend)] = render(backend, str(options), down=False)
    return files


class FilterModule:
    """The ``nginx_server_files`` filter."""

    def filters(self):
        return {'nginx_server_files': nginx_server_files}
