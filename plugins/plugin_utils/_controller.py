# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the controller can run, for the action plugins (never imported on a target)."""

from __future__ import annotations

from ansible.plugins.loader import module_loader

# The module the release role's rsync copy calls. It comes from the ansible.posix collection, which the collection does
# not require: without it, a local directory is copied as an archive (ansible.builtin only).
SYNCHRONIZE = 'ansible.posix.synchronize'


def has_module(name: str) -> bool:
    """Whether ``name`` (a FQCN) resolves to a module on this controller."""
    try:
        return bool(module_loader.find_plugin_with_context(name).resolved)
    except Exception:  # pylint: disable=broad-except
        # A broken collection on the path must not break the deploy: the module counts as absent.
        return False


def controller_facts() -> dict:
    """What the validator's rules and the roles read of the controller."""
    return {'controller_synchronize': has_module(SYNCHRONIZE)}
