# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""zerodown.deploy.validate: run the one validator (module_utils/_validate.py) on a role's variables, on the controller.

A role calls it first, before anything on the host changes. The values are
its variables as the task sees them (role defaults, inventory, play and
include_role vars, extra vars), each templated when a rule reads it, so a
variable no rule needs is never templated. Nothing connects to the host.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.zerodown.deploy.plugins.module_utils import _validate
from ansible_collections.zerodown.deploy.plugins.plugin_utils._controller import controller_facts

# What the rules read from the play besides the role's variables.
PLAY_VARIABLES = ('ansible_play_batch', 'ansible_play_hosts_all', 'groups')


def plain(value):
    """A templated value as plain Python data, so that messages show it as the roles' templates did."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return dict((plain(key), plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


class Settings(Mapping):
    """A role's variables, read on demand: the given values first, then the task's variables, templated once each."""

    def __init__(self, templar, task_vars, given=None, option_names=()):
        self._templar = templar
        self._task_vars = task_vars
        self._given = dict(given or {})
        self._read = {}
        # The role's own variables (its defaults), which the single-line rule scans whether or not another rule reads them.
        self.option_names = sorted(set(option_names) | set(self._given))

    def __getitem__(self, name):
        if name not in self._read:
            if name in self._given:
                value = self._given[name]
            elif name in self._task_vars:
                value = self._templar.template(self._task_vars[name])
            else:
                raise KeyError(name)
            self._read[name] = plain(value)
        return self._read[name]

    def __iter__(self):
        return iter(sorted(set(self._given) | set(self._read)))

    def __len__(self):
        return len(set(self._given) | set(self._read))

    def scan(self, name):
        """A value for a rule that looks at every variable: None when it is not defined or cannot be templated here (a
        default that refers to what a later task sets); not counted as read."""
        if name in self._read:
            return self._read[name]
        try:
            value = self._given[name] if name in self._given else self._templar.template(self._task_vars[name])
        except Exception:  # pylint: disable=broad-exception-caught
            return None
        return plain(value)

    @property
    def read(self):
        """The names a rule read, in order of their first use."""
        return list(self._read)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def _role_defaults(self):
        """The names of the calling role's defaults (none when the task runs outside a role)."""
        role = getattr(self._task, '_role', None)
        try:
            defaults = role.get_default_vars() if role is not None else {}
        except Exception:  # pylint: disable=broad-exception-caught
            return []
        return [name for name in defaults if isinstance(name, str)] if isinstance(defaults, Mapping) else []

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        dummy, args = self.validate_argument_spec(argument_spec=dict(
            role=dict(type='str', required=True, choices=sorted(_validate.CHECKS)),
            entry=dict(type='str'),
            settings=dict(type='dict'),
        ))
        role, entry = args['role'], args['entry']
        settings = Settings(self._templar, task_vars, args['settings'], self._role_defaults())
        play = dict((name, plain(self._templar.template(task_vars[name]))) for name in PLAY_VARIABLES if name in task_vars)
        play.update(controller_facts())
        try:
            messages = _validate.check(role, settings, entry=entry, play=play)
        except _validate.ValidationError as exc:
            raise AnsibleError('zerodown.deploy.validate: %s' % exc) from exc
        except KeyError as exc:
            raise AnsibleError('zerodown.deploy.validate: the %s role needs the variable %s, and it is not defined (pass it in settings, '
                               'or run this task inside the role, which defines its defaults)' % (role, exc.args[0])) from None

        result.update(changed=False, validated=settings.read, messages=messages, controller=controller_facts())
        if messages:
            result.update(failed=True, msg=' | '.join(messages))
        else:
            result['msg'] = '%s: %d variables valid' % (role, len(settings.read))
        return result
