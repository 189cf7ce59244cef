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
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The probes only read, so they run in check mode too.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
  action_group:
    description: Use C(group/zerodown.deploy.zerodown) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - zerodown.deploy.zerodown
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

import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._health import (
    SHOW_PROPERTIES,
    NotHealthy,
    parse_show,
    unit_failure,
    wait_healthy,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint, split_url_path
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish, header_value, request_path

UNIT_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.:@\\-]{0,250}\.(service|socket)')  # used with fullmatch()
REPORTED_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'ExecMainStatus')


def _bounded(name: str, value, low, high, low_open: bool = False):
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        raise ModuleError('%s must be %s %g and <= %g, got %g' % (name, '>' if low_open else '>=', low, high, value))
    return value


def _endpoint(value: str, warnings: list):
    text, ignored = split_url_path(value)
    if ignored:
        warnings.append('the path %s in target is ignored; the probes go to path' % ignored)
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise ModuleError('target: %s' % exc)


class Settings:
    """Validated options."""

    def __init__(self, params: dict):
        self.warnings = []
        self.target = _endpoint(params['target'], self.warnings)
        self.path = request_path('path', params['path'])
        self.host_header = header_value('host_header', params['host_header'])
        self.successes = _bounded('successes', params['successes'], 1, 100)
        self.timeout = _bounded('timeout', params['timeout'], 0, 3600, low_open=True)
        self.probe_timeout = _bounded('probe_timeout', params['probe_timeout'], 0, 300, low_open=True)
        self.interval = _bounded('interval', params['interval'], 0, 60)
        self.journal_lines = _bounded('journal_lines', params['journal_lines'], 0, 200)
        for unit in params['units']:
            if not UNIT_RE.fullmatch(unit):
                raise ModuleError('units: %r is not a unit name ending in .service or .socket' % unit)
        self.units = list(params['units'])


class UnitWatch:
    """Reads the watched units between probes; any failure ends the wait."""

    def __init__(self, module: AnsibleModule, units: list):
        self.module = module
        self.units = units
        self.systemctl = module.get_bin_path('systemctl', required=True) if units else None
        self.states = {}

    def read(self, unit: str) -> dict:
        rc, out, err = self.module.run_command([self.systemctl, 'show', '--property=' + ','.join(SHOW_PROPERTIES), unit],
                                               environ_update={'LC_ALL': 'C'})
        if rc != 0:
            return {'LoadState': 'error', 'error': (err or out).strip()[-500:]}
        return parse_show(out)

    def __call__(self):
        """The first failure as a reason, or None."""
        for unit in self.units:
            state = self.read(unit)
            self.states[unit] = state
            reason = unit_failure(state)
            if reason is None and state.get('ActiveState') in ('inactive', 'deactivating'):
                reason = 'stopped (ActiveState=%s, Result=%s)' % (state['ActiveState'], state.get('Result', '?'))
            if reason is not None:
                return 'stopped early because %s %s' % (unit, reason)
        return None

    def refresh(self) -> None:
        for unit in self.units:
            self.states[unit] = self.read(unit)

    def report(self) -> dict:
        return dict((unit, dict((key, state.get(key)) for key in REPORTED_PROPERTIES)) for unit, state in self.states.items())

    def journal(self, lines: int) -> str:
        journalctl = self.module.get_bin_path('journalctl')
        if not self.units or not lines or journalctl is None:
            return ''
        argv = [journalctl, '--no-pager', '--output=cat', '--lines=%d' % lines]
        for unit in self.units:
            argv.append('--unit=' + unit)
        rc, out, dummy = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        if rc != 0:
            return ''
        return ' | '.join(line.strip() for line in out.strip().splitlines() if line.strip())


def run_module(module: AnsibleModule):
    settings = Settings(module.params)
    for warning in settings.warnings:
        module.warn(warning)
    watch = UnitWatch(module, settings.units)
    deadline = time.monotonic() + settings.timeout
    failure = None
    try:
        outcome = wait_healthy(settings.target, settings.path, deadline, successes=settings.successes, host_header=settings.host_header,
                               probe_timeout=settings.probe_timeout, interval=settings.interval, abort=watch if settings.units else None,
                               what='timeout', limit=settings.timeout)
    except NotHealthy as exc:
        outcome = exc.outcome
        failure = str(exc)
    watch.refresh()
    result = outcome.to_dict()
    result['target'] = str(settings.target)
    result['units'] = watch.report()
    result['changed'] = False
    if failure is not None:
        journal = watch.journal(settings.journal_lines)
        if journal:
            failure += '; last journal lines: ' + journal
    return result, failure


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
