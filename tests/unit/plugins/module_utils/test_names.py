# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_names: the names the roles and the modules derive from an app's name."""

from __future__ import annotations

from ansible_collections.zerodown.deploy.plugins.module_utils import _names as names


def test_paths_and_unit_names():
    assert names.link_path('shop') == '/var/lib/zerodown/shop/live.sock'
    assert names.slot_socket_path('shop', 8001) == '/run/zerodown/shop/slot-8001.sock'
    units = names.SlotUnits('shop', 8002)
    assert (units.app, units.socket, units.proxy) == ('shop-app@8002.service', 'shop-slot@8002.socket', 'shop-slot@8002.service')
    assert units.persistent == ['shop-slot@8002.socket', 'shop-app@8002.service']


def test_service_units_are_the_units_the_restart_acts_on():
    # zero_downtime_restart's units: NAME.service for one instance, NAME@1..N.service for more.
    assert names.service_units('hello', 1) == ['hello.service']
    assert names.service_units('hello', 3) == ['hello@1.service', 'hello@2.service', 'hello@3.service']
    assert names.slot_dir('shop') == '/run/zerodown/shop'


def test_instances_layout_names_every_slot_its_own_socket():
    assert names.instance_slots(2) == [1, 2, 3, 4]
    units = names.instance_units('shop', 3)
    assert (units.socket, units.service) == ('shop@3.socket', 'shop@3.service')
    assert names.instance_listen('/run/shop/shop.sock', 'shop', 2) == '/run/shop/shop-2.sock'
    assert names.instance_listen('/run/shop/app', 'shop', '%i') == '/run/shop/app-%i.sock'
    # A loopback HOST:PORT: every slot its own 127.0.0.K on the same port (systemd's %i cannot add to a port).
    assert names.instance_listen('127.0.0.1:8000', 'shop', 3) == '127.0.0.3:8000'
    assert names.instance_backend('/run/shop/shop.sock', 'shop', 1) == 'unix:/run/shop/shop-1.sock'
    assert names.instance_backend('127.0.0.1:8000', 'shop', 2) == '127.0.0.2:8000'


def test_app_names_of_the_instances_layout():
    found = names.app_names('shop', 2, 'instances', listen='/run/shop/shop.sock')
    assert found['service_unit_file'] == found['app_unit_file'] == 'shop@.service'
    assert found['instance_socket_file'] == 'shop@.socket'
    assert found['running_units'] == ['shop@1.service', 'shop@2.service']
    assert found['instance_slots'] == [1, 2, 3, 4]
    assert found['instance_backends'] == dict((k, 'unix:/run/shop/shop-%d.sock' % k) for k in (1, 2, 3, 4))
    assert found['instance_sockets'] == ['shop@1.socket', 'shop@2.socket', 'shop@3.socket', 'shop@4.socket']
    assert found['instance_listen'] == '/run/shop/shop-%i.sock'
    # The other layouts have none of it.
    other = names.app_names('shop', 2, 'socket', listen='/run/shop/shop.sock')
    assert other['instance_slots'] == [] and other['instance_backends'] == {} and other['service_unit_file'] == 'shop@.service'
    assert names.app_names('shop', 1)['running_units'] == ['shop.service']


def test_instances_layout_nginx_connects_to_n_positions_on_a_unix_socket_and_on_tcp():
    assert names.instance_servers('/run/shop/shop.sock', 'shop', 2) == ['unix:/run/shop/shop-live-1.sock', 'unix:/run/shop/shop-live-2.sock']
    # On TCP a position is an address no slot binds (slots are 127.0.0.K); the app's NAT rules send it to a slot.
    assert names.instance_servers('127.0.0.1:8000', 'shop', 2) == ['127.1.0.1:8000', '127.1.0.2:8000']
    rules = names.position_rules('my-shop')
    assert rules.table == 'zerodown_my_shop'
    assert rules.file == '/etc/zerodown/my-shop-positions.nft'
    assert rules.unit_file == '/etc/systemd/system/zerodown-my-shop-positions.service'
