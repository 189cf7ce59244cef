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
