# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_flip: the instances layout's surge and rolling restart behind nginx.

Every slot is a REAL HTTP server on its own Unix socket (or, for the TCP
path, on 127.0.0.K), the position links, rules file, server files and
tmpfiles.d file are real files in a temporary directory, and the drain counts
the real connections in /proc/net/unix and /proc/net/tcp; only systemd, nft
and nginx are faked: an in-process run_command starts a slot's server on
``systemctl restart shop@K.service`` and stops it on ``disable --now``,
"nft" keeps the rules it was given as the kernel's (a test must not change the
host's ruleset), and "nginx" counts reloads.
"""

from __future__ import annotations

import fnmatch
import os
import socket
import threading
from http.server import ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _flip as flip_mod
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import read_servers_dir
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd

from ansible_collections.zerodown.deploy.tests.unit.conftest import UnixHTTPServer, handler


class FakeNginx:
    """nginx -t and reload: a reload records the server files it saw."""

    def __init__(self, servers_dir, refuse=None):
        self.servers_dir = servers_dir
        self.refuse = refuse
        self.reloads = 0
        self.seen = []

    def test(self):
        return self.refuse

    def reload(self):
        self.reloads += 1
        self.seen.append(dict(read_servers_dir(self.servers_dir)))
        return None


class FakeRules:
    """Where a test keeps the position rules and their boot unit (PositionRules' attributes)."""

    def __init__(self, tmp_path):
        self.table = 'zerodown_shop'
        self.file = str(tmp_path / 'etc-zerodown' / 'shop-positions.nft')
        self.unit = 'zerodown-shop-positions.service'
        self.unit_file = str(tmp_path / 'zerodown-shop-positions.service')


class FakeSlotsSystemd:
    """run_command for shop@K: restart serves RELEASE on SOCK_DIR/shop-K.sock, disable --now stops it."""

    def __init__(self, sock_dir, release='v2', crash_slots=(), port=None):
        self.sock_dir = sock_dir
        self.port = port
        self.release = release
        self.crash_slots = set(crash_slots)
        self.units = {}
        self.servers = {}
        self.calls = []
        self.next_pid = 2000
        # nft: the rules the "kernel" has (the text of the last file loaded), the calls, and a refusal of nft -c.
        self.kernel = None
        self.nft_calls = []
        self.nft_refuse = None
        self.all_calls = []

    def unit(self, name):
        return self.units.setdefault(name, {'ActiveState': 'inactive', 'SubState': 'dead', 'MainPID': 0, 'Result': 'success',
                                            'enabled': False})

    @staticmethod
    def slot(unit):
        return int(unit.split('@')[1].split('.')[0])

    def serve(self, k, release):
        if self.port:
            server = ThreadingHTTPServer(('127.0.0.%d' % k, self.port), handler(release, 200))
        else:
            path = os.path.join(self.sock_dir, 'shop-%d.sock' % k)
            if os.path.exists(path):
                os.unlink(path)
            server = UnixHTTPServer(path, handler(release, 200))
        self.servers[k] = server
        threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()

    def halt(self, k):
        server = self.servers.pop(k, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def running_release(self, k):
        return self.units.get('shop@%d.service' % k, {}).get('release')

    def nft(self, args):
        self.nft_calls.append(tuple(args))
        if args[:2] == ['list', 'table']:
            return (0, self.kernel, '') if self.kernel is not None else (1, '', 'Error: No such file or directory')
        if args[0] == '-c':
            return (1, '', self.nft_refuse) if self.nft_refuse else (0, '', '')
        with open(args[-1], encoding='utf-8') as handle:
            self.kernel = handle.read()
        return 0, '', ''

    def __call__(self, argv, environ_update=None):
        if argv[0] == 'journalctl':
            return 0, 'boom at boot\n', ''
        if argv[0].endswith('nft'):
            return self.nft(list(argv[1:]))
        args = [a for a in argv[1:] if a != '--no-ask-password']
        verb, units = args[0], [a for a in args[1:] if not a.startswith('--')]
        if verb == 'list-units':
            patterns = [a for a in args[1:] if not a.startswith('--')]
            lines = ['%s loaded %s %s x' % (unit, state['ActiveState'], state['SubState']) for unit, state in sorted(self.units.items())
                     if any(fnmatch.fnmatch(unit, pattern) for pattern in patterns)]
            return 0, ''.join(line + '\n' for line in lines), ''
        if verb == 'show':
            blocks = []
            for unit in units:
                state = self.unit(unit)
                blocks.append(''.join('%s=%s\n' % (key, value) for key, value in dict(state, Id=unit).items()
                                      if key not in ('enabled', 'release')))
            return 0, '\n'.join(blocks), ''
        self.calls.append((verb,) + tuple(units))
        self.all_calls.append(tuple(argv))
        for unit in units:
            state = self.unit(unit)
            if verb in ('start', 'restart') and unit.endswith('.socket'):
                state.update(ActiveState='active', SubState='listening')
            elif verb in ('start', 'restart'):
                k = self.slot(unit)
                self.halt(k)
                if k in self.crash_slots:
                    state.update(ActiveState='failed', SubState='failed', MainPID=0, Result='exit-code')
                    continue
                self.serve(k, self.release)
                self.next_pid += 1
                state.update(ActiveState='active', SubState='running', MainPID=self.next_pid, release=self.release)
            elif verb == 'disable':
                if '--now' in args and unit.endswith('.service'):
                    self.halt(self.slot(unit))
                if '--now' in args:
                    state.update(ActiveState='inactive', SubState='dead', MainPID=0, release=None)
                state['enabled'] = False
            elif verb == 'enable':
                state['enabled'] = True
        return 0, '', ''

    def close(self):
        for k in list(self.servers):
            self.halt(k)


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture
def rig(sock_dir, tmp_path):
    """rig(instances=1, live=(), release='v2', tcp=False, ...) -> (flip, fake systemd, fake nginx); live slots run v1.

    Unix (the default): position links in sock_dir, tmpfiles.d file in tmp_path. ``tcp``: slots on 127.0.0.K:PORT, the
    position rules in tmp_path."""
    made = []

    def make(instances=1, live=(), release='v2', crash_slots=(), refuse=None, tcp=False):
        servers_dir = str(tmp_path / 'shop.servers')
        port = free_port() if tcp else None
        fake = FakeSlotsSystemd(sock_dir, release='v1', port=port)
        made.append(fake)
        systemd = Systemd(fake, sleep=lambda seconds: None)
        listen = '127.0.0.1:%s' % port if tcp else '%s/shop.sock' % sock_dir
        slots = flip_mod.Slots('shop', instances, listen, servers_dir, 'max_fails=0',
                               tmpfiles='' if tcp else str(tmp_path / 'zerodown-shop-links.conf'), rules=FakeRules(tmp_path))
        nginx = FakeNginx(servers_dir, refuse=refuse)
        flip = flip_mod.Flip(slots, systemd, nginx=nginx, health_path='/health', ready_timeout=5, drain_timeout=0.2)
        if live:
            for k in live:
                fake(['systemctl', 'start', 'shop@%d.socket' % k])
                fake(['systemctl', 'restart', 'shop@%d.service' % k])
            flip.write_states(list(live))
            os.makedirs(servers_dir)
            for path, text in slots.servers().items():
                with open(path, 'w') as handle:
                    handle.write(text)
            fake.calls.clear()
            fake.nft_calls.clear()
        fake.release = release
        fake.crash_slots = set(crash_slots)
        return flip, fake, nginx

    yield make
    for fake in made:
        fake.close()


def rules(flip):
    """{position: slot} as the fake kernel has them."""
    return flip_mod.parse_rules(flip.systemd.run_command.kernel, flip.slots.port)


def loads(fake):
    return [call for call in fake.nft_calls if call[0] == '-f']


def test_tcp_positions_are_addresses_nothing_binds_and_the_site_lists_them(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(1, 2))
    port = flip.slots.port
    assert [flip.slots.position(i) for i in (1, 2)] == ['127.1.0.1:%s' % port, '127.1.0.2:%s' % port]
    assert sorted(read_servers_dir(flip.slots.servers_dir)) == sorted(os.path.basename(path) for path in flip.slots.servers())
    assert flip.slots.positions() == rules(flip) == {1: 1, 2: 2}
    assert flip.slots.live() == [1, 2]
    assert flip.slots.next_set([1, 2]) == [3, 4] and flip.slots.next_set([3, 4]) == [1, 2] and flip.slots.next_set([]) == [1, 2]


def test_the_tcp_rules_file_is_one_transaction_that_nft_reads_back(rig):
    flip, fake, nginx = rig(tcp=True, instances=2)
    text = flip.slots.rules_text({1: 3, 2: 4})
    # Creates the table when missing, empties it, fills it: a connect sees the old rules or the new ones.
    assert text.index('table ip zerodown_shop\n') < text.index('flush table ip zerodown_shop\n') < text.index('table ip zerodown_shop {')
    assert 'type nat hook output priority -100;' in text
    assert 'ip daddr 127.1.0.1 tcp dport %s dnat to 127.0.0.3:%s' % (flip.slots.port, flip.slots.port) in text
    assert flip_mod.parse_rules(text, flip.slots.port) == {1: 3, 2: 4}
    # nft list prints some versions' targets as "dnat ip to"; another port's rules are another app's.
    listed = 'ip daddr 127.1.0.1 tcp dport 80 dnat ip to 127.0.0.2:80\nip daddr 127.1.0.2 tcp dport 81 dnat to 127.0.0.3:81'
    assert flip_mod.parse_rules(listed, '80') == {1: 2}


def test_surge_of_one_instance_on_tcp_moves_the_position_without_a_reload_and_stops_the_old_slot(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    result = flip.surge()
    assert result['live_before'] == [1] and result['live_after'] == [2]
    assert result['started'] == [2] and result['stopped'] == [1]
    assert nginx.reloads == 0 == result['reloads']
    assert rules(flip) == flip.slots.positions() == {1: 2}
    # The rules were checked (nft -c) before they replaced the old ones, then loaded once.
    assert [call[0] for call in fake.nft_calls if call[0] in ('-c', '-f')] == ['-c', '-f']
    assert fake.running_release(2) == 'v2' and fake.running_release(1) is None
    assert result['drains'][0]['done'] is True

    # The position moved after slot 2 was probed, and slot 1 stopped after it moved.
    def first(word):
        return next(n for n, step in enumerate(flip.systemd.steps) if word in step['argv'])

    assert first('restart') < first('nat') < first('disable')


def test_the_tcp_rules_boot_unit_is_written_and_enabled_with_the_first_rules_only(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    unit = open(flip.slots.rules.unit_file, encoding='utf-8').read()
    assert 'ExecStart=%s -f %s' % (flip_mod.NFT, flip.slots.rules.file) in unit
    assert 'PartOf=nftables.service' in unit and 'Before=nginx.service' in unit
    assert fake.units['zerodown-shop-positions.service']['enabled'] is True
    # Started at once, so that a restart of nftables.service (PartOf=) loads the rules again.
    assert ('systemctl', '--no-ask-password', 'enable', '--now', '--no-reload', 'zerodown-shop-positions.service') in fake.all_calls
    done = len(flip.systemd.steps)
    flip.surge()
    enables = [step['argv'] for step in flip.systemd.steps[done:] if 'enable' in step['argv']]
    assert enables
    assert not [argv for argv in enables if 'zerodown-shop-positions.service' in argv]


def test_a_surge_enables_and_disables_without_a_daemon_reload(rig):
    # A daemon-reload keeps PID 1 busy for a while on a loaded host; the live instances' slowest requests of a surge
    # were the ones during it. The symlinks are what the next boot reads, and no unit file changed here.
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    flip.surge()
    argvs = [step['argv'] for step in flip.systemd.steps if step['argv'][0] != 'nginx']
    enable = [argv for argv in argvs if 'enable' in argv]
    disable = [argv for argv in argvs if 'disable' in argv]
    assert enable and all('--no-reload' in argv for argv in enable)
    assert disable and all('--no-reload' in argv and '--now' in argv for argv in disable)


def test_a_second_surge_goes_back_to_the_first_slots(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(1, 2))
    assert flip.surge()['live_after'] == [3, 4]
    fake.release = 'v3'
    flip.result['started'], flip.result['stopped'] = [], []
    assert flip.surge()['live_after'] == [1, 2]
    assert rules(flip) == {1: 1, 2: 2}
    assert [fake.running_release(k) for k in (1, 2, 3, 4)] == ['v3', 'v3', None, None]


def test_surge_whose_new_slot_crashes_stops_it_and_leaves_the_rules_and_the_live_slot_alone(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,), crash_slots=(2,))
    with pytest.raises(flip_mod.FlipError, match='did not come up.*what served still serves.*boom at boot'):
        flip.surge()
    assert nginx.reloads == 0 and loads(fake) == []
    assert rules(flip) == {1: 1}
    assert fake.running_release(1) == 'v1'
    assert ('disable', 'shop@2.service', 'shop@2.socket') in fake.calls


def test_surge_whose_rules_nft_refuses_changes_no_rule_and_keeps_the_old_slot(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    before = open(flip.slots.rules.file, encoding='utf-8').read()
    fake.nft_refuse = 'Error: Could not process rule: No such file or directory'
    with pytest.raises(flip_mod.FlipError, match='nft refused the position rules of shop.*No such file.*nothing changed'):
        flip.surge()
    assert open(flip.slots.rules.file, encoding='utf-8').read() == before and rules(flip) == {1: 1}
    assert not os.path.exists(flip.slots.rules.file + '.new')
    assert fake.running_release(1) == 'v1'


def surge_holding(flip, monkeypatch, counter, held):
    """flip.surge() while ``held`` stays connected to the old slot until 0.3 s after the drain's ``counter`` (the
    module's unix_connections or tcp_connections) first sees it; a timer started before the surge raced a slow machine."""
    closer = threading.Timer(0.3, held.close)
    count = getattr(flip_mod, counter)

    def counting(keys, *args):
        found = count(keys, *args)
        if any(found.values()) and not closer.is_alive() and not closer.finished.is_set():
            closer.start()
        return found

    monkeypatch.setattr(flip_mod, counter, counting)
    try:
        return flip.surge()
    finally:
        closer.cancel()
        held.close()


def test_a_tcp_drain_waits_for_the_connection_left_on_the_old_slot(rig, monkeypatch):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    flip.drain_timeout = 5
    result = surge_holding(flip, monkeypatch, 'tcp_connections', socket.create_connection(('127.0.0.1', int(flip.slots.port))))
    drain = result['drains'][0]
    assert drain['done'] is True and drain['seconds'] >= 0.25
    assert fake.running_release(1) is None


def test_a_tcp_drain_that_does_not_finish_warns_and_goes_on(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    warnings = []
    flip.warn = warnings.append
    held = socket.create_connection(('127.0.0.1', int(flip.slots.port)))
    try:
        result = flip.surge()
    finally:
        held.close()
    assert result['drains'][0]['done'] is False
    assert 'connections still open to the slot(s) taken out after 0.2 s' in warnings[0]
    assert '127.0.0.1:%s (1)' % flip.slots.port in warnings[0]
    assert result['live_after'] == [2]


def test_tcp_connections_counts_accepted_and_queued_connections_not_the_listener():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    address = '127.0.0.1:%d' % listener.getsockname()[1]
    clients = []
    try:
        assert flip_mod.tcp_connections([address]) == {address: 0}
        clients = [socket.create_connection(listener.getsockname()) for dummy in range(2)]
        accepted, dummy = listener.accept()
        # One accepted, one in the accept queue; the clients' own ends are not the slot's.
        assert flip_mod.tcp_connections([address]) == {address: 2}
        accepted.close()
        clients[0].close()
        assert flip_mod.tcp_connections([address, '127.0.0.9:1']) == {address: 1, '127.0.0.9:1': 0}
    finally:
        for client in clients:
            client.close()
        listener.close()


def test_rolling_on_tcp_never_points_a_position_at_a_restarting_slot(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(1, 2))
    seen = []
    point = flip.point

    def record(mapping):
        moved = point(mapping)
        seen.append(dict(rules(flip)))
        return moved

    flip.point = record
    result = flip.rolling()
    assert result['live_after'] == [1, 2] and result['started'] == [1, 2] and nginx.reloads == 0
    assert [sorted(set(mapping.values())) for mapping in seen] == [[2], [1, 2], [1], [1, 2]]
    assert [fake.running_release(k) for k in (1, 2)] == ['v2', 'v2']


def test_rolling_needs_two_live_slots(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    with pytest.raises(flip_mod.FlipError, match='needs 2 or more instances'):
        flip.rolling()


def test_ensure_started_starts_the_missing_live_slots_and_stops_leftovers(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    fake(['systemctl', 'disable', '--now', 'shop@1.service', 'shop@1.socket'])
    fake(['systemctl', 'restart', 'shop@2.service'])
    result = flip.ensure_started(route_now=False)
    assert result['changed'] and result['live_after'] == [1]
    assert fake.running_release(1) == 'v2' and fake.running_release(2) is None
    assert nginx.reloads == 0


def test_ensure_started_on_tcp_changes_nothing_when_the_rules_and_slots_are_right(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(3, 4))
    result = flip.ensure_started(route_now=True)
    assert result['changed'] is False and result['live_after'] == [3, 4]
    assert fake.calls == [] and nginx.reloads == 0 and loads(fake) == []


def test_ensure_started_loads_the_rules_again_after_something_flushed_the_ruleset(rig):
    # nftables.service's restart runs "flush ruleset": the file still says where the positions go, the kernel forgot.
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    fake.kernel = None
    result = flip.ensure_started(route_now=True)
    assert result['changed'] is True and rules(flip) == {1: 1} and len(loads(fake)) == 1


def server_files_per_slot(flip, up):
    """What an earlier release of the collection left in nginx's servers directory: one server file per slot, ``up`` up."""
    for name in os.listdir(flip.slots.servers_dir):
        os.unlink(os.path.join(flip.slots.servers_dir, name))
    for k in flip.slots.numbers:
        with open(flip.slots.file(k), 'w') as handle:
            handle.write(flip.slots.text(k, k in up))


def test_an_install_of_tcp_server_files_per_slot_gets_the_positions_and_one_reload(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(1, 2))
    # What the previous release of the collection left: no rules, one server file per slot (1, 2 up; 3, 4 down).
    os.unlink(flip.slots.rules.file)
    fake.kernel = None
    server_files_per_slot(flip, up=(1, 2))
    assert flip.slots.live() == [1, 2]
    result = flip.ensure_started(route_now=True)
    assert result['changed'] is True and rules(flip) == {1: 1, 2: 2}
    # The rules were loaded before the reload that moved nginx to the positions.
    assert nginx.reloads == 1 and nginx.seen[0] == dict((os.path.basename(p), t) for p, t in flip.slots.servers().items())
    flip.surge()
    assert nginx.reloads == 1 and sorted(rules(flip).values()) == [3, 4]


def test_a_surge_after_the_app_shrank_drains_and_stops_the_slots_it_no_longer_needs(rig):
    flip, fake, nginx = rig(tcp=True, instances=2, live=(2, 3))
    # Now one instance: slots 1..2, but 2 and 3 are live.
    flip.slots = flip_mod.Slots('shop', 1, flip.slots.listen, flip.slots.servers_dir, 'max_fails=0', tmpfiles='',
                                rules=flip.slots.rules)
    assert flip.slots.live() == [2, 3]
    result = flip.surge()
    assert result['live_after'] == [1] and sorted(result['stopped']) == [2, 3]
    assert [fake.running_release(k) for k in (1, 2, 3)] == ['v2', None, None]
    # The second position went with one reload of the site.
    assert rules(flip) == {1: 1} and nginx.reloads == 1


def test_a_surge_stops_a_leftover_slot_nginx_did_not_route_to(rig):
    flip, fake, nginx = rig(tcp=True, instances=1, live=(1,))
    fake(['systemctl', 'restart', 'shop@7.service'])
    result = flip.surge()
    assert sorted(result['stopped']) == [1, 7] and fake.running_release(7) is None


# -- Unix sockets: the position links, no nginx reload ---------------------------------------------------------------


def links(flip):
    return flip.slots.positions()


def test_assign_keeps_positions_whose_slot_stays_and_shares_when_fewer_are_up():
    assert flip_mod.assign(2, {1: 1, 2: 2}, [3, 4]) == {1: 3, 2: 4}
    assert flip_mod.assign(2, {1: 1, 2: 2}, [2]) == {1: 2, 2: 2}
    # Slot 1 comes back: the position that had it shared takes it, the other keeps slot 2.
    assert flip_mod.assign(2, {1: 2, 2: 2}, [1, 2]) == {1: 2, 2: 1}
    assert flip_mod.assign(1, {}, [5]) == {1: 5}
    assert flip_mod.assign(1, {1: 2, 2: 3}, [2, 3]) == {1: 2}


def test_unix_connections_counts_accepted_and_queued_connections_not_the_listener(sock_dir):
    path = os.path.join(sock_dir, 'count.sock')
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    clients = []
    try:
        assert flip_mod.unix_connections([path]) == {path: 0}
        for dummy in range(2):
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
            clients.append(client)
        accepted, dummy = listener.accept()
        # One accepted, one still in the backlog: both are connections the slot must finish.
        assert flip_mod.unix_connections([path]) == {path: 2}
        accepted.close()
        assert flip_mod.unix_connections([path, '/nowhere.sock']) == {path: 1, '/nowhere.sock': 0}
    finally:
        for client in clients:
            client.close()
        listener.close()


def test_surge_on_a_unix_socket_moves_the_link_without_a_reload_and_stops_the_old_slot(rig, tmp_path):
    flip, fake, nginx = rig(instances=1, live=(1,))
    assert links(flip) == {1: 1} and flip.slots.live() == [1]
    result = flip.surge()
    assert result['live_after'] == [2] and result['stopped'] == [1]
    assert nginx.reloads == 0 == result['reloads']
    assert links(flip) == {1: 2}
    assert os.readlink(flip.slots.position(1)) == 'shop-2.sock'
    assert result['drains'][0]['done'] is True
    assert fake.running_release(2) == 'v2' and fake.running_release(1) is None

    # The link moved after slot 2 was probed, and slot 1 stopped after the link moved.
    def first(word):
        return next(n for n, step in enumerate(flip.systemd.steps) if word in step['argv'])

    assert first('restart') < first('link') < first('disable')
    # The next boot puts the link where the surge left it.
    assert (tmp_path / 'zerodown-shop-links.conf').read_text().splitlines()[1:] == [
        'L+ %s - - - - shop-2.sock' % flip.slots.position(1)]


def test_a_unix_drain_waits_for_the_connection_left_on_the_old_slot(rig, monkeypatch):
    flip, fake, nginx = rig(instances=1, live=(1,))
    flip.drain_timeout = 5
    held = socket.socket(socket.AF_UNIX)
    held.connect(flip.slots.socket_path(1))
    result = surge_holding(flip, monkeypatch, 'unix_connections', held)
    drain = result['drains'][0]
    assert drain['done'] is True and drain['seconds'] >= 0.25
    assert fake.running_release(1) is None


def test_a_unix_drain_that_does_not_finish_warns_and_goes_on(rig):
    flip, fake, nginx = rig(instances=1, live=(1,))
    warnings = []
    flip.warn = warnings.append
    held = socket.socket(socket.AF_UNIX)
    held.connect(flip.slots.socket_path(1))
    try:
        result = flip.surge()
    finally:
        held.close()
    assert result['drains'][0]['done'] is False
    assert 'connections still open to the slot(s) taken out after 0.2 s' in warnings[0]
    assert 'shop-1.sock (1)' in warnings[0]


def test_surge_whose_new_slot_crashes_leaves_the_link_alone(rig):
    flip, fake, nginx = rig(instances=1, live=(1,), crash_slots=(2,))
    with pytest.raises(flip_mod.FlipError, match='did not come up'):
        flip.surge()
    assert links(flip) == {1: 1} and fake.running_release(1) == 'v1' and nginx.reloads == 0


def test_rolling_on_a_unix_socket_never_points_a_link_at_a_restarting_slot(rig):
    flip, fake, nginx = rig(instances=2, live=(1, 2))
    seen = []
    point = flip.point

    def record(mapping):
        moved = point(mapping)
        seen.append(dict(mapping))
        return moved

    flip.point = record
    result = flip.rolling()
    assert result['live_after'] == [1, 2] and nginx.reloads == 0
    # Slot 1 out (both positions on slot 2), back in, slot 2 out, back in.
    assert [sorted(set(mapping.values())) for mapping in seen] == [[2], [1, 2], [1], [1, 2]]
    assert sorted(links(flip).values()) == [1, 2]
    assert [fake.running_release(k) for k in (1, 2)] == ['v2', 'v2']


def test_an_install_of_before_the_links_gets_them_and_one_reload_to_the_positions(rig):
    flip, fake, nginx = rig(instances=2, live=(1, 2))
    # What the previous release of the collection left: no links, one server file per slot (1, 2 up; 3, 4 down).
    for i in links(flip):
        os.unlink(flip.slots.position(i))
    server_files_per_slot(flip, up=(1, 2))
    assert flip.slots.live() == [1, 2]
    result = flip.ensure_started(route_now=True)
    assert result['changed'] is True and links(flip) == {1: 1, 2: 2}
    assert nginx.reloads == 1
    assert sorted(read_servers_dir(flip.slots.servers_dir)) == sorted(os.path.basename(path) for path in flip.slots.servers())
    # From now on a restart moves links only.
    flip.surge()
    assert nginx.reloads == 1 and sorted(links(flip).values()) == [3, 4]


def test_a_unix_surge_after_the_app_shrank_drops_the_extra_position_in_one_reload(rig):
    flip, fake, nginx = rig(instances=2, live=(1, 2))
    flip.slots = flip_mod.Slots('shop', 1, flip.slots.listen, flip.slots.servers_dir, 'max_fails=0', tmpfiles='')
    result = flip.surge()
    assert result['live_after'] == [3] and sorted(result['stopped']) == [1, 2]
    assert links(flip) == {1: 3} and nginx.reloads == 1
    assert list(nginx.seen[0]) == [os.path.basename(path) for path in flip.slots.servers()]


def test_ensure_started_on_a_unix_socket_changes_nothing_when_the_links_and_slots_are_right(rig):
    flip, fake, nginx = rig(instances=2, live=(3, 4))
    result = flip.ensure_started(route_now=True)
    assert result['changed'] is False and result['live_after'] == [3, 4]
    assert fake.calls == [] and nginx.reloads == 0
