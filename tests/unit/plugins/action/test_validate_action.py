# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The validate action: which variables it reads, how it templates them, what it returns; never a connection."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.zerodown.deploy.plugins.action import validate as action

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates every string
    def trust_as_template(value):
        return value

SOCKET_SERVICE = {
    'socket_service_name': 'hello', 'socket_service_exec_start': '/usr/bin/python3 app.py', 'socket_service_exec_reload': '',
    'socket_service_instances': 1, 'socket_service_backlog': 4096, 'socket_service_socket_mode': '0660',
    'socket_service_working_directory': '', 'socket_service_environment_files': [], 'socket_service_read_write_paths': [],
    'socket_service_environment': {}, 'socket_service_health_path': '', 'socket_service_exposure_max': None,
    'socket_service_restart_sec': 1, 'socket_service_listen': [trust_as_template('/run/{{ socket_service_name }}.sock')],
    'socket_service_runtime_directory': '', 'socket_service_start_limit_interval_sec': 0, 'socket_service_start_limit_burst': 5,
    'socket_service_hardening_overrides': {}, 'socket_service_mode': 'socket', 'socket_service_state_directory': '',
    'socket_service_socket_mode_allow_others': False, 'socket_service_dynamic_user': False, 'socket_service_user': 'hello',
    'socket_service_allow_root': False,
    # Read by no rule: templating it would fail.
    'socket_service_description': trust_as_template('{{ undefined_variable }}'),
}


def run(task_vars, check_mode=False, **args):
    task = mock.MagicMock(args=args, async_val=0, check_mode=check_mode, action='zerodown.deploy.validate')
    loader = DataLoader()
    plugin = action.ActionModule(task=task, connection=mock.MagicMock(), play_context=mock.MagicMock(), loader=loader,
                                 templar=Templar(loader=loader, variables=task_vars), shared_loader_obj=None)
    return plugin.run(task_vars=task_vars)


def test_it_never_needs_the_host():
    assert action.ActionModule._requires_connection is False
    assert action.ActionModule.TRANSFERS_FILES is False


@pytest.mark.parametrize('check_mode', [False, True])
def test_valid_variables_pass_and_only_the_ones_read_are_templated(check_mode):
    result = run(dict(SOCKET_SERVICE, other_variable=1), check_mode=check_mode, role='socket_service')
    assert not result.get('failed') and result['changed'] is False and result['messages'] == []
    assert result['validated'][:3] == ['socket_service_name', 'socket_service_exec_start', 'socket_service_exec_reload']
    assert 'socket_service_listen' in result['validated']
    assert 'socket_service_description' not in result['validated'] and 'other_variable' not in result['validated']
    assert result['msg'] == 'socket_service: %d variables valid' % len(result['validated'])


def test_every_message_is_returned_and_joined_in_msg():
    result = run(dict(SOCKET_SERVICE, socket_service_instances=0, socket_service_backlog=trust_as_template('{{ 0 }}')),
                 role='socket_service', entry='main')
    assert result['failed'] is True
    assert result['messages'] == ['socket_service: socket_service_instances must be 1 or more (got 0).',
                                  'socket_service: socket_service_backlog must be 1 or more (got 0).']
    assert result['msg'] == ' | '.join(result['messages'])


def test_given_settings_win_over_the_task_variables():
    proxy = {'socket_service_mode': 'proxy', 'socket_service_proxy_ports': [8001, 8002], 'socket_service_proxy_drain_timeout': 30,
             'socket_service_hardening_profile': 'default', 'socket_service_dynamic_user': False}
    result = run(SOCKET_SERVICE, role='socket_service', entry='preflight', settings=proxy)
    assert result['messages'] == [
        'socket_service: the pre-flight entry point does not apply to socket_service_mode: proxy. There, the blue/green switch starts '
        'the new release on the idle slot and probes its health path before the link points at it, which is the pre-flight. '
        'Nothing was changed.']


def test_a_rendered_value_is_shown_as_the_template_showed_it():
    listen = [trust_as_template('{{ socket_service_name }}:{{ 70000 }}')]
    result = run(dict(SOCKET_SERVICE, socket_service_listen=listen), role='socket_service')
    assert result['messages'][0].startswith("socket_service: socket_service_listen address 'hello:70000' is malformed.")


def test_the_play_variables_are_read_for_the_load_balancer_rules():
    task_vars = dict(_app_settings(), app_lb_drain=True, app_lb_hosts=['lb1', 'lb9'], ansible_play_batch=['web1', 'web2'],
                     ansible_play_hosts_all=['web1', 'web2'], groups={'all': ['web1', 'web2', 'lb1'], 'zerodown_lb': ['lb1']})
    result = run(task_vars, role='app', entry='verify')
    assert result['messages'] == [
        "app: app_lb_hosts must be inventory hosts; unknown: ['lb9'].",
        "app: app_lb_drain: this wave holds every host of the play (2), and the hosts of a wave are drained together, which would "
        "leave the load balancers no server. Deploy in smaller waves (zerodown_waves, such as [1, '50%']).",
    ]


def test_a_variable_that_is_not_defined_is_named():
    task_vars = dict(SOCKET_SERVICE)
    del task_vars['socket_service_backlog']
    with pytest.raises(AnsibleError, match='the socket_service role needs the variable socket_service_backlog, and it is not defined'):
        run(task_vars, role='socket_service')


def test_an_unknown_entry_point_is_refused():
    with pytest.raises(AnsibleError, match="entry of role socket_service must be one of main, preflight, got 'rollback'"):
        run(SOCKET_SERVICE, role='socket_service', entry='rollback')


def test_templated_values_become_plain_python_data():
    class Text(str):
        def __repr__(self):
            return 'Text(%s)' % str.__repr__(self)

    value = action.plain({Text('a'): [Text('b'), 1, True, None, 2.5, (Text('c'),)]})
    assert value == {'a': ['b', 1, True, None, 2.5, ['c']]}
    assert str(value) == "{'a': ['b', 1, True, None, 2.5, ['c']]}"
    assert repr(next(iter(value))) == "'a'"


def _app_settings():
    return {
        'app_name': 'shop', 'app_base_path': trust_as_template('/srv/{{ app_name }}'), 'app_exec_start': '/usr/bin/gunicorn app',
        'app_exec_reload': '', 'app_instances': 1, 'app_health_path': '/health', 'app_verify_path': '/',
        'app_listen': trust_as_template('/run/{{ app_name }}/{{ app_name }}.sock'), 'app_server_name': 'shop', 'app_nginx_listen': ['80'],
        'app_nginx': True, 'app_verify_workers': 2, 'app_health_gate_successes': 5, 'app_verify_rate': 50, 'app_verify_post_ratio': 0.5,
        'app_verify_max_failed': 0, 'app_verify_max_duration': 300, 'app_verify_baseline_seconds': 2, 'app_verify_tail_seconds': 2,
        'app_health_gate_timeout': 30, 'app_preflight_timeout': 60, 'app_ready_timeout': 60, 'app_keep_releases': 5,
        'app_environment': {}, 'app_read_write_paths': [], 'app_hardening_overrides': {}, 'app_mode': 'socket',
        'app_surge': True, 'app_nginx_keepalive': 32, 'app_verify_max_latency_factor': 3, 'app_verify_latency_allowance_ms': 250,
        'app_deploy_time': '', 'app_lb_backend': 'web1:80', 'app_lb_drain_timeout': 60, 'app_lb_drain': False, 'app_lb_hosts': [],
        'app_user': trust_as_template('{{ app_name }}'), 'app_allow_root': False, 'app_verify_post_path': '', 'app_verify_max_requests': 50000,
    }


def test_every_variable_of_the_role_is_scanned_for_line_breaks_without_counting_as_read():
    """A newline in a variable no other rule reads (KillSignal= in the unit) is still refused; one that cannot be templated
    here is skipped, not an error."""
    task_vars = dict(SOCKET_SERVICE, socket_service_kill_signal='SIGTERM\nUser=root')
    with mock.patch.object(action.ActionModule, '_role_defaults', return_value=sorted(task_vars)):
        result = run(task_vars, role='socket_service')
    assert result['failed'] is True
    assert result['messages'] == ['socket_service: these values must be single lines, without CR, LF or NUL, which would start a '
                                  'directive of their own in a unit file or an nginx config: socket_service_kill_signal (the values '
                                  'are not shown).']
    assert 'socket_service_kill_signal' not in result['validated'] and 'socket_service_description' not in result['validated']
