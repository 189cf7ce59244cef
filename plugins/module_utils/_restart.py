# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""A restart measured under HTTP load (internal): the ``zero_downtime_restart`` module's backend.

:class:`RestartSettings` validates one run's options. :func:`check_units_loaded`
refuses to start when a unit is missing. :class:`Action` runs the action (a
plain or rolling restart, a reload, a command, or the blue/green switch of
``_bluegreen``) and waits for readiness: the unit active with a new main PID,
then the health path 2xx three times in a row (``_health``). The load of
``_load`` runs before, during and after it, and the result names those phases
the way the load library does: ``before``, ``during``, ``after``.

Every systemctl call goes through the one systemd client, ``_systemd``; its
steps (monotonic times) are reported in milliseconds after the start of the
load. Unit names come from ``_names``, the service-name rule from
``_validate``. Standard library only (no ``ansible.*``).
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._bluegreen import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_PORTS,
    SWITCH_ERRORS,
    Switch,
    check_drain_timeout,
    check_ports,
    idle_port,
    live_port,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._flip import Flip, FlipError, Slots
from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write
from ansible_collections.zerodown.deploy.plugins.module_utils._health import MAX_SUCCESSES, MAX_TIMEOUT as MAX_GATE_TIMEOUT
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, hold_to_gate, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._load import BEGIN_MARK, END_MARK, PHASES, LoadRun, phase_timing, timeline
from ansible_collections.zerodown.deploy.plugins.module_utils._module import (
    ModuleError,
    endpoint,
    header_value,
    number_text,
    request_path,
    within,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendError, Nginx
from ansible_collections.zerodown.deploy.plugins.module_utils._names import SlotUnits, instance_units, link_path, service_units
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import (
    SystemdError,
    describe_state,
    loaded,
    relative_steps,
    unit_failure,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._validate import MAX_RATE, MAX_REQUESTS, MAX_SECONDS, ValidationError, service_name

MODES = ('auto', 'restart', 'rolling', 'reload', 'command', 'blue_green', 'surge', 'drain_rolling')
# The modes of the instances layout behind nginx (module_utils/_flip.py), which need the slots option.
SLOT_MODES = ('surge', 'drain_rolling')
# Options that only mean something with mode=blue_green.
BLUE_GREEN_OPTIONS = ('ports', 'drain_timeout')
READY_SUCCESSES = 3
POLL_INTERVAL = 0.05
PROBE_TIMEOUT = 5.0
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # used with fullmatch()

MAX_INSTANCES = 256
MAX_TIMEOUT = 300.0
MAX_WORKERS = 64


class ActionError(Exception):
    """The action (restart, readiness) failed; the load measurements are still reported."""


# -- settings -------------------------------------------------------------------------------


class RestartSettings:
    """The validated options of one run (ModuleError otherwise); ``warnings`` to pass on."""

    def __init__(self, params: dict):
        self.warnings = []
        try:
            self.service = service_name(params['service'])
        except ValidationError as exc:
            raise ModuleError(str(exc))
        self.instances = within('instances', params['instances'], 1, MAX_INSTANCES)
        self.units = service_units(self.service, self.instances)
        mode = params['mode']
        if mode == 'auto':
            mode = 'rolling' if self.instances >= 2 else 'restart'
        self.mode = mode
        self._blue_green(params)
        self._slots(params)
        self.command = params['command']
        if mode == 'command':
            if not self.command or not self.command[0]:
                raise ModuleError('mode=command requires command, a non-empty list of arguments')
        elif self.command:
            raise ModuleError('command is only used with mode=command (mode is %s)' % params['mode'])
        else:
            self.command = None

        self.target = endpoint('target', params['target'] or 'unix:/run/%s.sock' % self.service, self.warnings)
        if params['health_target'] and mode in ('blue_green',) + SLOT_MODES:
            raise ModuleError('health_target is not used with mode=%s: the new %s is probed on its own %s before it goes live'
                              % (mode, 'slot' if mode == 'blue_green' else 'instance',
                                 'port, http://127.0.0.1:PORT,' if mode == 'blue_green' else 'socket'))
        self.health_target = endpoint('health_target', params['health_target'], self.warnings) if params['health_target'] else self.target
        self.path = request_path('path', params['path'])
        # POSTs can change data: they go where the caller named a safe endpoint, else to path.
        self.post_path = request_path('post_path', params['post_path']) if params.get('post_path') else self.path
        self.health_path = request_path('health_path', params['health_path'])
        self.host_header = header_value('host_header', params['host_header'])
        self.marker_header = params['marker_header'] or None
        if self.marker_header is not None and not HEADER_NAME_RE.fullmatch(self.marker_header):
            raise ModuleError('marker_header must be an HTTP header name, got %r' % self.marker_header)

        self.workers = within('workers', params['workers'], 1, MAX_WORKERS)
        self.rate = params['rate']
        if self.rate is not None:
            within('rate', self.rate, 0, MAX_RATE, ' requests/s', low_open=True)
        self.post_ratio = within('post_ratio', params['post_ratio'], 0.0, 1.0)
        self.post_body = params['post_body']
        self.keep_alive = params['keep_alive']
        self.timeout = within('timeout', params['timeout'], 0, MAX_TIMEOUT, ' seconds', low_open=True)
        self.before_seconds = within('before_seconds', params['before_seconds'], 0, MAX_SECONDS, ' seconds')
        self.after_seconds = within('after_seconds', params['after_seconds'], 0, MAX_SECONDS, ' seconds')
        self.max_duration = within('max_duration', params['max_duration'], 0, MAX_SECONDS, ' seconds', low_open=True)
        self.max_requests = within('max_requests', params['max_requests'], 1, MAX_REQUESTS)
        self.ready_timeout = within('ready_timeout', params['ready_timeout'], 0, MAX_SECONDS, ' seconds', low_open=True)
        self.max_failed = within('max_failed', params['max_failed'], 0, None)
        if self.before_seconds + self.after_seconds >= self.max_duration:
            raise ModuleError('max_duration (%s s) must exceed before_seconds + after_seconds (%s s), or the load would end before the '
                              'action' % (number_text(self.max_duration), number_text(self.before_seconds + self.after_seconds)))
        self.max_latency_factor = params.get('max_latency_factor')
        self.latency_allowance_ms = params.get('latency_allowance_ms') or 0.0
        self.boot_allowance = bool(params.get('boot_allowance'))
        if self.max_latency_factor is not None:
            within('max_latency_factor', self.max_latency_factor, 0, None, low_open=True)
            if self.before_seconds <= 0:
                raise ModuleError('max_latency_factor needs a baseline: before_seconds must be > 0')
        self.max_latency_ratio = params['max_latency_ratio']
        if self.max_latency_ratio is not None:
            within('max_latency_ratio', self.max_latency_ratio, 0, None, low_open=True)
            if self.before_seconds <= 0:
                raise ModuleError('max_latency_ratio needs a baseline: before_seconds must be > 0')
        # The health gate at the end: the health_check module's bounds (0: no gate).
        self.gate_successes = within('gate_successes', params['gate_successes'], 0, MAX_SUCCESSES)
        self.gate_timeout = within('gate_timeout', params['gate_timeout'], 0, MAX_GATE_TIMEOUT, ' seconds', low_open=True)
        self.timeline_path = params['timeline_path']
        if self.timeline_path is not None:
            # A missing directory is created when the timeline is written (the
            # first deploy, or one after a killed run, has no report directory).
            directory = existing_ancestor(os.path.dirname(self.timeline_path) or '.')
            if not os.path.isdir(directory):
                raise ModuleError('timeline_path: %s is not a directory' % directory)
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

    def _slots(self, params: dict) -> None:
        """Settings of the instances layout's modes: the slots behind nginx; refused in the other modes."""
        self.slots = params.get('slots')
        if self.mode not in SLOT_MODES:
            if self.slots:
                raise ModuleError('slots is only used with mode=surge or mode=drain_rolling (mode is %s)' % params['mode'])
            return
        if not self.slots:
            raise ModuleError('mode=%s needs slots (the instances behind nginx)' % self.mode)
        if self.mode == 'drain_rolling' and self.instances < 2:
            raise ModuleError('mode=drain_rolling takes one instance out of nginx at a time: instances must be 2 or more, got %d; '
                              'one instance restarts with mode=surge' % self.instances)
        slots = Slots(self.service, self.instances, self.slots['listen'], self.slots['servers_dir'])
        live = slots.live()
        # The restart's units: the live slots and, for a surge, the ones the new release starts in.
        starting = slots.next_set(live) if self.mode == 'surge' else []
        self.units = [instance_units(self.service, k).service for k in sorted(set(live) | set(starting))]

    def describe(self) -> str:
        """What the action is, for the report line."""
        if self.mode == 'surge':
            return 'surge of %d instance%s behind nginx' % (self.instances, '' if self.instances == 1 else 's')
        if self.mode == 'drain_rolling':
            return 'rolling restart of %d instances, each out of nginx while it restarts' % self.instances
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
            'before_seconds': float(self.before_seconds),
            'after_seconds': float(self.after_seconds),
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
            'gate': None,
        }

    def load(self) -> LoadRun:
        return LoadRun(self.target, duration=self.max_duration, max_requests=self.max_requests, workers=self.workers,
                       post_ratio=self.post_ratio, paths=(self.path,), post_paths=(self.post_path,), post_body=self.post_body,
                       rate=self.rate, timeout=self.timeout, keep_alive=self.keep_alive, host_header=self.host_header, marker_header=self.marker_header)


def check_units_loaded(settings: RestartSettings, systemd) -> None:
    """Every unit must exist before any load or restart (``systemd`` is a ``_systemd.Systemd``)."""
    units = list(settings.units)
    if settings.mode in SLOT_MODES:
        units = [instance_units(settings.service, 1).service, instance_units(settings.service, 1).socket]
    if settings.mode == 'blue_green':
        # Both slots' app and socket: the role installs them as templates, so an instance of each must load.
        units = [unit for port in settings.ports for unit in (SlotUnits(settings.service, port).app, SlotUnits(settings.service, port).socket)]
    try:
        missing = systemd.first_not_loaded(units)
    except SystemdError as exc:
        raise ModuleError(str(exc))
    if missing is not None:
        unit, state = missing
        raise ModuleError('unit %s does not exist or cannot be loaded (%s); nothing was restarted'
                          % (unit, describe_state(unit, state)))


# -- the action -----------------------------------------------------------------------------


def _not_back(state: dict):
    """A restarted unit that failed or cannot be loaded will not come back."""
    return None if unit_failure(state) is None else 'did not come back'


class Action:
    """Runs the restart / reload / command / switch and the readiness waits, recording PIDs; the steps are the systemd client's."""

    def __init__(self, settings: RestartSettings, systemd, origin: float, warn=None):
        self.settings = settings
        self.systemd = systemd
        self.origin = origin
        self.warn = warn
        self.ran = False
        self.pids = dict((unit, {'old': None, 'new': None}) for unit in settings.units)
        self.known = set()  # units systemctl could read (in command mode: the ones that exist)
        self.started_at = None
        self.finished_at = None
        self.blue_green = None
        self.surge = None

    def _show(self, unit: str) -> t.Optional[dict]:
        """Unit state; None in command mode when systemctl is missing or the unit is not loaded."""
        if not self.systemd.available:
            return None
        state = self.systemd.show(unit)
        if self.settings.mode == 'command' and not loaded(state):
            return None
        self.known.add(unit)
        return state

    def _old_pids(self, units) -> None:
        for unit in units:
            state = self._show(unit)
            if state is not None:
                self.pids[unit]['old'] = state['MainPID']

    def wait_unit(self, unit: str, deadline: float, new_pid: bool) -> None:
        """Wait until the unit is active (with a main PID other than the old one when ``new_pid``)."""
        old = self.pids[unit]['old']
        seen = {}

        def ready(state: dict) -> bool:
            seen['pid'] = state['MainPID']
            return state.get('ActiveState') == 'active' and (not new_pid or state['MainPID'] not in (0, old))

        try:
            self.systemd.wait(unit, deadline, ready, fail=_not_back, interval=POLL_INTERVAL,
                              what='active with a main PID other than %s' % old if new_pid else 'active',
                              within='within ready_timeout (%s s)' % number_text(self.settings.ready_timeout))
        finally:
            if 'pid' in seen:
                self.pids[unit]['new'] = seen['pid']

    def wait_healthy(self, deadline: float) -> None:
        """Wait for READY_SUCCESSES consecutive 2xx answers of the health path."""
        settings = self.settings
        try:
            wait_healthy(settings.health_target, settings.health_path, deadline, successes=READY_SUCCESSES, host_header=settings.host_header,
                         probe_timeout=min(settings.timeout, PROBE_TIMEOUT), interval=POLL_INTERVAL, limit=settings.ready_timeout)
        except NotHealthy as exc:
            raise ActionError(str(exc))

    def _ready(self, step: dict, units, new_pid: bool) -> None:
        deadline = self.systemd.clock() + self.settings.ready_timeout
        for unit in units:
            if self.settings.mode == 'command':
                state = self._show(unit)
                if state is not None:
                    self.pids[unit]['new'] = state['MainPID']
            else:
                self.wait_unit(unit, deadline, new_pid)
        self.wait_healthy(deadline)
        step['ready'] = self.systemd.clock()

    def run(self) -> None:
        """The action; raises ActionError (or the systemd client's SystemdError) when it or a readiness wait fails."""
        self.started_at = self.systemd.clock()
        try:
            settings = self.settings
            if settings.mode == 'blue_green':
                self.switch_slots()
            elif settings.mode in SLOT_MODES:
                self.flip_slots()
            elif settings.mode == 'rolling':
                for unit in settings.units:
                    self._old_pids([unit])
                    self.ran = True
                    self._ready(self.systemd.run('restart', [unit]), [unit], new_pid=True)
            elif settings.mode in ('restart', 'reload'):
                self._old_pids(settings.units)
                self.ran = True
                self._ready(self.systemd.run(settings.mode, settings.units), settings.units, new_pid=settings.mode == 'restart')
            else:
                self._old_pids(settings.units)
                self.ran = True
                step = self.systemd.step(list(settings.command), settings.units,
                                         described=[unit for unit in settings.units if unit in self.known])
                self._ready(step, settings.units, new_pid=False)
        finally:
            self.finished_at = self.systemd.clock()

    def switch_slots(self) -> None:
        """mode=blue_green: the proxy-mode switch of module_utils/_bluegreen, its steps and PIDs recorded like the other modes'."""
        settings = self.settings
        switch = Switch(settings.service, settings.ports, self.systemd, health_path=settings.health_path, host_header=settings.host_header,
                        ready_timeout=settings.ready_timeout, drain_timeout=settings.drain_timeout,
                        probe_timeout=min(settings.timeout, PROBE_TIMEOUT), warn=self.warn)
        self.ran = True
        try:
            switch.switch()
        except SWITCH_ERRORS as exc:
            raise ActionError(str(exc))
        finally:
            self.pids.update(switch.pids)
            self.blue_green = dict((key, value) for key, value in switch.result.items() if key not in ('changed', 'idle'))

    def flip_slots(self) -> None:
        """mode=surge or drain_rolling: the instances behind nginx of module_utils/_flip, recorded like the other modes."""
        settings = self.settings
        slots = settings.slots
        flip = Flip(Slots(settings.service, settings.instances, slots['listen'], slots['servers_dir'], slots['server_options']),
                    self.systemd, nginx=Nginx(slots['nginx_binary'], self.systemd, slots['nginx_service']),
                    health_path=settings.health_path, host_header=settings.host_header, ready_timeout=settings.ready_timeout,
                    drain_timeout=slots['drain_timeout'], probe_timeout=min(settings.timeout, PROBE_TIMEOUT), warn=self.warn)
        self.ran = True
        try:
            if settings.mode == 'surge':
                flip.surge()
            else:
                flip.rolling()
        except (FlipError, BackendError, NotHealthy) as exc:
            raise ActionError(str(exc))
        finally:
            self.pids.update(flip.pids)
            self.surge = dict((key, value) for key, value in flip.result.items() if key != 'changed')

    def serving_units(self) -> list:
        """The services that serve after the action: the health gate watches them."""
        settings = self.settings
        if settings.mode in SLOT_MODES and self.surge is not None:
            return [instance_units(settings.service, k).service for k in self.surge.get('live_after') or []]
        if settings.mode == 'blue_green' and self.blue_green is not None:
            live = self.blue_green.get('live_after')
            return ['%s.service' % settings.service] + ([SlotUnits(settings.service, live).app] if live is not None else [])
        if settings.mode == 'command':
            return [unit for unit in settings.units if unit in self.known]
        return list(settings.units)

    @property
    def steps(self) -> list:
        """The steps, in milliseconds after the start of the load."""
        return relative_steps(self.systemd.steps, self.origin, scale=1000.0, suffix='_ms')

    @property
    def duration_s(self) -> t.Optional[float]:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)


# -- results --------------------------------------------------------------------------------


def _fmt_ms(value) -> str:
    return 'n/a' if value is None else '%.1f ms' % value


def phases_result(report: dict) -> dict:
    """The load report's phases (before, during, after), each with its length and throughput."""
    timing = phase_timing(report)
    phases = {}
    for name in PHASES:
        stats = dict(report['phases'][name])
        stats.update(timing[name])
        phases[name] = stats
    return phases


def latency_ratio(phases: dict) -> t.Optional[float]:
    base = phases['before']['latency_ms']['p99']
    during = phases['during']['latency_ms']['p99']
    if not base or during is None:
        return None
    return round(during / base, 3)


def summary_line(settings: RestartSettings, result: dict) -> str:
    during = result['phases']['during']['latency_ms']
    return '%s: %s, %d requests, %d failed, during p99 %s max %s, longest gap %s' % (
        settings.service, settings.describe(), result['requests'], result['failed_requests'], _fmt_ms(during['p99']),
        _fmt_ms(during['max']), _fmt_ms(result['gap_ms']))


def build_result(settings: RestartSettings, run: LoadRun, action: Action, covered: bool) -> dict:
    report = run.summarize()
    result = settings.base_result()
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
    if settings.mode == 'blue_green':
        result['blue_green'] = action.blue_green
    if settings.mode in SLOT_MODES:
        result['surge'] = action.surge
    result['latency_ratio'] = latency_ratio(result['phases'])
    result['slowest'] = slowest_request(run, action)
    result['report'] = summary_line(settings, result)
    return result


def slowest_request(run: LoadRun, action: Action) -> t.Optional[dict]:
    """The slowest request of the during phase: its latency, when it started (s after the load began) and the step that ran."""
    marks = dict(run.marks)
    begin, end = marks.get(BEGIN_MARK), marks.get(END_MARK)
    if begin is None or end is None:
        return None
    during = [record for record in run.results if record.end >= begin and record.start <= end]
    if not during:
        return None
    worst = max(during, key=lambda record: record.latency)
    step = None
    for candidate in action.systemd.steps:
        if candidate['started'] <= worst.end and (candidate.get('ready') or candidate.get('returned') or end) >= worst.start:
            step = candidate
    return {'latency_ms': round(worst.latency * 1000.0, 3), 'at_s': round(worst.start - run.started_at, 3),
            'step': ' '.join(str(arg) for arg in step['argv']) if step else None,
            'units': list(step['units']) if step else []}


def latency_bound(settings: RestartSettings, result: dict) -> t.Optional[float]:
    """The highest restart latency allowed, in ms: max_latency_factor x the steady p99, plus the allowance, plus (boot_allowance)
    the time the action's steps took to come back (an instance restarting in place has its clients wait for its boot)."""
    if settings.max_latency_factor is None:
        return None
    base = result['phases']['before']['latency_ms']['p99']
    if base is None:
        return None
    bound = settings.max_latency_factor * base + settings.latency_allowance_ms
    if settings.boot_allowance and result['action_duration_s'] is not None:
        bound += result['action_duration_s'] * 1000.0
    return round(bound, 3)


def existing_ancestor(path: str) -> str:
    """The path itself, or the nearest of its parents that exists."""
    path = os.path.abspath(path)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def write_timeline(settings: RestartSettings, run: LoadRun) -> None:
    entries = timeline(run.results, run.marks, run.started_at)
    # The first report of an app finds no report directory yet: root's, like the reports in it.
    os.makedirs(os.path.dirname(settings.timeline_path), mode=0o750, exist_ok=True)
    atomic_write(settings.timeline_path, json.dumps(entries, separators=(',', ':')) + '\n', mode=0o644)


def verdict(settings: RestartSettings, result: dict, warnings: list) -> t.Optional[str]:
    """The failure message, or None when the run passed its bounds."""
    problems = []
    if result['failed_requests'] > settings.max_failed:
        kinds = ', '.join('%s=%d' % (kind, count) for kind, count in result['failures_by_kind'].items() if count)
        problems.append('%d of %d requests failed (max_failed %d): %s' % (result['failed_requests'], result['requests'],
                                                                          settings.max_failed, kinds))
    if settings.max_latency_ratio is not None:
        ratio = result['latency_ratio']
        base = result['phases']['before']['latency_ms']['p99']
        during = result['phases']['during']['latency_ms']['p99']
        if base is None:
            problems.append('max_latency_ratio cannot be checked: no successful request in the baseline')
        elif ratio is None:
            warnings.append('max_latency_ratio was not checked: no successful request overlapped the action')
        elif ratio > settings.max_latency_ratio:
            problems.append('p99 latency during the action is %.1f times the baseline (%s vs %s), above max_latency_ratio %s'
                            % (ratio, _fmt_ms(during), _fmt_ms(base), number_text(settings.max_latency_ratio)))
    bound = latency_bound(settings, result)
    result['latency_bound_ms'] = bound
    slowest = result.get('slowest')
    if bound is not None and slowest is not None and slowest['latency_ms'] > bound:
        base = result['phases']['before']['latency_ms']['p99']
        problems.append('a request during the restart took %s (at %s s, while %s ran), above the bound of %s (%s x the steady p99 '
                        'of %s + %s%s); raise app_verify_max_latency_factor or app_verify_latency_allowance_ms if that is what '
                        'this app does' % (
                            _fmt_ms(slowest['latency_ms']), number_text(slowest['at_s']), slowest['step'] or 'no step',
                            _fmt_ms(bound), number_text(settings.max_latency_factor), _fmt_ms(base),
                            _fmt_ms(settings.latency_allowance_ms), ' + the restart itself' if settings.boot_allowance else ''))
    if not problems:
        return None
    return '%s. %s' % ('; '.join(problems), result['report'])


# -- the module -----------------------------------------------------------------------------


def run_restart(settings: RestartSettings, make_systemd, check_mode: bool = False, warn=None) -> t.Tuple[dict, t.Optional[str]]:
    """The zero_downtime_restart module. Returns ``(result, failure message or None)``.

    ``make_systemd(required)`` builds the systemd client (systemctl is optional in command mode); in check mode nothing runs
    and no client is built.
    """
    warn = warn or (lambda message: None)
    try:
        run = settings.load()  # validates the load settings; nothing is sent before start()
    except ValueError as exc:
        raise ModuleError(str(exc))
    for warning in settings.warnings:
        warn(warning)
    if check_mode:
        result = settings.base_result()
        result['changed'] = True
        result['report'] = '%s: would run a %s under load on %s (at most %s s and %d requests)' % (
            settings.service, settings.describe(), settings.target, number_text(settings.max_duration), settings.max_requests)
        return result, None

    systemd = make_systemd(settings.mode != 'command')
    if settings.mode != 'command':
        check_units_loaded(settings, systemd)

    error = None
    covered = False
    run.start()
    action = Action(settings, systemd, run.started_at, warn=warn)
    try:
        run.wait(settings.before_seconds)
        run.mark(BEGIN_MARK)
        try:
            action.run()
        except (ActionError, SystemdError) as exc:
            error = str(exc)
        covered = run.running
        run.mark(END_MARK)
        if error is None:
            run.wait(settings.after_seconds)
    finally:
        run.stop()

    result = build_result(settings, run, action, covered)
    result['changed'] = action.ran
    if not covered:
        warn('the load ended (stopped by %s) before the action and its readiness waits finished; the measurements do not cover '
             'the whole action. Raise max_duration or max_requests.' % result['stopped_by'])
    if settings.timeline_path is not None:
        try:
            write_timeline(settings, run)
            result['timeline_path'] = settings.timeline_path
        except OSError as exc:
            error = error or 'could not write timeline_path %s: %s' % (settings.timeline_path, exc)
    if error is not None:
        return result, '%s. %s' % (error, result['report'])
    warnings = []
    failure = verdict(settings, result, warnings)
    for warning in warnings:
        warn(warning)
    if failure is None and settings.gate_successes:
        failure = hold_restart_to_gate(settings, systemd, action, result)
    return result, failure


def hold_restart_to_gate(settings: RestartSettings, systemd, action: Action, result: dict) -> t.Optional[str]:
    """The health gate after a restart that passed, through the clients' way in; its result goes to ``result['gate']``."""
    serving = action.serving_units()
    # Every serving unit but blue/green's public proxy was started by this restart, which resets its NRestarts: any
    # automatic restart since is a crash.
    started = [unit for unit in serving if not (settings.mode == 'blue_green' and unit == '%s.service' % settings.service)]
    restarts = None if settings.mode == 'command' else dict.fromkeys(started, 0)
    gate, failure = hold_to_gate(systemd, settings.target, settings.health_path, settings.gate_successes, settings.gate_timeout,
                                 host_header=settings.host_header, units=serving, restarts=restarts,
                                 probe_timeout=min(settings.timeout, PROBE_TIMEOUT), what='gate_timeout')
    result['gate'] = gate
    if failure is None:
        return None
    return 'the health gate after the restart failed: %s. %s' % (failure, result['report'])
