# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The blue/green switch of proxy mode (internal), shared by the ``blue_green`` and ``zero_downtime_restart`` modules,
and the ``blue_green`` module's backend.

Proxy mode is for apps that bind their own TCP port. The units (rendered by
the ``socket_service`` role) are::

    NAME.socket  ->  NAME.service           systemd-socket-proxyd LINK
                     LINK = /var/lib/zerodown/NAME/live.sock -> /run/zerodown/NAME/slot-PORT.sock
    NAME-slot@PORT.socket -> NAME-slot@PORT.service   systemd-socket-proxyd 127.0.0.1:PORT
    NAME-app@PORT.service                    the app, PORT=PORT in its environment

The public proxy is never restarted: socket-proxyd installs no signal
handler, so stopping it resets every connection it carries. It connect()s
its target anew for every client connection, and connect() resolves the
symlink LINK at that moment, so replacing LINK (rename(2), atomic) sends new
connections to the other slot while those already open finish on the old
one. The switch: start the idle slot's app and wait until it answers its
health path, start its slot socket, replace LINK, wait until the old port
has no established connection, stop the old slot.

Standard library only (no ``ansible.*``); systemctl runs through the
collection's one systemd client (``_systemd.Systemd``) over a
``run_command(argv, environ_update=...)`` callable (``AnsibleModule.run_command``
in the modules, a fake in the unit tests). Unit names, LINK and the slot
sockets' paths come from ``_names``, as the role's templates get them.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_symlink, read_link
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, header_value, request_path
from ansible_collections.zerodown.deploy.plugins.module_utils._names import SlotUnits, link_path, slot_dir, slot_socket_path
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import (
    DESCRIBED_PROPERTIES,
    SystemdError,
    describe_state,
    relative_steps,
    running,
    start_failure,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._validate import ValidationError, service_name

DEFAULT_PORTS = (8001, 8002)
DEFAULT_DRAIN_TIMEOUT = 30.0
MAX_READY_TIMEOUT = 3600
SLOT_SOCKET_RE = re.compile(r'slot-(\d{1,5})\.sock')  # used with fullmatch() on the link target's base name

# A connection is "in flight" on the old port while the app's side of it is ESTABLISHED.
TCP_ESTABLISHED = '01'
PROC_NET_TCP = ('/proc/net/tcp', '/proc/net/tcp6')
# How long the old port must stay without a connection before it counts as drained: a client that
# resolved LINK just before the rename may still be on its way through the old slot's proxy.
DRAIN_QUIET_SECONDS = 1.0
DRAIN_POLL_INTERVAL = 0.1
HEALTH_SUCCESSES = 3
HEALTH_INTERVAL = 0.1
PROBE_TIMEOUT = 5.0
# A failed slot's state in messages: the usual properties, its exit status and how often Restart= restarted it.
FAILED_SLOT_PROPERTIES = DESCRIBED_PROPERTIES + ('ExecMainStatus', 'NRestarts')


class BlueGreenError(Exception):
    """A step of the switch failed; the message says what, and what state the slots were left in."""


# -- arguments -------------------------------------------------------------------------------------


def check_ports(ports) -> tuple:
    """Exactly two distinct TCP ports, 1 to 65535 (the app binds them on 127.0.0.1)."""
    ports = list(ports or [])
    if len(ports) != 2:
        raise ValueError('ports must list exactly 2 TCP ports (one per slot), got %d: %s' % (len(ports), ports))
    try:
        numbers = [int(port) for port in ports]
    except (TypeError, ValueError):
        raise ValueError('ports must be integers, got %s' % (ports,))
    bad = [port for port in numbers if not 1 <= port <= 65535]
    if bad:
        raise ValueError('ports must be between 1 and 65535, got %s' % bad)
    if numbers[0] == numbers[1]:
        raise ValueError('ports must be 2 different ports, got %d twice' % numbers[0])
    return tuple(numbers)


def check_drain_timeout(value) -> float:
    if value is None or value <= 0 or value > 3600:
        raise ValueError('drain_timeout must be > 0 and <= 3600 seconds, got %s' % value)
    return float(value)


# -- which slot is live ----------------------------------------------------------------------------


def port_of_target(target) -> int | None:
    """The port of a slot socket path such as /run/zerodown/shop/slot-8001.sock, or None."""
    if not target:
        return None
    match = SLOT_SOCKET_RE.fullmatch(os.path.basename(target))
    return int(match.group(1)) if match else None


def live_port(link: str) -> int | None:
    """The live slot's port, read from LINK's target; None before the first switch."""
    return port_of_target(read_link(link))


def idle_port(live: int | None, ports) -> int:
    """The slot to start: the configured port that is not live (the first one when none of them is)."""
    for port in ports:
        if port != live:
            return port
    raise ValueError('no idle port in %s (live %s)' % (list(ports), live))


def replace_link(link: str, target: str) -> None:
    """Point LINK at ``target`` in one rename(2): every connect() sees the old or the new slot, never nothing."""
    os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
    atomic_symlink(target, link)


# -- in-flight connections -------------------------------------------------------------------------


def count_connections(text: str, port: int, states=(TCP_ESTABLISHED,)) -> int:
    """Count the sockets with local port ``port`` in one of ``states`` in /proc/net/tcp(6) text.

    A line is ``sl local_address rem_address st ...`` with addresses as
    ``HEXADDR:HEXPORT``; the first line is a header.
    """
    count = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or ':' not in fields[1]:
            continue
        try:
            local_port = int(fields[1].rsplit(':', 1)[1], 16)
        except ValueError:
            continue  # the header line
        if local_port == port and fields[3].upper() in states:
            count += 1
    return count


def established(port: int, paths=PROC_NET_TCP) -> int:
    """Established inbound connections of ``port`` (the app's side), over IPv4 and IPv6; a missing file counts 0."""
    total = 0
    for path in paths:
        try:
            with open(path, encoding='ascii', errors='replace') as handle:
                total += count_connections(handle.read(), port)
        except FileNotFoundError:
            continue  # no IPv6 in this kernel
    return total


class PortDrain:
    """How the old slot's port drained: whether it went quiet, after how long, and the connections left."""

    def __init__(self, drained: bool, waited_s: float, connections: int):
        self.drained = drained
        self.waited_s = waited_s
        self.connections = connections

    def to_dict(self) -> dict:
        return {'drained': self.drained, 'waited_s': round(self.waited_s, 3), 'connections_left': self.connections}


def wait_drained(port: int, timeout: float, quiet: float = DRAIN_QUIET_SECONDS, interval: float = DRAIN_POLL_INTERVAL,
                 count=established, clock=time.monotonic, sleep=time.sleep) -> PortDrain:
    """Wait until ``port`` has had no established connection for ``quiet`` seconds in a row, at most ``timeout`` seconds.

    ``count(port)`` gives the connections; the instances layout passes its own (module_utils/_flip.py counts the Unix
    sockets of the slots it took out, and ``port`` is unused there).

    Polled, never slept for a fixed time: with no request in flight it ends
    after ``quiet``. On timeout it returns ``drained=False`` with the count
    left; the caller warns and goes on (a client holding an idle keep-alive
    connection would otherwise block every deploy).
    """
    started = clock()
    deadline = started + timeout
    quiet_since = None
    while True:
        now = clock()
        connections = count(port)
        if connections:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        if quiet_since is not None and now - quiet_since >= quiet:
            return PortDrain(True, now - started, 0)
        if now >= deadline:
            return PortDrain(False, now - started, connections)
        sleep(max(min(interval, deadline - now), 0))


# -- the switch ------------------------------------------------------------------------------------

# What a step of the switch can raise: its own errors, and a systemctl call that failed.
SWITCH_ERRORS = (BlueGreenError, SystemdError)


class Switch:
    """Blue/green over two slots of one app. Call :meth:`switch` or :meth:`ensure_started` once per instance.

    ``systemd`` is a ``_systemd.Systemd``; every state change is recorded in its steps.
    """

    def __init__(self, name: str, ports, systemd, health_path: str = '/', host_header=None, ready_timeout: float = 60.0,
                 drain_timeout: float = DEFAULT_DRAIN_TIMEOUT, probe_timeout: float = PROBE_TIMEOUT, link: str | None = None,
                 socket_dir: str | None = None, warn=None, count=established):
        self.name = name
        self.ports = check_ports(ports)
        self.systemd = systemd
        self.health_path = health_path
        self.host_header = host_header
        self.ready_timeout = ready_timeout
        self.drain_timeout = check_drain_timeout(drain_timeout)
        self.probe_timeout = probe_timeout
        self.link = link or link_path(name)
        self.socket_dir = socket_dir or slot_dir(name)
        self.warn = warn or (lambda message: None)
        self.count = count
        self.drain_quiet = DRAIN_QUIET_SECONDS
        self.pids = {}
        self.started_wall = None
        self.result = {'link': self.link, 'live_before': None, 'live_after': None, 'switched': False, 'drain': None, 'changed': False}

    def units(self, port: int) -> SlotUnits:
        return SlotUnits(self.name, port)

    def socket_path(self, port: int) -> str:
        """The slot's socket: _names' path, in ``socket_dir`` when one was given (the tests' temporary directory)."""
        return os.path.join(self.socket_dir, os.path.basename(slot_socket_path(self.name, port)))

    # -- reading ----------------------------------------------------------------------------------

    def read_slots(self) -> dict:
        """Which slot is live and which one a switch would start; reads LINK only."""
        live = live_port(self.link)
        return {'live': live, 'idle': idle_port(live, self.ports), 'link': self.link, 'link_target': read_link(self.link)}

    def slot_running(self, port: int) -> bool:
        units = self.units(port)
        return running(self.systemd.show(units.app)) and running(self.systemd.show(units.socket))

    def slot_active(self, port: int) -> bool:
        """Any unit of the slot active or on its way (the leftovers of an interrupted switch count)."""
        return any(self.systemd.show(unit).get('ActiveState') not in ('inactive', 'failed', None) for unit in self.units(port).all)

    # -- the steps --------------------------------------------------------------------------------

    def wait_active(self, unit: str, deadline: float) -> None:
        self.systemd.wait(unit, deadline, running, fail=start_failure, what='active',
                          within='within ready_timeout (%g s)' % self.ready_timeout, interval=HEALTH_INTERVAL, described=False)

    def _probe(self, endpoint: str, deadline: float, watch: str) -> None:
        """The health path answers 2xx HEALTH_SUCCESSES times in a row; ends at once when the watched unit fails."""
        def abort():
            reason = start_failure(self.systemd.show(watch))
            return None if reason is None else 'stopped early because %s %s' % (watch, reason)
        try:
            wait_healthy(parse_endpoint(endpoint), self.health_path, deadline, successes=HEALTH_SUCCESSES, host_header=self.host_header,
                         probe_timeout=self.probe_timeout, interval=HEALTH_INTERVAL, abort=abort, limit=self.ready_timeout)
        except NotHealthy as exc:
            raise BlueGreenError(str(exc))

    def start_slot(self, port: int) -> None:
        """Start the app of ``port`` and its slot socket, and prove both answer; on failure stop them again and raise.

        The app is restarted, not just started: a leftover process of an
        interrupted switch must not pass for the new release.
        """
        units = self.units(port)
        deadline = time.monotonic() + self.ready_timeout
        self.started_wall = time.time()
        try:
            step = self.systemd.run('restart', [units.app])
            self.wait_active(units.app, deadline)
            # Straight at the app first: a failure here is the app's, not the proxies'.
            self._probe('127.0.0.1:%d' % port, deadline, units.app)
            step['ready'] = time.monotonic()
            step = self.systemd.run('start', [units.socket])
            # Then through the slot socket and its proxy, the path the public proxy will take.
            self._probe('unix:' + self.socket_path(port), deadline, units.app)
            step['ready'] = time.monotonic()
        except SWITCH_ERRORS as exc:
            message = self._failed_slot(port, str(exc))
            raise BlueGreenError(message)
        self.pids[units.app]['new'] = self.systemd.main_pid(units.app)

    def _failed_slot(self, port: int, why: str) -> str:
        units = self.units(port)
        state = self.systemd.describe(units.app, FAILED_SLOT_PROPERTIES)
        journal = self.systemd.journal([units.app], since=self.started_wall)
        self.pids[units.app]['new'] = 0
        try:
            self.systemd.run('stop', units.all)
            # A failed unit would leave the system "degraded"; the message above has its state.
            self.systemd.run('reset-failed', [units.app], check=False)
        except SWITCH_ERRORS as exc:
            why += '; stopping the new slot failed too: %s' % exc
        live = self.result['live_before']
        kept = ('the live slot %s and %s are untouched' % (live, self.link)) if live is not None else '%s was not created' % self.link
        return ('the new slot %d did not come up: %s. Unit state: %s. It was stopped; %s.%s'
                % (port, why, state, kept, (' Last journal lines: ' + journal) if journal else ''))

    def swap_link(self, port: int) -> None:
        target = self.socket_path(port)
        step = self.systemd.record(['symlink', target, self.link], [])
        try:
            replace_link(self.link, target)
        except OSError as exc:
            step['rc'] = 1
            step['returned'] = time.monotonic()
            raise BlueGreenError('could not point %s at %s: %s' % (self.link, target, exc))
        step['rc'] = 0
        step['returned'] = step['ready'] = time.monotonic()
        self.result['switched'] = True

    def drain(self, port: int) -> PortDrain:
        step = self.systemd.record(['drain', str(port)], [self.units(port).app])
        outcome = wait_drained(port, self.drain_timeout, quiet=self.drain_quiet, count=self.count)
        step['rc'] = 0 if outcome.drained else 1
        step['returned'] = time.monotonic()
        step['ready'] = step['returned'] if outcome.drained else None
        if not outcome.drained:
            self.warn('%s still had %d established connection(s) after drain_timeout (%g s); the old slot was stopped anyway'
                      % (self.units(port).app, outcome.connections, self.drain_timeout))
        return outcome

    def retire(self, port: int) -> None:
        """Stop and disable a slot that LINK no longer points at."""
        units = self.units(port)
        self.systemd.run('stop', units.all)
        self.systemd.run('disable', units.persistent)
        if units.app in self.pids:
            self.pids[units.app]['new'] = 0

    # -- the two operations -----------------------------------------------------------------------

    def _remember_pids(self, ports) -> None:
        for port in ports:
            unit = self.units(port).app
            self.pids[unit] = {'old': self.systemd.main_pid(unit), 'new': None}

    def check_loaded(self, port: int) -> None:
        """The slot's units must exist (the role installs their templates) before anything is started."""
        missing = self.systemd.first_not_loaded([self.units(port).app, self.units(port).socket])
        if missing is not None:
            unit, state = missing
            raise BlueGreenError('unit %s does not exist or cannot be loaded (%s); nothing was changed. The socket_service role '
                                 'installs it with socket_service_mode: proxy' % (unit, describe_state(unit, state)))

    def switch(self) -> dict:
        """Start the idle slot, point LINK at it, drain and stop the live one. Returns :attr:`result`."""
        slots = self.read_slots()
        live, idle = slots['live'], slots['idle']
        self.result.update(live_before=live, idle=idle)
        self.check_loaded(idle)
        self._remember_pids([idle] + ([live] if live is not None else []))
        try:
            self.start_slot(idle)
        except BlueGreenError:
            if live is not None:  # untouched: it still runs what it ran
                unit = self.units(live).app
                self.pids[unit]['new'] = self.pids[unit]['old']
            raise
        self.swap_link(idle)
        self.result.update(live_after=idle, changed=True)
        self.systemd.run('enable', self.units(idle).persistent)
        if live is not None:
            self.result['drain'] = self.drain(live).to_dict()
            self.retire(live)
        return self.result

    def ensure_started(self) -> dict:
        """Bring a slot live when none is; otherwise change nothing but stray state (enablement, a leftover slot)."""
        live = self.read_slots()['live']
        if live is None or live not in self.ports or not self.slot_running(live):
            return self.switch()
        self.result.update(live_before=live, live_after=live, idle=idle_port(live, self.ports))
        units = self.units(live)
        if not self.systemd.is_enabled(units.persistent):
            self.systemd.run('enable', units.persistent)
            self.result['changed'] = True
        for port in self.ports:
            if port != live and self.slot_active(port):
                self._remember_pids([port])
                self.result['drain'] = self.drain(port).to_dict()
                self.retire(port)
                self.result['changed'] = True
        return self.result

    def would_change(self) -> bool:
        """What :meth:`ensure_started` would do, without doing it (check mode)."""
        live = live_port(self.link)
        if live is None or live not in self.ports or not self.slot_running(live):
            return True
        if not self.systemd.is_enabled(self.units(live).persistent):
            return True
        return any(self.slot_active(port) for port in self.ports if port != live)


# -- the blue_green module -------------------------------------------------------------------------


def check_options(params: dict) -> str:
    """The blue_green module's options beyond their types; returns the app's base name."""
    try:
        name = service_name(params['service'])
    except ValidationError as exc:
        raise ModuleError(str(exc))
    try:
        check_ports(params['ports'])
        check_drain_timeout(params['drain_timeout'])
    except ValueError as exc:
        raise ModuleError(str(exc))
    request_path('health_path', params['health_path'])
    if not 0 < params['ready_timeout'] <= MAX_READY_TIMEOUT:
        raise ModuleError('ready_timeout must be > 0 and <= %d seconds, got %s' % (MAX_READY_TIMEOUT, params['ready_timeout']))
    header_value('host_header', params['host_header'])
    return name


def diff_of(before: int | None, after: int | None, switch: Switch) -> dict:
    def side(port):
        return {'live_port': port, 'link_target': switch.socket_path(port) if port is not None else None}
    return {'before': side(before), 'after': side(after), 'before_header': switch.link, 'after_header': switch.link}


def _predict(switch: Switch, state: str) -> dict:
    """Check mode: what ``state`` would do. ``switched`` always switches; ``started`` reads the units to tell."""
    live = live_port(switch.link)
    if state == 'switched':
        changed, after = True, idle_port(live, switch.ports)
    else:
        try:
            changed = switch.would_change()
            live_ok = live in switch.ports and switch.slot_running(live)
        except SWITCH_ERRORS as exc:
            raise ModuleError(str(exc))
        after = live if live_ok else idle_port(live, switch.ports)
    return dict(switch.result, live_before=live, live_after=after, switched=after != live, changed=changed)


def run_blue_green(params: dict, systemd, check_mode: bool = False, diff: bool = False, warn=None):
    """The blue_green module: bring a slot live (``state=started``) or switch (``state=switched``).

    Returns ``(result, failure message or None)``; raises ModuleError for invalid options.
    """
    name = check_options(params)
    origin = time.monotonic()
    switch = Switch(name, params['ports'], systemd, health_path=params['health_path'], host_header=params['host_header'],
                    ready_timeout=params['ready_timeout'], drain_timeout=params['drain_timeout'], warn=warn)
    failure = None
    if check_mode:
        result = _predict(switch, params['state'])
    else:
        try:
            if params['state'] == 'switched':
                switch.switch()
            else:
                switch.ensure_started()
        except SWITCH_ERRORS as exc:
            failure = str(exc)
        result = dict(switch.result)
        result['changed'] = bool(result['changed'] or systemd.steps)
    result.pop('idle', None)
    result['link'] = switch.link
    result['pids'] = switch.pids
    result['steps'] = relative_steps(systemd.steps, origin)
    if diff:
        result['diff'] = diff_of(result['live_before'], result['live_after'], switch)
    return result, failure
