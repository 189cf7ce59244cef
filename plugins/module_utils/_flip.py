# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Instances behind nginx that never get a request while they start or stop (internal).

The layout (``socket_service_layout: instances``, what the ``app`` role uses
behind nginx): every instance is its own socket-activated pair,
``NAME@K.socket`` and ``NAME@K.service``, for slots K = 1 .. 2N (N =
instances).

Why: with one socket shared by all instances, nginx cannot tell them apart.
It keeps idle connections to the socket (upstream keepalive), and a stopping
process closes the ones it holds, sometimes just as nginx sends a request on
one; a POST that reached the app is never resent, so it fails (502). Some
app servers (uvicorn, Node.js) also close connections they accepted but had
not read yet. Here no request ever reaches a process that is about to stop.

How nginx is told which slots serve:

* **Unix sockets: links, no reload.** nginx's upstream lists N positions,
  ``NAME-live-1.sock`` .. ``NAME-live-N.sock``, each a symbolic link to the
  socket of the slot that serves it. nginx resolves the link at every new
  connection, so moving a link (a rename) takes a slot out of rotation at
  once, and nginx is never reloaded: an nginx reload closes the clients' idle
  keep-alive connections, and a client that sent a request on one just then
  gets no answer (measured: about 12 per surge). The connections nginx keeps
  open to the old slot retire by themselves (the upstream's
  ``keepalive_time`` and ``keepalive_timeout``); the old slot stops once the
  kernel shows none left on its socket (:func:`unix_connections`, a
  connection still waiting in its backlog included). A tmpfiles.d file puts
  the links back after a reboot.
* **TCP: NAT rules, no reload.** The upstream lists N position addresses,
  ``127.1.0.1:PORT`` .. ``127.1.0.N:PORT``, which nothing binds; the app's
  nftables table (``zerodown_NAME``, one ``nat`` chain on the ``output``
  hook) translates each new connection to a position into the address of the
  slot that serves it. One ``nft -f`` is one transaction, so a connect sees
  the old rules or the new ones; a connection already open keeps its
  translation (connection tracking) and finishes on the old slot, which stops
  once the kernel shows no connection left on its address
  (:func:`tcp_connections`). The rules live in a file that a oneshot unit
  loads at boot and after a restart of ``nftables.service`` (whose ``flush
  ruleset`` would remove them).

The restarts:

* **surge** (the default, any N): start the idle slots with the new release
  beside the live ones, wait until each answers its health path on its own
  socket, route nginx to them in one step, drain the old ones and stop them.
  Nothing waits in a backlog for a boot, so latency stays flat, and for a few
  seconds the app runs twice (the memory cost).
* **rolling** (N >= 2, without the memory for a surge): one slot at a time
  is taken out, drained, restarted, probed and put back.

Standard library only.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time

from ansible_collections.zerodown.deploy.plugins.module_utils._bluegreen import wait_drained
from ansible_collections.zerodown.deploy.plugins.module_utils._fs import FsError, atomic_symlink, atomic_write, read_link, read_text
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint
from ansible_collections.zerodown.deploy.plugins.module_utils._names import (
    POSITION_NET,
    instance_backend,
    instance_listen,
    instance_position,
    instance_servers,
    instance_slots,
    instance_units,
    links_tmpfiles,
    position_rules,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import (
    file_name,
    parse_servers,
    read_servers_dir,
    render,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import SystemdError, output_failure, start_failure

HEALTH_SUCCESSES = 3
HEALTH_INTERVAL = 0.05
PROBE_TIMEOUT = 5.0
DEFAULT_DRAIN_TIMEOUT = 60.0


class FlipError(Exception):
    """A step failed; the message says what, and what still serves."""


UNIX_TABLE = '/proc/net/unix'
# /proc/net/unix's Flags of a listening socket (__SO_ACCEPTCON).
_ACCEPTCON = 0x10000
# A drain is over when the slots' sockets showed no connection on two polls DRAIN_INTERVAL apart: a connect() that resolved
# the link just before it moved is in the backlog by the next poll.
DRAIN_INTERVAL = 0.05


def unix_connections(paths: list, table: str = UNIX_TABLE) -> dict:
    """{path: connections on the Unix socket bound at path}: the accepted ones and those waiting in its backlog, not the
    listening socket itself. The kernel names the server side of every connection by the listener's path."""
    counts = dict((path, 0) for path in paths)
    with open(table, encoding='utf-8', errors='replace') as handle:
        lines = handle.read().splitlines()[1:]
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7] in counts and not int(fields[3], 16) & _ACCEPTCON:
            counts[fields[7]] += 1
    return counts


# /proc/net/tcp's states of a connection that can still carry a request to the app: ESTABLISHED (accepted, or in the
# accept queue) and SYN_RECV. One that either side is closing carries none.
_OPEN_TCP_STATES = ('01', '03')
TCP_TABLE = '/proc/net/tcp'


def tcp_connections(addresses: list, table: str = TCP_TABLE) -> dict:
    """{HOST:PORT: open connections whose local end is that IPv4 address}: the server side of every connection to a slot
    (what the kernel shows after the position's translation), the listening socket not included."""
    counts = dict((address, 0) for address in addresses)
    with open(table, encoding='ascii', errors='replace') as handle:
        lines = handle.read().splitlines()[1:]
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] not in _OPEN_TCP_STATES:
            continue
        host, dummy, port = fields[1].partition(':')
        # The kernel prints the address as the hexadecimal of a host-order read of its network-order bytes.
        local = '%s:%d' % (socket.inet_ntoa(struct.pack('=I', int(host, 16))), int(port, 16))
        if local in counts:
            counts[local] += 1
    return counts


def wait_no_connections(counter, keys: list, timeout: float, clock=time.monotonic, sleep=time.sleep) -> list:
    """Wait, bounded, until ``counter(keys)`` ({key: connections}) shows none on any of ``keys`` (the slots nginx no
    longer connects to). Returns what was still connected at the timeout, as "KEY (COUNT)" (empty when drained)."""
    if not keys:
        return []

    def count(dummy):
        return sum(counter(keys).values())

    outcome = wait_drained(None, timeout, quiet=DRAIN_INTERVAL, interval=DRAIN_INTERVAL, count=count, clock=clock, sleep=sleep)
    if outcome.drained:
        return []
    return ['%s (%d)' % (key, n) for key, n in sorted(counter(keys).items()) if n]


# A rule of a position table: "ip daddr 127.1.0.I tcp dport PORT dnat to 127.0.0.K:PORT" (nft list prints it so too;
# some versions spell the target "dnat ip to").
_RULE_RE = re.compile(r'ip daddr %s([0-9]+) tcp dport ([0-9]+) dnat (?:ip )?to 127\.0\.0\.([0-9]+):([0-9]+)' % re.escape(POSITION_NET))


def parse_rules(text, port: str) -> dict:
    """{position: slot} of the rules for ``port`` in ``text`` (a rules file or what ``nft list table`` printed)."""
    found = {}
    for match in _RULE_RE.finditer(text or ''):
        if match.group(2) == port and match.group(4) == port:
            found[int(match.group(1))] = int(match.group(3))
    return found


def assign(count: int, before: dict, up: list) -> dict:
    """{position: slot} for positions 1..count: a position keeps its slot when that slot stays up (and no earlier position
    has it), the others take the up slots no position has, and when fewer slots are up than positions (a rolling restart's
    moment), they share."""
    mapping = {}
    for i in range(1, count + 1):
        k = before.get(i)
        if k in up and k not in mapping.values():
            mapping[i] = k
    free = [k for k in up if k not in mapping.values()]
    for i in range(1, count + 1):
        if i not in mapping:
            mapping[i] = free.pop(0) if free else up[(i - 1) % len(up)]
    return mapping


# The most slots an app can have: 2 x the most instances the roles accept (64).
MAX_SLOTS = 128
# nftables' command line (package nftables); the rules file is loaded with it at boot too.
NFT = '/usr/sbin/nft'


class Slots:
    """The slots of one app: slot K is ``NAME@K`` on its own address (made from ``listen``), one nginx server file each.

    A new set of N goes into the lowest slots that are not live, so the slots of one release are 1..2N; after
    the app shrank, the live ones can be higher, and they are still found (by their server files and units).
    """

    def __init__(self, name: str, instances: int, listen: str, servers_dir: str, server_options: str = '', tmpfiles=None,
                 rules=None):
        self.name = name
        self.instances = int(instances)
        self.listen = listen
        self.servers_dir = servers_dir
        self.server_options = server_options or ''
        self.numbers = instance_slots(self.instances)
        # A Unix socket: nginx connects through the position links; TCP: through the position rules (module docstring).
        self.linked = listen.startswith('/')
        # /run is a tmpfs: tmpfiles.d puts the links back at boot; anywhere else they outlive a reboot themselves.
        self.tmpfiles = tmpfiles if tmpfiles is not None else \
            links_tmpfiles(name) if self.linked and re.match(r'/(var/)?run/', listen) else ''
        self.rules = None if self.linked else (rules or position_rules(name))
        self.port = '' if self.linked else listen.rpartition(':')[2]
        head, dummy, tail = os.path.basename(instance_listen(listen, name, '@')).partition('@') if self.linked else ('', '', '')
        self._slot_re = re.compile('^%s([0-9]+)%s$' % (re.escape(head), re.escape(tail)))

    def units(self, k: int):
        return instance_units(self.name, k)

    def backend(self, k: int) -> str:
        """Slot k as nginx's server, which is also where it is probed."""
        return instance_backend(self.listen, self.name, k)

    def file(self, k: int) -> str:
        return os.path.join(self.servers_dir, file_name(self.backend(k)))

    def text(self, k: int, up: bool) -> str:
        return render(self.backend(k), self.server_options, down=not up)

    def files(self) -> dict:
        """{slot: its server file's text} of the slots that have one."""
        present = read_servers_dir(self.servers_dir) if os.path.isdir(self.servers_dir) else {}
        found = {}
        for k in range(1, MAX_SLOTS + 1):
            text = present.get(os.path.basename(self.file(k)))
            if text is not None:
                found[k] = text
        return found

    # -- the positions: links (Unix sockets) or NAT rules (TCP) -----------------------------------------

    def position(self, i: int) -> str:
        return instance_position(self.listen, self.name, i)

    def socket_path(self, k: int) -> str:
        return instance_listen(self.listen, self.name, k)

    def positions(self) -> dict:
        """{position: the slot it sends to (None for a link to anything else)}, as the links or the rules file say."""
        if not self.linked:
            return parse_rules(read_text(self.rules.file), self.port)
        found = {}
        for i in range(1, MAX_SLOTS + 1):
            target = read_link(self.position(i))
            if target is None:
                continue
            match = self._slot_re.match(os.path.basename(target))
            found[i] = int(match.group(1)) if match else None
        return found

    def rules_text(self, mapping: dict) -> str:
        """TCP: the rules file for {position: slot}: one nft transaction that creates the app's table or empties it, then
        fills it."""
        table = 'table ip %s' % self.rules.table
        rules = ''.join('\t\tip daddr %s tcp dport %s dnat to %s\n' % (self.position(i).rpartition(':')[0], self.port, self.socket_path(k))
                        for i, k in sorted(mapping.items()))
        return ('# Managed by zerodown.deploy: the positions of %s (nginx\'s upstream servers) and the slots that serve them, as\n'
                '# the last restart left them; loaded by %s.\n%s\nflush %s\n%s {\n\tchain positions {\n'
                '\t\ttype nat hook output priority -100; policy accept;\n%s\t}\n}\n'
                % (self.name, self.rules.unit, table, table, table, rules))

    def rules_unit_text(self) -> str:
        """TCP: the oneshot unit that loads the rules file at boot, before nginx, and again after nftables.service restarts."""
        return ('# Managed by zerodown.deploy: loads the position rules of %s.\n[Unit]\nDescription=Position rules of %s (nginx to '
                'its live instances)\nAfter=nftables.service\nPartOf=nftables.service\nBefore=nginx.service\n\n[Service]\n'
                'Type=oneshot\nRemainAfterExit=yes\nExecStart=%s -f %s\n\n[Install]\nWantedBy=multi-user.target nftables.service\n'
                % (self.name, self.name, NFT, self.rules.file))

    def servers(self) -> dict:
        """{server file path: text} nginx's upstream includes with links: positions 1..N, always up."""
        return dict((os.path.join(self.servers_dir, file_name(server)), render(server, self.server_options, down=False))
                    for server in instance_servers(self.listen, self.name, self.instances))

    def live(self) -> list:
        """The slots nginx sends requests to: those a position points at, or (an install of before the positions, one
        server file per slot) whose server file says up."""
        pointed = sorted(set(k for k in self.positions().values() if k is not None))
        return pointed or self.live_files()

    def connections(self, ks: list) -> tuple:
        """How to see what is still connected to the slots ``ks``: a counter and its keys for :func:`wait_no_connections`."""
        if self.linked:
            return unix_connections, [self.socket_path(k) for k in sorted(ks)]
        return tcp_connections, [self.socket_path(k) for k in sorted(ks)]

    def live_files(self) -> list:
        """The slots whose server file says up."""
        live = []
        for k, text in sorted(self.files().items()):
            servers = parse_servers(text)
            if servers and not servers[0].down:
                live.append(k)
        return live

    def next_set(self, live: list) -> list:
        """The N lowest slots that are not live: where the next release starts."""
        free = [k for k in range(1, MAX_SLOTS + 1) if k not in live]
        return free[:self.instances]


class Flip:
    """Surge and rolling restarts of :class:`Slots` behind nginx; every change of state is a step of ``systemd``."""

    def __init__(self, slots: Slots, systemd, nginx=None, health_path: str = '/', host_header=None, ready_timeout: float = 60.0,
                 drain_timeout: float = DEFAULT_DRAIN_TIMEOUT, probe_timeout: float = PROBE_TIMEOUT, warn=None,
                 clock=time.monotonic):
        self.slots = slots
        self.systemd = systemd
        self.nginx = nginx
        self.health_path = health_path or '/'
        self.host_header = host_header
        self.ready_timeout = float(ready_timeout)
        self.drain_timeout = float(drain_timeout)
        self.probe_timeout = probe_timeout
        self.warn = warn or (lambda message: None)
        self.clock = clock
        self.pids = {}
        self.result = {'live_before': [], 'live_after': [], 'started': [], 'stopped': [], 'drains': [], 'reloads': 0,
                       'changed': False}

    # -- readiness ----------------------------------------------------------------------------------

    def _probe(self, k: int, deadline: float) -> None:
        service = self.slots.units(k).service

        def abort():
            reason = start_failure(self.systemd.show(service))
            return None if reason is None else 'stopped early because %s %s' % (service, reason)

        wait_healthy(parse_endpoint(self.slots.backend(k)), self.health_path, deadline, successes=HEALTH_SUCCESSES,
                     host_header=self.host_header, probe_timeout=self.probe_timeout, interval=HEALTH_INTERVAL, abort=abort,
                     what='ready_timeout', limit=self.ready_timeout)

    def _ready(self, ks: list, deadline: float, old_pids: dict) -> None:
        for k in ks:
            service = self.slots.units(k).service
            old = old_pids.get(service, 0)
            state = self.systemd.wait(service, deadline, lambda s: s.get('ActiveState') == 'active' and s['MainPID'] not in (0, old),
                                      fail=start_failure, what='active with a new main PID')
            self.pids[service]['new'] = state['MainPID']
        for k in ks:
            self._probe(k, deadline)

    # -- nginx ------------------------------------------------------------------------------------------

    def write_states(self, up: list) -> None:
        """Point the positions at the slots ``up`` without telling nginx (a first start: the nginx_upstream step writes the
        site of the positions next)."""
        self.point(assign(self.slots.instances, self.slots.positions(), list(up)))

    def _restore(self, previous: dict) -> None:
        for path, text in previous.items():
            if text is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            else:
                atomic_write(path, text, mode=0o644)

    def point(self, mapping: dict) -> list:
        """Each position at its slot ({position: slot}), positions above N gone. Returns the positions moved."""
        return self._point_links(mapping) if self.slots.linked else self._point_rules(mapping)

    def _point_links(self, mapping: dict) -> list:
        """Each position link at its slot's socket, by a rename (atomic: a connect() sees the old link or the new one); the
        tmpfiles.d file updated."""
        moved = []
        for i, k in sorted(mapping.items()):
            path = self.slots.position(i)
            target = os.path.basename(self.slots.socket_path(k))
            if read_link(path) != target:
                atomic_symlink(target, path, durable=False)
                moved.append(i)
        for i in self.slots.positions():
            if i not in mapping:
                os.unlink(self.slots.position(i))
        if self.slots.tmpfiles:
            lines = ''.join('L+ %s - - - - %s\n' % (self.slots.position(i), os.path.basename(self.slots.socket_path(k)))
                            for i, k in sorted(mapping.items()))
            text = '# Managed by zerodown.deploy: the position links of %s, as the last restart left them.\n%s' % (self.slots.name, lines)
            if read_text(self.slots.tmpfiles) != text:
                atomic_write(self.slots.tmpfiles, text, mode=0o644)
        return moved

    def _nft(self, args: list):
        """None when ``nft ARGS`` succeeded, else its message."""
        return output_failure(*self.systemd.call([NFT] + list(args)), what='nft')

    def loaded_rules(self) -> dict:
        """TCP: {position: slot} as the kernel has them now ({} without the app's table)."""
        rc, out, dummy = self.systemd.call([NFT, 'list', 'table', 'ip', self.slots.rules.table])
        return parse_rules(out, self.slots.port) if rc == 0 else {}

    def _point_rules(self, mapping: dict) -> list:
        """The rules file for ``mapping``, checked by ``nft -c`` before it replaces the old one, then loaded (one
        transaction); a file and table that say so already are left alone. The boot unit is installed with the first file."""
        rules = self.slots.rules
        before = self.slots.positions()
        text = self.slots.rules_text(mapping)
        previous = read_text(rules.file)
        if previous == text:
            # The file is right; the kernel may have lost the table (a "flush ruleset" of nftables.service's restart).
            before = self.loaded_rules()
            if before == mapping:
                return []
        os.makedirs(os.path.dirname(rules.file), mode=0o755, exist_ok=True)
        staged = rules.file + '.new'
        atomic_write(staged, text, mode=0o644)
        failure = self._nft(['-c', '-f', staged])
        if failure is not None:
            os.unlink(staged)
            raise FlipError('nft refused the position rules of %s (%s): %s; nothing changed' % (self.slots.name, rules.file, failure))
        os.replace(staged, rules.file)
        failure = self._nft(['-f', rules.file])
        if failure is not None:
            self._restore({rules.file: previous})
            raise FlipError('nft could not load the position rules of %s: %s; the rules file is back as it was'
                            % (self.slots.name, failure))
        unit_text = self.slots.rules_unit_text()
        if read_text(rules.unit_file) != unit_text:
            # Started too (it loads the same file again), so that a restart of nftables.service restarts it (PartOf=): systemd
            # loads a unit it did not know when asked to start it, without a daemon-reload, which keeps PID 1 busy while the
            # app serves.
            atomic_write(rules.unit_file, unit_text, mode=0o644)
            self.systemd.run('enable', [rules.unit], extra=('--now', '--no-reload'))
        return sorted(set(i for i in set(mapping) | set(before) if before.get(i) != mapping.get(i)))

    def _sync_servers(self) -> bool:
        """nginx's server files are the N positions (after a change of N, or an install of before the positions, which had
        one file per slot): write them, ``nginx -t``, reload. False when they were right already (no reload)."""
        wanted = self.slots.servers()
        present = read_servers_dir(self.slots.servers_dir) if os.path.isdir(self.slots.servers_dir) else {}
        present = dict((os.path.join(self.slots.servers_dir, name), text) for name, text in present.items())
        if present == wanted:
            return False
        os.makedirs(self.slots.servers_dir, mode=0o755, exist_ok=True)
        previous = dict((path, present.get(path)) for path in set(wanted) | set(present))
        for path in previous:
            if path in wanted:
                if present.get(path) != wanted[path]:
                    atomic_write(path, wanted[path], mode=0o644)
            else:
                os.unlink(path)
        failure = self.nginx.test()
        if failure is None:
            failure = self.nginx.reload()
        if failure is not None:
            self._restore(previous)
            raise FlipError('nginx refused the upstream of %d position(s): %s; the server files are back as they were'
                            % (self.slots.instances, failure))
        self.result['reloads'] += 1
        return True

    def _failed(self, step: dict) -> None:
        step['rc'] = 1
        step['returned'] = self.clock()

    def _routed(self, step: dict, up: list, done: bool, seconds: float, remaining: list) -> None:
        """Close a route step and record its drain (in the result's ``drains``)."""
        step['rc'] = 0
        step['returned'] = self.clock()
        step['ready'] = step['returned'] if done else None
        self.result['drains'].append({'up': list(up), 'done': done, 'seconds': round(seconds, 3), 'remaining': list(remaining)})

    def route(self, up: list, drain: bool = True) -> None:
        """nginx sends new connections to the slots ``up`` only (the positions move; nginx is not reloaded unless its server
        files were not the positions yet), and (``drain``) nothing is left on the slots no position points at any more."""
        step = self.systemd.record(['nginx', 'link' if self.slots.linked else 'nat', ','.join(str(k) for k in up)],
                                   [self.slots.units(k).service for k in up])
        before = self.slots.positions()
        out = set(k for k in before.values() if k is not None) if before else set(self.slots.live_files())
        out -= set(up)
        try:
            self.point(assign(self.slots.instances, before, list(up)))
            self._sync_servers()
        except (OSError, FsError, FlipError) as exc:
            self._failed(step)
            raise FlipError(str(exc))
        started = self.clock()
        remaining = wait_no_connections(*self.slots.connections(out), timeout=self.drain_timeout, clock=self.clock) \
            if drain and out else []
        self._routed(step, up, not remaining, self.clock() - started, remaining)
        if remaining:
            self.warn('connections still open to the slot(s) taken out after %g s: %s (long requests, or WebSockets); going on'
                      % (self.drain_timeout, ', '.join(remaining)))

    # -- systemd ----------------------------------------------------------------------------------------

    def _remember(self, ks: list) -> dict:
        old = {}
        for k in ks:
            service = self.slots.units(k).service
            old[service] = self.systemd.main_pid(service)
            self.pids.setdefault(service, {'old': old[service], 'new': None})
        return old

    def start(self, ks: list) -> None:
        """Start (restart: a leftover must not pass for the new release) the slots' services, sockets first, all at once."""
        units = [self.slots.units(k) for k in ks]
        old = self._remember(ks)
        deadline = self.clock() + self.ready_timeout
        started_wall = time.time()
        try:
            self.systemd.run('start', [u.socket for u in units])
            self.systemd.run('restart', [u.service for u in units])
            self._ready(ks, deadline, old)
        except (SystemdError, NotHealthy) as exc:
            journal = self.systemd.journal([u.service for u in units], since=started_wall)
            self.stop(ks)
            for u in units:
                self.systemd.reset_failed([u.service])
            raise FlipError('the new instance(s) %s did not come up: %s. They were stopped; what served still serves.%s'
                            % (', '.join(u.service for u in units), exc, (' Last journal lines: ' + journal) if journal else ''))
        self.systemd.run('enable', [u.socket for u in units] + [u.service for u in units], extra=('--no-reload',))
        self.result['started'] += list(ks)

    def stop(self, ks: list) -> None:
        if not ks:
            return
        units = [self.slots.units(k) for k in ks]
        self.systemd.run('disable', [u.service for u in units] + [u.socket for u in units], extra=('--now', '--no-reload'))
        for u in units:
            if u.service in self.pids:
                self.pids[u.service]['new'] = 0
        self.result['stopped'] += list(ks)

    def running(self) -> list:
        """The slots whose service runs (or starts), whichever their number."""
        known = self.systemd.list_units(['%s@*.service' % self.slots.name], types=('service',))
        states = self.systemd.show_many(sorted(known), properties=('Id', 'ActiveState'))
        numbers = []
        for unit, state in states.items():
            number = unit[len(self.slots.name) + 1:-len('.service')]
            if number.isdigit() and state.get('ActiveState') in ('active', 'activating', 'reloading'):
                numbers.append(int(number))
        return sorted(numbers)

    # -- the operations ---------------------------------------------------------------------------------

    def surge(self) -> dict:
        """The new set beside the live one, one reload to it, the old set (and any leftover) drained and stopped."""
        live = self.slots.live()
        new = self.slots.next_set(live)
        self.result['live_before'] = live
        self.start(new)
        self.route(new)
        old = [k for k in sorted(set(live) | set(self.running())) if k not in new]
        self._remember(old)
        self.stop(old)
        self.result.update(live_after=new, changed=True)
        return self.result

    def rolling(self) -> dict:
        """One slot at a time: out of nginx, drained, restarted, probed, back in.

        The set is the live slots, topped up to N from the free ones (after a failed restart took one out) or cut to N
        (after the app shrank: the rest is drained and stopped at the end). Missing slots start first, so nginx never has
        fewer than before.
        """
        live = self.slots.live()
        keep = live[:self.slots.instances]
        missing = self.slots.next_set(live)[:self.slots.instances - len(keep)]
        if len(keep) + len(missing) < 2:
            raise FlipError('a rolling restart behind nginx needs 2 or more instances (instances is %d); with one, the surge '
                            'starts the new one beside it' % self.slots.instances)
        self.result['live_before'] = list(live)
        serving = list(live)
        for k in missing + keep:
            if k in serving:
                others = [j for j in serving if j != k]
                self.route(others)
                serving = others
            self.start([k])
            serving = sorted(serving + [k])
            self.route(serving, drain=False)
        extra = [k for k in serving if k not in keep + missing]
        if extra:
            self.route(sorted(keep + missing))
            self._remember(extra)
            self.stop(extra)
        self.result.update(live_after=sorted(keep + missing), changed=True)
        return self.result

    def ensure_started(self, route_now: bool) -> dict:
        """The live slots (the server files' up ones, or 1..N at first) running; others stopped.

        ``route_now``: write the server files and reload nginx too (nginx runs already); otherwise the nginx_upstream role
        writes them in its own step.
        """
        live = self.slots.live() or self.slots.numbers[:self.slots.instances]
        running = self.running()
        self.result.update(live_before=[k for k in live if k in running], live_after=live)
        missing = [k for k in live if k not in running]
        if missing:
            self.start(missing)
            self.result['changed'] = True
        # Positions first, so that a site of positions (the nginx_upstream step's, or route_now's) never meets a missing
        # one; an install of before the positions gets them here.
        moved = self.point(assign(self.slots.instances, self.slots.positions(), live))
        reloaded = self._sync_servers() if route_now else False
        if moved or reloaded:
            self.result['changed'] = True
        leftovers = [k for k in running if k not in live]
        if leftovers:
            self.stop(leftovers)
            self.result['changed'] = True
        return self.result
