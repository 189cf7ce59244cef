# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""zerodown.deploy.release: the module, plus the deploy lock in one task.

Every ``zerodown.deploy.release`` task goes through this action plugin. For
every state but ``lock`` it only runs the module. For ``state: lock`` it:

1. fills ``lock_host``, ``lock_pid`` and ``lock_owner`` from the controller
   when they are not given: the host name, the ``ansible-playbook`` process
   (this worker's parent) and the user, and with that PID ``lock_holder``:
   who that process is (machine ID, boot ID, PID namespace, start time); and
   makes a random ``lock_id`` when the task has none (the result's
   ``lock_id`` says which);
2. tries the lock at once (``lock_timeout: 0``);
3. when another run holds it, and that run's ``lock_holder`` proves here that
   its process has ended (``_lock.holder_gone``: this machine, and a reboot
   since or, in the same boot and PID namespace, a PID gone or reused), gives
   that very lease back (``state: unlock`` with its ``lock_id``), since
   nothing else ever will before the lease expires. A host name and a PID
   alone prove nothing: a clone shares the host name, and another PID
   namespace or ``hidepid`` makes a live process look gone;
4. then takes the lock, waiting up to the task's ``lock_timeout``.

The result is the module's lock result with ``took_over``: the lease given
back in step 3 (``lock_id``, ``pid``, ``host``, ``started``, ``play``), or
None, and ``controller_synchronize``: whether ``ansible.posix.synchronize``
resolves on the controller (the local copy by rsync needs it). The decisions are plain functions (:func:`dead_holder`,
:func:`take_lock`) that the unit tests run without Ansible's executor.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.zerodown.deploy.plugins.module_utils._lock import holder_gone, process_identity
from ansible_collections.zerodown.deploy.plugins.plugin_utils._controller import controller_facts

display = Display()

MODULE = 'zerodown.deploy.release'
IDENTITY_OPTIONS = ('lock_host', 'lock_pid', 'lock_owner')
TOOK_OVER_KEYS = ('lock_id', 'pid', 'host', 'started', 'play')
NO_BECOME = ('release: ansible_become is false for this host, which turns become off for every task, also for the steps that '
             'must run as the deploy and app users (the build, the migrations). Nothing was changed. A host reached as root '
             'without sudo keeps become on with ansible_become_method: su (root needs no password for it).')


def become_turned_off(task_vars: dict, template) -> bool:
    """True when the inventory sets ansible_become to false: that variable wins over every task's become keyword."""
    value = task_vars.get('ansible_become')
    if isinstance(value, str) and '{{' in value:
        value = template(value)
    return value is not None and not boolean(value, strict=False)


def controller_identity(environ=None, proc: str = '/proc') -> dict:
    """This run as a lease names it: the controller's host name, the ``ansible-playbook`` process and the user.

    The action plugin runs in a worker process forked by ``ansible-playbook``, so that process is the worker's parent.
    Only a playbook run is named by its PID: an ad-hoc ``ansible -m zerodown.deploy.release -a state=lock`` (an operator
    freezing deploys) ends at once, and its lease must last until it is given back or expires, not be taken over.
    """
    environ = os.environ if environ is None else environ
    owner = environ.get('USER')
    if not owner:
        try:
            owner = getpass.getuser()
        except (KeyError, OSError):
            owner = None
    parent = os.getppid()
    pid = parent if _is_playbook(parent, proc) else None
    return {'lock_host': socket.gethostname() or None, 'lock_pid': pid, 'lock_owner': owner,
            'lock_holder': process_identity(pid) if pid else None}


def _is_playbook(pid: int, proc: str = '/proc') -> bool:
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as handle:
            return b'ansible-playbook' in handle.read()
    except OSError:
        return False


def with_identity(args: dict, identity: dict) -> dict:
    """The task's arguments, with the controller's identity wherever the task gave no value, and a new lock_id if none."""
    filled = dict(args)
    if not filled.get('lock_id'):
        # One per task run: the role keeps it (the result's lock.lock_id) for the rest of the deploy.
        filled['lock_id'] = secrets.token_hex(10)
    for option in IDENTITY_OPTIONS:
        if filled.get(option) in (None, '') and identity.get(option) not in (None, ''):
            filled[option] = identity[option]
    # The controller's holder identity describes its own ansible-playbook, not a lock_pid the task gave.
    if not filled.get('lock_holder') and identity.get('lock_holder') and filled.get('lock_pid') == identity.get('lock_pid'):
        filled['lock_holder'] = identity['lock_holder']
    return filled


def dead_holder(result: dict, gone=holder_gone):
    """The lease in a failed ``state: lock`` result whose holder provably ended; None otherwise.

    ``gone(lease)`` answers ``(dead, why)`` from this controller (``_lock.holder_gone``). A holder it cannot prove
    dead (on another machine, in another PID namespace, without ``lock_holder``) keeps its lease until ``lock_ttl``.
    """
    if not result.get('failed'):
        return None
    holder = result.get('holder') or {}
    if not holder.get('lock_id') or not gone(holder)[0]:
        return None
    return holder


def take_lock(run_module, args: dict, identity: dict, gone=holder_gone) -> dict:
    """``state: lock`` in one task; ``run_module(module_args)`` runs the module and returns its result.

    Returns the result of the last lock attempt, with ``took_over`` (the lease given back, or None).
    """
    args = with_identity(args, identity)
    timeout = args.get('lock_timeout') or 0
    result = run_module(dict(args, lock_timeout=0))
    took_over = None
    if result.get('failed') and result.get('holder'):
        holder = dead_holder(result, gone)
        if holder is not None:
            freed = run_module({'path': args['path'], 'state': 'unlock', 'lock_id': holder['lock_id']})
            if not freed.get('failed') and freed.get('previous_holder'):
                took_over = dict((key, holder.get(key)) for key in TOOK_OVER_KEYS)
        if holder is not None or timeout:
            result = run_module(args)
    result = dict(result)
    result['took_over'] = took_over
    result['lock_id'] = args['lock_id']
    return result


def takeover_message(path, took_over: dict) -> str:
    return ('release: took over the deploy lock of %s left by a run that no longer exists (lock_id %s, pid %s on %s, since %s, '
            "play '%s')" % (path, took_over['lock_id'], took_over['pid'], took_over['host'], took_over['started'], took_over['play']))


class ActionModule(ActionBase):
    """Runs the release module; ``state: lock`` also takes over the lease of a dead run on this controller."""

    _supports_check_mode = True
    _supports_async = True

    def _run_module(self, module_args: dict, task_vars, wrap_async=False) -> dict:
        return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars, wrap_async=wrap_async)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        if args.get('state') != 'lock':
            wrap_async = bool(self._task.async_val)
            result = merge_hash(result, self._run_module(args, task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        if self._task.async_val:
            raise AnsibleActionFail('state=lock runs the module up to three times and cannot run with async')
        if become_turned_off(task_vars or {}, self._templar.template):
            raise AnsibleActionFail(NO_BECOME)
        try:
            outcome = take_lock(lambda module_args: self._run_module(module_args, task_vars), args, controller_identity(),
                                holder_gone)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if outcome['took_over'] is not None:
            display.warning(takeover_message(args.get('path'), outcome['took_over']))
        # What the fetch reads of the controller (can it copy by rsync?), found once, with the lock.
        return merge_hash(merge_hash(result, outcome), controller_facts())
