# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one systemd client of the collection (internal): systemctl, systemd-analyze and journalctl.

Every module and every readiness wait talks to systemd through
:class:`Systemd`, so "active", "failed", "main PID" and "started" mean the
same thing in the pre-flight, the unit rollout, the measured restart, the
blue/green switch and the health gate. It takes the module's
``run_command`` (anything with the same signature), records every call that
changes state as a *step* with its times (the restart report shows them),
and answers predicates about unit states.

Standard library only; no ``ansible.*`` import, so unit tests drive it with a
fake ``run_command``.
"""

from __future__ import annotations

import time

# What `systemctl show` is asked for; Id first, the rest go into descriptions.
SHOW_PROPERTIES = ('Id', 'LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'Type', 'ExecMainCode', 'ExecMainStatus',
                   'NRestarts', 'ExecMainStartTimestampMonotonic')
DESCRIBED_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'Type')
OUTPUT_TAIL = 2000
JOURNAL_LINES = 20
POLL_INTERVAL = 0.05


class SystemdError(Exception):
    """A systemctl call failed, or a unit did not reach the state waited for."""


def tail(text) -> str:
    return (text or '').strip()[-OUTPUT_TAIL:]


def command_failure(argv: list, rc: int, out: str, err: str, details=()) -> str:
    """The message of a command that exited non-zero: the command, its exit status, its output and unit states."""
    command = ' '.join(str(arg) for arg in argv)
    return '%s failed with rc %d: %s%s' % (command, rc, tail(err) or tail(out) or '(no output)', ('; ' + '; '.join(details)) if details else '')


def output_failure(rc: int, out: str, err: str, what: str) -> str | None:
    """None when a command exited 0, else what it printed (its own message: nginx -t's, nft's), or that it exited RC."""
    return None if rc == 0 else ((err or '') + (out or '')).strip() or '%s exited %d' % (what, rc)


def relative_steps(steps: list, origin: float, scale: float = 1.0, suffix: str = '_s') -> list:
    """Recorded steps with their times relative to ``origin``: seconds (``started_s``, ...) or, with scale 1000 and
    suffix ``_ms``, milliseconds (``started_ms``, ...); a time that is None stays None."""
    def rel(value):
        return None if value is None else round((value - origin) * scale, 3)
    return [{'units': step['units'], 'argv': step['argv'], 'rc': step['rc'], 'started' + suffix: rel(step['started']),
             'returned' + suffix: rel(step['returned']), 'ready' + suffix: rel(step['ready'])} for step in steps]


def parse_show(text: str) -> dict:
    """``KEY=VALUE`` lines of ``systemctl show`` as a dict (MainPID as int)."""
    state = {}
    for line in text.splitlines():
        key, sep, value = line.partition('=')
        if sep:
            state[key.strip()] = value.strip()
    try:
        state['MainPID'] = int(state.get('MainPID') or 0)
    except ValueError:
        state['MainPID'] = 0
    return state


def parse_show_many(text: str) -> list:
    """``systemctl show A B ...`` prints one block per unit, separated by an empty line."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(parse_show('\n'.join(current)))
            current = []
    if current:
        blocks.append(parse_show('\n'.join(current)))
    return blocks


def describe_state(unit: str, state: dict, properties=DESCRIBED_PROPERTIES) -> str:
    return '%s: %s' % (unit, ' '.join('%s=%s' % (key, state.get(key, '?')) for key in properties))


def loaded(state: dict) -> bool:
    return state.get('LoadState') == 'loaded'


def running(state: dict) -> bool:
    return loaded(state) and state.get('ActiveState') == 'active'


def unit_failure(state: dict):
    """Why a unit counts as failed (a short reason), or None while it is starting or running."""
    if state.get('LoadState') not in ('loaded', None):
        return 'is not loaded (LoadState=%s)' % state.get('LoadState')
    if state.get('ActiveState') == 'failed':
        detail = 'Result=%s' % state.get('Result', '?')
        if state.get('ExecMainStatus') not in (None, '', '0'):
            detail += ', exit status %s' % state['ExecMainStatus']
        return 'failed (%s)' % detail
    return None


def check_staged(systemd, units, socket: str, path_of, score_unit=None):
    """``systemd-analyze verify`` of staged unit files (the socket first, so that its service resolves), then, when that
    passed and ``score_unit`` is given, its offline exposure score; ``path_of(unit)`` is where a unit was staged.
    Returns (ok, what verify said, score or None, the weakest settings). The installed units and the pre-flight's share it."""
    ordered = [socket] + [unit for unit in units if unit != socket]
    ok, said = systemd.verify([path_of(unit) for unit in ordered])
    if not ok or score_unit is None:
        return ok, said, None, ''
    score, weakest, dummy = systemd.security(path_of(score_unit), offline=True)
    return ok, said, score, weakest


def stopped_failure(state: dict):
    """A failure, or a unit that stopped: what a unit that must keep serving must not do."""
    reason = unit_failure(state)
    if reason is None and state.get('ActiveState') in ('inactive', 'deactivating'):
        reason = 'stopped (ActiveState=%s, Result=%s)' % (state['ActiveState'], state.get('Result', '?'))
    return reason


def start_failure(state: dict):
    """Why a starting unit counts as failed, or None while it may still come up.

    Besides a failed unit, one that exited and waits for its Restart=
    (SubState auto-restart) or that stopped has failed its start: waiting out
    the timeout would only hide that.
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


class Systemd:
    """systemctl, systemd-analyze and journalctl through one ``run_command``; state changes are recorded as steps."""

    def __init__(self, run_command, systemctl: str = 'systemctl', journalctl: str | None = 'journalctl',
                 analyze: str | None = 'systemd-analyze', clock=time.monotonic, sleep=time.sleep):
        self.run_command = run_command
        self.systemctl = systemctl
        self.journalctl = journalctl
        self.analyze = analyze
        self.clock = clock
        self.sleep = sleep
        self.steps = []

    @classmethod
    def for_module(cls, module, required: bool = True) -> 'Systemd':
        """The client of an AnsibleModule: its run_command and the binaries on the target's PATH."""
        return cls(module.run_command, systemctl=module.get_bin_path('systemctl', required=required),
                   journalctl=module.get_bin_path('journalctl'), analyze=module.get_bin_path('systemd-analyze'))

    @property
    def available(self) -> bool:
        return bool(self.systemctl)

    def call(self, argv: list):
        """Run argv with a C locale (systemctl's messages are parsed); returns (rc, stdout, stderr)."""
        return self.run_command(list(argv), environ_update={'LC_ALL': 'C'})

    # -- state changes, each one a recorded step ----------------------------------------------

    def record(self, argv: list, units: list) -> dict:
        """A step of a restart or a switch; also used for what is not a systemctl call (a link swap, a drain)."""
        step = {'units': list(units), 'argv': list(argv), 'rc': None, 'started': self.clock(), 'returned': None, 'ready': None}
        self.steps.append(step)
        return step

    def step(self, argv: list, units: list, check: bool = True, described=None) -> dict:
        """Run any command as a recorded step (a systemctl verb, or a command of the caller's that acts on ``units``).

        Raises SystemdError on a non-zero exit when ``check``; the message has the state of ``described`` (default
        ``units``). Returns the step.
        """
        step = self.record(argv, units)
        rc, out, err = self.call(argv)
        step['rc'] = rc
        step['returned'] = self.clock()
        if rc != 0 and check:
            details = [self.describe(unit) for unit in (units if described is None else described)]
            raise SystemdError(command_failure(argv, rc, out, err, details))
        return step

    def run(self, verb: str, units: list, check: bool = True, extra: tuple = ()) -> dict:
        """``systemctl VERB [EXTRA] UNITS``; raises SystemdError on a non-zero exit when ``check``. Returns the step."""
        return self.step([self.systemctl, '--no-ask-password', verb] + list(extra) + list(units), units, check=check)

    def daemon_reload(self) -> dict:
        return self.run('daemon-reload', [])

    def reset_failed(self, units: list) -> None:
        """Forget failed units (a failed unit stays listed until reset, even with its file gone); never fails."""
        if units:
            self.call([self.systemctl, 'reset-failed'] + list(units))

    # -- questions ------------------------------------------------------------------------------

    def show(self, unit: str, properties=SHOW_PROPERTIES) -> dict:
        argv = [self.systemctl, 'show', '--property=' + ','.join(properties), unit]
        rc, out, err = self.call(argv)
        if rc != 0:
            raise SystemdError('%s failed with rc %d: %s' % (' '.join(argv), rc, tail(err) or tail(out)))
        return parse_show(out)

    def show_many(self, units: list, properties=SHOW_PROPERTIES) -> dict:
        """{unit: state} for several units in one systemctl call."""
        if not units:
            return {}
        argv = [self.systemctl, 'show', '--property=' + ','.join(properties)] + list(units)
        rc, out, err = self.call(argv)
        if rc != 0:
            raise SystemdError('%s failed with rc %d: %s' % (' '.join(argv), rc, tail(err) or tail(out)))
        return dict(zip(units, parse_show_many(out)))

    def describe(self, unit: str, properties=DESCRIBED_PROPERTIES) -> str:
        """The unit's state in one line, or why it could not be read; for error messages."""
        try:
            return describe_state(unit, self.show(unit), properties)
        except SystemdError as exc:
            return '%s: %s' % (unit, exc)

    def first_not_loaded(self, units: list):
        """``(unit, state)`` of the first unit systemd cannot load (not found, masked, bad), or None when all load."""
        for unit in units:
            state = self.show(unit)
            if not loaded(state):
                return unit, state
        return None

    def main_pid(self, unit: str) -> int:
        return self.show(unit).get('MainPID', 0)

    def is_active(self, unit: str) -> bool:
        rc, out, dummy = self.call([self.systemctl, 'is-active', unit])
        return out.strip() == 'active'

    def is_enabled(self, units: list) -> bool:
        """True when every unit is enabled (systemctl is-enabled exits 0 when any one is, so read the lines)."""
        rc, out, dummy = self.call([self.systemctl, 'is-enabled'] + list(units))
        lines = out.split()
        return len(lines) == len(units) and all(line == 'enabled' for line in lines)

    def list_units(self, patterns: list, types=('service', 'socket')) -> dict:
        """{unit: load state} of the units systemd knows matching the patterns (loaded or not, active or not)."""
        rc, out, dummy = self.call([self.systemctl, 'list-units', '--all', '--plain', '--no-legend',
                                    '--type=' + ','.join(types)] + list(patterns))
        known = {}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                known[fields[0]] = fields[1]
        return known

    def journal(self, units: list, lines: int = JOURNAL_LINES, since: float | None = None, patterns: bool = False) -> str:
        """The units' last journal lines joined with " | ", since the UNIX time ``since``; '' when unavailable."""
        if not self.journalctl or not lines or not units:
            return ''
        argv = [self.journalctl, '--no-pager', '--output=cat', '--lines=%d' % lines] + ['--unit=' + unit for unit in units]
        if since is not None:
            argv.append('--since=@%d' % int(since))
        rc, out, dummy = self.call(argv)
        if rc != 0:
            return ''
        return ' | '.join(line.strip() for line in out.strip().splitlines() if line.strip())

    # -- waits ------------------------------------------------------------------------------------

    def wait(self, unit: str, deadline: float, accept, fail=unit_failure, what: str = 'ready', within: str = 'in time',
             interval: float = POLL_INTERVAL, described: bool = True) -> dict:
        """Poll the unit until ``accept(state)``; raise SystemdError when ``fail(state)`` gives a reason or at the deadline.

        The messages are "UNIT REASON" and "UNIT was not WHAT WITHIN", followed by the unit's state when ``described``.
        """
        while True:
            state = self.show(unit)
            if accept(state):
                return state
            reason = fail(state) if fail is not None else None
            if reason is None and self.clock() >= deadline:
                reason = 'was not %s %s' % (what, within)
            if reason is not None:
                raise SystemdError('%s %s%s' % (unit, reason, (': ' + describe_state(unit, state)) if described else ''))
            self.sleep(interval)

    # -- systemd-analyze ----------------------------------------------------------------------------

    def verify(self, paths: list):
        """``systemd-analyze verify``: (ok, what it said). Warnings count: systemd drops unknown directives silently."""
        rc, out, err = self.call([self.analyze or 'systemd-analyze', 'verify'] + list(paths))
        said = (err or '').strip()
        warned = any(word in said for word in ('Unknown key', 'Unknown section', 'Unknown lvalue', 'gnoring', 'not executable',
                                               'nvalid'))
        return rc == 0 and not warned, said or tail(out)

    def security(self, unit_or_path: str, offline: bool = False):
        """``systemd-analyze security``: (score or None, the ✗ lines, the whole output)."""
        argv = [self.analyze or 'systemd-analyze', 'security', '--no-pager']
        if offline:
            argv.append('--offline=yes')
        rc, out, err = self.call(argv + [unit_or_path])
        score = None
        for line in out.splitlines():
            if 'Overall exposure level for' in line:
                try:
                    score = float(line.split(':', 1)[1].split()[0])
                except (IndexError, ValueError):
                    score = None
        weakest = [' '.join(line.split()) for line in out.splitlines() if '\u2717' in line]
        return score, weakest, out if rc == 0 else (tail(err) or tail(out))
