#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Start a candidate release on a private socket, probe its health path, and remove it again
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Before a deploy switches C(current), the candidate release must serve. This module writes the given runtime units (the
    P(zerodown.deploy.socket_service#role) role renders them for C(NAME-preflight) and a private socket only root may use),
    starts them, and probes O(health_path) through O(endpoint) until it answered 2xx O(successes) times in a row.
  - A candidate that does not start, dies, or does not answer within O(timeout) fails the task with its unit state and its last
    log lines.
  - Whatever happens, the units are stopped, removed, reset and unloaded again. Nothing of the live service is touched.
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is started; the result says what would be probed.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - It leaves nothing behind, so it reports no change.
options:
  units:
    description: Unit file name to content; exactly the socket and the service of the candidate.
    type: dict
    required: true
  socket:
    description: The candidate's socket unit, a key of O(units).
    type: str
    required: true
  service:
    description: The candidate's service unit, a key of O(units).
    type: str
    required: true
  endpoint:
    description: Where the candidate listens, such as V(unix:/run/zerodown/preflight/hello.sock).
    type: str
    required: true
  health_path:
    description: Path that must answer 2xx.
    type: str
    default: /
  successes:
    description: Consecutive 2xx answers needed.
    type: int
    default: 3
  exposure_limit:
    description:
      - The highest C(systemd-analyze security) exposure score the candidate's service may have, scored offline before it starts
        (the installed units are held to the same limit when they are installed). No limit when unset.
    type: float
    version_added: 0.1.0
  live_socket:
    description:
      - The live app's socket unit, which the deploy must not change because applying the change restarts the socket (refusing
        connections while it is down). When the file at O(live_socket.path) differs from O(live_socket.content), the task fails
        with O(live_socket.refusal) before anything starts, so the release is refused before C(current) moves.
    type: dict
    version_added: 0.1.0
    suboptions:
      path:
        description: The installed unit file.
        type: path
        required: true
      content:
        description: The unit file the deploy would install.
        type: str
        required: true
      refusal:
        description: The failure message.
        type: str
        required: true
  timeout:
    description: Seconds the candidate has to answer.
    type: float
    default: 60
  unit_dir:
    description: Where the runtime units are written.
    type: path
    default: /run/systemd/system
  description:
    description: What is pre-flighted (the command line), for the failure message.
    type: str
    default: ''
seealso:
  - module: zerodown.deploy.service_units
  - module: zerodown.deploy.health_check
"""

EXAMPLES = r"""
- name: Pre-flight the candidate on a private socket
  zerodown.deploy.preflight:
    units:
      hello-preflight.socket: "{{ lookup('ansible.builtin.template', 'socket.j2') }}"
      hello-preflight.service: "{{ lookup('ansible.builtin.template', 'service.j2') }}"
    socket: hello-preflight.socket
    service: hello-preflight.service
    endpoint: unix:/run/zerodown/preflight/hello.sock
    health_path: /health
"""

RETURN = r"""
units:
  description: The candidate's units (removed again).
  returned: always
  type: list
  elements: str
endpoint:
  description: Where the candidate was probed.
  returned: always
  type: str
attempts:
  description: Number of probes.
  returned: when probed
  type: int
answers:
  description: Tally of the answers by kind, such as C(HTTP 200) and its count.
  returned: when probed
  type: dict
elapsed_s:
  description: Seconds the probing took.
  returned: when probed
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish
from ansible_collections.zerodown.deploy.plugins.module_utils._preflight import Candidate, PreflightError, socket_would_change
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd


def run_module(module: AnsibleModule):
    """The candidate of module_utils/_preflight; a candidate that does not serve fails with what the probes saw."""
    params = module.params
    if set(params['units']) != set([params['socket'], params['service']]):
        raise ModuleError('units must hold exactly the socket %s and the service %s' % (params['socket'], params['service']))
    live = params['live_socket']
    if live and socket_would_change(live['path'], live['content']):
        raise ModuleError(live['refusal'], {'changed': False, 'socket_changed': live['path']})
    if module.check_mode:
        return {'changed': False, 'units': [params['socket'], params['service']], 'endpoint': params['endpoint']}, None
    candidate = Candidate(Systemd.for_module(module), params['socket'], params['service'], params['units'], params['endpoint'],
                          params['health_path'], params['timeout'], unit_dir=params['unit_dir'], what=params['description'],
                          successes=params['successes'], exposure_limit=params['exposure_limit'])
    try:
        return candidate.run(), None
    except PreflightError as exc:
        raise ModuleError(exc.msg, exc.result)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type='dict', required=True),
            socket=dict(type='str', required=True),
            service=dict(type='str', required=True),
            endpoint=dict(type='str', required=True),
            health_path=dict(type='str', default='/'),
            successes=dict(type='int', default=3),
            timeout=dict(type='float', default=60),
            unit_dir=dict(type='path', default='/run/systemd/system'),
            description=dict(type='str', default=''),
            exposure_limit=dict(type='float'),
            live_socket=dict(type='dict', options=dict(
                path=dict(type='path', required=True),
                content=dict(type='str', required=True),
                refusal=dict(type='str', required=True),
            )),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module)


if __name__ == '__main__':
    main()
