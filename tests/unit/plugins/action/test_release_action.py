# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the release action plugin: the deploy lock in one task.

The decisions run against a fake ``run_module`` that keeps one lease the way
the module does (taken, held by another run, given back with its lock_id)
and a fake "is this PID still ansible-playbook" answer; the plugin's run()
is driven with a mocked task and connection.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.zerodown.deploy.plugins.action import release as action

HERE = {'lock_host': 'ctl.example', 'lock_pid': 4000, 'lock_owner': 'alice'}
ARGS = {'path': '/srv/shop', 'state': 'lock', 'lock_id': 'run-new', 'lock_timeout': 600, 'lock_play': 'Deploy shop'}


def lease(lock_id='run-old', host='ctl.example', pid=3000, **extra):
    return dict({'lock_id': lock_id, 'owner': 'bob', 'host': host, 'pid': pid, 'play': 'Deploy shop', 'started': '2026-11-21T10:15:00Z',
                 'renewed': '2026-11-21T10:15:00Z', 'expires': '2026-11-21T11:15:00Z', 'ttl': 3600, 'expired': False}, **extra)


class FakeModule:
    """run_module for the release module's lock and unlock over one lease; ``waits`` says whether a timed lock gets it."""

    def __init__(self, holder=None, waits=False):
        self.holder = holder
        self.waits = waits
        self.calls = []

    def __call__(self, module_args):
        self.calls.append(dict(module_args))
        if module_args['state'] == 'unlock':
            if self.holder is None or self.holder['lock_id'] != module_args['lock_id']:
                return {'failed': True, 'msg': 'refusing to release', 'holder': self.holder}
            previous, self.holder = self.holder, None
            return {'changed': True, 'lock': None, 'previous_holder': previous}
        if self.holder is not None and self.holder['lock_id'] != module_args['lock_id']:
            if not (module_args['lock_timeout'] and self.waits):
                return {'failed': True, 'msg': 'another deploy holds the deploy lock: lock_id=%s' % self.holder['lock_id'],
                        'holder': self.holder}
        self.holder = {'lock_id': module_args['lock_id'], 'host': module_args.get('lock_host'), 'pid': module_args.get('lock_pid')}
        return {'changed': True, 'lock': dict(self.holder), 'lock_taken_over': False, 'previous_holder': None}


def alive(*pids):
    """A stand-in for _lock.holder_gone: the holders whose PID is not in ``pids`` are proven dead."""
    return lambda holder: (holder.get('pid') not in pids, 'pid %s' % holder.get('pid'))


# -- dead_holder ----------------------------------------------------------------------------


def test_a_holder_proven_dead_is_dead():
    assert action.dead_holder({'failed': True, 'holder': lease()}, alive()) == lease()


@pytest.mark.parametrize('result, gone', [
    ({'failed': True, 'holder': lease()}, alive(3000)),  # still running, or not provably gone
    ({'failed': True, 'holder': lease(lock_id=None)}, alive()),
    ({'failed': True, 'holder': {'error': 'the lease is not valid JSON'}}, alive()),
    ({'failed': True, 'msg': 'lock_id must be a non-empty string'}, alive()),  # failed for another reason
    ({'changed': True, 'holder': lease()}, alive()),  # not failed
])
def test_no_takeover(result, gone):
    assert action.dead_holder(result, gone) is None


@pytest.mark.parametrize('holder', [
    lease(),  # an older lease: no lock_holder fields
    lease(host='other.example', pid=None),
    lease(machine_id='another machine', boot_id='b', pid_namespace='pid:[1]', pid_start=1),
])
def test_the_real_proof_never_takes_over_what_it_cannot_tell(holder):
    assert action.dead_holder({'failed': True, 'holder': holder}) is None


# -- take_lock ------------------------------------------------------------------------------


def test_a_free_lock_is_taken_at_once_with_the_controller_identity():
    fake = FakeModule()
    result = action.take_lock(fake, dict(ARGS), HERE, alive())
    assert not result.get('failed') and result['took_over'] is None and result['lock']['lock_id'] == 'run-new'
    assert fake.calls == [dict(ARGS, lock_timeout=0, **HERE)]


def test_given_identity_wins_over_the_controllers():
    fake = FakeModule()
    action.take_lock(fake, dict(ARGS, lock_host='build.example', lock_pid=12, lock_owner=''), HERE, alive())
    assert (fake.calls[0]['lock_host'], fake.calls[0]['lock_pid'], fake.calls[0]['lock_owner']) == ('build.example', 12, 'alice')


def test_the_controllers_holder_identity_goes_only_with_its_own_pid():
    holder = {'machine_id': 'm', 'boot_id': 'b', 'pid_namespace': 'pid:[1]', 'pid_start': 7}
    here = dict(HERE, lock_holder=holder)
    assert action.with_identity(dict(ARGS), here)['lock_holder'] == holder
    assert 'lock_holder' not in action.with_identity(dict(ARGS, lock_pid=12), here)  # another process: its identity is unknown here


def test_the_lease_of_a_dead_run_here_is_given_back_then_taken():
    fake = FakeModule(holder=lease())
    result = action.take_lock(fake, dict(ARGS), HERE, alive())
    assert not result.get('failed') and result['lock']['lock_id'] == 'run-new'
    assert result['took_over'] == {'lock_id': 'run-old', 'pid': 3000, 'host': 'ctl.example', 'started': '2026-11-21T10:15:00Z',
                                   'play': 'Deploy shop'}
    assert [(call['state'], call.get('lock_id'), call.get('lock_timeout')) for call in fake.calls] == [
        ('lock', 'run-new', 0), ('unlock', 'run-old', None), ('lock', 'run-new', 600)]
    assert fake.calls[1] == {'path': '/srv/shop', 'state': 'unlock', 'lock_id': 'run-old'}  # that very lease, never force


def test_a_dead_run_is_taken_over_even_without_a_timeout():
    fake = FakeModule(holder=lease())
    result = action.take_lock(fake, dict(ARGS, lock_timeout=0), HERE, alive())
    assert not result.get('failed') and result['took_over']['lock_id'] == 'run-old'


def test_a_live_holder_is_waited_for_with_the_real_timeout():
    fake = FakeModule(holder=lease(), waits=True)
    result = action.take_lock(fake, dict(ARGS), HERE, alive(3000))
    assert not result.get('failed') and result['took_over'] is None
    assert [(call['state'], call['lock_timeout']) for call in fake.calls] == [('lock', 0), ('lock', 600)]


def test_a_live_holder_and_no_timeout_fails_at_once_naming_it():
    fake = FakeModule(holder=lease(host='other.example'))
    result = action.take_lock(fake, dict(ARGS, lock_timeout=0), HERE, action.holder_gone)  # no lock_holder: cannot be proven dead
    assert result['failed'] and 'lock_id=run-old' in result['msg'] and result['holder']['host'] == 'other.example'
    assert result['took_over'] is None and len(fake.calls) == 1


def test_a_holder_that_does_not_give_way_fails_after_the_wait():
    fake = FakeModule(holder=lease(host='other.example'))
    result = action.take_lock(fake, dict(ARGS), HERE, action.holder_gone)
    assert result['failed'] and result['took_over'] is None and len(fake.calls) == 2


def test_a_failure_that_is_not_a_held_lock_is_returned_as_it_is():
    def broken(module_args):
        broken.calls += 1
        return {'failed': True, 'msg': 'lock_id must be a non-empty string of at most 256 characters'}
    broken.calls = 0
    result = action.take_lock(broken, dict(ARGS), HERE, alive())
    assert result['failed'] and result['took_over'] is None and broken.calls == 1


def test_an_unlock_that_finds_another_lease_takes_nothing_over():
    fake = FakeModule(holder=lease())

    def racing(module_args):
        if module_args['state'] == 'unlock':
            fake.holder = lease(lock_id='run-third', pid=5000)  # a third run took the lease meanwhile
        return fake(module_args)

    result = action.take_lock(racing, dict(ARGS), HERE, alive(5000))
    assert result['failed'] and result['took_over'] is None and result['holder']['lock_id'] == 'run-third'


# -- the controller -------------------------------------------------------------------------


def test_controller_identity(tmp_path):
    identity = action.controller_identity({'USER': 'carol'})
    assert identity['lock_owner'] == 'carol' and identity['lock_host']
    # The parent is named only when it is ansible-playbook: an ad-hoc lock (an operator's freeze) is never taken over.
    parent = tmp_path / str(os.getppid())
    parent.mkdir()
    (parent / 'cmdline').write_bytes(b'/usr/bin/python3\x00/usr/bin/ansible-playbook\x00site.yml\x00')
    identity = action.controller_identity({'USER': 'carol'}, proc=str(tmp_path))
    assert identity['lock_pid'] == os.getppid() and identity['lock_holder'] == action.process_identity(os.getppid())
    (parent / 'cmdline').write_bytes(b'/usr/bin/python3\x00/usr/bin/ansible\x00all\x00-m\x00zerodown.deploy.release\x00')
    assert action.controller_identity({'USER': 'carol'}, proc=str(tmp_path))['lock_pid'] is None
    assert action.controller_identity({'USER': 'carol'}, proc=str(tmp_path))['lock_holder'] is None
    with mock.patch.object(action.getpass, 'getuser', return_value='dave'):
        assert action.controller_identity({})['lock_owner'] == 'dave'
    with mock.patch.object(action.getpass, 'getuser', side_effect=KeyError('uid')):
        assert action.controller_identity({})['lock_owner'] is None


# -- the plugin -----------------------------------------------------------------------------


def plugin(args, async_val=0):
    task = mock.MagicMock(args=args, async_val=async_val, check_mode=False)
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    # play_context, loader, templar, shared_loader_obj (which ansible-core before 2.19 requires).
    module = action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
    module._early_needs_tmp_path = lambda: False
    module._remove_tmp_path = mock.MagicMock()
    return module


def test_other_states_only_run_the_module():
    module = plugin({'path': '/srv/shop', 'state': 'switch', 'release': 'v2'})
    module._execute_module = mock.MagicMock(return_value={'changed': True, 'current': 'v2'})
    result = module.run(task_vars={})
    assert result == {'changed': True, 'current': 'v2'}
    module._execute_module.assert_called_once_with(module_name='zerodown.deploy.release',
                                                   module_args={'path': '/srv/shop', 'state': 'switch', 'release': 'v2'},
                                                   task_vars={}, wrap_async=False)


def test_lock_goes_through_take_lock_and_warns_about_a_takeover(monkeypatch):
    fake = FakeModule(holder=lease())
    module = plugin(dict(ARGS))
    module._execute_module = mock.MagicMock(side_effect=lambda module_name, module_args, task_vars, wrap_async: fake(module_args))
    monkeypatch.setattr(action, 'controller_identity', lambda: dict(HERE))
    monkeypatch.setattr(action, 'holder_gone', alive())
    warnings = []
    monkeypatch.setattr(action.display, 'warning', warnings.append)
    result = module.run(task_vars={})
    assert result['took_over']['lock_id'] == 'run-old' and result['lock']['lock_id'] == 'run-new'
    assert warnings == ["release: took over the deploy lock of /srv/shop left by a run that no longer exists (lock_id run-old, pid 3000 "
                        "on ctl.example, since 2026-11-21T10:15:00Z, play 'Deploy shop')"]
    assert module._remove_tmp_path.called


def test_lock_refuses_async():
    with pytest.raises(AnsibleActionFail, match='cannot run with async'):
        plugin(dict(ARGS), async_val=60).run(task_vars={})


@pytest.mark.parametrize('value', [False, 'false', 'no', '{{ false }}'])
def test_lock_refuses_a_host_whose_inventory_turns_become_off_before_the_module_runs(value):
    module = plugin(dict(ARGS))
    module._execute_module = mock.MagicMock()
    module._templar.template = lambda text: False
    with pytest.raises(AnsibleActionFail, match='ansible_become is false for this host.*Nothing was changed.*ansible_become_method: su'):
        module.run(task_vars={'ansible_become': value})
    assert not module._execute_module.called


@pytest.mark.parametrize('task_vars', [{}, {'ansible_become': True}, {'ansible_become': 'yes'}])
def test_become_on_or_unset_is_not_refused(task_vars):
    assert action.become_turned_off(task_vars, lambda text: text) is False
