# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Install and run the units of a socket-activated service in one call (internal; the ``service_units`` module).

The ``socket_service`` role renders the unit files on the controller and
hands them over as text. This backend then does, on the target, what used to
take some seventy tasks, in order:

1. compare them with the installed files; when nothing differs, skip straight
   to the run-time checks (no staging, no ``systemd-analyze``);
2. stage them, ``systemd-analyze verify`` them (a warning fails too: systemd
   drops an unknown directive silently) and score the app's unit offline
   with ``systemd-analyze security`` against the profile's limit;
3. refuse to restart a listening socket, or the public proxy of proxy mode,
   without the explicit opt-in: either one drops connections;
4. install the verified files atomically, stop the units no longer wanted
   (scaling down, switching modes), remove the other modes' files, reload;
5. with ``state=started``: raise ``net.core.somaxconn`` to the backlog, start
   the socket, bring proxy mode's slot live, start the instances, restart the
   ones that ran the old unit one at a time (each ready before the next),
   wait until the service answers through its socket; and score the
   installed unit (a drop-in may weaken it).

A service that does not come up is diagnosed from ``systemctl show`` and the
journal, naming hardening as the likely cause when the evidence says so.

Messages name the ``socket_service`` role's variables: the role is how this
backend is reached. Standard library only.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write, read_text
from ansible_collections.zerodown.deploy.plugins.module_utils._flip import FlipError
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendError
from ansible_collections.zerodown.deploy.plugins.module_utils._names import (SOCKET_PROXYD, instance_socket_file, journal_units, link_path,
                                                                             proxy_unit_files, socket_unit)
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import SystemdError, check_staged, describe_state, start_failure

PROXYD = 'systemd-socket-proxyd'
# Without a health path, "active" is all there is to see, and a process that exits at once (Type=exec) is active for an
# instant: it must stay active, the same process, this long.
SETTLE_SECONDS = 1.0
SYSCTL_SOMAXCONN = '/proc/sys/net/core/somaxconn'
SYSCTL_DIR = '/etc/sysctl.d'
DROPIN_DIRS = ('/etc/systemd/system', '/run/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system')
JOURNAL_LINES = 25
# systemd's own exit codes 200-243 (226/NAMESPACE, ...), SIGSYS (the syscall
# filter), SIGTRAP/SIGSEGV/SIGABRT (a JIT refused W+X memory) and denials in
# the log are what hardening looks like when it bites.
KILLED_SIGNALS = ('5', '6', '11', '31')
DENIAL_RE = re.compile(r'Operation not permitted|Permission denied|Read-only file system|status=2[0-4][0-9]/|SIGSYS|Bad system call')


class UnitsError(Exception):
    """The units cannot be installed or the service did not come up; the message says what was left as it was."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def somaxconn_file(name: str) -> str:
    return os.path.join(SYSCTL_DIR, '60-zerodown-%s.conf' % name)


def somaxconn_text(name: str, backlog: int) -> str:
    return ('# Managed by zerodown.deploy: room for %s.socket\'s Backlog=%d\nnet.core.somaxconn = %d\n'
            % (name, backlog, backlog))


class Spec:
    """What the caller asked for, checked."""

    def __init__(self, params: dict):
        self.name = params['name']
        self.units = dict(params['units'])
        self.mode = params['mode']
        self.proxy = self.mode == 'proxy'
        self.socket = params.get('socket') or (instance_socket_file(self.name) if self.mode == 'instances' else socket_unit(self.name))
        self.services = list(params['services'])
        self.obsolete = [unit for unit in params.get('obsolete') or [] if unit not in self.units]
        self.unit_dir = params['unit_dir']
        self.staging_dir = os.path.join(params['staging_dir'], self.name)
        self.state = params['state']
        self.restart_on_change = params['restart_on_change']
        self.allow_socket_restart = params['allow_socket_restart']
        self.exposure_file = params.get('exposure_file')
        self.exposure_unit = params.get('exposure_unit')
        self.exposure_limit = params.get('exposure_limit')
        self.profile = params.get('hardening_profile') or 'default'
        self.strict = bool(params.get('hardening_strict'))
        self.health_endpoint = params.get('health_endpoint')
        self.health_path = params.get('health_path') or ''
        self.ready_timeout = float(params['ready_timeout'])
        self.backlog = params.get('backlog')
        self.manage_somaxconn = bool(params.get('manage_somaxconn'))
        self.proxy_settings = params.get('proxy') or {}
        # Layout instances: one socket per slot behind nginx (module_utils/_flip.py); the live slots are the host's to say.
        self.instances_layout = self.mode == 'instances'
        self.slots = params.get('slots') or {}
        if self.instances_layout and not self.slots.get('servers_dir'):
            raise UnitsError('socket_service_mode: instances needs the nginx servers directory of the slots (slots.servers_dir)')
        if self.proxy and not os.access(SOCKET_PROXYD, os.X_OK):
            raise UnitsError('socket_service: socket_service_mode: proxy needs systemd-socket-proxyd (part of the systemd package), and '
                             '%s does not exist. Nothing was changed.' % SOCKET_PROXYD)
        if self.socket not in self.units:
            raise UnitsError('units must contain the socket unit %s' % self.socket)
        for unit in self.units:
            if '/' in unit or not unit.endswith(('.service', '.socket')):
                raise UnitsError('units: %r is not a unit file name ending in .service or .socket' % unit)

    @property
    def legacy_socket(self) -> str:
        """Layout instances: the one shared socket of the other layout, which serves until nginx is moved off it."""
        return socket_unit(self.name)

    @property
    def public_service(self) -> str:
        return '%s.service' % self.name

    def path(self, unit: str) -> str:
        return os.path.join(self.unit_dir, unit)

    def staged(self, unit: str) -> str:
        """Where a unit is staged for `systemd-analyze verify`. A template is staged as its instance 1: verify instantiates a
        template file with the instance "i", and a socket listening on 127.0.0.%i:PORT is then not an address."""
        head, at, tail = unit.partition('@')
        if at and tail.startswith('.'):
            unit = '%s@1%s' % (head, tail)
        return os.path.join(self.staging_dir, unit)


class Rollout:
    """One run: plan, verify, install, start. ``result`` is the module's result."""

    def __init__(self, spec: Spec, systemd, check_mode: bool = False, switch_factory=None, warn=None, clock=time.monotonic,
                 flip_factory=None):
        self.spec = spec
        self.systemd = systemd
        self.check_mode = check_mode
        self.switch_factory = switch_factory
        self.flip_factory = flip_factory
        self.warn = warn or (lambda message: None)
        self.clock = clock
        self.installed = dict((unit, read_text(spec.path(unit))) for unit in list(spec.units) + spec.obsolete + [spec.public_service])
        self.was_proxy = PROXYD in (self.installed.get(spec.public_service) or '')
        self.changed_units = [unit for unit in spec.units if self.installed[unit] != spec.units[unit]]
        # Names like NAME-app@ may belong to another app (one called NAME-app): proxy mode's files are this app's
        # leftovers only when NAME.service was its public proxy.
        theirs = [] if self.was_proxy else proxy_unit_files(spec.name)
        self.obsolete_present = [unit for unit in spec.obsolete if self.installed.get(unit) is not None and unit not in theirs]
        self.legacy = []
        if spec.instances_layout:
            # Moving off one shared socket: its units keep serving until nginx, in its own step, is moved to the slots
            # and drained; that step stops them (legacy_units), and a later run removes their files.
            self.legacy = self.legacy_running()
            keep = set(self.legacy + [spec.legacy_socket, spec.public_service])
            self.obsolete_present = [unit for unit in self.obsolete_present if unit not in keep or not self.legacy]
        self.result = {
            'changed': False, 'changed_units': list(self.changed_units), 'removed_units': list(self.obsolete_present),
            'stopped': [], 'started': [], 'restarted': [], 'socket_restarted': False, 'somaxconn': None,
            'exposure': None, 'staged_exposure': None, 'verified': False, 'slot': None, 'live': [], 'legacy_units': list(self.legacy),
        }

    def legacy_running(self) -> list:
        """The shared-socket layout's units that run (NAME.socket and the services on it)."""
        spec = self.spec
        if read_text(spec.path(spec.legacy_socket)) is None:
            return []
        known = self.systemd.list_units([spec.legacy_socket, spec.public_service, '%s@*.service' % spec.name])
        states = self.systemd.show_many(sorted(known), properties=('Id', 'ActiveState', 'TriggeredBy'))
        socket_active = states.get(spec.legacy_socket, {}).get('ActiveState') == 'active'
        if not socket_active:
            return []
        on_socket = [unit for unit, state in states.items() if unit != spec.legacy_socket and state.get('ActiveState') == 'active'
                     and spec.legacy_socket in (state.get('TriggeredBy') or '').split()]
        return sorted(on_socket) + [spec.legacy_socket]

    # -- the plan ---------------------------------------------------------------------------------

    @property
    def service_files_changed(self) -> list:
        return [unit for unit in self.changed_units if unit != self.spec.socket]

    def diff(self) -> list:
        return [{'before_header': self.spec.path(unit), 'after_header': self.spec.path(unit),
                 'before': self.installed.get(unit) or '', 'after': self.spec.units.get(unit, '')}
                for unit in self.changed_units + self.obsolete_present]

    def run(self) -> dict:
        spec = self.spec
        if self.changed_units:
            self.verify()
        self.guard()
        if self.check_mode:
            self.result['changed'] = bool(self.changed_units or self.obsolete_present)
            return self.result
        self.install()
        if spec.state == 'started':
            self.start()
        self.score_installed()
        return self.result

    # -- 2. verify the candidate --------------------------------------------------------------------

    def verify(self) -> None:
        """Stage every file and verify them together; score the app's unit offline. Check mode stages nothing."""
        spec = self.spec
        if self.check_mode:
            return
        os.makedirs(spec.staging_dir, mode=0o755, exist_ok=True)
        for unit, text in spec.units.items():
            atomic_write(spec.staged(unit), text, mode=0o644, durable=False)
        scored = spec.exposure_file if spec.exposure_file and spec.exposure_file in spec.units else None
        ok, said, score, weakest = check_staged(self.systemd, spec.units, spec.socket, spec.staged, scored)
        if not ok:
            raise UnitsError('socket_service: the new units for %s failed `systemd-analyze verify`; the installed units and the '
                             'running service are unchanged. systemd said: %s' % (spec.name, said.strip()))
        self.result['verified'] = True
        if scored:
            self.result['staged_exposure'] = score
            if spec.exposure_limit is not None and score is not None and score > float(spec.exposure_limit):
                raise UnitsError(
                    "socket_service: %s scores %s in `systemd-analyze security`, above the limit %s for hardening profile '%s'. "
                    "Nothing was installed. Review socket_service_hardening_overrides or raise socket_service_exposure_max. "
                    "Weakest settings: %s" % (spec.exposure_file, score, _num(spec.exposure_limit), spec.profile, weakest))

    # -- 3. the guards ---------------------------------------------------------------------------------

    def guard(self) -> None:
        spec = self.spec
        if spec.allow_socket_restart or spec.instances_layout:
            # Layout instances: a changed socket goes live with new slots beside the old ones, nothing restarts a socket.
            return
        installed_public = self.installed.get(spec.public_service)
        if (self.was_proxy and self.systemd.is_active(spec.public_service)
                and spec.units.get(spec.public_service) != installed_public):
            raise UnitsError(
                'socket_service: applying these settings means restarting or stopping the public proxy %s, which resets every '
                'connection it carries (systemd-socket-proxyd has no graceful stop). Nothing was changed. If that is acceptable '
                '(a maintenance window), set socket_service_allow_socket_restart: true.' % spec.public_service)
        if (spec.socket in self.changed_units and self.installed.get(spec.socket) is not None
                and self.systemd.is_active(spec.socket)):
            raise UnitsError(
                'socket_service: the settings of %s changed, and applying them means restarting the socket, which drops every queued '
                'connection and refuses new ones for a moment. Nothing was changed. If that is acceptable (a maintenance window), '
                'set socket_service_allow_socket_restart: true.' % spec.socket)

    # -- 4. install -------------------------------------------------------------------------------------

    def install(self) -> None:
        spec = self.spec
        socket_was_active = (not spec.instances_layout and spec.socket in self.changed_units
                             and self.systemd.is_active(spec.socket))
        for unit in self.changed_units:
            atomic_write(spec.path(unit), spec.units[unit], mode=0o644)
        self.stop_unwanted()
        for unit in self.obsolete_present:
            os.unlink(spec.path(unit))
        if self.was_proxy and not spec.proxy:
            link = link_path(spec.name)
            if os.path.lexists(link):
                os.unlink(link)
        if self.changed_units or self.obsolete_present:
            self.systemd.daemon_reload()
            self.result['changed'] = True
        if socket_was_active and self.installed.get(spec.socket) is not None:
            # Only with allow_socket_restart (guard): the instances go first, the socket after them.
            self.systemd.run('stop', spec.services)
            self.systemd.run('restart', [spec.socket])
            self.result['socket_restarted'] = True

    def stop_unwanted(self) -> None:
        """Units of this app that run but are no longer wanted (fewer instances, another mode); the socket keeps listening."""
        spec = self.spec
        if spec.instances_layout:
            return  # the slots are the flip's (start); the shared layout's units wait for nginx's drain (legacy_units)
        patterns = [spec.public_service, '%s@*.service' % spec.name]
        if self.was_proxy and not spec.proxy:
            patterns += ['%s-app@*.service' % spec.name, '%s-slot@*.service' % spec.name, '%s-slot@*.socket' % spec.name]
        known = self.systemd.list_units(patterns)
        unwanted = sorted(unit for unit, load in known.items() if load == 'loaded' and unit not in spec.services)
        if unwanted:
            self.systemd.run('disable', unwanted, extra=('--now',))
            self.result['stopped'] = unwanted
            self.result['changed'] = True

    # -- 5. start ------------------------------------------------------------------------------------------

    def start(self) -> None:
        spec = self.spec
        if spec.instances_layout:
            return self.start_slots()
        try:
            self.raise_somaxconn()
            self.enable_and_start([spec.socket])
            if spec.proxy:
                self.bring_slot_live()
            started = self.enable_and_start(spec.services)
            if self.restarts_instances():
                for unit in [unit for unit in spec.services if unit not in started]:
                    self.restart_one(unit)
            self.wait_ready(spec.services)
        except (SystemdError, NotHealthy) as exc:
            raise UnitsError(self.diagnose(str(exc)))

    def start_slots(self) -> None:
        """Layout instances: the live slots run (a first start, or beside the shared layout, starts new ones); a changed unit
        goes live with a surge (new slots beside the live ones, one nginx reload, the old ones drained and stopped)."""
        flip = self.flip_factory()
        try:
            self.raise_somaxconn()
            live = flip.slots.live()
            if live and not self.legacy and self.spec.restart_on_change and self.changed_units:
                outcome = flip.surge()
            elif live and not self.legacy:
                outcome = flip.ensure_started(route_now=True)
            else:
                # Nothing routed to the slots yet: start N of them (not those a shared layout still runs) and write their
                # server files; the nginx_upstream step points the site at them.
                busy = flip.running() + [self.slot_of(unit) for unit in self.legacy]
                if self.legacy:
                    # On TCP the shared socket may hold the address of a slot (127.0.0.1:PORT is slot 1's) until it retires.
                    busy += [k for k in flip.slots.numbers if flip.slots.socket_path(k) == flip.slots.listen]
                new = [k for k in flip.slots.numbers if k not in busy][:flip.slots.instances]
                flip.start(new)
                flip.write_states(new)
                outcome = dict(flip.result, live_after=new, changed=True)
        except (SystemdError, NotHealthy, FlipError, BackendError) as exc:
            raise UnitsError(self.diagnose(str(exc)))
        self.result['live'] = outcome['live_after']
        self.result['started'] += ['%s@%d.service' % (self.spec.name, k) for k in outcome['started']]
        self.result['stopped'] += ['%s@%d.service' % (self.spec.name, k) for k in outcome['stopped']]
        self.result['slot'] = dict((key, value) for key, value in outcome.items() if key != 'changed')
        if outcome['changed']:
            self.result['changed'] = True

    @staticmethod
    def slot_of(unit: str) -> int:
        """The instance number of NAME@K.service (0 for NAME.service)."""
        head, at, tail = unit.partition('@')
        number = tail.split('.', 1)[0]
        return int(number) if at and number.isdigit() else 0

    def restarts_instances(self) -> bool:
        spec = self.spec
        if spec.proxy:
            # Only the public proxy restarts here, and only when its own unit changed: the guard allowed that.
            return spec.public_service in self.changed_units
        return spec.restart_on_change and bool(self.service_files_changed)

    def raise_somaxconn(self) -> None:
        """Backlog= above net.core.somaxconn is capped silently, and the backlog is where connections wait during a restart."""
        spec = self.spec
        if not spec.manage_somaxconn or not spec.backlog:
            return
        current = int((read_text(SYSCTL_SOMAXCONN) or '0').strip() or 0)
        if current >= int(spec.backlog):
            return
        path = somaxconn_file(spec.name)
        atomic_write(path, somaxconn_text(spec.name, int(spec.backlog)), mode=0o644)
        rc, out, err = self.systemd.call(['sysctl', '--load', path])
        if rc != 0:
            raise SystemdError('sysctl --load %s failed with rc %d: %s' % (path, rc, (err or out).strip()))
        self.result['somaxconn'] = int(spec.backlog)
        self.result['changed'] = True

    def enable_and_start(self, units: list) -> list:
        """Enable and start what is not yet; returns the units that were not running before."""
        states = self.systemd.show_many(units, properties=('Id', 'ActiveState', 'UnitFileState', 'LoadState'))
        idle = [unit for unit in units if states.get(unit, {}).get('ActiveState') != 'active']
        disabled = [unit for unit in units if states.get(unit, {}).get('UnitFileState') not in ('enabled', 'static', 'enabled-runtime')]
        if disabled:
            self.systemd.run('enable', disabled)
        if idle:
            self.systemd.run('start', idle)
            self.result['started'] += idle
        if idle or disabled:
            self.result['changed'] = True
        return idle

    def bring_slot_live(self) -> None:
        """Proxy mode: a slot must be live before the public proxy's first connection; a changed app unit switches slots."""
        switch = self.switch_factory()
        started = switch.ensure_started()
        self.result['slot'] = dict((key, value) for key, value in started.items() if key != 'changed')
        if started.get('changed'):
            self.result['changed'] = True
            return
        app_changed = [unit for unit in self.service_files_changed if unit != self.spec.public_service]
        if self.spec.restart_on_change and app_changed:
            switched = self.switch_factory().switch()
            self.result['slot'] = dict((key, value) for key, value in switched.items() if key != 'changed')
            self.result['changed'] = True

    def restart_one(self, unit: str) -> None:
        """One instance: restart, wait for a new main PID that is active, then for the health path."""
        old = self.systemd.main_pid(unit)
        self.systemd.run('restart', [unit])
        deadline = self.clock() + self.spec.ready_timeout
        self.systemd.wait(unit, deadline, lambda state: state.get('ActiveState') == 'active' and state['MainPID'] not in (0, old),
                          fail=start_failure, what='active with a new main PID')
        self.probe(deadline)
        self.result['restarted'].append(unit)
        self.result['changed'] = True

    def wait_ready(self, units: list) -> None:
        deadline = self.clock() + self.spec.ready_timeout
        started = {}
        for unit in units:
            started[unit] = self.systemd.wait(unit, deadline, lambda state: state.get('ActiveState') == 'active', fail=start_failure,
                                              what='active')
        if self.spec.health_path and self.spec.health_endpoint:
            self.probe(deadline)
        else:
            self.settle(started)

    def settle(self, started: dict) -> None:
        """Each unit is still active, as the same process with no restart since, SETTLE_SECONDS after it first was."""
        self.systemd.sleep(SETTLE_SECONDS)
        for unit, first in started.items():
            state = self.systemd.show(unit)
            reason = start_failure(state)
            same = all(state.get(key) == first.get(key) for key in ('MainPID', 'NRestarts'))
            if reason is None and (state.get('ActiveState') != 'active' or not same):
                reason = 'was active, then did not stay up (MainPID %s -> %s, NRestarts %s -> %s)' % (
                    first.get('MainPID'), state.get('MainPID'), first.get('NRestarts'), state.get('NRestarts'))
            if reason is not None:
                raise SystemdError('%s %s: %s' % (unit, reason, describe_state(unit, state)))

    def probe(self, deadline: float) -> None:
        if self.spec.health_path and self.spec.health_endpoint:
            wait_healthy(self.spec.health_endpoint, self.spec.health_path, deadline, successes=1, host_header='localhost',
                         what='socket_service_ready_timeout', limit=self.spec.ready_timeout)

    # -- diagnosis ----------------------------------------------------------------------------------------

    def diagnose(self, original: str) -> str:
        spec = self.spec
        try:
            states = self.systemd.show_many(spec.services, properties=('Id', 'Result', 'ExecMainCode', 'ExecMainStatus', 'ActiveState'))
        except SystemdError:
            states = {}
        described = ['%s: Result=%s ExecMainCode=%s ExecMainStatus=%s ActiveState=%s' % (
            unit, s.get('Result', '?'), s.get('ExecMainCode', '?'), s.get('ExecMainStatus', '?'), s.get('ActiveState', '?'))
            for unit, s in states.items()]
        journal = self.systemd.journal(journal_units(spec.name), lines=JOURNAL_LINES)
        lines = [line for line in journal.split(' | ') if line][-12:]
        text = ' '.join(described)
        killed = (any(s.get('ExecMainCode') in ('2', '3') and s.get('ExecMainStatus') in KILLED_SIGNALS for s in states.values())
                  or re.search(r'Main process exited, code=(killed|dumped), status=(5|6|11|31)/', journal) is not None)
        exec_error = any(s.get('ExecMainCode') == '1' and re.fullmatch(r'2[0-3][0-9]|24[0-3]', s.get('ExecMainStatus') or '')
                         for s in states.values())
        suspect = spec.profile != 'none' and (killed or exec_error or DENIAL_RE.search(journal) is not None)
        parts = ['socket_service: %s did not become ready.' % spec.name]
        if suspect:
            parts.append("The failure looks caused by hardening (profile '%s'%s): the service was killed by the sandbox or its log "
                         "shows a denial." % (spec.profile, ' + strict' if spec.strict else ''))
            if spec.strict and killed:
                parts.append('MemoryDenyWriteExecute=yes (the strict tier) kills JIT runtimes such as Node.js, the JVM and PyPy: set '
                             'socket_service_hardening_strict: false for them.')
            parts.append('Allow what the app needs with socket_service_hardening_overrides or socket_service_read_write_paths, or '
                         'set socket_service_hardening_profile: none once to confirm.')
        parts.append('Unit state: %s.' % (text or 'unknown'))
        parts.append('Last log lines: %s' % lines)
        parts.append('Original error: %s' % original)
        return ' '.join(parts)

    # -- the installed unit's exposure -------------------------------------------------------------------

    def score_installed(self) -> None:
        """A drop-in the role does not manage can weaken what the staged score saw: score what runs, when it may differ."""
        spec = self.spec
        if not spec.exposure_unit or spec.state != 'started':
            return
        if not (self.changed_units or self.has_dropins()):
            return
        score, dummy, output = self.systemd.security(spec.exposure_unit)
        self.result['exposure'] = score
        if spec.exposure_limit is not None and score is not None and score > float(spec.exposure_limit):
            raise UnitsError('socket_service: %s scores %s as installed, above the limit %s; a drop-in in %s/%s.d/ may weaken the '
                             'profile.' % (spec.exposure_unit, score, _num(spec.exposure_limit), spec.unit_dir,
                                           spec.exposure_file or spec.exposure_unit))

    def has_dropins(self) -> bool:
        names = set([self.spec.exposure_unit, self.spec.exposure_file or ''])
        if '@' in self.spec.exposure_unit:
            names.add(re.sub(r'@[^.]*\.', '@.', self.spec.exposure_unit))
        return any(os.path.isdir(os.path.join(directory, name + '.d')) for directory in DROPIN_DIRS for name in names if name)


def _num(value) -> str:
    return '%g' % float(value)
