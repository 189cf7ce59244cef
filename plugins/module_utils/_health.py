# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Readiness (internal): a health path that answers 2xx several times in a row, and the health_check module's backend.

Shared by the ``health_check``, ``zero_downtime_restart`` and ``blue_green``
modules, so a pre-flight probe, a post-switch gate and the readiness wait of a
restart all mean the same thing by "healthy". Unit states come from the one
systemd client, ``_systemd``. Standard library only (no ``ansible.*``).
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._http import request
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, endpoint, header_value, request_path, within
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import JOURNAL_LINES, SystemdError, stopped_failure
from ansible_collections.zerodown.deploy.plugins.module_utils._validate import ValidationError, unit_name

DEFAULT_SUCCESSES = 3
# The bounds of a gate, for the health_check module and for zero_downtime_restart's gate_successes and gate_timeout.
MAX_SUCCESSES = 100
MAX_TIMEOUT = 3600
DEFAULT_INTERVAL = 0.05
DEFAULT_PROBE_TIMEOUT = 5.0
# A probe may overrun the deadline by up to this rather than time out for want of time.
PROBE_MIN_TIMEOUT = 1.0
BODY_EXCERPT = 300
# What the health_check module reports of each watched unit.
REPORTED_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'ExecMainStatus')
# The part of systemctl's message a unit that could not be read reports as its "error".
SHOW_ERROR_TAIL = 500


class NotHealthy(Exception):
    """The health path did not answer often enough in time, or a watched unit failed."""

    def __init__(self, message: str, outcome: 'HealthOutcome'):
        super().__init__(message)
        self.outcome = outcome


def is_healthy_status(status) -> bool:
    return status is not None and 200 <= status < 300


def _outcome_label(answer) -> str:
    return 'HTTP %d' % answer.status if answer.status is not None else answer.kind


class HealthOutcome:
    """What the probes saw: attempts, the current streak, a tally of answers, the last one."""

    def __init__(self):
        self.attempts = 0
        self.streak = 0
        self.answers = {}
        self.last = None
        self.started_at = time.monotonic()
        self.finished_at = None

    def record(self, answer) -> None:
        self.attempts += 1
        label = _outcome_label(answer)
        self.answers[label] = self.answers.get(label, 0) + 1
        self.last = answer
        self.streak = self.streak + 1 if is_healthy_status(answer.status) else 0

    def tally(self) -> str:
        return ', '.join('%s x%d' % (key, count) for key, count in sorted(self.answers.items(), key=lambda item: -item[1]))

    def last_text(self) -> str:
        if self.last is None:
            return 'none'
        if self.last.status is not None:
            body = self.last.text.strip().replace('\n', ' ')[:BODY_EXCERPT]
            return 'HTTP %d%s' % (self.last.status, (' ' + repr(body)) if body else '')
        return '%s (%s)' % (self.last.kind, self.last.error)

    def to_dict(self) -> dict:
        last = None
        if self.last is not None:
            last = {
                'status': self.last.status,
                'kind': self.last.kind,
                'error': self.last.error,
                'body': self.last.text[:BODY_EXCERPT] if self.last.status is not None else None,
            }
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return {
            'attempts': self.attempts,
            'streak': self.streak,
            'answers': dict(self.answers),
            'last': last,
            'elapsed_s': round(end - self.started_at, 3),
        }


def wait_healthy(endpoint, path: str, deadline: float, successes: int = DEFAULT_SUCCESSES, host_header=None,
                 probe_timeout: float = DEFAULT_PROBE_TIMEOUT, interval: float = DEFAULT_INTERVAL, abort=None, what: str = 'ready_timeout',
                 limit: float | None = None) -> HealthOutcome:
    """Probe GET ``path`` until ``successes`` consecutive 2xx answers, or raise :class:`NotHealthy`.

    ``abort`` is called between probes; a string it returns (say, "the unit
    failed") ends the wait at once with that reason instead of waiting out the
    deadline. ``what`` and ``limit`` name the time bound in the message.
    """
    outcome = HealthOutcome()
    while True:
        remaining = deadline - time.monotonic()
        answer = request(endpoint, 'GET', path, timeout=min(probe_timeout, max(remaining, PROBE_MIN_TIMEOUT)), host_header=host_header)
        outcome.record(answer)
        if outcome.streak >= successes:
            outcome.finished_at = time.monotonic()
            return outcome
        reason = abort() if abort is not None else None
        if reason is None and time.monotonic() >= deadline:
            reason = 'did not answer 2xx %d times in a row within %s (%s s)' % (
                successes, what, ('%g' % limit) if limit is not None else '?')
        if reason is not None:
            outcome.finished_at = time.monotonic()
            raise NotHealthy('health check GET %s through %s %s; last answer: %s; answers: %s'
                             % (path, endpoint, reason, outcome.last_text(), outcome.tally()), outcome)
        # Never sleep past the deadline: one last probe at the deadline, then the verdict.
        time.sleep(max(min(interval, deadline - time.monotonic()), 0))


# -- the health_check module -------------------------------------------------------------------------


class HealthCheckSettings:
    """The health_check module's options, validated (ModuleError otherwise)."""

    def __init__(self, params: dict):
        self.warnings = []
        self.target = endpoint('target', params['target'], self.warnings, path_note='the probes go to path')
        self.path = request_path('path', params['path'])
        self.host_header = header_value('host_header', params['host_header'])
        self.successes = within('successes', params['successes'], 1, MAX_SUCCESSES)
        self.timeout = within('timeout', params['timeout'], 0, MAX_TIMEOUT, low_open=True)
        self.probe_timeout = within('probe_timeout', params['probe_timeout'], 0, 300, low_open=True)
        self.interval = within('interval', params['interval'], 0, 60)
        self.journal_lines = within('journal_lines', params['journal_lines'], 0, 200)
        try:
            self.units = [unit_name(unit, 'units') for unit in params['units']]
        except ValidationError as exc:
            raise ModuleError(str(exc))


class UnitWatch:
    """Reads the watched units between probes; any failure ends the wait. ``systemd`` is a ``_systemd.Systemd``."""

    def __init__(self, systemd, units: list, restarts: t.Optional[dict] = None):
        self.systemd = systemd
        self.units = units
        self.states = {}
        # {unit: the NRestarts it may have}: a unit that this run started explicitly (which resets the count) and that
        # systemd has since restarted crashed or was killed, even if it serves again by the time the probes look.
        self.restarts = dict(restarts or {})

    def read_all(self) -> dict:
        """Every unit's state in one systemctl call; when that call fails, each unit alone (one it cannot read counts as
        LoadState=error), so that the message names the unit."""
        try:
            states = self.systemd.show_many(self.units)
            if len(states) == len(self.units):
                return states
        except SystemdError:
            pass
        return dict((unit, self.read(unit)) for unit in self.units)

    def read(self, unit: str) -> dict:
        try:
            return self.systemd.show(unit)
        except SystemdError as exc:
            return {'LoadState': 'error', 'error': str(exc)[-SHOW_ERROR_TAIL:]}

    def __call__(self):
        """The first failure as a reason, or None."""
        self.states.update(self.read_all())
        for unit in self.units:
            reason = stopped_failure(self.states[unit]) or self.restarted(unit)
            if reason is not None:
                return 'stopped early because %s %s' % (unit, reason)
        return None

    def restarted(self, unit: str) -> t.Optional[str]:
        allowed = self.restarts.get(unit)
        try:
            count = int(self.states[unit].get('NRestarts') or 0)
        except (TypeError, ValueError):
            return None
        if allowed is None or count <= allowed:
            return None
        return 'was restarted by systemd %d time(s) after it was started for this restart (it crashed or was killed)' % (count - allowed)

    def refresh(self) -> None:
        self.states.update(self.read_all())

    def report(self) -> dict:
        return dict((unit, dict((key, state.get(key)) for key in REPORTED_PROPERTIES)) for unit, state in self.states.items())

    def journal(self, lines: int) -> str:
        return self.systemd.journal(self.units, lines) if self.units else ''


def hold_to_gate(systemd, target, path: str, successes: int, timeout: float, host_header=None, units=(),
                 probe_timeout: float = DEFAULT_PROBE_TIMEOUT, interval: float = DEFAULT_INTERVAL,
                 journal_lines: int = JOURNAL_LINES, what: str = 'timeout', restarts: t.Optional[dict] = None):
    """The health gate: ``successes`` 2xx answers of ``path`` in a row within ``timeout``, while none of ``units`` stops.

    Used by the health_check module and at the end of zero_downtime_restart, so that both gates mean the same. Returns
    ``(result, failure message or None)``; a failure carries the watched units' last journal lines.
    """
    watch = UnitWatch(systemd, list(units), restarts)
    deadline = time.monotonic() + timeout
    failure = None
    try:
        outcome = wait_healthy(target, path, deadline, successes=successes, host_header=host_header, probe_timeout=probe_timeout,
                               interval=interval, abort=watch if watch.units else None, what=what, limit=timeout)
    except NotHealthy as exc:
        outcome = exc.outcome
        failure = str(exc)
    watch.refresh()
    result = outcome.to_dict()
    result['target'] = str(target)
    result['units'] = watch.report()
    if failure is not None:
        journal = watch.journal(journal_lines)
        if journal:
            failure += '; last journal lines: ' + journal
    return result, failure


def run_health_check(settings: HealthCheckSettings, systemd, warn=None):
    """The health_check module: the gate, the watched units' states and, on failure, their journal. Returns (result, failure)."""
    for warning in settings.warnings:
        if warn is not None:
            warn(warning)
    result, failure = hold_to_gate(systemd, settings.target, settings.path, settings.successes, settings.timeout,
                                   host_header=settings.host_header, units=settings.units, probe_timeout=settings.probe_timeout,
                                   interval=settings.interval, journal_lines=settings.journal_lines)
    result['changed'] = False
    return result, failure
