# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The blue/green switch of proxy mode, shared by the ``blue_green`` and ``zero_downtime_restart`` modules.

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

Standard library only (no ``ansible.*``); systemctl runs through a
``run_command(argv, environ_update=...)`` callable (``AnsibleModule.run_command``
in the modules, a fake in the unit tests).
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_symlink, read_link
from ansible_collections.zerodown.deploy.plugins.module_utils._health import (
    SHOW_PROPERTIES,
    NotHealthy,
    describe_state,
    parse_show,
    unit_failure,
    wait_healthy,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint

DEFAULT_PORTS = (8001, 8002)
DEFAULT_DRAIN_TIMEOUT = 30.0
# Where the role's templates put LINK and the slot sockets; the templates and this module must agree.
LINK_DIR = '/var/lib/zerodown'
SOCKET_DIR = '/run/zerodown'
LINK_NAME = 'live.sock'
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
JOURNAL_LINES = 20
OUTPUT_TAIL = 2000


class BlueGreenError(Exception):
    """A step of the switch failed; the message says what, and what state the slots were left in."""


# -- names and paths -------------------------------------------------------------------------------


def link_path(name: str) -> str:
    """LINK: the fixed path the public proxy forwards to, persistent so a reboot comes back on the live slot."""
    return os.path.join(LINK_DIR, name, LINK_NAME)


def slot_socket_path(name: str, port: int) -> str:
    """The slot's Unix socket, which NAME-slot@PORT.socket listens on (its ListenStream=)."""
    return os.path.join(SOCKET_DIR, name, 'slot-%d.sock' % port)


class SlotUnits:
    """The three units of one slot."""

    def __init__(self, name: str, port: int):
        self.port = port
        self.app = '%s-app@%d.service' % (name, port)
        self.socket = '%s-slot@%d.socket' % (name, port)
        self.proxy = '%s-slot@%d.service' % (name, port)

    @property
    def all(self) -> list:
        """Stop order does not matter in one systemctl call: systemd orders the stop jobs by After=."""
        return [self.proxy, self.socket, self.app]

    @property
    def persistent(self) -> list:
        """What a reboot must start: the slot socket (it starts the slot proxy on demand) and the app."""
        return [self.socket, self.app]


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


class DrainResult:
    def __init__(self, drained: bool, waited_s: float, connections: int):
        self.drained = drained
        self.waited_s = waited_s
        self.connections = connections

    def to_dict(self) -> dict:
        return {'drained': self.drained, 'waited_s': round(self.waited_s, 3), 'connections_left': self.connections}


def wait_drained(port: int, timeout: float, quiet: float = DRAIN_QUIET_SECONDS, interval: float = DRAIN_POLL_INTERVAL,
                 count=established, clock=time.monotonic, sleep=time.sleep) -> DrainResult:
    """Wait until ``port`` has had no established connection for ``quiet`` seconds in a row, at most ``timeout`` seconds.

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
            return DrainResult(True, now - started, 0)
        if now >= deadline:
            return DrainResult(False, now - started, connections)
        sleep(max(min(interval, deadline - now), 0))


# -- systemd ---------------------------------------------------------------------------------------


def _tail(text) -> str:
    return (text or '').strip()[-OUTPUT_TAIL:]


class Systemctl:
    """The systemctl and journalctl calls of a switch; every state-changing call is recorded as a step."""

    def __init__(self, run_command, systemctl: str = 'systemctl', journalctl: str | None = 'journalctl', clock=time.monotonic):
        self.run_command = run_command
        self.systemctl = systemctl
        self.journalctl = journalctl
        self.clock = clock
        self.steps = []

    def _call(self, argv: list):
        return self.run_command(argv, environ_update={'LC_ALL': 'C'})

    def run(self, verb: str, units: list, check: bool = True) -> dict:
        """``systemctl VERB UNITS``; raises BlueGreenError on a non-zero exit when ``check``. Returns the recorded step."""
        argv = [self.systemctl, '--no-ask-password', verb] + list(units)
        step = self.record(argv, units)
        rc, out, err = self._call(argv)
        step['rc'] = rc
        step['returned'] = self.clock()
        if rc != 0 and check:
            raise BlueGreenError('%s failed with rc %d: %s' % (' '.join(argv), rc, _tail(err) or _tail(out) or '(no output)'))
        return step

    def record(self, argv: list, units: list) -> dict:
        """A step of the switch; also used for what is not a systemctl call (the link swap, the drain)."""
        now = self.clock()
        step = {'units': list(units), 'argv': list(argv), 'rc': None, 'started': now, 'returned': None, 'ready': None}
        self.steps.append(step)
        return step

    def show(self, unit: str) -> dict:
        argv = [self.systemctl, 'show', '--property=' + ','.join(SHOW_PROPERTIES + ('NRestarts',)), unit]
        rc, out, err = self._call(argv)
        if rc != 0:
            raise BlueGreenError('%s failed with rc %d: %s' % (' '.join(argv), rc, _tail(err) or _tail(out)))
        return parse_show(out)

    def is_enabled(self, units: list) -> bool:
        """True when every unit is enabled (systemctl is-enabled exits 0 when any one is, so read the lines)."""
        rc, out, dummy = self._call([self.systemctl, 'is-enabled'] + list(units))
        lines = out.split()
        return len(lines) == len(units) and all(line == 'enabled' for line in lines)

    def journal(self, units: list, lines: int = JOURNAL_LINES, since: float | None = None) -> str:
        """The units' last journal lines, since the UNIX time ``since`` (this start of the unit, not the ones before)."""
        if not self.journalctl or not lines:
            return ''
        argv = [self.journalctl, '--no-pager', '--output=cat', '--lines=%d' % lines] + ['--unit=' + unit for unit in units]
        if since is not None:
            argv.append('--since=@%d' % int(since))
        rc, out, dummy = self._call(argv)
        if rc != 0:
            return ''
        return ' | '.join(line.strip() for line in out.strip().splitlines() if line.strip())


def running(state: dict) -> bool:
    return state.get('LoadState') == 'loaded' and state.get('ActiveState') == 'active'


def start_failure(state: dict) -> str | None:
    """Why a starting app counts as failed, or None while it may still come up.

    Besides a failed unit, an app that exited and waits for its Restart=
    (SubState auto-restart) or that stopped has failed its start: waiting
    out ready_timeout would only hide that.
    """
    reason = unit_failure(state)
    if reason is not None:
        return reason
    if state.get('SubState') == 'auto-restart':
        return 'exited and is waiting to be restarted (Result=%s, exit status %s)' % (
            state.get('Result', '?'), state.get('ExecMainStatus', '?'))
    if state.get('ActiveState') in ('inactive', 'deactivating'):
        return 'stopped (ActiveState=%s, Result=%s)' % (state['ActiveState'], state.get('Result', '?'))
    return None


# -- the switch ------------------------------------------------------------------------------------


class Switch:
    """Blue/green over two slots of one app. Call :meth:`switch` or :meth:`ensure_started` once per instance."""

    def __init__(self, name: str, ports, systemctl: Systemctl, health_path: str = '/', host_header=None, ready_timeout: float = 60.0,
                 drain_timeout: float = DEFAULT_DRAIN_TIMEOUT, probe_timeout: float = PROBE_TIMEOUT, link: str | None = None,
                 socket_dir: str | None = None, warn=None, count=established):
        self.name = name
        self.ports = check_ports(ports)
        self.systemctl = systemctl
        self.health_path = health_path
        self.host_header = host_header
        self.ready_timeout = ready_timeout
        self.drain_timeout = check_drain_timeout(drain_timeout)
        self.probe_timeout = probe_timeout
        self.link = link or link_path(name)
        self.socket_dir = socket_dir or os.path.join(SOCKET_DIR, name)
        self.warn = warn or (lambda message: None)
        self.count = count
        self.drain_quiet = DRAIN_QUIET_SECONDS
        self.pids = {}
        self.started_wall = None
        self.result = {'link': self.link, 'live_before': None, 'live_after': None, 'switched': False, 'drain': None, 'changed': False}

    def units(self, port: int) -> SlotUnits:
        return SlotUnits(self.name, port)

    def socket_path(self, port: int) -> str:
        return os.path.join(self.socket_dir, 'slot-%d.sock' % port)

    # -- reading ----------------------------------------------------------------------------------

    def plan(self) -> dict:
        """Which slot is live and which one a switch would start; reads LINK only."""
        live = live_port(self.link)
        return {'live': live, 'idle': idle_port(live, self.ports), 'link': self.link, 'link_target': read_link(self.link)}

    def slot_running(self, port: int) -> bool:
        units = self.units(port)
        return running(self.systemctl.show(units.app)) and running(self.systemctl.show(units.socket))

    def slot_active(self, port: int) -> bool:
        """Any unit of the slot active or on its way (the leftovers of an interrupted switch count)."""
        return any(self.systemctl.show(unit).get('ActiveState') not in ('inactive', 'failed', None) for unit in self.units(port).all)

    def _main_pid(self, unit: str) -> int:
        return self.systemctl.show(unit)['MainPID']

    def _describe(self, unit: str) -> str:
        try:
            return describe_state(unit, self.systemctl.show(unit), properties=SHOW_PROPERTIES[1:7] + ('ExecMainStatus', 'NRestarts'))
        except BlueGreenError as exc:
            return '%s: %s' % (unit, exc)

    # -- the steps --------------------------------------------------------------------------------

    def wait_active(self, unit: str, deadline: float) -> None:
        while True:
            state = self.systemctl.show(unit)
            if running(state):
                return
            reason = start_failure(state)
            if reason is None and time.monotonic() >= deadline:
                reason = 'was not active within ready_timeout (%g s)' % self.ready_timeout
            if reason is not None:
                raise BlueGreenError('%s %s' % (unit, reason))
            time.sleep(HEALTH_INTERVAL)

    def _probe(self, endpoint: str, deadline: float, watch: str) -> None:
        """The health path answers 2xx HEALTH_SUCCESSES times in a row; ends at once when the watched unit fails."""
        def abort():
            reason = start_failure(self.systemctl.show(watch))
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
            step = self.systemctl.run('restart', [units.app])
            self.wait_active(units.app, deadline)
            # Straight at the app first: a failure here is the app's, not the proxies'.
            self._probe('127.0.0.1:%d' % port, deadline, units.app)
            step['ready'] = time.monotonic()
            step = self.systemctl.run('start', [units.socket])
            # Then through the slot socket and its proxy, the path the public proxy will take.
            self._probe('unix:' + self.socket_path(port), deadline, units.app)
            step['ready'] = time.monotonic()
        except BlueGreenError as exc:
            message = self._failed_slot(port, str(exc))
            raise BlueGreenError(message)
        self.pids[units.app]['new'] = self._main_pid(units.app)

    def _failed_slot(self, port: int, why: str) -> str:
        units = self.units(port)
        state = self._describe(units.app)
        journal = self.systemctl.journal([units.app], since=self.started_wall)
        self.pids[units.app]['new'] = 0
        try:
            self.systemctl.run('stop', units.all)
            # A failed unit would leave the system "degraded"; the message above has its state.
            self.systemctl.run('reset-failed', [units.app], check=False)
        except BlueGreenError as exc:
            why += '; stopping the new slot failed too: %s' % exc
        live = self.result['live_before']
        kept = ('the live slot %d and %s are untouched' % (live, self.link)) if live is not None else '%s was not created' % self.link
        return ('the new slot %d did not come up: %s. Unit state: %s. It was stopped; %s.%s'
                % (port, why, state, kept, (' Last journal lines: ' + journal) if journal else ''))

    def swap_link(self, port: int) -> None:
        target = self.socket_path(port)
        step = self.systemctl.record(['symlink', target, self.link], [])
        try:
            replace_link(self.link, target)
        except OSError as exc:
            step['rc'] = 1
            step['returned'] = time.monotonic()
            raise BlueGreenError('could not point %s at %s: %s' % (self.link, target, exc))
        step['rc'] = 0
        step['returned'] = step['ready'] = time.monotonic()
        self.result['switched'] = True

    def drain(self, port: int) -> DrainResult:
        step = self.systemctl.record(['drain', str(port)], [self.units(port).app])
        outcome = wait_drained(port, self.drain_timeout, quiet=self.drain_quiet, count=self.count)
        step['rc'] = 0 if outcome.drained else 1
        step['returned'] = time.monotonic()
        step['ready'] = step['returned'] if outcome.drained else None
        if not outcome.drained:
            self.warn('%s-app@%d still had %d established connection(s) after drain_timeout (%g s); the old slot was stopped anyway'
                      % (self.name, port, outcome.connections, self.drain_timeout))
        return outcome

    def retire(self, port: int) -> None:
        """Stop and disable a slot that LINK no longer points at."""
        units = self.units(port)
        self.systemctl.run('stop', units.all)
        self.systemctl.run('disable', units.persistent)
        if units.app in self.pids:
            self.pids[units.app]['new'] = 0

    # -- the two operations -----------------------------------------------------------------------

    def _remember_pids(self, ports) -> None:
        for port in ports:
            unit = self.units(port).app
            self.pids[unit] = {'old': self._main_pid(unit), 'new': None}

    def check_loaded(self, port: int) -> None:
        """The slot's units must exist (the role installs their templates) before anything is started."""
        for unit in (self.units(port).app, self.units(port).socket):
            state = self.systemctl.show(unit)
            if state.get('LoadState') != 'loaded':
                raise BlueGreenError('unit %s does not exist or cannot be loaded (%s); nothing was changed. The socket_service role '
                                     'installs it with socket_service_mode: proxy' % (unit, describe_state(unit, state)))

    def switch(self) -> dict:
        """Start the idle slot, point LINK at it, drain and stop the live one. Returns :attr:`result`."""
        plan = self.plan()
        live, idle = plan['live'], plan['idle']
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
        self.systemctl.run('enable', self.units(idle).persistent)
        if live is not None:
            self.result['drain'] = self.drain(live).to_dict()
            self.retire(live)
        return self.result

    def ensure_started(self) -> dict:
        """Bring a slot live when none is; otherwise change nothing but stray state (enablement, a leftover slot)."""
        plan = self.plan()
        live = plan['live']
        if live is None or live not in self.ports or not self.slot_running(live):
            return self.switch()
        self.result.update(live_before=live, live_after=live, idle=idle_port(live, self.ports))
        units = self.units(live)
        if not self.systemctl.is_enabled(units.persistent):
            self.systemctl.run('enable', units.persistent)
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
        if not self.systemctl.is_enabled(self.units(live).persistent):
            return True
        return any(self.slot_active(port) for port in self.ports if port != live)
