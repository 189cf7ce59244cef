# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module of the collection shares (internal): the one error type, the option checks the HTTP modules
share (ranges, endpoints, request paths, header values), and how ``main()`` turns ``run_module``'s outcome into
Ansible's exit.

Standard library only; no ``ansible.*`` import, so the backends in module_utils raise :class:`ModuleError`
and stay testable without an AnsibleModule."""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._http import parse_endpoint, split_url_path
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import LockError, restart_lock


class ModuleError(Exception):
    """The module fails with this message, and with ``result`` (what it did or found so far) alongside.

    Invalid arguments and checks that must pass before anything runs carry no result; a failure after a
    change (a rejected nginx configuration, a release rule) carries the result the task returns.
    """

    def __init__(self, msg: str, result: t.Optional[dict] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = dict(result or {})


def number_text(value) -> str:
    """A number as the messages write it: 0.5, 3600, 1e+06."""
    return ('%g' % value) if isinstance(value, float) else str(value)


def within(name: str, value, low, high, unit: str = '', low_open: bool = False):
    """Check ``low <= value <= high`` (``low < value`` with low_open) and return the value; None means no upper bound."""
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        lower = ('> %s' if low_open else '>= %s') % number_text(low)
        upper = ' and <= %s' % number_text(high) if high is not None else ''
        raise ModuleError('%s must be %s%s%s, got %s' % (name, lower, upper, unit, number_text(value)))
    return value


def endpoint(name: str, value: str, warnings: list, path_note: str = 'requests go to the path options'):
    """An endpoint option (unix:PATH, PATH, HOST:PORT, http://HOST[:PORT]); the path of an http:// URL is ignored with a warning."""
    text, ignored = split_url_path(value)
    if ignored:
        warnings.append('the path %s in %s is ignored; %s' % (ignored, name, path_note))
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise ModuleError('%s: %s' % (name, exc))


def request_path(name: str, value: str) -> str:
    """An HTTP request path option: it starts with ``/`` and has no whitespace or control characters."""
    if not value or not value.startswith('/') or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ModuleError('%s must start with "/" and contain no whitespace or control characters, got %r' % (name, value))
    return value


def header_value(name: str, value: t.Optional[str]) -> t.Optional[str]:
    """An HTTP header value option (None or empty for none); a line break would inject a header."""
    if value and any(c in value for c in '\r\n\x00'):
        raise ModuleError('%s must not contain line breaks' % name)
    return value or None


def finish(module, run_module: t.Callable, restarts: t.Optional[str] = None) -> None:
    """Run ``run_module(module)``, which returns ``(result, failure message or None)``, and exit as Ansible expects.

    A :class:`ModuleError` fails the task with its message and its result. With ``restarts`` (a service name), the run
    holds that service's restart lock (``_lock.restart_lock``), so no two restarts of one app overlap.
    """
    try:
        with restart_lock(restarts, check_mode=getattr(module, 'check_mode', False)):
            result, failure = run_module(module)
    except LockError as exc:
        module.fail_json(msg='another restart of %s is still running on this host: %s' % (restarts, exc.msg))
    except ModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    if failure is not None:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)
