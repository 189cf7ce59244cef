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
    saw, phase by phase - C(before) (steady state before the action), C(during) (the action, including the waits for readiness)
    and C(after) (after readiness), the phase names of the load generator.
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
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing runs, not even C(systemctl show) or a single request. The result describes what would run and reports
        C(changed=true).
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run restarts the service (that is its purpose) and reports C(changed=true).
options:
  service:
    description:
      - Base name of the service, for example V(hello). A V(.service) suffix is accepted and ignored.
      - With O(instances=1) the unit is C(NAME.service); with O(instances) of 2 or more the units are C(NAME@1.service) to
        C(NAME@N.service), as the P(zerodown.deploy.socket_service#role) role installs them.
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$), the rule of the roles. Instance names (with C(@)) and sockets
        (C(.socket)) are refused.
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
      - V(surge) is for the instances layout behind nginx (C(socket_service_mode=instances), see O(slots)). It starts the N slots
        that are not live (C(NAME@K.service), each on its own socket), waits until each answers O(health_path) on its own socket,
        then routes nginx to them in one step, waits until nothing is left connected to the old slots, and stops them. On a Unix
        socket the step moves nginx's position links (C(NAME-live-I.sock), one per instance) to the new slots' sockets, without an
        nginx reload (a reload closes the clients' idle keep-alive connections); on TCP it loads the NAT rules that send nginx's
        positions (C(127.1.0.I:PORT)) to the new slots, one C(nft) transaction, also without a reload. The drain ends when the
        kernel shows no connection left on an old slot's socket or address. No request reaches a process
        that is starting or stopping, whatever the app server does on C(SIGTERM). New slots that do not come up are stopped again
        and the live ones keep serving. See RV(surge).
      - V(drain_rolling) is the same layout without the memory for a surge (O(instances) 2 or more). One live slot at a time is
        taken out (its position points at another live slot), drained, restarted, probed and put back.
    type: str
    choices: [auto, restart, rolling, reload, command, blue_green, surge, drain_rolling]
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
      - POSTs can write data. Send them only to an endpoint that is safe to call, named in O(post_path); the P(zerodown.deploy.app#role)
        role sends none unless C(app_verify_post_path) names one.
    type: float
    default: 0.5
  post_path:
    description:
      - Path of the POST requests. Defaults to O(path).
    type: str
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
  before_seconds:
    description:
      - Seconds of load before the action, 0 to 3600. The C(before) phase and the base of O(max_latency_ratio).
    type: float
    default: 2
    aliases: [baseline_seconds]
  after_seconds:
    description:
      - Seconds of load after the action and readiness, 0 to 3600. The C(after) phase.
    type: float
    default: 2
    aliases: [tail_seconds]
  max_duration:
    description:
      - Hard bound on the length of the whole load in seconds, more than 0 and at most 3600. No request starts later. It must
        exceed O(before_seconds) + O(after_seconds); if the action is still running when it is reached, the load stops early,
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
  max_latency_factor:
    description:
      - The task fails when a request during the action took longer than this times the p99 latency before it, plus
        O(latency_allowance_ms) (plus, with O(boot_allowance), the time the action took). The message names the slowest request,
        when it started and which step ran then. Requires O(before_seconds) > 0.
    type: float
  latency_allowance_ms:
    description:
      - Milliseconds added to the bound of O(max_latency_factor), for the jitter of a busy machine.
    type: float
    default: 0
  boot_allowance:
    description:
      - Add the time the action took to the bound of O(max_latency_factor). With one instance restarting in place, clients wait in
        the socket's backlog for its boot, and that wait is expected.
    type: bool
    default: false
  slots:
    description:
      - With O(mode=surge) and O(mode=drain_rolling), the slots behind nginx; refused with the other modes.
    type: dict
    suboptions:
      listen:
        description:
          - The app's address, from which slot K's own is made (V(/run/shop/shop.sock) gives V(/run/shop/shop-K.sock),
            V(127.0.0.1:8000) gives V(127.0.0.K:8000)).
        type: str
        required: true
      servers_dir:
        description: nginx's directory of one server file per position.
        type: path
        required: true
      server_options:
        description: Parameters of every server line.
        type: str
        default: ''
      nginx_service:
        description: nginx's unit.
        type: str
        default: nginx
      nginx_binary:
        description: nginx's program, for C(nginx -t).
        type: path
        default: /usr/sbin/nginx
      drain_timeout:
        description: Seconds to wait for a slot taken out to drain (its last connection closed); after it the restart warns and
          goes on.
        type: float
        default: 60
  max_latency_ratio:
    description:
      - Optional bound on the p99 latency during the action divided by the p99 latency before it (the baseline). The task fails
        when the ratio exceeds it. Requires O(before_seconds) > 0.
      - The p99 before the action of a fast service is often below a millisecond, so choose a bound with room for ordinary
        jitter.
    type: float
  gate_successes:
    description:
      - The health gate in the same call. After the load has ended, O(health_path) must answer 2xx this many times in a row
        through O(target) (the way clients reach it, with O(host_header)) within O(gate_timeout), while none of the units that
        serve after the action stops or fails. The task fails otherwise, with the answers and the units' last journal lines.
      - Run only when the action and its measurement passed. V(0) runs no gate.
      - It means what the P(zerodown.deploy.health_check#module) module means by a gate, and saves that module's round trip
        after a restart.
    type: int
    default: 0
    version_added: 0.1.0
  gate_timeout:
    description: Seconds the health gate may take, with O(gate_successes) > 0.
    type: float
    default: 30
    version_added: 0.1.0
  timeline_path:
    description:
      - When set, a JSON list with one entry per request is written to this file on the target (atomically), for plotting. Each
        entry is C({t_ms, latency_ms, ok, kind, status, method, phase, marker}), where C(t_ms) is the request's start after the
        start of the load and C(phase) one of V(before), V(during), V(after).
      - Missing directories are created (mode 0750). It is written also when the task fails.
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
    the action, to C(before) when it completed before it, to C(after) when it started after it.
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
    before_seconds:
      description: Seconds.
      type: float
    after_seconds:
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
  sample: {max_duration: 120.0, max_requests: 50000, before_seconds: 2.0, after_seconds: 2.0, ready_timeout: 60.0, workers: 4,
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
    before:
      description: Before the action. Keys C(requests), C(ok), C(failed), C(failures_by_kind), C(latency_ms) (as RV(latency_ms)),
        C(duration_s) and C(requests_per_s) (V(null) for an empty phase).
      type: dict
    during:
      description: Requests overlapping the action and its readiness waits; same keys.
      type: dict
    after:
      description: After readiness; same keys.
      type: dict
  sample:
    before: {requests: 2100, ok: 2100, failed: 0, failures_by_kind: {}, latency_ms: {count: 2100, p50: 0.9, p90: 1.5, p99: 3.1, max: 7.2},
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
  description: What ended the load, V(stop) (the module stopped it after the C(after) phase), V(duration) or V(max_requests).
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
  description: The p99 of the C(during) phase divided by the p99 of the C(before) phase, or V(null) when either is missing.
  returned: when the load ran
  type: float
  sample: 1.3
surge:
  description: With O(mode=surge) and O(mode=drain_rolling), what the slots did.
  returned: with those modes
  type: dict
  contains:
    live_before:
      description: The slots nginx sent requests to before.
      type: list
      elements: int
    live_after:
      description: The slots it sends requests to now.
      type: list
      elements: int
    started:
      description: The slots started.
      type: list
      elements: int
    stopped:
      description: The slots stopped.
      type: list
      elements: int
    drains:
      description: Each change of where nginx sends requests (a link move or new NAT rules), with the slots up, whether the slots taken
        out drained (C(done)) and after how many seconds, and what was still connected (C(remaining)).
      type: list
      elements: dict
    reloads:
      description: How many times nginx was reloaded (0 unless the number of instances changed, or the server files were not the
        positions yet).
      type: int
slowest:
  description: The slowest request during the action, with C(latency_ms), C(at_s) (after the load began), and the C(step) that ran.
  returned: success and failure after the load ran
  type: dict
latency_bound_ms:
  description: The bound of O(max_latency_factor), or V(null) without it.
  returned: success and failure after the load ran
  type: float
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
gate:
  description:
    - With O(gate_successes) > 0, what the health gate saw, as the P(zerodown.deploy.health_check#module) module reports it;
      V(null) when no gate ran (none was asked for, or the restart failed before it).
  returned: always
  type: dict
  contains:
    answers:
      description: The probes' answers by status (C(HTTP 200)) or failure kind.
      type: dict
    attempts:
      description: Probes sent.
      type: int
    streak:
      description: 2xx answers in a row at the end.
      type: int
    units:
      description: The watched units' states at the end.
      type: dict
  sample: {answers: {HTTP 200: 5}, attempts: 5, streak: 5, target: 127.0.0.1:80, elapsed_s: 0.02, last: {status: 200},
           units: {shop@3.service: {ActiveState: active}}}
timeline_path:
  description: Path of the timeline written, or V(null).
  returned: always
  type: str
  sample: /var/lib/zerodown/shop-restart.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._module import finish
from ansible_collections.zerodown.deploy.plugins.module_utils._restart import MODES, RestartSettings, run_restart
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd


def run_module(module: AnsibleModule):
    """The measured restart of module_utils/_restart, with the module's systemctl (optional in command mode) and warnings."""
    settings = RestartSettings(module.params)
    return run_restart(settings, lambda required: Systemd.for_module(module, required=required), check_mode=module.check_mode,
                       warn=module.warn)


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
            post_path=dict(type='str'),
            post_body=dict(type='str', default='zerodown=probe'),
            keep_alive=dict(type='bool', default=False),
            timeout=dict(type='float', default=10),
            before_seconds=dict(type='float', default=2, aliases=['baseline_seconds']),
            after_seconds=dict(type='float', default=2, aliases=['tail_seconds']),
            max_duration=dict(type='float', default=120),
            max_requests=dict(type='int', default=50000),
            ready_timeout=dict(type='float', default=60),
            max_failed=dict(type='int', default=0),
            max_latency_ratio=dict(type='float'),
            max_latency_factor=dict(type='float'),
            latency_allowance_ms=dict(type='float', default=0),
            boot_allowance=dict(type='bool', default=False),
            slots=dict(type='dict', options=dict(
                listen=dict(type='str', required=True),
                servers_dir=dict(type='path', required=True),
                server_options=dict(type='str', default=''),
                nginx_service=dict(type='str', default='nginx'),
                nginx_binary=dict(type='path', default='/usr/sbin/nginx'),
                drain_timeout=dict(type='float', default=60),
            )),
            gate_successes=dict(type='int', default=0),
            gate_timeout=dict(type='float', default=30),
            timeline_path=dict(type='path'),
            marker_header=dict(type='str', default='X-Served-By'),
            ports=dict(type='list', elements='int'),
            drain_timeout=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module, restarts=module.params['service'])


if __name__ == '__main__':
    main()
