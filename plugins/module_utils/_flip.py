# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Instances behind nginx that never get a request while they start or stop (internal).

The layout (``socket_service_layout: instances``, what the ``app`` role uses
behind nginx): every instance is its own socket-activated pair,
``NAME@K.socket`` and ``NAME@K.service``, for slots K = 1 .. 2N (N =
instances). nginx's upstream includes one server file per slot (the
``nginx_backend`` format); the live slots are ``up``, the others ``down``.

Why: with one socket shared by all instances, nginx cannot tell them apart.
It keeps idle connections to the socket (upstream keepalive), and a stopping
process closes the ones it holds, sometimes just as nginx sends a request on
one; a POST that reached the app is never resent, so it fails (502). Some
app servers (uvicorn, Node.js) also close connections they accepted but had
not read yet. Here no request ever reaches a process that is about to stop:

* **surge** (the default, any N): start the idle slots with the new release
  beside the live ones, wait until each answers its health path on its own
  socket, then, in one nginx reload, mark the new slots up and the old ones
  down. The reload's old workers finish their requests and close their
  connections; once they have exited (:class:`DrainWatch`), the old slots
  stop. Nothing waits in a backlog for a boot, so latency stays flat, and
  for a few seconds the app runs twice (the memory cost).
* **rolling** (N >= 2, without the memory for a surge): one slot at a time
  is marked down, drained, restarted, probed and marked up again.

Standard library only.
"""

from __future__ import annotations

import os
import time

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint
from ansible_collections.zerodown.deploy.plugins.module_utils._names import instance_backend, instance_slots, instance_units
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import (
    DrainWatch,
    ProcTable,
    file_name,
    parse_servers,
    read_master_pid,
    read_servers_dir,
    render,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import SystemdError, start_failure

HEALTH_SUCCESSES = 3
HEALTH_INTERVAL = 0.05
PROBE_TIMEOUT = 5.0
DEFAULT_DRAIN_TIMEOUT = 60.0


class FlipError(Exception):
    """A step failed; the message says what, and what still serves."""


# The most slots an app can have: 2 x the most instances the roles accept (64).
MAX_SLOTS = 128


class Slots:
    """The slots of one app: slot K is ``NAME@K`` on its own address (made from ``listen``), one nginx server file each.

    A new set of N goes into the lowest slots that are not live, so the slots of one release are 1..2N; after
    the app shrank, the live ones can be higher, and they are still found (by their server files and units).
    """

    def __init__(self, name: str, instances: int, listen: str, servers_dir: str, server_options: str = ''):
        self.name = name
        self.instances = int(instances)
        self.listen = listen
        self.servers_dir = servers_dir
        self.server_options = server_options or ''
        self.numbers = instance_slots(self.instances)

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

    def live(self) -> list:
        """The slots nginx sends requests to: those whose server file says up."""
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

    def __init__(self, slots: Slots, systemd, nginx=None, pid_file: str = '/run/nginx.pid', health_path: str = '/',
                 host_header=None, ready_timeout: float = 60.0, drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
                 probe_timeout: float = PROBE_TIMEOUT, warn=None, table=None, clock=time.monotonic):
        self.slots = slots
        self.systemd = systemd
        self.nginx = nginx
        self.pid_file = pid_file
        self.health_path = health_path or '/'
        self.host_header = host_header
        self.ready_timeout = float(ready_timeout)
        self.drain_timeout = float(drain_timeout)
        self.probe_timeout = probe_timeout
        self.warn = warn or (lambda message: None)
        self.table = table or ProcTable()
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

    def write_states(self, up: list) -> dict:
        """The server files: the slots ``up`` up, the others of 1..2N down, any other slot's file gone. Returns the previous
        texts (to put back)."""
        previous = {}
        os.makedirs(self.slots.servers_dir, mode=0o755, exist_ok=True)
        present = self.slots.files()
        for k in sorted(set(self.slots.numbers) | set(up) | set(present)):
            path = self.slots.file(k)
            previous[path] = present.get(k)
            text = self.slots.text(k, True) if k in up else self.slots.text(k, False) if k in self.slots.numbers else None
            if previous[path] == text:
                continue
            if text is None:
                os.unlink(path)
            else:
                atomic_write(path, text, mode=0o644)
        return previous

    def _restore(self, previous: dict) -> None:
        for path, text in previous.items():
            if text is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            else:
                atomic_write(path, text, mode=0o644)

    def route(self, up: list, drain: bool = True) -> None:
        """nginx sends requests to the slots ``up`` only: write, ``nginx -t``, reload, and (``drain``) wait until the workers
        of before the reload, the only ones that could still send a request elsewhere, have exited."""
        step = self.systemd.record(['nginx', 'route', ','.join(str(k) for k in up)], [self.slots.units(k).service for k in up])
        master = read_master_pid(self.pid_file)
        old = self.table.children(master)
        previous = self.write_states(up)
        failure = self.nginx.test()
        if failure is None:
            failure = self.nginx.reload()
        if failure is not None:
            self._restore(previous)
            step['rc'] = 1
            step['returned'] = self.clock()
            raise FlipError('nginx refused the new upstream (slots %s up): %s; the server files are back as they were'
                            % (up, failure))
        self.result['reloads'] += 1
        watch = DrainWatch(self.table, self.pid_file, master, old)
        outcome = watch.wait(self.drain_timeout, old_must_exit=drain)
        step['rc'] = 0
        step['returned'] = self.clock()
        step['ready'] = step['returned'] if outcome.done else None
        self.result['drains'].append({'up': list(up), 'done': outcome.done, 'seconds': round(outcome.seconds, 3),
                                      'remaining': list(outcome.remaining)})
        if not outcome.done:
            self.warn('%d nginx worker(s) from before the reload (PIDs %s) were still running after %g s (long requests, or '
                      'WebSockets: see nginx\'s worker_shutdown_timeout); going on' % (
                          len(outcome.remaining), ', '.join(str(pid) for pid in outcome.remaining), self.drain_timeout))

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
        if route_now and missing:
            self.route(live, drain=False)
        leftovers = [k for k in running if k not in live]
        if leftovers:
            self.stop(leftovers)
            self.result['changed'] = True
        return self.result
