# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploys with the app servers that are not kind to connections at shutdown.

zd-app_servers-uvicorn runs tests/apps/hello_asgi.py under Debian's uvicorn
(on SIGTERM it closes the connections it accepted but had not read from);
zd-app_servers-node runs tests/apps/tutorial_node.js under Debian's nodejs
(keep-alive 65 s, server.close() and closeIdleConnections() on SIGTERM), on
TCP: app_listen 127.0.0.1:8000, so its instances are on 127.0.0.K:8000 and
nginx connects to positions 127.1.0.I:8000 that the app's NAT rules send to
the live instances (Unix sockets use links instead; uvicorn's host has them).
converge.yml installed v1 as one instance on one shared socket
(app_surge: false). The tests run in file order and build on each other,
each deploy under a separate GET+POST load through nginx for the whole
playbook run:

  v2 with the defaults: the move to one socket per instance (surge, the
  shared socket's process drained and stopped) -> v3 with 2 instances (a
  surge of two) -> v4 with 2 instances one at a time (app_surge: false,
  drain_rolling) -> v5 fails behind its server name (rejected on its own
  sockets, rolled back under the same load) -> a restart above its latency bound.

The load keeps its connections to nginx open (keep-alive), except for v2
and v3: they change nginx's configuration (the move to the position links,
then a second position), which takes one nginx reload, and a reload closes
the clients' idle keep-alive connections, so those two run with a new
connection per request. The deploys that change only the release (v4, v5)
must not reload nginx at all, and the test checks its workers.

Every deploy must fail no request, in its own measurement and in the
separate load, and its slowest request must stay within the bound the deploy
enforces (app_verify_max_latency_factor x the steady p99 + app_verify_latency_allowance_ms).
"""
import os
import re
import time

from zd_scenario import during, failures, load_vars, new_report, ok, podman_exec, podman_inventory, report_files  # pylint: disable=import-error
from zd_scenario import nginx_workers, run_playbook, said, source_tree  # pylint: disable=import-error
from zd_scenario import served as served_by  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(SCENARIO))
APPS = [os.path.join(ROOT, "tests", "apps", name) for name in ("hello_asgi.py", "tutorial_node.js")]
NAME = os.environ.get("MOLECULE_SCENARIO_NAME", "app_servers")
SOURCES = "/tmp/zd-app_servers-sources"
# The inventory's host variables (molecule.yml has the same).
HOST_VARS = {
    "zd-%s-uvicorn" % NAME: {"app_exec_start": "/usr/bin/python3 -m uvicorn --fd 3 --app-dir {{ app_current_path }} hello_asgi:app"},
    "zd-%s-node" % NAME: {"app_exec_start": "/usr/bin/node {{ app_current_path }}/tutorial_node.js", "app_listen": "127.0.0.1:8000"},
}
UNIX_HOST, TCP_HOST = "zd-%s-uvicorn" % NAME, "zd-%s-node" % NAME
BASE = "/srv/shop"
NGINX = "http://127.0.0.1:80"
SERVER_NAME = "shop.test"
APP_VARS = load_vars(os.path.join(SCENARIO, "vars", "app.yml"))


def release_tree(name, **release):
    """Both apps and release.json (release names the release; allowed_hosts makes any other Host get a 400)."""
    for app in APPS:
        path = source_tree(SOURCES, app, name, **release)
    return path


def deploy(name, allowed_hosts=None, **settings):
    inventory = podman_inventory(APP_VARS, hosts=HOST_VARS)
    release = {"allowed_hosts": allowed_hosts} if allowed_hosts else {}
    extra = dict({"zerodown_waves": ["100%"], "app_source": {"type": "local", "path": release_tree(name, **release)}}, **settings)
    before = dict((host, report_files(host, BASE)) for host in HOST_VARS)
    proc = run_playbook("deploy", inventory, extra)
    proc.reports = dict((host, new_report(host, BASE, before[host])) for host in HOST_VARS)
    return proc


def live_units(container):
    listed = podman_exec(container, "systemctl", "list-units", "--state=active", "--type=service", "--no-legend", "--plain",
                         "shop.service", "shop@*.service").stdout.split("\n")
    return sorted(line.split()[0] for line in listed if line.strip())


def main_pids(container):
    return dict((unit, podman_exec(container, "systemctl", "show", "--property=MainPID", "--value", unit).stdout.strip())
                for unit in live_units(container))


def deploy_under_load(background_load, name, keep_alive=True, **settings):
    """Deploy under GET+POST load (1 in 4 a POST) at a steady rate through nginx; prints and returns (proc, loads).

    ``keep_alive``: the load reuses its connections to nginx, and the deploy must not reload nginx (proc.reloaded)."""
    extra = ("--host-header", SERVER_NAME, "--rate", "150", "--post-ratio", "0.25") + (("--keep-alive",) if keep_alive else ())
    loads = dict((host, background_load(host, NGINX, host, workers=4, max_requests=120000, extra=extra)) for host in HOST_VARS)
    workers = dict((host, nginx_workers(host)) for host in HOST_VARS)
    proc, reports = during(loads, lambda: deploy(name, **settings))
    proc.reloaded = dict((host, nginx_workers(host) != workers[host]) for host in HOST_VARS)
    print("\n== deploy %s %s" % (name, settings))
    for host in HOST_VARS:
        report = proc.reports.get(host) or {}
        load = reports[host]
        print("%-24s %s %s -> %s | restart %s: %s requests, %s failed, steady p99 %s ms, during p99 %s ms, max %s ms | "
              "whole-run load: %d requests, %d failed %s" % (
                  host, report.get("outcome"), report.get("release_from"), report.get("release_to"), report.get("mode"),
                  report.get("requests"), report.get("failed_requests"), report.get("before_p99_ms"), report.get("during_p99_ms"),
                  report.get("during_max_ms"), load["requests"], load["failed"], failures(load)))
    if keep_alive:
        assert not any(proc.reloaded.values()), "nginx reloaded during a deploy under keep-alive load: %s" % proc.reloaded
    return proc, reports


def assert_deployed_without_a_failed_request(proc, loads, release, mode, instances, before):
    ok(proc)
    for host in HOST_VARS:
        report = proc.reports[host]
        assert report["outcome"] == "deployed" and report["mode"] == mode, report
        assert report["requests"] > 0 and report["failed_requests"] == 0, report
        assert loads[host]["requests"] > 0 and loads[host]["failed"] == 0, loads[host]
        # POSTs were part of the load, and both the old and the new processes answered it.
        markers, alive = set(loads[host]["markers"]), set(podman_exec(host, "ps", "-eo", "pid=").stdout.split())
        assert markers - alive and markers & alive, (markers, alive)
        assert loads[host]["methods"].get("POST", 0) > 0, loads[host]["methods"]
        assert report["during_max_ms"] <= 3 * report["before_p99_ms"] + APP_VARS["app_verify_latency_allowance_ms"], report
        pids = main_pids(host)
        assert len(pids) == instances and not set(pids.values()) & set(before[host].values()), (before[host], pids)
        for unit in pids:
            # Every slot its own socket, passed to its own service only.
            socket = unit.replace(".service", ".socket")
            triggers = podman_exec(host, "systemctl", "show", "--property=Triggers", "--value", socket).stdout.split()
            assert unit.startswith("shop@") and triggers == [unit], (unit, triggers)
        assert served_by(host, SERVER_NAME)["release"] == release
    assert "0 failed" in said(proc)


def position_rules(container):
    """{position: slot} of the app's NAT rules in the kernel (nft list), {} without its table."""
    listed = podman_exec(container, "nft", "list", "table", "ip", "zerodown_shop")
    found = re.findall(r"ip daddr 127\.1\.0\.(\d+) tcp dport 8000 dnat (?:ip )?to 127\.0\.0\.(\d+):8000", listed.stdout)
    return dict((int(i), int(k)) for i, k in found)


def upstream_servers(container):
    listed = podman_exec(container, "sh", "-c", "cat /etc/nginx/conf.d/shop.servers/*").stdout
    return sorted(address.rstrip(";") for address in re.findall(r"(?m)^\s*server\s+(\S+)", listed))


def test_v1_runs_on_one_shared_socket(host):
    for container in HOST_VARS:
        assert served_by(container, SERVER_NAME)["release"] == "v1"
        assert live_units(container) == ["shop.service"]
    assert podman_exec(UNIX_HOST, "test", "-S", "/run/shop/shop.sock").returncode == 0
    assert podman_exec(TCP_HOST, "systemctl", "show", "--property=Listen", "--value", "shop.socket").stdout.split()[:1] == ["127.0.0.1:8000"]


def test_a_changed_shared_socket_is_refused_before_the_switch_naming_the_way(host):
    """One shared socket (app_surge: false, one instance): a new socket group would restart the socket after the switch.
    The pre-flight refuses it first, and the app keeps serving as it was."""
    before = dict((c, (podman_exec(c, "readlink", BASE + "/current").stdout, main_pids(c), served_by(c, SERVER_NAME)["release"]))
                  for c in HOST_VARS)
    proc = deploy("v1-new-socket-group", app_surge=False, app_socket_group="adm")
    assert proc.returncode != 0
    text = said(proc)
    assert "shop.socket would change" in text and "Nothing was changed" in text and "app_allow_socket_restart" in text, text[-3000:]
    assert "Point current at the new release" not in text
    for c in HOST_VARS:
        after = (podman_exec(c, "readlink", BASE + "/current").stdout, main_pids(c), served_by(c, SERVER_NAME)["release"])
        assert after == before[c], (before[c], after)
        assert podman_exec(c, "systemctl", "show", "--property=SocketGroup", "--value", "shop.socket").stdout.strip() == "www-data"


def test_v2_moves_to_one_socket_per_instance_under_load_with_zero_failed(background_load):
    before = dict((container, main_pids(container)) for container in HOST_VARS)
    proc, loads = deploy_under_load(background_load, "v2", keep_alive=False)
    assert_deployed_without_a_failed_request(proc, loads, "v2", "surge", 1, before)
    for container in HOST_VARS:
        # The shared socket's service was drained and stopped once nginx had moved off it.
        assert podman_exec(container, "systemctl", "is-active", "shop.service").stdout.strip() != "active"
    # On TCP nginx connects to a position, which the NAT rules send to the live slot; the unit that loads the rules at
    # boot is enabled.
    live = [int(unit.split("@")[1].split(".")[0]) for unit in live_units(TCP_HOST)]
    assert upstream_servers(TCP_HOST) == ["127.1.0.1:8000"] and position_rules(TCP_HOST) == {1: live[0]}, live
    assert podman_exec(TCP_HOST, "systemctl", "is-enabled", "zerodown-shop-positions.service").stdout.strip() == "enabled"
    # A restart of nftables.service flushes the whole ruleset; the positions unit (PartOf=) loads the rules again.
    rules = position_rules(TCP_HOST)
    assert podman_exec(TCP_HOST, "systemctl", "restart", "nftables.service").returncode == 0
    deadline = time.monotonic() + 15
    while position_rules(TCP_HOST) != rules and time.monotonic() < deadline:
        time.sleep(0.2)
    assert position_rules(TCP_HOST) == rules and served_by(TCP_HOST, SERVER_NAME)["release"] == "v2"


def test_v3_surges_two_instances_under_load_with_zero_failed(background_load):
    before = dict((container, main_pids(container)) for container in HOST_VARS)
    proc, loads = deploy_under_load(background_load, "v3", keep_alive=False, app_instances=2)
    assert_deployed_without_a_failed_request(proc, loads, "v3", "surge", 2, before)
    live = sorted(int(unit.split("@")[1].split(".")[0]) for unit in live_units(TCP_HOST))
    assert upstream_servers(TCP_HOST) == ["127.1.0.1:8000", "127.1.0.2:8000"] and sorted(position_rules(TCP_HOST).values()) == live


def test_v4_restarts_two_instances_one_at_a_time_under_load_with_zero_failed(background_load):
    before = dict((container, main_pids(container)) for container in HOST_VARS)
    proc, loads = deploy_under_load(background_load, "v4", app_instances=2, app_surge=False)
    assert_deployed_without_a_failed_request(proc, loads, "v4", "drain_rolling", 2, before)


def test_v5_failing_behind_its_server_name_is_rejected_and_rolled_back_under_load_with_zero_failed(background_load):
    # v5 answers 400 to any Host but localhost: it passes the pre-flight (probed as localhost), then its new instances
    # fail their probe as shop.test on their own sockets, so no client ever gets an answer from v5; the automatic
    # rollback's restart runs under the same load.
    proc, loads = deploy_under_load(background_load, "v5", app_instances=2, allowed_hosts=["localhost"])
    assert proc.returncode != 0 and "rolled back automatically" in said(proc), said(proc)[-3000:]
    for host in HOST_VARS:
        report = proc.reports[host]
        assert report["outcome"] == "rolled back", report
        assert report["requests"] > 0 and report["failed_requests"] == 0, report
        assert loads[host]["requests"] > 0 and loads[host]["failed"] == 0, loads[host]
        assert served_by(host, SERVER_NAME)["release"] == "v4"
        assert len(main_pids(host)) == 2


def test_a_restart_slower_than_its_latency_bound_fails_and_names_the_slowest_request():
    # A bound no restart can meet (1 % of the steady p99, no allowance): the verify playbook's restart must fail and say
    # which request was too slow, when, and which step ran then; still no request failed.
    inventory = podman_inventory(APP_VARS, hosts=HOST_VARS)
    proc = run_playbook("verify", inventory, {"zerodown_waves": ["100%"], "app_instances": 2, "app_surge": False,
                                              "app_verify_max_latency_factor": 0.01, "app_verify_latency_allowance_ms": 0})
    assert proc.returncode != 0
    text = said(proc)
    assert "a request during the restart took" in text and "above the bound of" in text and "while " in text, text[-3000:]
    assert "0 failed" in text
    for container in HOST_VARS:
        assert served_by(container, SERVER_NAME)["release"] == "v4"
