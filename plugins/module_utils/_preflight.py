# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pre-flight (internal; the ``preflight`` module): a candidate release on a private socket, probed, then gone.

"Pre-flight" means this and nothing else: before ``current`` moves, the new
release starts with the very units the ``socket_service`` role installs (same
user, environment, hardening, ``Type=``; rendered by the role for the name
``NAME-preflight`` and a private socket only root may use), and must answer
its health path several times in a row. The units pass ``systemd-analyze verify``
first, in a directory of their own, as the installed units do. The units are runtime units
(``/run/systemd/system``); whatever happens they are stopped, removed and
forgotten again, so nothing of the live service is touched either way.

Standard library only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy, wait_healthy
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import SystemdError, check_staged, stopped_failure

SUCCESSES = 3
JOURNAL_LINES = 20


class PreflightError(Exception):
    """The candidate did not answer; the message says why, with its log lines."""

    def __init__(self, msg: str, result: dict):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Candidate:
    """The NAME-preflight units of one run."""

    def __init__(self, systemd, socket_unit: str, service_unit: str, units: dict, endpoint: str, health_path: str,
                 timeout: float, unit_dir: str = '/run/systemd/system', what: str = '', successes: int = SUCCESSES,
                 clock=time.monotonic, exposure_limit: t.Optional[float] = None):
        self.systemd = systemd
        self.socket_unit = socket_unit
        self.service_unit = service_unit
        self.units = dict(units)
        self.endpoint = endpoint
        self.health_path = health_path or '/'
        self.timeout = float(timeout)
        self.unit_dir = unit_dir
        self.what = what
        self.successes = successes
        self.clock = clock
        self.exposure_limit = exposure_limit

    def _path(self, unit: str) -> str:
        return os.path.join(self.unit_dir, unit)

    def watch(self):
        """Between probes: the candidate must not have died (a crash at boot ends the wait at once)."""
        try:
            reason = stopped_failure(self.systemd.show(self.service_unit))
        except SystemdError as exc:
            return 'stopped early because %s' % exc
        return None if reason is None else 'stopped early because %s %s' % (self.service_unit, reason)

    def run(self) -> dict:
        started_at = time.time()
        result = {'changed': False, 'units': [self.socket_unit, self.service_unit], 'endpoint': self.endpoint}
        failure = None
        try:
            self.verify()
            for unit, text in self.units.items():
                atomic_write(self._path(unit), text, mode=0o644, durable=False)
            self.systemd.daemon_reload()
            # Started explicitly rather than by the first probe, so that a crash at boot shows as a failed unit at once.
            self.systemd.run('start', [self.socket_unit])
            start = self.systemd.run('start', [self.service_unit], check=False)
            if start['rc'] != 0:
                failure = '%s did not start (%s)' % (self.service_unit, self.systemd.describe(self.service_unit))
            else:
                outcome = wait_healthy(self.endpoint, self.health_path, self.clock() + self.timeout, successes=self.successes,
                                       abort=self.watch, what='the pre-flight timeout', limit=self.timeout)
                result.update(outcome.to_dict())
        except NotHealthy as exc:
            result.update(exc.outcome.to_dict())
            failure = str(exc)
        except SystemdError as exc:
            failure = str(exc)
        finally:
            journal = self.systemd.journal([self.service_unit], lines=JOURNAL_LINES, since=started_at) if failure else ''
            self.clean_up()
        if failure is not None:
            message = 'socket_service: pre-flight of %s failed; nothing live was touched. %s' % (_short(self.what), failure)
            if journal:
                message += '; last journal lines: ' + journal
            raise PreflightError(message, result)
        return result

    def verify(self) -> None:
        """The candidate's units pass ``systemd-analyze verify`` before systemd sees them: a directive that systemd ignores
        (or one a bad value smuggled in) would otherwise run unchecked, and as root for an ExecStartPre=+."""
        staging = tempfile.mkdtemp(prefix='zerodown-preflight-')
        try:
            for unit, text in self.units.items():
                atomic_write(os.path.join(staging, unit), text, mode=0o644, durable=False)
            # The installed units are scored after the switch; the candidate, with the same hardening, before it.
            ok, said, score, weakest = check_staged(self.systemd, self.units, self.socket_unit, lambda unit: os.path.join(staging, unit),
                                                    self.service_unit if self.exposure_limit is not None else None)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not ok:
            raise SystemdError('its units failed `systemd-analyze verify`: %s' % said.strip())
        if score is not None and score > float(self.exposure_limit):
            raise SystemdError('its service scores %s in `systemd-analyze security`, above the limit %s of its hardening profile; '
                               'weakest settings: %s' % (score, self.exposure_limit, weakest))

    def clean_up(self) -> None:
        """Stop, remove and forget the units, whatever happened (a failed unit stays listed until reset).

        No reload after the files go: systemd unloads an inactive unit nothing refers to by itself, and the
        next pre-flight's reload reads its new files.
        """
        units = [self.service_unit, self.socket_unit]
        # Only the probes ever reached the candidate: no request to finish, so no graceful stop to wait for.
        self.systemd.run('kill', [self.service_unit], check=False, extra=('--signal=SIGKILL',))
        self.systemd.run('stop', units, check=False)
        for unit in self.units:
            try:
                os.unlink(self._path(unit))
            except FileNotFoundError:
                pass
        self.systemd.reset_failed(units)


def socket_would_change(path: str, content: str) -> bool:
    """The live socket's unit file differs from what the deploy would install (none installed yet: a first install)."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read() != content
    except FileNotFoundError:
        return False


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 3] + '...'
