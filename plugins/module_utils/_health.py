# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Readiness: a health path that answers 2xx several times in a row, and unit states.

Shared by the ``health_check`` and ``zero_downtime_restart`` modules, so a
pre-flight probe, a post-switch gate and the readiness wait of a restart all
mean the same thing by "healthy". Standard library only (no ``ansible.*``).
"""

from __future__ import annotations

import time

from ansible_collections.zerodown.deploy.plugins.module_utils._http import request

DEFAULT_SUCCESSES = 3
DEFAULT_INTERVAL = 0.05
DEFAULT_PROBE_TIMEOUT = 5.0
# A probe may overrun the deadline by up to this rather than time out for want of time.
PROBE_MIN_TIMEOUT = 1.0
BODY_EXCERPT = 300

# What systemctl show is asked for; Id first, the rest go into descriptions.
SHOW_PROPERTIES = ('Id', 'LoadState', 'ActiveState', 'SubState', 'Result', 'MainPID', 'Type', 'ExecMainCode', 'ExecMainStatus')


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


# -- systemd unit states ------------------------------------------------------------------------


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


def describe_state(unit: str, state: dict, properties=SHOW_PROPERTIES[1:7]) -> str:
    return '%s: %s' % (unit, ' '.join('%s=%s' % (key, state.get(key, '?')) for key in properties))


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
