# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the blue_green module, and of zero_downtime_restart's mode=blue_green.

The modules run in-process like Ansible runs them. The switch goes against
REAL HTTP servers on loopback ports and Unix sockets and a real link in a
temporary directory; systemd is the fake_slots fixture (tests/unit/conftest.py),
standing in for AnsibleModule.run_command. The real systemd is Molecule's
(molecule/proxy).
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils import _bluegreen, _names
from ansible_collections.zerodown.deploy.plugins.modules import blue_green
from ansible_collections.zerodown.deploy.plugins.modules import zero_downtime_restart as zdr


@pytest.fixture
def system(fake_slots, sock_dir, tmp_path, monkeypatch):
    """A fake systemd for "shop" with two free ports; the link and the slot sockets live in temporary directories."""
    def make(**kwargs):
        fake, ports = fake_slots(**kwargs)
        monkeypatch.setattr(_names, 'LINK_DIR', str(tmp_path / 'lib'))
        monkeypatch.setattr(_names, 'SOCKET_DIR', sock_dir)
        # The slot sockets are SOCKET_DIR/NAME/slot-PORT.sock: put the fake's servers there.
        fake.socket_dir = os.path.join(sock_dir, 'shop')
        os.makedirs(fake.socket_dir, exist_ok=True)
        monkeypatch.setattr(_bluegreen, 'DRAIN_QUIET_SECONDS', 0.1)
        monkeypatch.setattr(AnsibleModule, 'run_command', lambda self, argv, **kwargs: fake(argv, **kwargs))
        monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, name, required=False, opt_dirs=None: name)
        fake.link = _names.link_path('shop')
        return fake, ports

    return make


def verbs(fake):
    return [call for call in fake.calls if call[0] != 'journal']


@pytest.fixture
def run_blue_green(module_runner):
    return lambda check=False, diff=False, **args: module_runner(blue_green.main, check=check, diff=diff, **args)


@pytest.fixture
def run_zdr(module_runner):
    return lambda check=False, **args: module_runner(zdr.main, check=check, **args)


# ------------------------------------------------------------------ blue_green


def test_started_brings_a_slot_live_once_then_changes_nothing(system, run_blue_green):
    fake, (first, second) = system()
    result = run_blue_green(service='shop', ports=[first, second], health_path='/health', ready_timeout=3, diff=True)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] and result['switched'] and (result['live_before'], result['live_after']) == (None, first)
    assert os.readlink(fake.link).endswith('/shop/slot-%d.sock' % first)
    assert result['diff']['before']['live_port'] is None and result['diff']['after']['live_port'] == first
    assert [step['argv'][0] for step in result['steps']] == ['systemctl', 'systemctl', 'symlink', 'systemctl']
    again = run_blue_green(service='shop', ports=[first, second], health_path='/health')
    assert not again.get('failed') and not again['changed'] and again['steps'] == [] and again['live_after'] == first


def test_check_mode_predicts_without_starting_anything(system, run_blue_green):
    fake, (first, second) = system()
    result = run_blue_green(check=True, service='shop', ports=[first, second])
    assert result['changed'] and (result['live_before'], result['live_after']) == (None, first)
    assert verbs(fake) == [] and not os.path.lexists(fake.link)
    run_blue_green(service='shop', ports=[first, second], health_path='/health')
    fake.calls.clear()
    assert not run_blue_green(check=True, service='shop', ports=[first, second])['changed']
    switched = run_blue_green(check=True, service='shop', ports=[first, second], state='switched')
    assert switched['changed'] and (switched['live_before'], switched['live_after']) == (first, second)
    assert verbs(fake) == []


def test_a_service_suffix_is_accepted_and_ignored(system, run_blue_green):
    # The service name follows the roles' rule (module_utils/_validate), which accepts NAME.service for NAME.
    fake, (first, second) = system()
    result = run_blue_green(check=True, service='shop.service', ports=[first, second])
    assert not result.get('failed'), result.get('msg')
    assert result['link'] == fake.link and (result['live_before'], result['live_after']) == (None, first)


def test_switched_moves_to_the_other_slot_and_back(system, run_blue_green):
    fake, (first, second) = system()
    run_blue_green(service='shop', ports=[first, second], health_path='/health')
    result = run_blue_green(service='shop', ports=[first, second], health_path='/health', state='switched', drain_timeout=2)
    assert not result.get('failed'), result.get('msg')
    assert (result['live_before'], result['live_after'], result['switched']) == (first, second, True)
    assert result['drain']['drained'] and result['pids']['shop-app@%d.service' % first]['new'] == 0
    back = run_blue_green(service='shop', ports=[first, second], health_path='/health', state='switched')
    assert (back['live_before'], back['live_after']) == (second, first)


def test_a_new_slot_that_fails_its_health_check_fails_the_task_and_keeps_the_live_one(system, run_blue_green):
    fake, (first, second) = system()
    run_blue_green(service='shop', ports=[first, second], health_path='/health')
    fake.health_status = 503
    result = run_blue_green(service='shop', ports=[first, second], health_path='/health', state='switched', ready_timeout=1)
    assert result['failed'] and 'the new slot %d did not come up' % second in result['msg'] and 'HTTP 503' in result['msg']
    assert result['switched'] is False and result['live_before'] == first
    assert os.readlink(fake.link).endswith('/slot-%d.sock' % first)


@pytest.mark.parametrize('args, message', [
    (dict(service='../x'), 'service must be a unit base name'),
    (dict(service='shop@8001'), 'not an instance or template'),
    (dict(service='x' * 65), 'at most 64 characters'),
    (dict(service='shop', ports=[8001]), 'ports must list exactly 2 TCP ports'),
    (dict(service='shop', ports=[8001, 8001]), 'ports must be 2 different ports'),
    (dict(service='shop', ports=[8001, 70000]), 'ports must be between 1 and 65535'),
    (dict(service='shop', drain_timeout=0), 'drain_timeout must be > 0'),
    (dict(service='shop', drain_timeout=-3), 'drain_timeout must be > 0'),
    (dict(service='shop', health_path='health'), 'health_path must start with "/"'),
    (dict(service='shop', ready_timeout=0), 'ready_timeout must be > 0'),
    (dict(service='shop', state='restarted'), 'value of state must be one of: started, switched'),
])
def test_blue_green_argument_validation(system, run_blue_green, args, message):
    fake, ports = system()
    result = run_blue_green(**args)
    assert result['failed'] and message in result['msg'], result['msg']
    assert fake.calls == []


# ------------------------------------------------------------------ zero_downtime_restart mode=blue_green


class Target:
    """The load's target: a plain HTTP server on loopback (the public socket's stand-in)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def _ok(self):
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            do_GET = do_POST = _ok

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.address = '127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


FAST = dict(before_seconds=0.2, after_seconds=0.2, workers=2, rate=100, health_path='/health', ready_timeout=3, max_duration=20)


def test_zdr_blue_green_switches_under_load_and_reports_like_the_other_modes(system, run_blue_green, run_zdr, target):
    fake, (first, second) = system()
    run_blue_green(service='shop', ports=[first, second], health_path='/health')
    old_pid = fake.unit('shop-app@%d.service' % first)['MainPID']
    result = run_zdr(service='shop', mode='blue_green', ports=[first, second], drain_timeout=2, target=target.address, **FAST)
    assert not result.get('failed'), result.get('msg')
    assert result['mode'] == 'blue_green' and result['changed']
    assert result['units'] == ['shop-app@%d.service' % second, 'shop-app@%d.service' % first]
    assert result['health_target'] == '127.0.0.1:%d' % second
    assert result['requests'] > 0 and result['failed_requests'] == 0
    new_pid = fake.unit('shop-app@%d.service' % second)['MainPID']
    assert result['pids'] == {'shop-app@%d.service' % first: {'old': old_pid, 'new': 0},
                              'shop-app@%d.service' % second: {'old': 0, 'new': new_pid}}
    switch = result['blue_green']
    assert (switch['live_before'], switch['live_after'], switch['switched']) == (first, second, True) and switch['drain']['drained']
    argvs = [step['argv'] for step in result['steps']]
    assert argvs[0][-2:] == ['restart', 'shop-app@%d.service' % second] and ['drain', str(first)] in argvs
    assert all(step['started_ms'] >= 0 and step['returned_ms'] >= step['started_ms'] for step in result['steps'])
    restart = result['steps'][0]
    assert restart['ready_ms'] >= restart['returned_ms']
    assert result['report'].startswith('shop: blue/green switch from slot %d to slot %d, ' % (first, second))
    assert result['phases']['during']['requests'] > 0


def test_zdr_blue_green_failure_keeps_the_live_slot_and_still_measures(system, run_blue_green, run_zdr, target):
    fake, (first, second) = system()
    run_blue_green(service='shop', ports=[first, second], health_path='/health')
    fake.crash = True
    result = run_zdr(service='shop', mode='blue_green', ports=[first, second], target=target.address, **FAST)
    assert result['failed'] and 'the new slot %d did not come up' % second in result['msg']
    assert 'exited and is waiting to be restarted' in result['msg']
    assert result['blue_green']['switched'] is False and result['requests'] > 0 and result['failed_requests'] == 0
    assert os.readlink(fake.link).endswith('/slot-%d.sock' % first)


def test_zdr_blue_green_check_mode_runs_nothing(system, run_zdr, target):
    fake, (first, second) = system()
    result = run_zdr(check=True, service='shop', mode='blue_green', ports=[first, second], target=target.address, **FAST)
    assert result['changed'] and result['mode'] == 'blue_green' and 'requests' not in result
    assert result['units'] == ['shop-app@%d.service' % first]
    assert result['report'].startswith('shop: would run a blue/green switch from slot (none) to slot %d under load' % first)
    assert fake.calls == []


@pytest.mark.parametrize('args, message', [
    (dict(mode='restart', ports=[8001, 8002]), 'ports is only used with mode=blue_green (mode is restart)'),
    (dict(mode='auto', drain_timeout=5), 'drain_timeout is only used with mode=blue_green (mode is auto)'),
    (dict(mode='rolling', instances=2, ports=[1, 2], drain_timeout=5), 'ports and drain_timeout are only used with mode=blue_green'),
    (dict(mode='blue_green', instances=2), 'instances must be 1, got 2'),
    (dict(mode='blue_green', ports=[8001]), 'ports must list exactly 2 TCP ports'),
    (dict(mode='blue_green', ports=[8002, 8002]), 'ports must be 2 different ports'),
    (dict(mode='blue_green', ports=[0, 8002]), 'ports must be between 1 and 65535'),
    (dict(mode='blue_green', drain_timeout=0), 'drain_timeout must be > 0'),
    (dict(mode='blue_green', health_target='unix:/run/x.sock'), 'health_target is not used with mode=blue_green'),
])
def test_zdr_blue_green_options_are_validated(system, run_zdr, target, args, message):
    fake, ports = system()
    result = run_zdr(service='shop', target=target.address, **dict(FAST, **args))
    assert result['failed'] and message in result['msg'], result['msg']
    assert fake.calls == []
