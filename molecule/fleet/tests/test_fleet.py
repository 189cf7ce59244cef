# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet behind a load balancer, deployed wave by wave.

zd-fleet-lb runs nginx with one TCP upstream server per app host (drained
for its restart, app_lb_drain); zd-fleet-1..3 run the app behind their own
nginx. Every play is the collection's own deploy or rollback playbook, run
from the controller while a separate load sends GET and POST through the
load balancer for the whole playbook run. The tests run in order: converge
deployed v1 everywhere. The deploy wall time of 1 vs 3 hosts is measured by
the fleet benchmark (scripts/bench.sh --fleet), not here.
"""
import pytest

from zd_fleet import APP_SOURCE, LB, SOURCES, WEB, deploy, hostnames, lb_servers, loaded, playbook, state, through_lb, waves  # pylint: disable=import-error
from zd_scenario import failures, ok, recap, said, source_tree  # pylint: disable=import-error


def show(title, proc, load):
    """Print the measurements (the closing notes quote them)."""
    print("\n== %s: rc %d, %.1f s, %d wave(s) | load through the LB: %d requests, %d failed %s" % (
        title, proc.returncode, proc.seconds, waves(proc), load.get("requests", 0), load.get("failed", 0), failures(load)))


# --------------------------------------------------------------------------- v1 from converge

def test_every_app_host_serves_v1_through_the_load_balancer(host):
    answers = through_lb(30)
    assert all(answer["status"] == 200 and answer["release"] == "v1" for answer in answers), answers
    assert set(answer["host"] for answer in answers) == set(hostnames()), answers
    servers = lb_servers()
    assert len(servers) == 3 and not any(" down" in line for line in servers.values()), servers
    # One deploy, one release ID on every host.
    assert len(set(state(name)["current"] for name in WEB)) == 1


# --------------------------------------------------------------------------- waves under load

def test_v2_rolls_out_wave_by_wave_with_zero_failed_requests_at_the_load_balancer(background_load):
    before = dict((name, state(name)) for name in WEB)
    proc, load = loaded(lambda: deploy("v2"), background_load)
    show("deploy v1 -> v2, 3 hosts, waves [1, 25%, 100%], drained", proc, load)
    ok(proc)
    assert waves(proc) == 3
    assert load["requests"] > 0 and load["failed"] == 0, load
    after = dict((name, state(name)) for name in WEB)
    assert len(set(entry["current"] for entry in after.values())) == 1, after
    for name in WEB:
        assert after[name]["current"] != before[name]["current"]
        assert after[name]["statuses"][after[name]["current"]] == "good"
    # Each host was drained for its restart and is back.
    assert proc.stdout.count("Set this host on the load balancers to down") == 3
    assert not any(" down" in line for line in lb_servers().values())
    answers = through_lb(30)
    assert all(answer["release"] == "v2" for answer in answers) and len(set(a["host"] for a in answers)) == 3, answers


def test_a_canary_failing_its_health_check_stops_the_rollout_and_rolls_itself_back(background_load):
    before = dict((name, state(name)) for name in WEB)
    proc, load = loaded(lambda: deploy("v3", health_status=503), background_load)
    show("deploy v2 -> v3 (unhealthy), canary fails", proc, load)
    assert proc.returncode != 0
    assert waves(proc) == 1, "the rollout went past the canary"
    assert load["requests"] > 0 and load["failed"] == 0, load
    # The canary is the first app host of the inventory.
    canary, rest = WEB[0], WEB[1:]
    assert set(recap(proc)) & set(WEB) == {canary}, recap(proc)
    assert recap(proc)[canary]["failed"] == 1
    now = state(canary)
    assert now["current"] == before[canary]["current"]
    bad = [rid for rid, status in now["statuses"].items() if status == "bad"]
    assert len(bad) == 1 and bad[0] not in before[canary]["statuses"], now
    for name in rest:
        assert name not in recap(proc), "a later wave ran on %s" % name
        assert state(name) == before[name]
    # The canary rolled back, passed its restart and is in the load balancer again.
    assert not any(" down" in line for line in lb_servers().values())
    assert all(answer["status"] == 200 and answer["release"] == "v2" for answer in through_lb(30))


def test_rollback_puts_one_release_back_on_every_host(background_load):
    v2 = state(WEB[1])["current"]
    v1 = sorted(rid for rid, status in state(WEB[1])["statuses"].items() if rid != v2 and status == "good")[-1]
    # Two waves: the first host, then the other two (drained together: one host keeps serving).
    proc, load = loaded(lambda: playbook("rollback", {"app_rollback_to": v1, "zerodown_waves": [1, "100%"]}), background_load)
    show("rollback.yml to one release ID, 3 hosts, waves [1, 100%], drained", proc, load)
    ok(proc)
    assert load["requests"] > 0 and load["failed"] == 0, load
    assert waves(proc) == 2
    assert all(state(name)["current"] == v1 for name in WEB)
    assert all(answer["release"] == "v1" for answer in through_lb(30))


# --------------------------------------------------------------------------- --limit

def test_a_deploy_limited_to_one_host_keeps_every_server_on_the_load_balancer():
    """The servers come from the inventory, not from the hosts of the run: a check run shows the LB would not change."""
    before = dict((name, state(name)) for name in WEB)
    servers = lb_servers()
    proc = ok(deploy("v4", extra={"app_lb_drain": False}, limit=[WEB[0], LB], check=True))
    assert set(recap(proc)) == {WEB[0], LB}, recap(proc)
    assert recap(proc)[LB]["changed"] == 0, proc.stdout[-4000:]
    # The check run of the app host did see the new release.
    assert recap(proc)[WEB[0]]["changed"] > 0, proc.stdout[-4000:]
    assert lb_servers() == servers and len(servers) == 3
    assert all(state(name) == before[name] for name in WEB)


# --------------------------------------------------------------------------- refused input

def test_draining_a_wave_that_holds_every_host_is_refused_and_changes_nothing():
    before = dict((name, state(name)) for name in WEB)
    proc = deploy("v6", extra={"zerodown_waves": ["100%"]})
    assert proc.returncode != 0
    assert "app_lb_drain: this wave holds every host of the play (3)" in said(proc)
    assert all(state(name) == before[name] for name in WEB)


def test_a_malformed_deploy_time_is_refused_and_changes_nothing():
    before = dict((name, state(name)) for name in WEB)
    proc = deploy("v6", extra={"app_deploy_time": "2026-11-21 10:15"})
    assert proc.returncode != 0
    assert "app_deploy_time must be a UTC time like 20261121T101500Z" in said(proc)
    assert all(state(name) == before[name] for name in WEB)


@pytest.mark.parametrize("play", ["deploy", "verify", "rollback"])
def test_fleet_settings_in_the_inventory_stop_the_play_instead_of_being_ignored(play):
    """A play's hosts and serial never read group_vars: waves set there would silently run the defaults."""
    before = dict((name, state(name)) for name in WEB)
    extra = {"app_source": {"type": "local", "path": source_tree(SOURCES, APP_SOURCE, "v7")}} if play == "deploy" else {}
    proc = playbook(play, extra, inventory_vars={"zerodown_waves": [1, "100%"]})
    assert proc.returncode != 0
    assert "zerodown_waves set in the inventory (group_vars or host_vars), where Ansible never reads a play's hosts or serial" \
        in said(proc), said(proc)[-2000:]
    # Given as an extra var, the same value passes (test_rollback_puts_one_release_back_on_every_host runs with it).
    assert all(state(name) == before[name] for name in WEB)
