# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: names
short_description: Every name the collection derives from an app's name
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Returns the unit names, proxy-mode paths, pre-flight names and nginx file names of an app, built by the same code the modules
    use, so the unit a role installs is the unit a module restarts.
positional: instances, mode, ports, conf_dir, listen
options:
  _input:
    description: The app's name (C(socket_service_name), C(app_name)).
    type: str
    required: true
  instances:
    description: Number of instances sharing the socket.
    type: int
    default: 1
  mode:
    description: V(socket) or V(proxy).
    type: str
    default: socket
  ports:
    description: Proxy mode's two slot ports.
    type: list
    elements: int
    default: [8001, 8002]
  conf_dir:
    description: nginx's directory of sites.
    type: str
    default: /etc/nginx/conf.d
  listen:
    description: With O(mode=instances), the app's address, from which each slot's own address is made.
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Show the units of hello with 2 instances
  ansible.builtin.debug:
    msg: "{{ ('hello' | zerodown.deploy.names(2)).running_units }}"  # ['hello@1.service', 'hello@2.service']
"""

RETURN = r"""
_value:
  description: >-
    socket_unit, service_unit_file, app_unit_file, running_units, exposure_unit, link, socket_proxyd, slot_dir, proxy_unit_files,
    preflight_name, preflight_socket, nginx_upstream, nginx_site, nginx_common, nginx_servers_dir, and with mode instances
    instance_slots, instance_backends (slot number to its nginx server), instance_servers (nginx's upstream servers: the
    position links on a Unix socket, the slots on TCP), links_tmpfiles, instance_sockets, instance_socket_file,
    instance_listen (the socket template's address, with %i).
  type: dict
"""

from ansible_collections.zerodown.deploy.plugins.module_utils._names import app_names


def names(name, instances=1, mode='socket', ports=(8001, 8002), conf_dir='/etc/nginx/conf.d', listen=''):
    return app_names(str(name), int(instances), str(mode), [int(port) for port in ports], str(conf_dir), str(listen))


class FilterModule:
    """The ``names`` filter."""

    def filters(self):
        return {'names': names}
