#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Wait until an HTTP health path answers 2xx several times in a row, failing fast when the service dies
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Runs on the target. Sends C(GET) requests to O(path) through O(target) (a Unix socket, TCP, or an C(http://) URL) until
    O(successes) answers in a row have a 2xx status, and fails when that does not happen within O(timeout) seconds.
  - When O(units) are given, their state is read between probes, and the wait ends at once when one of them has failed or stopped,
    with its state and last journal lines in the message, instead of waiting out the timeout. That is what makes it a quick
    pre-flight check for a release that crashes at boot.
  - The pre-flight check and the post-switch health gate of the P(zerodown.deploy.app#role) role use it; the readiness wait of
    M(zerodown.deploy.zero_downtime_restart) means the same by healthy.
  - Only the Python standard library is used on the target.
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - The probes only read, so they run in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  target:
    description:
      - Where to probe. V(unix:/run/hello.sock) or V(/run/hello.sock) for a Unix socket (HTTP over C(AF_UNIX)), V(127.0.0.1:8000) or
        V([::1]:8000) for TCP, or V(http://host[:port]) (port 80 by default). A path in an V(http://) URL is ignored with a warning.
    type: str
    required: true
  path:
    description:
      - The health path.
    type: str
    default: /health
  host_header:
    description:
      - C(Host) header of the probes. Defaults to V(localhost) for Unix sockets and C(host:port) for TCP.
    type: str
  successes:
    description:
      - Number of consecutive 2xx answers that count as healthy, 1 to 100.
    type: int
    default: 3
  timeout:
    description:
      - Seconds the whole wait may take, more than 0 and at most 3600.
    type: float
    default: 60
  probe_timeout:
    description:
      - Timeout of each probe in seconds, more than 0 and at most 300.
    type: float
    default: 5
  interval:
    description:
      - Seconds between probes, 0 to 60.
    type: float
    default: 0.2
  units:
    description:
      - systemd units that must stay up while the wait runs, for example V(hello-preflight.service). The wait fails at once when one
        of them is not loaded, has failed, or is inactive (it must have been started before).
      - Each is a unit name ending in V(.service) or V(.socket), its base name as the roles allow it (letters, digits, C(_), C(.)
        and C(-), starting with a letter or digit, at most 64 characters), optionally with an instance such as V(hello@2.service).
    type: list
    elements: str
    default: []
  journal_lines:
    description:
      - Number of journal lines of O(units) to include in the failure message, 0 to 200.
    type: int
    default: 20
notes:
  - A 3xx answer is not healthy here, unlike in the load of M(zerodown.deploy.zero_downtime_restart). A health path that
    redirects usually means the app is not serving it.
seealso:
  - module: zerodown.deploy.zero_downtime_restart
  - name: The app role
    description: The whole deploy, with the pre-flight check and the post-switch health gate.
    link: https://github.com/zerodown/deploy/blob/main/docs/app.md
"""

EXAMPLES = r"""
- name: Wait until the app answers /health three times in a row through its socket
  zerodown.deploy.health_check:
    target: unix:/run/shop/shop.sock
    path: /health
    timeout: 30

- name: Pre-flight a release, failing as soon as its unit dies
  zerodown.deploy.health_check:
    target: /run/zerodown/preflight/shop.sock
    units: [shop-preflight.service]
    timeout: 60

- name: Through nginx with the site's name
  zerodown.deploy.health_check:
    target: http://127.0.0.1
    host_header: shop.example.com
    path: /health
    successes: 5
"""

RETURN = r"""
target:
  description: The endpoint probed, normalised.
  returned: always
  type: str
  sample: unix:/run/shop/shop.sock
attempts:
  description: Number of probes sent.
  returned: always
  type: int
  sample: 4
answers:
  description: Number of probes by answer (C(HTTP <status>) or a failure kind such as C(connect_refused)).
  returned: always
  type: dict
  sample: {"HTTP 200": 3, "connect_refused": 1}
last:
  description: The last answer; C(body) is an excerpt (V(null) when there was no HTTP answer).
  returned: always
  type: dict
  sample: {status: 200, kind: null, error: null, body: "ok"}
elapsed_s:
  description: Seconds the wait took.
  returned: always
  type: float
  sample: 0.74
units:
  description: State of each unit in O(units) when the wait ended.
  returned: always
  type: dict
  sample: {shop-preflight.service: {ActiveState: active, SubState: running, Result: success, MainPID: 4242}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._health import HealthCheckSettings, run_health_check
from ansible_collections.zerodown.deploy.plugins.module_utils._module import finish
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd


def run_module(module: AnsibleModule):
    """The wait of module_utils/_health; systemctl is needed only to watch units."""
    settings = HealthCheckSettings(module.params)
    return run_health_check(settings, Systemd.for_module(module, required=bool(settings.units)), warn=module.warn)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type='str', required=True),
            path=dict(type='str', default='/health'),
            host_header=dict(type='str'),
            successes=dict(type='int', default=3),
            timeout=dict(type='float', default=60),
            probe_timeout=dict(type='float', default=5),
            interval=dict(type='float', default=0.2),
            units=dict(type='list', elements='str', default=[]),
            journal_lines=dict(type='int', default=20),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module)


if __name__ == '__main__':
    main()
