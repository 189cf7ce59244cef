# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_bluegreen: the pieces of the proxy-mode switch, and the switch itself.

The switch runs against REAL HTTP servers (the "app" on a loopback TCP port,
the "slot" on a Unix socket) and a real symbolic link in a temporary
directory; only systemd is faked, by an in-process run_command that starts
and stops those servers the way systemctl would start and stop the units
(the fake_slots fixture in tests/unit/conftest.py).
"""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _bluegreen as bg
from ansible_collections.zerodown.deploy.plugins.module_utils._fs import FsError
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd


# ------------------------------------------------------------------ /proc/net/tcp

# Real lines (kernel 6.x; the IPv6 one cut after the uid): a listener on 127.0.0.1:8001 (1F41), two established
# connections to it, one of them seen from the client side too, and one in TIME_WAIT (06).
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 41110 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F41 0100007F:A2C6 01 00000000:00000000 00:00000000 00000000   999        0 41208 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:A2C6 0100007F:1F41 01 00000000:00000000 00:00000000 00000000   998        0 41207 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F41 0100007F:A2D0 01 00000000:00000000 00:00000000 00000000   999        0 41300 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:1F41 0100007F:A2E0 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   5: 0100007F:1F42 0100007F:A2F0 01 00000000:00000000 00:00000000 00000000   999        0 41400 1 0000000000000000 20 4 30 10 -1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F41 00000000000000000000000001000000:B000 01 00000000:00000000 00:00000000 00000000   999
"""


def test_count_connections_counts_the_server_side_of_established_connections_only():
    assert bg.count_connections(TCP, 8001) == 2  # not the listener, not the client side (local A2C6), not TIME_WAIT
    assert bg.count_connections(TCP, 8002) == 1
    assert bg.count_connections(TCP, 8003) == 0
    assert bg.count_connections(TCP, 8001, states=('01', '06')) == 3
    assert bg.count_connections(TCP6, 8001) == 1
    assert bg.count_connections('', 8001) == 0
    assert bg.count_connections('garbage\n  1: nonsense line here\n', 8001) == 0


def test_established_adds_ipv4_and_ipv6_and_skips_a_missing_file(tmp_path):
    v4, v6 = tmp_path / 'tcp', tmp_path / 'tcp6'
    v4.write_text(TCP)
    v6.write_text(TCP6)
    assert bg.established(8001, paths=(str(v4), str(v6))) == 3
    assert bg.established(8001, paths=(str(v4), str(tmp_path / 'missing'))) == 2


def test_established_reads_the_real_proc_files():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert bg.established(port) == 0
        client = socket.create_connection(('127.0.0.1', port))
        accepted, dummy = server.accept()
        assert bg.established(port) == 1
        client.close()
        accepted.close()
    finally:
        server.close()


# ------------------------------------------------------------------ ports, link

@pytest.mark.parametrize('ports, message', [
    ([], 'exactly 2 TCP ports'),
    ([8001], 'exactly 2 TCP ports'),
    ([8001, 8002, 8003], 'exactly 2 TCP ports'),
    ([8001, 8001], '2 different ports, got 8001 twice'),
    ([0, 8002], 'between 1 and 65535, got [0]'),
    ([8001, 65536], 'between 1 and 65535, got [65536]'),
    (['a', 8002], 'must be integers'),
])
def test_check_ports_rejects(ports, message):
    with pytest.raises(ValueError) as exc:
        bg.check_ports(ports)
    assert message in str(exc.value)


def test_check_ports_and_drain_timeout_accept():
    assert bg.check_ports([9002, '9001']) == (9002, 9001)
    assert bg.check_drain_timeout(0.5) == 0.5
    for bad in (0, -1, 3601, None):
        with pytest.raises(ValueError, match='drain_timeout must be > 0'):
            bg.check_drain_timeout(bad)


def test_port_of_target():
    assert bg.port_of_target('/run/zerodown/shop/slot-8001.sock') == 8001
    assert bg.port_of_target('slot-65535.sock') == 65535
    for other in (None, '', '/run/zerodown/shop/slot-.sock', '/run/x/slot-8001.sock.bak', '/run/shop.sock', '/run/slot-123456.sock'):
        assert bg.port_of_target(other) is None


def test_live_port_reads_the_link(tmp_path):
    link = str(tmp_path / 'live.sock')
    assert bg.live_port(link) is None  # first install: no link yet
    os.symlink('/run/zerodown/shop/slot-8002.sock', link)  # dangling is fine: only the name counts
    assert bg.live_port(link) == 8002
    plain = tmp_path / 'file'
    plain.write_text('x')
    assert bg.live_port(str(plain)) is None


@pytest.mark.parametrize('live, ports, idle', [
    (None, (8001, 8002), 8001),
    (8001, (8001, 8002), 8002),
    (8002, (8001, 8002), 8001),
    (7000, (8001, 8002), 8001),  # the ports changed: move to the first configured one
])
def test_idle_port(live, ports, idle):
    assert bg.idle_port(live, ports) == idle


def test_replace_link_creates_and_then_swaps_atomically(tmp_path):
    link = str(tmp_path / 'zerodown' / 'shop' / 'live.sock')
    bg.replace_link(link, '/run/zerodown/shop/slot-8001.sock')
    assert os.readlink(link) == '/run/zerodown/shop/slot-8001.sock'
    listing = os.listdir(os.path.dirname(link))
    bg.replace_link(link, '/run/zerodown/shop/slot-8002.sock')
    assert os.readlink(link) == '/run/zerodown/shop/slot-8002.sock'
    assert os.listdir(os.path.dirname(link)) == listing == ['live.sock']  # no temporary name left behind


def test_replace_link_never_leaves_the_link_missing(tmp_path):
    link = str(tmp_path / 'live.sock')
    bg.replace_link(link, 'slot-1.sock')
    seen = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(os.readlink(link))
            except OSError as exc:
                seen.add('error %s' % errno.errorcode[exc.errno])

    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(300):
        bg.replace_link(link, 'slot-%d.sock' % (index % 2 + 1))
    stop.set()
    thread.join()
    assert seen <= {'slot-1.sock', 'slot-2.sock'}, seen


def test_replace_link_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / 'live.sock'
    path.write_text('data')
    with pytest.raises(FsError):
        bg.replace_link(str(path), 'slot-1.sock')
    assert path.read_text() == 'data'


# ------------------------------------------------------------------ draining

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_drained_needs_a_quiet_second_in_a_row():
    clock = FakeClock()

    # Busy for 0.5 s, idle for 0.3 s, busy again for 0.2 s, then idle for good.
    def count(port):
        elapsed = clock.now - 100.0
        return 2 if elapsed < 0.5 or 0.8 <= elapsed < 1.0 else 0
    outcome = bg.wait_drained(8001, timeout=30, quiet=1.0, interval=0.1, count=count, clock=clock, sleep=clock.sleep)
    assert outcome.drained and outcome.connections == 0
    assert 1.99 <= outcome.waited_s <= 2.25, outcome.waited_s  # 0.1 s polls: the quiet second starts at the first idle poll


def test_wait_drained_gives_up_at_the_timeout_and_says_how_many_were_left():
    clock = FakeClock()
    outcome = bg.wait_drained(8001, timeout=3, quiet=1.0, interval=0.1, count=lambda port: 4, clock=clock, sleep=clock.sleep)
    assert not outcome.drained and outcome.connections == 4
    assert 3.0 <= outcome.waited_s <= 3.01
    assert outcome.to_dict() == {'drained': False, 'waited_s': outcome.to_dict()['waited_s'], 'connections_left': 4}


# ------------------------------------------------------------------ the switch, against real servers

@pytest.fixture
def world(fake_slots, tmp_path):
    """world(**fake_settings) -> (fake systemd, a Switch over two free loopback ports, the ports, the warnings)."""
    def make(**kwargs):
        fake, ports = fake_slots(**kwargs)
        systemd = Systemd(fake, systemctl='systemctl', journalctl='journalctl')
        warnings = []
        switch = bg.Switch('shop', ports, systemd, health_path='/health', ready_timeout=3, drain_timeout=2,
                           link=str(tmp_path / 'live.sock'), socket_dir=fake.socket_dir, warn=warnings.append, count=lambda port: 0)
        switch.drain_quiet = 0.1
        return fake, switch, ports, warnings

    return make


def verbs(fake):
    return [call for call in fake.calls if call[0] != 'journal']


def test_first_start_brings_the_first_slot_live(world):
    fake, switch, (first, second), warnings = world()
    result = switch.ensure_started()
    assert result['changed'] and result['switched'] and (result['live_before'], result['live_after']) == (None, first)
    assert os.readlink(switch.link) == switch.socket_path(first)
    assert verbs(fake) == [('restart', 'shop-app@%d.service' % first), ('start', 'shop-slot@%d.socket' % first),
                           ('enable', 'shop-slot@%d.socket' % first, 'shop-app@%d.service' % first)]
    assert result['drain'] is None
    assert switch.pids == {'shop-app@%d.service' % first: {'old': 0, 'new': fake.unit('shop-app@%d.service' % first)['MainPID']}}


def test_started_again_changes_nothing(world):
    fake, switch, (first, second), warnings = world()
    switch.ensure_started()
    calls = len(verbs(fake))
    again = bg.Switch('shop', (first, second), switch.systemd, link=switch.link, socket_dir=switch.socket_dir, count=lambda port: 0)
    assert not again.would_change()
    result = again.ensure_started()
    assert not result['changed'] and result['live_after'] == first and len(verbs(fake)) == calls


def test_started_stops_a_leftover_slot_and_enables_the_live_one(world):
    fake, switch, (first, second), warnings = world()
    switch.ensure_started()
    fake.start('shop-app@%d.service' % second)  # an interrupted switch left the other app running
    fake.unit('shop-slot@%d.socket' % first)['enabled'] = False
    again = bg.Switch('shop', (first, second), switch.systemd, link=switch.link, socket_dir=switch.socket_dir, count=lambda port: 0)
    again.drain_quiet = 0.05
    assert again.would_change()
    result = again.ensure_started()
    assert result['changed'] and not result['switched'] and result['live_after'] == first
    assert fake.unit('shop-app@%d.service' % second)['ActiveState'] == 'inactive'
    assert fake.unit('shop-slot@%d.socket' % first)['enabled']


def test_switch_starts_the_idle_slot_then_swaps_the_link_then_drains_and_stops_the_old_one(world):
    fake, switch, (first, second), warnings = world()
    switch.ensure_started()
    old_pid = fake.unit('shop-app@%d.service' % first)['MainPID']
    fake.calls.clear()
    drained = []

    def count(port):
        # While the switch drains the old port, the link must already point at the new slot.
        drained.append((port, os.readlink(switch.link)))
        return 0

    switch2 = bg.Switch('shop', (first, second), switch.systemd, health_path='/health', link=switch.link, socket_dir=switch.socket_dir,
                        count=count)
    switch2.drain_quiet = 0.1
    result = switch2.switch()
    assert (result['live_before'], result['live_after'], result['switched']) == (first, second, True)
    assert os.readlink(switch.link) == switch.socket_path(second)
    assert drained and all(entry == (first, switch.socket_path(second)) for entry in drained)
    assert result['drain']['drained'] and result['drain']['connections_left'] == 0
    assert verbs(fake) == [
        ('restart', 'shop-app@%d.service' % second),
        ('start', 'shop-slot@%d.socket' % second),
        ('enable', 'shop-slot@%d.socket' % second, 'shop-app@%d.service' % second),
        ('stop', 'shop-slot@%d.service' % first, 'shop-slot@%d.socket' % first, 'shop-app@%d.service' % first),
        ('disable', 'shop-slot@%d.socket' % first, 'shop-app@%d.service' % first),
    ]
    assert switch2.pids['shop-app@%d.service' % first] == {'old': old_pid, 'new': 0}
    assert switch2.pids['shop-app@%d.service' % second]['new'] == fake.unit('shop-app@%d.service' % second)['MainPID'] > 0
    steps = switch.systemd.steps
    assert ['symlink', switch.socket_path(second), switch.link] in [step['argv'] for step in steps]
    assert ['drain', str(first)] in [step['argv'] for step in steps]


def test_a_drain_that_times_out_warns_and_stops_the_old_slot_anyway(world):
    fake, switch, (first, second), warnings = world()
    switch.ensure_started()
    busy = bg.Switch('shop', (first, second), switch.systemd, health_path='/health', link=switch.link, socket_dir=switch.socket_dir,
                     drain_timeout=0.3, count=lambda port: 3, warn=warnings.append)
    result = busy.switch()
    assert result['drain'] == {'drained': False, 'waited_s': result['drain']['waited_s'], 'connections_left': 3}
    assert 0.3 <= result['drain']['waited_s'] < 1
    assert warnings and 'still had 3 established connection(s) after drain_timeout (0.3 s)' in warnings[0]
    assert fake.unit('shop-app@%d.service' % first)['ActiveState'] == 'inactive'


@pytest.mark.parametrize('kwargs, reason', [
    (dict(health_status=503), 'did not answer 2xx 3 times in a row within ready_timeout (3 s); last answer: HTTP 503'),
    (dict(crash=True), 'exited and is waiting to be restarted'),
])
def test_a_new_slot_that_never_gets_healthy_is_stopped_and_nothing_live_changes(world, kwargs, reason):
    fake, switch, (first, second), warnings = world()
    switch.ensure_started()
    link_before = os.readlink(switch.link)
    fake.health_status, fake.crash = kwargs.get('health_status', 200), kwargs.get('crash', False)
    fake.calls.clear()
    attempt = bg.Switch('shop', (first, second), switch.systemd, health_path='/health', ready_timeout=3, link=switch.link,
                        socket_dir=switch.socket_dir, count=lambda port: 0)
    with pytest.raises(bg.BlueGreenError) as exc:
        attempt.switch()
    message = str(exc.value)
    assert reason in message, message
    assert 'the new slot %d did not come up' % second in message
    assert 'the live slot %d and %s are untouched' % (first, switch.link) in message
    assert 'Unit state: shop-app@%d.service: LoadState=loaded' % second in message
    assert 'Last journal lines: release.json says crash_at_boot' in message
    assert os.readlink(switch.link) == link_before
    assert fake.unit('shop-app@%d.service' % first)['ActiveState'] == 'active'
    assert fake.unit('shop-app@%d.service' % second)['ActiveState'] == 'inactive'
    assert ('stop', 'shop-slot@%d.service' % second, 'shop-slot@%d.socket' % second, 'shop-app@%d.service' % second) in fake.calls
    assert not any(call[0] in ('enable', 'disable') for call in verbs(fake))
    assert attempt.result['switched'] is False and attempt.result['live_after'] is None
    live_pid = fake.unit('shop-app@%d.service' % first)['MainPID']
    assert attempt.pids == {'shop-app@%d.service' % first: {'old': live_pid, 'new': live_pid},
                            'shop-app@%d.service' % second: {'old': 0, 'new': 0}}
    # The journal is read from this start on, not the unit's whole history.
    journal = [call for call in fake.calls if call[0] == 'journal'][0]
    assert any(arg.startswith('--since=@') for arg in journal)


def test_a_missing_template_changes_nothing(world):
    fake, switch, ports, warnings = world()
    fake.name = 'other'  # the fake now knows only other-app@ / other-slot@ units
    with pytest.raises(bg.BlueGreenError, match='unit shop-app@%d.service does not exist' % ports[0]):
        switch.switch()
    assert fake.calls == [] and not os.path.lexists(switch.link)


# ------------------------------------------------------------------ the blue_green module's options and slots

def test_check_options_returns_the_base_name():
    params = dict(service='shop.service', ports=[8001, 8002], drain_timeout=30, health_path='/', ready_timeout=60, host_header=None)
    assert bg.check_options(params) == 'shop'


@pytest.mark.parametrize('change, message', [
    (dict(service='a b'), 'service must be a unit base name'),
    (dict(service='shop@1'), 'not an instance or template'),
    (dict(ports=[8001]), 'ports must list exactly 2 TCP ports'),
    (dict(drain_timeout=0), 'drain_timeout must be > 0'),
    (dict(health_path='x'), 'health_path must start with "/"'),
    (dict(ready_timeout=3601), 'ready_timeout must be > 0 and <= 3600 seconds, got 3601'),
    (dict(host_header='a\nb'), 'host_header must not contain line breaks'),
])
def test_check_options_refuses(change, message):
    params = dict(service='shop', ports=[8001, 8002], drain_timeout=30, health_path='/', ready_timeout=60, host_header=None)
    params.update(change)
    with pytest.raises(ModuleError) as exc:
        bg.check_options(params)
    assert message in str(exc.value)


def test_read_slots_and_the_default_paths_come_from_names(tmp_path):
    switch = bg.Switch('shop', (8001, 8002), Systemd(lambda argv, environ_update=None: (0, '', '')))
    assert switch.link == '/var/lib/zerodown/shop/live.sock' and switch.socket_path(8002) == '/run/zerodown/shop/slot-8002.sock'
    link = str(tmp_path / 'live.sock')
    os.symlink('/run/zerodown/shop/slot-8002.sock', link)
    slots = bg.Switch('shop', (8001, 8002), switch.systemd, link=link).read_slots()
    assert slots == {'live': 8002, 'idle': 8001, 'link': link, 'link_target': '/run/zerodown/shop/slot-8002.sock'}
