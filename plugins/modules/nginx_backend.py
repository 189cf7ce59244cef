#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_backend
short_description: Take one server out of an nginx upstream (drain it) and put it back, with no failed request
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Runs on the load balancer. Manages one file per upstream server in O(servers_dir), the directory that the upstream block of
    the P(zerodown.deploy.nginx_upstream#role) role includes when C(nginx_upstream_servers_include) is true. Each file holds one
    C(server ADDRESS OPTIONS;) statement; O(state=down) adds C(down), O(state=up) removes it, O(state=absent) removes the file.
  - After a change it tests the configuration (C(nginx -t)) and reloads nginx, never restarts it. When a reload takes a server
    that was up out of the rotation, the module then waits until every nginx worker process that existed before the reload
    has exited. Those old workers are the only processes that can still send a request to the server, so when the module
    returns the server is drained and can be stopped, even killed, without a failed request.
  - Refuses to take out the last server that is up in the directory (nginx would answer 502 to everything) unless
    O(allow_last_down=true), and names the state of the others.
  - Each file is written atomically (a temporary name that the C(*.conf) include does not match, then a rename). Runs on the
    same directory are serialised with a lock file (C(.nginx_backend.lock)) in it.
  - Only the Python standard library is used on the target.
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the directory, applies every check (including the refusal of the last server up) and returns what would change,
        without writing, testing or reloading anything.
  diff_mode:
    support: full
  idempotent:
    support: full
    details:
      - An unchanged file is neither tested nor reloaded.
options:
  servers_dir:
    description:
      - The directory of the upstream's server files, C(NGINX_UPSTREAM_CONF_DIR/NAME.servers) for the role, for example
        V(/etc/nginx/conf.d/shop.servers). It must exist, except in check mode and for O(state=absent).
    type: path
    required: true
  backend:
    description:
      - The server, exactly as nginx names it in the upstream, V(host:port) (V(app1.internal:8000)), V(ip:port)
        (V(10.0.0.5:8000)), V([v6]:port) (V([fd00::5]:8000)) or V(unix:/path) (V(unix:/run/shop.sock)). No spaces, C(;), braces,
        C(#) or line breaks.
      - Its file is C(SERVERS_DIR/NAME.conf), NAME being the backend with every character other than letters, digits, C(.) and
        C(-) replaced by C(_) (V(app1.internal_8000.conf)).
    type: str
    required: true
  state:
    description:
      - V(up) puts the server in the rotation, V(down) keeps it listed but sends it no request (nginx's C(down)), V(absent)
        removes it from the upstream.
    type: str
    choices: [up, down, absent]
    default: up
  server_options:
    description:
      - Other parameters of the C(server) statement, for example V(max_fails=3 fail_timeout=10s), V(weight=2) or V(backup).
        No C(;), braces, C(#), line breaks or C(down) (O(state) decides that).
      - When not set, an existing file keeps its parameters (so a drain and an undrain never change what the role wrote) and a
        new file gets V(max_fails=3 fail_timeout=10s), what the role gives each of several servers by default.
    type: str
  allow_last_down:
    description:
      - Allow marking V(down) (or V(absent)) the last server that is up in O(servers_dir). Without it such a change fails,
        because nginx would answer 502 to every request of the upstream.
    type: bool
    default: false
  reload:
    description:
      - After a change, test the configuration with C(O(nginx_binary) -t) and reload nginx with C(systemctl reload O(service)),
        then wait as described in O(drain_timeout). When the test fails, the previous content of the file is put back and the
        module fails with nginx's message, having changed nothing.
      - V(false) only writes the file (the P(zerodown.deploy.nginx_upstream#role) role writes staged files this way and tests
        the complete configuration itself).
    type: bool
    default: true
  drain_timeout:
    description:
      - Seconds, more than 0 and at most 86400, to wait after a reload until nginx runs at least one new worker process and,
        when the change took a server that was up out of the rotation, until every worker that existed before the reload has
        exited. Polled every 50 ms.
      - An old worker lives as long as its slowest request (or a WebSocket or other upgraded connection; nginx's
        C(worker_shutdown_timeout) bounds that). On timeout the module fails and the server stays down.
    type: float
    default: 60
  nginx_binary:
    description:
      - The nginx binary used for C(nginx -t). Default C(nginx) from C(PATH), C(/usr/sbin) or C(/usr/local/sbin).
    type: path
  service:
    description:
      - The systemd unit that is reloaded.
    type: str
    default: nginx
  pid_file:
    description:
      - nginx's pid file (C(pid) in nginx.conf), which names the master process; its children are the worker processes.
    type: path
    default: /run/nginx.pid
notes:
  - A drained server can be stopped, restarted or killed outright, as no request reaches it. Put it back with O(state=up) once
    it is ready (for example after M(zerodown.deploy.health_check) passed on the app host).
  - Several runs at once on one directory (a wave of app hosts delegated to the same load balancer) take turns on the
    directory's lock, so each one sees the others' states when it checks for the last server up.
seealso:
  - module: zerodown.deploy.health_check
  - module: zerodown.deploy.zero_downtime_restart
  - name: Draining an app host out of nginx
    description: How the drain works and how a deploy uses it.
    link: https://github.com/zerodown/deploy/blob/main/docs/nginx_backend.md
"""

EXAMPLES = r"""
- name: Take this app host out of the load balancer and wait until nginx no longer uses it
  zerodown.deploy.nginx_backend:
    servers_dir: /etc/nginx/conf.d/shop.servers
    backend: "{{ inventory_hostname }}:8000"
    state: down
  delegate_to: lb1

- name: Restart the app here; it needs no socket activation, nginx sends it nothing
  ansible.builtin.systemd_service:
    name: shop.service
    state: restarted

- name: Wait until it answers again
  zerodown.deploy.health_check:
    target: 127.0.0.1:8000
    path: /healthz

- name: Put it back
  zerodown.deploy.nginx_backend:
    servers_dir: /etc/nginx/conf.d/shop.servers
    backend: "{{ inventory_hostname }}:8000"
    state: up
  delegate_to: lb1

- name: Retire a host from the upstream (refused if it is the last one up)
  zerodown.deploy.nginx_backend:
    servers_dir: /etc/nginx/conf.d/shop.servers
    backend: app3.internal:8000
    state: absent
"""

RETURN = r"""
backend:
  description: The server managed.
  returned: always
  type: str
  sample: app1.internal:8000
state:
  description: Its state now (in check mode, the state it would have).
  returned: always
  type: str
  sample: down
previous_state:
  description: Its state before the run, V(up), V(down) or V(absent) (no file).
  returned: always
  type: str
  sample: up
path:
  description: Its file.
  returned: always
  type: str
  sample: /etc/nginx/conf.d/shop.servers/app1.internal_8000.conf
reloaded:
  description: Whether nginx was reloaded.
  returned: always
  type: bool
  sample: true
drained:
  description:
    - Whether this run took the server out of the rotation and saw every worker from before the reload exit. V(false) when
      nothing was taken out (including when the server was already down).
  returned: always
  type: bool
  sample: true
drain_seconds:
  description: Seconds waited after the reload, for a new worker and, when draining, for the old workers to exit; 0 without reload.
  returned: always
  type: float
  sample: 0.31
old_workers:
  description: PIDs of nginx's worker processes (children of the master) just before the reload; empty without reload.
  returned: always
  type: list
  elements: int
  sample: [2211, 2212]
diff:
  description: The file's content before and after, in diff mode.
  returned: when diff mode is on
  type: dict
  sample: {before: "server app1.internal:8000 max_fails=3 fail_timeout=10s;\n", after: "server app1.internal:8000 max_fails=3 fail_timeout=10s down;\n"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._module import finish
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendRun


class BackendModule(AnsibleModule):
    """AnsibleModule without the file stats it adds to a result with a ``path``.

    Here ``path`` is the server's file and ``state`` the server's state (up,
    down, absent); ``add_path_info`` would overwrite ``state`` with ``file``.
    """

    def add_path_info(self, kwargs):
        return kwargs


def run_module(module: AnsibleModule):
    """The change of module_utils/_nginx_backend; it fails with its result when nginx refused or did not drain."""
    return BackendRun(module).run(), None


def main() -> None:
    module = BackendModule(
        argument_spec=dict(
            servers_dir=dict(type='path', required=True),
            backend=dict(type='str', required=True),
            state=dict(type='str', default='up', choices=['up', 'down', 'absent']),
            server_options=dict(type='str'),
            allow_last_down=dict(type='bool', default=False),
            reload=dict(type='bool', default=True),
            drain_timeout=dict(type='float', default=60),
            nginx_binary=dict(type='path'),
            service=dict(type='str', default='nginx'),
            pid_file=dict(type='path', default='/run/nginx.pid'),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module)


if __name__ == '__main__':
    main()
