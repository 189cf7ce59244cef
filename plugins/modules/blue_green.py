#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: blue_green
short_description: Bring a proxy-mode app's live slot up, or switch it to the other slot without dropping a request
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Runs on the target. Works on the units the P(zerodown.deploy.socket_service#role) role installs with
    C(socket_service_mode=proxy), for apps that bind their own TCP port. C(NAME.socket) and C(NAME.service) (a
    C(systemd-socket-proxyd)) forward every connection to the fixed path C(/var/lib/zerodown/NAME/live.sock), a symbolic link
    to the live slot's socket C(/run/zerodown/NAME/slot-PORT.sock). Each slot is C(NAME-slot@PORT.socket), its proxy
    C(NAME-slot@PORT.service) to C(127.0.0.1:PORT), and the app C(NAME-app@PORT.service) with C(PORT=PORT) in its environment.
  - O(state=switched) starts the app of the idle port, waits until it is active and answers O(health_path) on
    C(http://127.0.0.1:PORT) three times in a row (and then through its slot socket), points the link at the new slot with one
    C(rename(2)), waits until the old port has had no established TCP connection for one second (at most O(drain_timeout)
    seconds), stops the old slot, enables the new one and disables the old one.
  - If the new slot does not become healthy within O(ready_timeout), it is stopped again and the task fails with its unit state
    and last journal lines; the link and the live slot are left untouched.
  - O(state=started) does the same only when no slot is live (no link yet, its slot not running, or its port not in O(ports)).
    Otherwise it only enables the live slot if needed and stops a leftover second slot, and reports no change when there was
    nothing to do.
  - The public proxy C(NAME.service) is never restarted; see the proxy mode guide for why.
  - Only the Python standard library is used on the target.
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(state=started) the link and the units' states are read to predict the change; nothing is started or stopped.
      - With O(state=switched) nothing runs; the result says which slot would go live and reports C(changed=true).
  diff_mode:
    support: full
    details:
      - The diff shows the live port and the link's target before and after.
  idempotent:
    support: partial
    details:
      - O(state=started) is idempotent. O(state=switched) switches on every run (that is its purpose).
options:
  service:
    description:
      - Base name of the app, for example V(shop), as C(socket_service_name) of the P(zerodown.deploy.socket_service#role) role.
        A V(.service) suffix is accepted and ignored.
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$), the rule of the roles.
    type: str
    required: true
  state:
    description:
      - V(started) brings a slot live only when none is.
      - V(switched) always starts the other slot and switches to it.
    type: str
    choices: [started, switched]
    default: started
  ports:
    description:
      - The two slots' TCP ports on C(127.0.0.1), two different ports between 1 and 65535.
    type: list
    elements: int
    default: [8001, 8002]
  drain_timeout:
    description:
      - Seconds to wait, after the switch, for the old port's established connections to end; more than 0 and at most 3600.
      - When they do not, a warning says how many were left and the old slot is stopped anyway.
    type: float
    default: 30
  health_path:
    description:
      - Path the new slot must answer with a 2xx status three times in a row before it goes live.
    type: str
    default: /
  host_header:
    description:
      - C(Host) header of the health probes. Defaults to C(127.0.0.1:PORT) (and V(localhost) through the slot socket).
    type: str
  ready_timeout:
    description:
      - Seconds the new slot has to become active and healthy; more than 0 and at most 3600.
    type: float
    default: 60
notes:
  - The app must bind C(127.0.0.1:$PORT) (or the port its command line takes from C(%i)); it must not need an inherited socket.
  - An idle HTTP keep-alive connection to the old slot (for example nginx C(keepalive) in its upstream) keeps the drain waiting until
    O(drain_timeout), then is cut.
seealso:
  - module: zerodown.deploy.zero_downtime_restart
  - name: Proxy mode
    description: Design, the unit picture, the switch sequence and its limits.
    link: https://github.com/zerodown/deploy/blob/main/docs/proxy.md
"""

EXAMPLES = r"""
- name: Bring a slot of shop live (first install; no change afterwards)
  zerodown.deploy.blue_green:
    service: shop
    health_path: /health

- name: Switch shop to the other slot, for example after a new release went to current
  zerodown.deploy.blue_green:
    service: shop
    state: switched
    ports: [9001, 9002]
    health_path: /health
    drain_timeout: 60
  register: switch

- name: Show which slot is live now
  ansible.builtin.debug:
    msg: "{{ switch.live_before }} -> {{ switch.live_after }}"
"""

RETURN = r"""
link:
  description: The link the public proxy forwards to.
  returned: always
  type: str
  sample: /var/lib/zerodown/shop/live.sock
live_before:
  description: Port of the slot that was live before, V(null) when there was none.
  returned: always
  type: int
  sample: 8001
live_after:
  description: Port of the slot that is live now (in check mode, would be).
  returned: always
  type: int
  sample: 8002
switched:
  description: Whether the link was pointed at another slot.
  returned: always
  type: bool
  sample: true
drain:
  description:
    - How the old slot drained, V(null) when no slot was stopped. C(drained) is V(false) when O(drain_timeout) ran out,
      C(connections_left) the established connections then.
  returned: always
  type: dict
  sample: {drained: true, waited_s: 1.02, connections_left: 0}
pids:
  description: Main PID of each app unit acted on, before and after (0 when not running).
  returned: always
  type: dict
  sample: {shop-app@8001.service: {old: 812, new: 0}, shop-app@8002.service: {old: 0, new: 1410}}
steps:
  description:
    - What ran, in order, with times in seconds since the start of the task. The link swap is recorded as argv
      C([symlink, TARGET, LINK]) and the drain as C([drain, PORT]).
  returned: always
  type: list
  elements: dict
  sample: [{units: [shop-app@8002.service], argv: [systemctl, --no-ask-password, restart, shop-app@8002.service], rc: 0,
            started_s: 0.01, returned_s: 0.05, ready_s: 1.12}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._bluegreen import run_blue_green
from ansible_collections.zerodown.deploy.plugins.module_utils._module import finish
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd


def run_module(module: AnsibleModule):
    """The switch of module_utils/_bluegreen, with the module's systemctl and warnings."""
    return run_blue_green(module.params, Systemd.for_module(module), check_mode=module.check_mode, diff=module._diff, warn=module.warn)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type='str', required=True),
            state=dict(type='str', default='started', choices=['started', 'switched']),
            ports=dict(type='list', elements='int', default=[8001, 8002]),
            drain_timeout=dict(type='float', default=30),
            health_path=dict(type='str', default='/'),
            host_header=dict(type='str'),
            ready_timeout=dict(type='float', default=60),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module, restarts=module.params['service'])


if __name__ == '__main__':
    main()
