# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the modules that probe or load an HTTP endpoint share: their argument errors, two option checks, and how
``main()`` turns ``run_module``'s outcome into Ansible's exit. Private to this collection."""

from __future__ import annotations

import typing as t


class ModuleError(Exception):
    """Invalid arguments, or a check that must pass before anything runs: the module fails with this message alone."""


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


def finish(module, run_module: t.Callable) -> None:
    """Run ``run_module(module)``, which returns ``(result, failure message or None)``, and exit as Ansible expects."""
    try:
        result, failure = run_module(module)
    except ModuleError as exc:
        module.fail_json(msg=str(exc))
    if failure is not None:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)
