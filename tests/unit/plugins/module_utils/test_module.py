# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_module: the one error type, the shared option checks and the one exit helper."""

from __future__ import annotations

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._module import (
    ModuleError,
    endpoint,
    finish,
    header_value,
    number_text,
    request_path,
    within,
)


class Exited(Exception):
    pass


class Module:
    """exit_json / fail_json of an AnsibleModule: they record the result and end the run."""

    def __init__(self):
        self.exited = None

    def exit_json(self, **result):
        self.exited = ('exit', result)
        raise Exited()

    def fail_json(self, msg, **result):
        self.exited = ('fail', dict(result, msg=msg))
        raise Exited()


def finished(run_module):
    module = Module()
    with pytest.raises(Exited):
        finish(module, run_module)
    return module.exited


def test_finish_exits_with_the_result_or_fails_with_the_message_and_the_result():
    assert finished(lambda module: ({'changed': True}, None)) == ('exit', {'changed': True})
    assert finished(lambda module: ({'changed': True, 'requests': 5}, '2 of 5 requests failed')) == (
        'fail', {'changed': True, 'requests': 5, 'msg': '2 of 5 requests failed'})


def test_a_module_error_fails_with_its_message_and_the_result_it_carries():
    def invalid(module):
        raise ModuleError('timeout must be > 0')

    def refused(module):
        raise ModuleError('nginx -t rejected the configuration', {'changed': False, 'state': 'up'})

    assert finished(invalid) == ('fail', {'msg': 'timeout must be > 0'})
    assert finished(refused) == ('fail', {'changed': False, 'state': 'up', 'msg': 'nginx -t rejected the configuration'})
    error = ModuleError('x', {'a': 1})
    assert str(error) == error.msg == 'x' and error.result == {'a': 1} and ModuleError('y').result == {}


def test_within_and_number_text():
    assert within('workers', 4, 1, 64) == 4
    assert number_text(0.5) == '0.5' and number_text(3600) == '3600' and number_text(1000000.0) == '1e+06'
    for args, message in (
            (('timeout', 0.0, 0, 300, ' seconds', True), 'timeout must be > 0 and <= 300 seconds, got 0'),
            (('successes', 101, 1, 100), 'successes must be >= 1 and <= 100, got 101'),
            (('max_failed', -1, 0, None), 'max_failed must be >= 0, got -1')):
        with pytest.raises(ModuleError) as exc:
            within(*args)
        assert str(exc.value) == message


def test_endpoint_warns_about_an_ignored_url_path():
    warnings = []
    assert str(endpoint('target', 'http://127.0.0.1:8080/x', warnings)) == '127.0.0.1:8080'
    assert str(endpoint('target', 'http://127.0.0.1/y', warnings, path_note='the probes go to path')) == '127.0.0.1:80'
    assert warnings == ['the path /x in target is ignored; requests go to the path options',
                        'the path /y in target is ignored; the probes go to path']
    with pytest.raises(ModuleError, match='^health_target: invalid endpoint'):
        endpoint('health_target', 'nowhere', warnings)


def test_request_path_and_header_value():
    assert request_path('path', '/health?deep=1') == '/health?deep=1'
    with pytest.raises(ModuleError, match='path must start with "/"'):
        request_path('path', 'health')
    assert header_value('host_header', '') is None and header_value('host_header', 'shop.test') == 'shop.test'
    with pytest.raises(ModuleError, match='must not contain line breaks'):
        header_value('host_header', 'a\r\nb')


# ------------------------------------------------------------------ the restart lock

@pytest.fixture
def restart_dir(tmp_path, monkeypatch):
    from ansible_collections.zerodown.deploy.plugins.module_utils import _lock  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(_lock, 'RESTART_LOCK_DIR', str(tmp_path / 'restart'))
    monkeypatch.setattr(_lock, 'RESTART_LOCK_TIMEOUT', 0.3)
    return tmp_path / 'restart'


def test_a_restarting_module_holds_the_apps_restart_lock_for_its_whole_run(restart_dir):
    from ansible_collections.zerodown.deploy.plugins.module_utils._lock import read_holder  # pylint: disable=import-outside-toplevel
    module = Module()
    module.check_mode = False
    seen = {}

    def run(dummy):
        seen['holder'] = read_holder(str(restart_dir / 'shop.lock'))
        return {'changed': True}, None

    with pytest.raises(Exited):
        finish(module, run, restarts='shop.service')
    assert module.exited == ('exit', {'changed': True})
    assert seen['holder']['play'] == 'restart of shop'


def test_a_second_restart_of_the_same_app_waits_then_fails_naming_the_holder(restart_dir):
    from ansible_collections.zerodown.deploy.plugins.module_utils._lock import restart_lock  # pylint: disable=import-outside-toplevel
    module = Module()
    module.check_mode = False
    ran = []
    with restart_lock('shop', play='deploy of shop'):
        with pytest.raises(Exited):
            finish(module, lambda dummy: ran.append(1) or ({}, None), restarts='shop')
    assert ran == [] and module.exited[0] == 'fail'
    assert module.exited[1]['msg'].startswith('another restart of shop is still running on this host: Timed out')
    # Another app is not held up, and check mode takes no lock at all.
    with restart_lock('shop'):
        with pytest.raises(Exited):
            finish(module, lambda dummy: ({'changed': False}, None), restarts='cart')
        module.check_mode = True
        with pytest.raises(Exited):
            finish(module, lambda dummy: ({'changed': False}, None), restarts='shop')
    assert module.exited == ('exit', {'changed': False})
