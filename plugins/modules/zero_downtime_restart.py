#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: zero_downtime_restart
short_description: Restart a socket-activated service under HTTP load and prove that no request failed
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Runs on the target. Drives a bounded HTTP load (GET and POST mixed) at the service, restarts it, and reports what the clients
    saw, phase by phase - C(baseline) (steady state before the action), C(during) (the action, including the waits for readiness)
    and C(tail) (after readiness).
  - The action is a plain C(systemctl restart), a rolling restart of the instances C(NAME@1..N.service) one at a time (each waiting
    for readiness before the next, so some instance is always accepting on the shared socket), a C(systemctl reload), a given
    command, or the blue/green switch of proxy mode (O(mode=blue_green), the same switch as M(zerodown.deploy.blue_green)).
  - Readiness of a restarted unit means that its C(MainPID) changed from the old one and its C(ActiveState) is V(active) (for
    C(Type=notify) units systemd already waited for C(READY=1) before C(systemctl restart) returned), and then that O(health_path)
    answered with a 2xx status three times in a row through O(health_target). All of it within O(ready_timeout) seconds.
  - The task fails when more than O(max_failed) requests failed, when the optional O(max_latency_ratio) bound is exceeded, or when a
    unit does not exist or does not become ready. Failures return the same measurements as a success.
  - The load is always bounded by O(max_duration) and O(max_requests), whichever comes first.
  - Only the Python standard library is used on the target.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - In check mode nothing runs, not even C(systemctl show) or a single request. The result describes what would run and reports
        C(changed=true).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: none
    details:
      - Every run restarts the service (that is its purpose) and reports C(changed=true).
  action_group:
    description: Use C(group/zerodown.deploy.zerodown) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - zerodown.deploy.zerodown
options:
  service:
    description:
      - Base name of the service, for example V(hello). A V(.service) suffix is accepted and ignored.
      - With O(instances=1) the unit is C(NAME.service); with O(instances) of 2 or more the units are C(NAME@1.service) to
        C(NAME@N.service), as the P(zerodown.deploy.socket_service#role) role installs them.
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_.:\\-]{0,199}$). Instance names (with C(@)) and sockets (C(.socket)) are refused.
    type: str
    required: true
  instances:
    description:
      - Number of service instances sharing the socket.
    type: int
    default: 1
  mode:
    description:
      - V(auto) is V(rolling) when O(instances) is 2 or more, else V(restart).
      - V(restart) runs C(systemctl restart) on all units at once, then waits for every unit to be ready.
      - V(rolling) restarts the units one at a time in order, waiting for each to be ready before the next.
      - V(reload) runs C(systemctl reload) on all units, then waits for them to be active and the health path to answer. The main
        PID is not expected to change.
      - V(command) runs O(command) instead of C(systemctl), then waits for the health path to answer. Old and new main PIDs are
        reported when the units exist.
      - V(blue_green) is for apps installed by the P(zerodown.deploy.socket_service#role) role with C(socket_service_mode=proxy).
        It starts C(NAME-app@IDLE.service) on the idle port of O(ports), waits until it is active and answers O(health_path) on
        C(http://127.0.0.1:IDLE) (the new slot's own address; O(health_target) is refused), points the public proxy's link at
        the new slot, waits until the old port has no established connection (at most O(drain_timeout)), then stops and
        disables the old slot. A new slot that does not become healthy is stopped again, and the live slot keeps serving. Only
        with O(instances=1). See RV(blue_green).
    type: str
    choices: [auto, restart, rolling, reload, command, blue_green]
    default: auto
  command:
    description:
      - The command to run with O(mode=command), as a list of arguments (no shell). Required with O(mode=command), refused
        otherwise.
    type: list
    elements: str
  ports:
    description:
      - With O(mode=blue_green), the two slots' TCP ports on C(127.0.0.1), two different ports between 1 and 65535. Default
        V([8001, 8002]), as the P(zerodown.deploy.socket_service#role) role's C(socket_service_proxy_ports).
      - Refused with the other modes.
    type: list
    elements: int
  drain_timeout:
    description:
      - With O(mode=blue_green), seconds to wait after the switch until the old port has had no established connection for one
        second, more than 0 and at most 3600. When it runs out, a warning says how many connections were left and the old slot
        is stopped anyway. Default V(30).
      - Refused with the other modes.
    type: float
  target:
    description:
      - Where the load goes. V(unix:/run/hello.sock) or V(/run/hello.sock) for a Unix socket (HTTP over C(AF_UNIX)),
        V(127.0.0.1:8000) or V([::1]:8000) for TCP, or V(http://host[:port]) (port 80 by default), for example nginx in front of
        the service. A path in an V(http://) URL is ignored with a warning; requests go to O(path).
      - Defaults to V(unix:/run/NAME.sock), the default socket of the P(zerodown.deploy.socket_service#role) role.
      - Only point it at a service you operate; this is a load generator.
    type: str
  path:
    description:
      - Request path of the load (GET and POST).
    type: str
    default: /
  host_header:
    description:
      - C(Host) header of the load and of the readiness probes. Defaults to V(localhost) for Unix sockets and C(host:port) for TCP.
    type: str
  health_path:
    description:
      - Path of the readiness probe.
    type: str
    default: /
  health_target:
    description:
      - Endpoint of the readiness probes, in the same forms as O(target). Defaults to O(target).
      - Refused with O(mode=blue_green), which probes the new slot on its own port.
    type: str
  workers:
    description:
      - Number of concurrent clients, 1 to 64.
    type: int
    default: 4
  rate:
    description:
      - Optional cap on requests per second over all workers. Without it, every worker sends its next request as soon as the
        previous one finished.
    type: float
  post_ratio:
    description:
      - Share of POST requests, 0 to 1. The mix is deterministic.
    type: float
    default: 0.5
  post_body:
    description:
      - Body of the POST requests (sent as C(application/x-www-form-urlencoded)).
    type: str
    default: zerodown=probe
  keep_alive:
    description:
      - Reuse connections. By default every request opens a new connection, which is what exercises the accept path a restart
        disturbs.
    type: bool
    default: false
  timeout:
    description:
      - Timeout of each request in seconds (connect, and each socket operation after it), more than 0 and at most 300.
    type: float
    default: 10
  baseline_seconds:
    description:
      - Seconds of load before the action, 0 to 3600. The C(baseline) phase and the base of O(max_latency_ratio).
    type: float
    default: 2
  tail_seconds:
    description:
      - Seconds of load after the action and readiness, 0 to 3600.
    type: float
    default: 2
  max_duration:
    description:
      - Hard bound on the length of the whole load in seconds, more than 0 and at most 3600. No request starts later. It must
        exceed O(baseline_seconds) + O(tail_seconds); if the action is still running when it is reached, the load stops early,
        RV(load_covered_action) is V(false) and a warning says so.
    type: float
    default: 120
  max_requests:
    description:
      - Hard bound on the number of requests, 1 to 1000000.
    type: int
    default: 50000
  ready_timeout:
    description:
      - Seconds each readiness wait may take (per unit in V(rolling) mode), more than 0 and at most 3600.
    type: float
    default: 60
  max_failed:
    description:
      - The task fails when more requests than this failed (RV(failed_requests) > O(max_failed)).
    type: int
    default: 0
  max_latency_ratio:
    description:
      - Optional bound on the p99 latency during the action divided by the p99 latency of the baseline. The task fails when the
        ratio exceeds it. Requires O(baseline_seconds) > 0.
      - The baseline p99 of a fast service is often below a millisecond, so choose a bound with room for ordinary jitter.
    type: float
  timeline_path:
    description:
      - When set, a JSON list with one entry per request is written to this file on the target (atomically), for plotting. Each
        entry is C({t_ms, latency_ms, ok, kind, status, method, phase, marker}), where C(t_ms) is the request's start after the
        start of the load and C(phase) one of V(baseline), V(during), V(tail).
      - Its directory must exist. It is written also when the task fails.
    type: path
  marker_header:
    description:
      - Response header that identifies the process that answered (for example its PID); RV(markers) lists the distinct values in
        order of appearance. Set to an empty string to record none.
    type: str
    default: X-Served-By
notes:
  - Requests are classified as C(connect_refused), C(connect_timeout), C(reset), C(timeout), C(eof), C(http_5xx), C(http_other),
    C(protocol) or C(other); 2xx and 3xx responses are successes. Failed requests are never retried.
  - Latency percentiles are nearest-rank over successful requests only. A request belongs to C(during) when its lifetime overlaps
    the action, to C(baseline) when it completed before it, to C(tail) when it started after it.
  - With instances sharing one socket, the health probe may be answered by any instance; the main PID check is what tells that a
    restarted instance is up.
seealso:
  - module: zerodown.deploy.release
  - name: The zero_downtime_restart module
    description: What it measures, modes, readiness and return values.
    link: https://github.com/zerodown/deploy/blob/main/docs/zero_downtime_restart.md
"""

EXAMPLES = r"""
- name: Rolling restart of hello@1..2 under load, straight at the socket
  zerodown.deploy.zero_downtime_restart:
    service: hello
    instances: 2
    target: unix:/run/hello.sock
    health_path: /healthz
  register: restart

- name: Show the one-line report
  ansible.builtin.debug:
    msg: "{{ restart.report }}"

- name: Single instance through nginx, light rate, with a latency bound and a timeline
  zerodown.deploy.zero_downtime_restart:
    service: shop
    target: http://127.0.0.1
    host_header: shop.example.com
    health_target: unix:/run/shop/shop.sock
    health_path: /healthz
    rate: 50
    workers: 2
    max_latency_ratio: 50
    timeline_path: /var/lib/zerodown/shop-restart.json

- name: Reload (for example gunicorn's graceful HUP) and tolerate nothing
  zerodown.deploy.zero_downtime_restart:
    service: shop
    mode: reload
    target: /run/shop.sock

- name: Blue/green switch of a proxy-mode app (it binds its own port) through nginx
  zerodown.deploy.zero_downtime_restart:
    service: legacy
    mode: blue_green
    ports: [8001, 8002]
    drain_timeout: 30
    target: http://127.0.0.1
    host_header: legacy.example.com
    health_path: /health

- name: Any command, measured the same way
  zerodown.deploy.zero_downtime_restart:
    service: shop
    mode: command
    command: [/usr/local/bin/shop-switch, --graceful]
    target: /run/shop.sock
    max_failed: 0
"""

RETURN = r"""
mode:
  description: The mode that ran (or would run in check mode); V(auto) is resolved to V(rolling) or V(restart).
  returned: always
  type: str
  sample: rolling
units:
  description:
    - The systemd units acted on, in order. With O(mode=blue_green), the app of the new slot, then (when a slot was live) the
      app of the old one.
  returned: always
  type: list
  elements: str
  sample: [hello@1.service, hello@2.service]
target:
  description: The load endpoint, normalised.
  returned: always
  type: str
  sample: unix:/run/hello.sock
health_target:
  description: The endpoint of the readiness probes, normalised.
  returned: always
  type: str
  sample: unix:/run/hello.sock
command:
  description: The command of O(mode=command), else V(null).
  returned: always
  type: list
  elements: str
bounds:
  description: The bounds of the load and of the readiness waits.
  returned: always
  type: dict
  contains:
    max_duration:
      description: Seconds.
      type: float
    max_requests:
      description: Requests.
      type: int
    baseline_seconds:
      description: Seconds.
      type: float
    tail_seconds:
      description: Seconds.
      type: float
    ready_timeout:
      description: Seconds.
      type: float
    workers:
      description: Concurrent clients.
      type: int
    rate:
      description: Requests per second, or V(null) for no cap.
      type: float
  sample: {max_duration: 120.0, max_requests: 50000, baseline_seconds: 2.0, tail_seconds: 2.0, ready_timeout: 60.0, workers: 4,
           rate: null}
report:
  description: A short human-readable summary.
  returned: always
  type: str
  sample: "hello: rolling restart of 2 instances, 5321 requests, 0 failed, during p99 4.1 ms max 16.0 ms, longest gap 16.2 ms"
requests:
  description: Number of requests sent.
  returned: when the load ran
  type: int
  sample: 5321
ok_requests:
  description: Number of successful (2xx/3xx) requests.
  returned: when the load ran
  type: int
  sample: 5321
failed_requests:
  description:
    - Number of failed requests.
    - Not called C(failed), which is Ansible's task failure flag. Inside RV(phases) the counts are C(ok) and C(failed).
  returned: when the load ran
  type: int
  sample: 0
failures_by_kind:
  description: Failed requests by kind; every kind is present, with 0 when none.
  returned: when the load ran
  type: dict
  sample: {connect_refused: 0, connect_timeout: 0, reset: 0, timeout: 0, eof: 0, http_5xx: 0, http_other: 0, protocol: 0, other: 0}
failure_examples:
  description: The first few failures with C(kind), C(error), C(method), C(path), C(status), C(start_ms), C(latency_ms).
  returned: when the load ran
  type: list
  elements: dict
latency_ms:
  description: Latency of the successful requests over the whole run, in milliseconds (V(null) values without successes).
  returned: when the load ran
  type: dict
  contains:
    count:
      description: Number of successful requests measured.
      type: int
    p50:
      description: Median.
      type: float
    p90:
      description: 90th percentile.
      type: float
    p99:
      description: 99th percentile.
      type: float
    max:
      description: Maximum.
      type: float
  sample: {count: 5321, p50: 0.9, p90: 1.6, p99: 3.8, max: 16.0}
phases:
  description: The same measurements for each phase, plus its length and throughput.
  returned: when the load ran
  type: dict
  contains:
    baseline:
      description: Before the action. Keys C(requests), C(ok), C(failed), C(failures_by_kind), C(latency_ms) (as RV(latency_ms)),
        C(duration_s) and C(requests_per_s) (V(null) for an empty phase).
      type: dict
    during:
      description: Requests overlapping the action and its readiness waits; same keys.
      type: dict
    tail:
      description: After readiness; same keys.
      type: dict
  sample:
    baseline: {requests: 2100, ok: 2100, failed: 0, failures_by_kind: {}, latency_ms: {count: 2100, p50: 0.9, p90: 1.5, p99: 3.1, max: 7.2},
               duration_s: 2.0, requests_per_s: 1050.0}
gap_ms:
  description: The longest interval between two consecutive successful responses, in milliseconds; V(null) with fewer than two.
  returned: when the load ran
  type: float
  sample: 16.2
requests_per_s:
  description: Throughput over the whole run.
  returned: when the load ran
  type: float
  sample: 1010.3
elapsed_s:
  description: Length of the load in seconds.
  returned: when the load ran
  type: float
  sample: 5.27
stopped_by:
  description: What ended the load, V(stop) (the module stopped it after the tail), V(duration) or V(max_requests).
  returned: when the load ran
  type: str
  sample: stop
load_covered_action:
  description: Whether the load was still running when the action and its readiness waits ended. If V(false), a bound ended the
    load first and the measurements do not cover the whole action.
  returned: when the load ran
  type: bool
  sample: true
statuses:
  description: Number of responses by HTTP status.
  returned: when the load ran
  type: dict
  sample: {"200": 5321}
methods:
  description: Number of requests by method.
  returned: when the load ran
  type: dict
  sample: {GET: 2661, POST: 2660}
markers:
  description: Distinct values of O(marker_header) in order of first appearance (for example old and new PIDs).
  returned: when the load ran
  type: list
  elements: str
  sample: ["812", "813", "1410", "1422"]
marker_counts:
  description: Number of responses that carried each marker.
  returned: when the load ran
  type: dict
  sample: {"812": 1200, "813": 1180, "1410": 1500, "1422": 1441}
pids:
  description:
    - Main PID of each unit before and after the action (V(null) when unknown, 0 when the unit was not running).
    - With O(mode=blue_green), the units are C(NAME-app@PORT.service); the old slot's C(new) is 0 once it was stopped.
  returned: when the load ran
  type: dict
  sample: {hello@1.service: {old: 812, new: 1410}, hello@2.service: {old: 813, new: 1422}}
steps:
  description:
    - What the action did, in order. Times are milliseconds after the start of the load.
    - With O(mode=blue_green), the link swap is recorded as argv C([symlink, TARGET, LINK]) and the drain as C([drain, PORT]).
  returned: when the load ran
  type: list
  elements: dict
  contains:
    units:
      description: Units of this step.
      type: list
      elements: str
    argv:
      description: The command that ran.
      type: list
      elements: str
    rc:
      description: Its exit status.
      type: int
    started_ms:
      description: When the command started.
      type: float
    returned_ms:
      description: When it returned.
      type: float
    ready_ms:
      description: When the units were ready (V(null) if they never were).
      type: float
action_duration_s:
  description: Seconds from the start of the action to the end of the last readiness wait.
  returned: when the load ran
  type: float
  sample: 2.61
latency_ratio:
  description: During p99 divided by baseline p99, or V(null) when either is missing.
  returned: when the load ran
  type: float
  sample: 1.3
blue_green:
  description: With O(mode=blue_green), what the switch did.
  returned: when O(mode=blue_green) and the load ran
  type: dict
  contains:
    link:
      description: The link the public proxy forwards to.
      type: str
    live_before:
      description: Port of the slot live before, V(null) when there was none.
      type: int
    live_after:
      description: Port of the slot live after, V(null) when the switch failed before the link moved.
      type: int
    switched:
      description: Whether the link was pointed at the new slot. V(false) after a failure means the old slot still serves.
      type: bool
    drain:
      description: C(drained), C(waited_s), C(connections_left) of the old slot; V(null) when no slot was live before.
      type: dict
  sample: {link: /var/lib/zerodown/shop/live.sock, live_before: 8001, live_after: 8002, switched: true,
           drain: {drained: true, waited_s: 1.0, connections_left: 0}}
timeline_path:
  description: Path of the timeline written, or V(null).
  returned: always
  type: str
  sample: /var/lib/zerodown/shop-restart.json
"""

import json
import os
import re
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._bluegreen import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_PORTS,
    BlueGreenError,
    SlotUnits,
    Switch,
    Systemctl as SlotSystemctl,
    check_drain_timeout,
    check_ports,
    idle_port,
    link_path,
    live_port,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write
from ansible_collections.zerodown.deploy.plugins.module_utils._health import SHOW_PROPERTIES, NotHealthy, describe_state, parse_show, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint, split_url_path
from ansible_collections.zerodown.deploy.plugins.module_utils._load import (
    BEGIN_MARK,
    END_MARK,
    LoadRun,
    phase_timing,
    timeline,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish, header_value, request_path

MODES = ('auto', 'restart', 'rolling', 'reload', 'command', 'blue_green')
# Options that only mean something with mode=blue_green.
BLUE_GREEN_OPTIONS = ('ports', 'drain_timeout')
SERVICE_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.:\\-]{0,199}')  # used with fullmatch()
# Module phase names for the load generator's before / during / after.
PHASE_NAMES = (('baseline', 'before'), ('during', 'during'), ('tail', 'after'))
READY_SUCCESSES = 3
POLL_INTERVAL = 0.05
PROBE_TIMEOUT = 5.0
OUTPUT_TAIL = 2000

MAX_INSTANCES = 256
MAX_SECONDS = 3600.0
MAX_TIMEOUT = 300.0
MAX_WORKERS = 64
MAX_REQUESTS = 1000000
MAX_RATE = 1000000.0


class ActionError(Exception):
    """The action (restart, readiness) failed; the load measurements are still reported."""


# -- arguments ------------------------------------------------------------------------------


def _within(name: str, value, low, high, unit: str = '', low_open: bool = False):
    """Check ``low <= value <= high`` (``low < value`` with low_open); None means no upper bound."""
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        lower = ('> %s' if low_open else '>= %s') % _num(low)
        upper = ' and <= %s' % _num(high) if high is not None else ''
        raise ModuleError('%s must be %s%s%s, got %s' % (name, lower, upper, unit, _num(value)))
    return value


def _num(value) -> str:
    return ('%g' % value) if isinstance(value, float) else str(value)


def _endpoint(name: str, value: str, warnings: list):
    """Parse an endpoint option; an http:// URL may carry a path, which is ignored."""
    text, ignored = split_url_path(value)
    if ignored:
        warnings.append('the path %s in %s is ignored; requests go to the path options' % (ignored, name))
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise ModuleError('%s: %s' % (name, exc))


def service_name(value: str) -> str:
    """The base unit name: validated, without a ``.service`` suffix."""
    name = value[:-len('.service')] if value.endswith('.service') else value
    if '@' in name:
        raise ModuleError('service must be the base name (like hello), not an instance or template (%r); choose instances with the '
                          'instances option' % value)
    if name.endswith('.socket'):
        raise ModuleError('service must name the service, not its socket (%r): restarting the socket would drop connections' % value)
    if not SERVICE_RE.fullmatch(name):
        raise ModuleError('service must be a unit base name such as hello (letters, digits and _ . : - \\, starting with a letter or '
                          'digit, at most 200 characters, optionally ending in .service), got %r' % value)
    return name


def unit_names(name: str, instances: int) -> list:
    if instances == 1:
        return ['%s.service' % name]
    return ['%s@%d.service' % (name, index) for index in range(1, instances + 1)]


class Plan:
    """Validated settings of one run."""

    def __init__(self, params: dict):
        self.warnings = []
        self.service = service_name(params['service'])
        self.instances = _within('instances', params['instances'], 1, MAX_INSTANCES)
        self.units = unit_names(self.service, self.instances)
        mode = params['mode']
        if mode == 'auto':
            mode = 'rolling' if self.instances >= 2 else 'restart'
        self.mode = mode
        self._blue_green(params)
        self.command = params['command']
        if mode == 'command':
            if not self.command or not self.command[0]:
                raise ModuleError('mode=command requires command, a non-empty list of arguments')
        elif self.command:
            raise ModuleError('command is only used with mode=command (mode is %s)' % params['mode'])
        else:
            self.command = None

        self.target = _endpoint('target', params['target'] or 'unix:/run/%s.sock' % self.service, self.warnings)
        if params['health_target'] and mode == 'blue_green':
            raise ModuleError('health_target is not used with mode=blue_green: the new slot is probed on its own port, '
                              'http://127.0.0.1:PORT, before it goes live')
        self.health_target = _endpoint('health_target', params['health_target'], self.warnings) if params['health_target'] else self.target
        self.path = request_path('path', params['path'])
        self.health_path = request_path('health_path', params['health_path'])
        self.host_header = header_value('host_header', params['host_header'])
        self.marker_header = params['marker_header'] or None
        if self.marker_header is not None and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", self.marker_header):
            raise ModuleError('marker_header must be an HTTP header name, got %r' % self.marker_header)

        self.workers = _within('workers', params['workers'], 1, MAX_WORKERS)
        self.rate = params['rate']
        if self.rate is not None:
            _within('rate', self.rate, 0, MAX_RATE, ' requests/s', low_open=True)
        self.post_ratio = _within('post_ratio', params['post_ratio'], 0.0, 1.0)
        self.post_body = params['post_body']
        self.keep_alive = params['keep_alive']
        self.timeout = _within('timeout', params['timeout'], 0, MAX_TIMEOUT, ' seconds', low_open=True)
        self.baseline_seconds = _within('baseline_seconds', params['baseline_seconds'], 0, MAX_SECONDS, ' seconds')
        self.tail_seconds = _within('tail_seconds', params['tail_seconds'], 0, MAX_SECONDS, ' seconds')
        self.max_duration = _within('max_duration', params['max_duration'], 0, MAX_SECONDS, ' seconds', low_open=True)
        self.max_requests = _within('max_requests', params['max_requests'], 1, MAX_REQUESTS)
        self.ready_timeout = _within('ready_timeout', params['ready_timeout'], 0, MAX_SECONDS, ' seconds', low_open=True)
        self.max_failed = _within('max_failed', params['max_failed'], 0, None)
        if self.baseline_seconds + self.tail_seconds >= self.max_duration:
            raise ModuleError('max_duration (%s s) must exceed baseline_seconds + tail_seconds (%s s), or the load would end before the '
                              'action' % (_num(self.max_duration), _num(self.baseline_seconds + self.tail_seconds)))
        self.max_latency_ratio = params['max_latency_ratio']
        if self.max_latency_ratio is not None:
            _within('max_latency_ratio', self.max_latency_ratio, 0, None, low_open=True)
            if self.baseline_seconds <= 0:
                raise ModuleError('max_latency_ratio needs a baseline: baseline_seconds must be > 0')
        self.timeline_path = params['timeline_path']
        if self.timeline_path is not None:
            directory = os.path.dirname(self.timeline_path) or '.'
            if not os.path.isdir(directory):
                raise ModuleError('timeline_path: directory %s does not exist' % directory)
            if os.path.isdir(self.timeline_path):
                raise ModuleError('timeline_path: %s is a directory' % self.timeline_path)

    def _blue_green(self, params: dict) -> None:
        """Settings of mode=blue_green; its options are refused in the other modes, like command.

        The live slot is read from the link (a read, also in check mode), so
        that units and the report line name the slots that will act.
        """
        self.ports = self.drain_timeout = self.live = self.idle = None
        if self.mode != 'blue_green':
            given = [name for name in BLUE_GREEN_OPTIONS if params.get(name) is not None]
            if given:
                raise ModuleError('%s %s only used with mode=blue_green (mode is %s)'
                                  % (' and '.join(given), 'is' if len(given) == 1 else 'are', params['mode']))
            return
        if self.instances != 1:
            raise ModuleError('mode=blue_green runs one app per slot: instances must be 1, got %d' % self.instances)
        try:
            self.ports = check_ports(params['ports'] if params.get('ports') is not None else DEFAULT_PORTS)
            self.drain_timeout = check_drain_timeout(params['drain_timeout'] if params.get('drain_timeout') is not None
                                                     else DEFAULT_DRAIN_TIMEOUT)
        except ValueError as exc:
            raise ModuleError(str(exc))
        self.live = live_port(link_path(self.service))
        self.idle = idle_port(self.live, self.ports)
        self.units = [SlotUnits(self.service, self.idle).app] + ([SlotUnits(self.service, self.live).app] if self.live is not None else [])

    def describe(self) -> str:
        """What the action is, for the report line."""
        if self.mode == 'blue_green':
            return 'blue/green switch from slot %s to slot %d' % (self.live if self.live is not None else '(none)', self.idle)
        count = '%d instance%s' % (len(self.units), '' if len(self.units) == 1 else 's')
        if self.mode == 'rolling':
            return 'rolling restart of %s' % count
        if self.mode == 'restart':
            return 'restart of %s' % (count if len(self.units) == 1 else count + ' at once')
        if self.mode == 'reload':
            return 'reload of %s' % count
        return 'command %s' % ' '.join(self.command)

    def bounds(self) -> dict:
        return {
            'max_duration': float(self.max_duration),
            'max_requests': self.max_requests,
            'baseline_seconds': float(self.baseline_seconds),
            'tail_seconds': float(self.tail_seconds),
            'ready_timeout': float(self.ready_timeout),
            'workers': self.workers,
            'rate': self.rate,
        }

    def base_result(self) -> dict:
        health_target = str(self.health_target) if self.mode != 'blue_green' else '127.0.0.1:%d' % self.idle
        return {
            'mode': self.mode,
            'units': list(self.units),
            'target': str(self.target),
            'health_target': health_target,
            'command': self.command,
            'bounds': self.bounds(),
            'timeline_path': None,
        }

    def load(self) -> LoadRun:
        return LoadRun(self.target, duration=self.max_duration, max_requests=self.max_requests, workers=self.workers,
                       post_ratio=self.post_ratio, paths=(self.path,), post_body=self.post_body, rate=self.rate, timeout=self.timeout,
                       keep_alive=self.keep_alive, host_header=self.host_header, marker_header=self.marker_header)


# -- systemd --------------------------------------------------------------------------------


def _tail(text: str) -> str:
    text = (text or '').strip()
    return text[-OUTPUT_TAIL:]


class Systemd:
    """The few systemctl calls the module makes, through module.run_command."""

    def __init__(self, module: AnsibleModule, required: bool = True):
        self.module = module
        self.path = module.get_bin_path('systemctl', required=required)

    def show(self, unit: str) -> dict:
        argv = [self.path, 'show', '--property=' + ','.join(SHOW_PROPERTIES), unit]
        rc, out, err = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        if rc != 0:
            raise ActionError('%s failed (rc %d): %s' % (' '.join(argv), rc, _tail(err) or _tail(out)))
        return parse_show(out)

    def argv(self, verb: str, units) -> list:
        return [self.path, '--no-ask-password', verb] + list(units)


# -- the action -----------------------------------------------------------------------------


class Action:
    """Runs the restart / reload / command and the readiness waits, recording PIDs and steps."""

    def __init__(self, module: AnsibleModule, plan: Plan, systemd: t.Optional[Systemd], origin: float):
        self.module = module
        self.plan = plan
        self.systemd = systemd
        self.origin = origin
        self.ran = False
        self.steps = []
        self.pids = dict((unit, {'old': None, 'new': None}) for unit in plan.units)
        self.started_at = None
        self.finished_at = None
        self.blue_green = None

    def _ms(self, at: float) -> float:
        return round((at - self.origin) * 1000.0, 3)

    def _show(self, unit: str) -> t.Optional[dict]:
        """Unit state; None in command mode when systemctl is missing or the unit is not loaded."""
        if self.systemd is None or self.systemd.path is None:
            return None
        state = self.systemd.show(unit)
        if self.plan.mode == 'command' and state.get('LoadState') != 'loaded':
            return None
        return state

    def _run(self, argv: list, units: list) -> dict:
        step = {'units': list(units), 'argv': list(argv), 'rc': None, 'started_ms': None, 'returned_ms': None, 'ready_ms': None}
        self.steps.append(step)
        self.ran = True
        step['started_ms'] = self._ms(time.monotonic())
        rc, out, err = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        step['rc'] = rc
        step['returned_ms'] = self._ms(time.monotonic())
        if rc != 0:
            states = []
            for unit in units:
                try:
                    state = self._show(unit)
                except ActionError:
                    state = None
                if state is not None:
                    states.append(describe_state(unit, state))
            output = _tail(err) or _tail(out) or '(no output)'
            details = ('; ' + '; '.join(states)) if states else ''
            raise ActionError('%s failed with rc %d: %s%s' % (' '.join(argv), rc, output, details))
        return step

    def _old_pids(self, units) -> None:
        for unit in units:
            state = self._show(unit)
            if state is not None:
                self.pids[unit]['old'] = state['MainPID']

    def wait_unit(self, unit: str, deadline: float, new_pid: bool) -> None:
        """Wait until the unit is active (with a main PID other than the old one when ``new_pid``)."""
        old = self.pids[unit]['old']
        while True:
            state = self._show(unit)
            pid = state['MainPID']
            active = state.get('ActiveState') == 'active'
            if active and (not new_pid or (pid != 0 and pid != old)):
                self.pids[unit]['new'] = pid
                return
            if state.get('ActiveState') == 'failed' or state.get('LoadState') not in ('loaded', None):
                self.pids[unit]['new'] = pid
                raise ActionError('%s did not come back: %s' % (unit, describe_state(unit, state)))
            if time.monotonic() >= deadline:
                self.pids[unit]['new'] = pid
                waited = 'active with a main PID other than %s' % old if new_pid else 'active'
                limit = _num(self.plan.ready_timeout)
                raise ActionError('%s was not %s within ready_timeout (%s s): %s' % (unit, waited, limit, describe_state(unit, state)))
            time.sleep(POLL_INTERVAL)

    def wait_healthy(self, deadline: float) -> None:
        """Wait for READY_SUCCESSES consecutive 2xx answers of the health path."""
        plan = self.plan
        try:
            wait_healthy(plan.health_target, plan.health_path, deadline, successes=READY_SUCCESSES, host_header=plan.host_header,
                         probe_timeout=min(plan.timeout, PROBE_TIMEOUT), interval=POLL_INTERVAL, limit=plan.ready_timeout)
        except NotHealthy as exc:
            raise ActionError(str(exc))

    def _ready(self, step: dict, units, new_pid: bool) -> None:
        deadline = time.monotonic() + self.plan.ready_timeout
        for unit in units:
            if self.plan.mode == 'command':
                state = self._show(unit)
                if state is not None:
                    self.pids[unit]['new'] = state['MainPID']
            else:
                self.wait_unit(unit, deadline, new_pid)
        self.wait_healthy(deadline)
        step['ready_ms'] = self._ms(time.monotonic())

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            plan = self.plan
            if plan.mode == 'blue_green':
                self.switch_slots()
            elif plan.mode == 'rolling':
                for unit in plan.units:
                    self._old_pids([unit])
                    step = self._run(self.systemd.argv('restart', [unit]), [unit])
                    self._ready(step, [unit], new_pid=True)
            elif plan.mode in ('restart', 'reload'):
                self._old_pids(plan.units)
                step = self._run(self.systemd.argv(plan.mode, plan.units), plan.units)
                self._ready(step, plan.units, new_pid=plan.mode == 'restart')
            else:
                self._old_pids(plan.units)
                step = self._run(list(plan.command), plan.units)
                self._ready(step, plan.units, new_pid=False)
        finally:
            self.finished_at = time.monotonic()

    def switch_slots(self) -> None:
        """mode=blue_green: the proxy-mode switch of module_utils/_bluegreen, its steps and PIDs recorded like the other modes'."""
        plan = self.plan
        systemctl = SlotSystemctl(self.module.run_command, self.systemd.path, self.module.get_bin_path('journalctl'))
        switch = Switch(plan.service, plan.ports, systemctl, health_path=plan.health_path, host_header=plan.host_header,
                        ready_timeout=plan.ready_timeout, drain_timeout=plan.drain_timeout, probe_timeout=min(plan.timeout, PROBE_TIMEOUT),
                        warn=self.module.warn)
        self.ran = True
        try:
            switch.switch()
        except BlueGreenError as exc:
            raise ActionError(str(exc))
        finally:
            for step in systemctl.steps:
                self.steps.append({'units': step['units'], 'argv': step['argv'], 'rc': step['rc'],
                                   'started_ms': self._ms(step['started']),
                                   'returned_ms': None if step['returned'] is None else self._ms(step['returned']),
                                   'ready_ms': None if step['ready'] is None else self._ms(step['ready'])})
            self.pids.update(switch.pids)
            self.blue_green = dict((key, value) for key, value in switch.result.items() if key not in ('changed', 'idle'))

    @property
    def duration_s(self) -> t.Optional[float]:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)


def preflight(plan: Plan, systemd: Systemd) -> None:
    """Every unit must exist before any load or restart."""
    units = list(plan.units)
    if plan.mode == 'blue_green':
        # Both slots' app and socket: the role installs them as templates, so an instance of each must load.
        units = [unit for port in plan.ports for unit in (SlotUnits(plan.service, port).app, SlotUnits(plan.service, port).socket)]
    for unit in units:
        try:
            state = systemd.show(unit)
        except ActionError as exc:
            raise ModuleError(str(exc))
        if state.get('LoadState') != 'loaded':
            raise ModuleError('unit %s does not exist or cannot be loaded (%s); nothing was restarted'
                              % (unit, describe_state(unit, state)))


# -- results --------------------------------------------------------------------------------


def _fmt_ms(value) -> str:
    return 'n/a' if value is None else '%.1f ms' % value


def phases_result(report: dict) -> dict:
    timing = phase_timing(report)
    phases = {}
    for name, source in PHASE_NAMES:
        stats = dict(report['phases'][source])
        stats.update(timing[source])
        phases[name] = stats
    return phases


def latency_ratio(phases: dict) -> t.Optional[float]:
    base = phases['baseline']['latency_ms']['p99']
    during = phases['during']['latency_ms']['p99']
    if not base or during is None:
        return None
    return round(during / base, 3)


def summary_line(plan: Plan, result: dict) -> str:
    during = result['phases']['during']['latency_ms']
    return '%s: %s, %d requests, %d failed, during p99 %s max %s, longest gap %s' % (
        plan.service, plan.describe(), result['requests'], result['failed_requests'], _fmt_ms(during['p99']), _fmt_ms(during['max']),
        _fmt_ms(result['gap_ms']))


def build_result(plan: Plan, run: LoadRun, action: Action, covered: bool) -> dict:
    report = run.summarize()
    result = plan.base_result()
    # 'failed' is Ansible's task failure flag: a count under that name would fail (or be overwritten in) every task.
    result['ok_requests'] = report['ok']
    result['failed_requests'] = report['failed']
    for key in ('requests', 'failures_by_kind', 'failure_examples', 'latency_ms', 'gap_ms', 'requests_per_s',
                'elapsed_s', 'stopped_by', 'statuses', 'methods', 'markers', 'marker_counts'):
        result[key] = report[key]
    result['phases'] = phases_result(report)
    result['load_covered_action'] = covered
    result['pids'] = action.pids
    result['steps'] = action.steps
    result['action_duration_s'] = action.duration_s
    if plan.mode == 'blue_green':
        result['blue_green'] = action.blue_green
    result['latency_ratio'] = latency_ratio(result['phases'])
    result['report'] = summary_line(plan, result)
    return result


def write_timeline(plan: Plan, run: LoadRun) -> None:
    names = dict((source, name) for name, source in PHASE_NAMES)
    entries = timeline(run.results, run.marks, run.started_at)
    for entry in entries:
        entry['phase'] = names[entry['phase']]
    atomic_write(plan.timeline_path, json.dumps(entries, separators=(',', ':')) + '\n', mode=0o644)


def verdict(plan: Plan, result: dict, warnings: list) -> t.Optional[str]:
    """The failure message, or None when the run passed its bounds."""
    problems = []
    if result['failed_requests'] > plan.max_failed:
        kinds = ', '.join('%s=%d' % (kind, count) for kind, count in result['failures_by_kind'].items() if count)
        problems.append('%d of %d requests failed (max_failed %d): %s' % (result['failed_requests'], result['requests'], plan.max_failed,
                                                                          kinds))
    if plan.max_latency_ratio is not None:
        ratio = result['latency_ratio']
        base = result['phases']['baseline']['latency_ms']['p99']
        during = result['phases']['during']['latency_ms']['p99']
        if base is None:
            problems.append('max_latency_ratio cannot be checked: no successful request in the baseline')
        elif ratio is None:
            warnings.append('max_latency_ratio was not checked: no successful request overlapped the action')
        elif ratio > plan.max_latency_ratio:
            problems.append('p99 latency during the action is %.1f times the baseline (%s vs %s), above max_latency_ratio %s'
                            % (ratio, _fmt_ms(during), _fmt_ms(base), _num(plan.max_latency_ratio)))
    if not problems:
        return None
    return '%s. %s' % ('; '.join(problems), result['report'])


def run_module(module: AnsibleModule) -> t.Tuple[dict, t.Optional[str]]:
    plan = Plan(module.params)
    try:
        run = plan.load()  # validates the load settings; nothing is sent before start()
    except ValueError as exc:
        raise ModuleError(str(exc))
    for warning in plan.warnings:
        module.warn(warning)
    if module.check_mode:
        result = plan.base_result()
        result['changed'] = True
        result['report'] = '%s: would run a %s under load on %s (at most %s s and %d requests)' % (
            plan.service, plan.describe(), plan.target, _num(plan.max_duration), plan.max_requests)
        return result, None

    systemd = Systemd(module, required=plan.mode != 'command')
    if plan.mode != 'command':
        preflight(plan, systemd)

    error = None
    covered = False
    run.start()
    action = Action(module, plan, systemd, run.started_at)
    try:
        run.wait(plan.baseline_seconds)
        run.mark(BEGIN_MARK)
        try:
            action.run()
        except ActionError as exc:
            error = str(exc)
        covered = run.running
        run.mark(END_MARK)
        if error is None:
            run.wait(plan.tail_seconds)
    finally:
        run.stop()

    result = build_result(plan, run, action, covered)
    result['changed'] = action.ran
    if not covered:
        module.warn('the load ended (stopped by %s) before the action and its readiness waits finished; the measurements do not cover '
                    'the whole action. Raise max_duration or max_requests.' % result['stopped_by'])
    if plan.timeline_path is not None:
        try:
            write_timeline(plan, run)
            result['timeline_path'] = plan.timeline_path
        except OSError as exc:
            error = error or 'could not write timeline_path %s: %s' % (plan.timeline_path, exc)
    if error is not None:
        return result, '%s. %s' % (error, result['report'])
    warnings = []
    failure = verdict(plan, result, warnings)
    for warning in warnings:
        module.warn(warning)
    return result, failure


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type='str', required=True),
            instances=dict(type='int', default=1),
            mode=dict(type='str', default='auto', choices=list(MODES)),
            command=dict(type='list', elements='str'),
            target=dict(type='str'),
            path=dict(type='str', default='/'),
            host_header=dict(type='str'),
            health_path=dict(type='str', default='/'),
            health_target=dict(type='str'),
            workers=dict(type='int', default=4),
            rate=dict(type='float'),
            post_ratio=dict(type='float', default=0.5),
            post_body=dict(type='str', default='zerodown=probe'),
            keep_alive=dict(type='bool', default=False),
            timeout=dict(type='float', default=10),
            baseline_seconds=dict(type='float', default=2),
            tail_seconds=dict(type='float', default=2),
            max_duration=dict(type='float', default=120),
            max_requests=dict(type='int', default=50000),
            ready_timeout=dict(type='float', default=60),
            max_failed=dict(type='int', default=0),
            max_latency_ratio=dict(type='float'),
            timeline_path=dict(type='path'),
            marker_header=dict(type='str', default='X-Served-By'),
            ports=dict(type='list', elements='int'),
            drain_timeout=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module)


if __name__ == '__main__':
    main()
