# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole deploy, checked on two systemd containers at once.

converge.yml deployed release v1 of the sample app ("shop", gunicorn behind
nginx as shop.test) to zd-app (one instance: every deploy starts the new one
beside it and moves nginx over, the surge) and zd-app-two (two instances with
app_surge: false: one at a time out of nginx, restarted, back in). Every play below is the collection's own playbook
(zerodown.deploy.deploy, .rollback, .verify) run against both containers,
with the inventory an operator would write (vars/app.yml as group vars).
The tests run in file order and build on each other:

  v2 under load (0 failed, new PIDs, report) -> v3 crashes at boot (rejected
  in the pre-flight, nothing live touched, 0 failed) -> v4 fails behind its
  real server name (switched, gate fails, rolled back automatically, marked
  bad) -> rollback.yml back to v1 -> verify.yml -> the same release again
  (no change) -> check mode -> bad input.

During the deploys a separate load generator in each container sends GET
and POST requests through nginx for the whole playbook run, not only during
the restart the playbook measures itself.
"""
import json
import os
import re

from zd_scenario import during, failures, load_vars, new_report, ok, podman_exec, podman_inventory, recap, release_state  # pylint: disable=import-error
from zd_scenario import fatal_lines, nginx_workers, report_files, run_playbook, said  # pylint: disable=import-error
from zd_scenario import served as served_by  # pylint: disable=import-error
from zd_scenario import source_tree as write_tree  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(SCENARIO))
APP_SOURCE = os.path.join(ROOT, "tests", "apps", "hello_wsgi.py")
# The scenario's name: app, or app-trixie, which runs these tests on Debian 13.
NAME = os.environ.get("MOLECULE_SCENARIO_NAME", "app")
SOURCES = "/tmp/zd-%s-sources" % NAME
HOSTS = {"zd-%s" % NAME: 1, "zd-%s-two" % NAME: 2}
# The inventory's host variables (molecule.yml has the same): the restart mode of each shape.
HOST_VARS = {"zd-%s" % NAME: {"app_instances": 1}, "zd-%s-two" % NAME: {"app_instances": 2, "app_surge": False}}
MODES = {"zd-%s" % NAME: "surge", "zd-%s-two" % NAME: "drain_rolling"}
BASE = "/srv/shop"
NGINX = "http://127.0.0.1:80"
SERVER_NAME = "shop.test"
REJECTED_BASE = "/srv/rejected"


def app_vars():
    return load_vars(os.path.join(SCENARIO, "vars", "app.yml"))


def source_tree(name, **settings):
    return write_tree(SOURCES, APP_SOURCE, name, **settings)


class Play:
    """One run of a collection playbook against both containers.

    The result's .reports maps each host to the JSON report the run wrote
    there (the app_report fact, plus the restart's raw measurements).
    """

    def __init__(self, playbook, extra=None, check=False, hosts=None):
        self.playbook = playbook
        self.hosts = hosts = hosts or HOSTS
        self.inventory = podman_inventory(app_vars(), hosts=dict((name, HOST_VARS[name]) for name in hosts))
        # Both hosts in one wave: every test here checks both shapes in the same run (molecule/fleet tests the waves).
        self.extra = dict({"zerodown_waves": ["100%"]}, **(extra or {}))
        self.check = check

    def run(self):
        before = dict((name, report_files(name, BASE)) for name in self.hosts)
        proc = run_playbook(self.playbook, self.inventory, self.extra, check=self.check)
        proc.reports = {}
        for name in self.hosts:
            report = new_report(name, BASE, before[name])
            if report:
                proc.reports[name] = report
        return proc


def deploy(name, **settings):
    return Play("deploy", {"app_source": {"type": "local", "path": source_tree(name, **settings)}}).run()


def served(container):
    """What nginx answers for shop.test: {"status", "release", "pid"}."""
    return served_by(container, SERVER_NAME)


def state(container):
    """current's target and the manifest's release statuses."""
    return release_state(container, BASE)


def live_units(container):
    """The app's services that run: one slot per instance (shop@K.service, each on its own socket)."""
    listed = podman_exec(container, "systemctl", "list-units", "--state=active", "--type=service", "--no-legend", "--plain",
                         "shop.service", "shop@*.service").stdout.split("\n")
    return sorted(line.split()[0] for line in listed if line.strip())


def main_pids(container):
    return dict((unit, podman_exec(container, "systemctl", "show", "--property=MainPID", "--value", unit).stdout.strip())
                for unit in live_units(container))


def position_links(container):
    """{link: its target} of nginx's upstream positions (/run/shop/shop-live-N.sock)."""
    listed = podman_exec(container, "find", "/run/shop", "-maxdepth", "1", "-name", "shop-live-*.sock", "-printf", "%p %l\\n")
    return dict(line.split() for line in listed.stdout.splitlines() if line.strip())


def loads_during(background_load, action):
    """Run action() while every container has a load through nginx; returns (action's result, {container: load report})."""
    # A steady rate, so the bounds (10 minutes, 120000 requests) are never what ends it: it spans the whole playbook run.
    # Keep-alive to nginx, as browsers and load balancers do: an nginx reload during the deploy would show here.
    loads = dict((name, background_load(name, NGINX, name, workers=4, max_requests=120000,
                                        extra=("--host-header", SERVER_NAME, "--rate", "150", "--keep-alive")))
                 for name in HOSTS)
    return during(loads, action)


def show(title, proc, loads):
    """Print the measurements (the closing notes quote them)."""
    print("\n== %s" % title)
    for host in HOSTS:
        report = proc.reports.get(host) or {}
        load = loads.get(host, {})
        print("%-11s instances=%d outcome=%s %s -> %s | restart %s: %s requests, %s failed, p99 %s ms, max %s ms | "
              "whole-run load: %d requests, %d failed %s" % (
                  host, HOSTS[host], report.get("outcome"), report.get("release_from"), report.get("release_to"), report.get("mode"),
                  report.get("requests"), report.get("failed_requests"), report.get("during_p99_ms"), report.get("during_max_ms"),
                  load.get("requests", 0), load.get("failed", 0), failures(load)))
    for line in fatal_lines(proc):
        print("  " + line[:1500])


# --------------------------------------------------------------------------- v1 from converge

def test_v1_serves_through_nginx_on_a_socket_only_nginx_may_use(host):
    for container, instances in HOSTS.items():
        answer = served(container)
        assert answer["status"] == 200 and answer["release"] == "v1", answer
        pids = main_pids(container)
        assert len(pids) == instances and all(pid.isdigit() and pid != "0" for pid in pids.values()), pids
        for unit in pids:
            # Every instance its own socket, which only nginx may use.
            slot = unit.split("@")[1].split(".")[0]
            sock = podman_exec(container, "stat", "-c", "%U:%G %a", "/run/shop/shop-%s.sock" % slot).stdout.split()
            assert sock == ["root:www-data", "660"], (unit, sock)
            # ... and that socket starts (and passes its fd to) this slot's service only.
            triggers = podman_exec(container, "systemctl", "show", "--property=Triggers", "--value", "shop@%s.socket" % slot)
            assert triggers.stdout.split() == [unit], (unit, triggers.stdout)
        # The one shared socket of the other layout is not there.
        assert podman_exec(container, "test", "-e", "/run/shop/shop.sock").returncode == 1
        # nginx connects through one link per instance, each at a live slot's socket ...
        links = position_links(container)
        slots = sorted("shop-%s.sock" % unit.split("@")[1].split(".")[0] for unit in pids)
        assert sorted(links) == ["/run/shop/shop-live-%d.sock" % i for i in range(1, instances + 1)], links
        assert sorted(links.values()) == slots, (links, slots)
        servers = podman_exec(container, "sh", "-c", "cat /etc/nginx/conf.d/shop.servers/*.conf").stdout
        assert sorted(re.findall(r"server unix:(\S+) ", servers)) == sorted(links), servers
        # ... which tmpfiles.d puts back after a reboot (/run is a tmpfs).
        tmpfiles = "/etc/tmpfiles.d/zerodown-shop-links.conf"
        podman_exec(container, "rm", "-f", *links)
        recreated = podman_exec(container, "systemd-tmpfiles", "--create", tmpfiles)
        assert recreated.returncode == 0, recreated.stderr
        assert position_links(container) == links
        # No pre-flight unit outlives its deploy.
        assert podman_exec(container, "systemctl", "list-units", "--all", "--no-legend", "shop-preflight*").stdout.strip() == ""
        env = podman_exec(container, "stat", "-c", "%U %a", BASE + "/shared/.env").stdout.split()
        assert env == ["shop", "600"]


# --------------------------------------------------------------------------- v2 under load

def test_v2_goes_live_under_load_with_zero_failed_requests(background_load):
    before = dict((name, (state(name), main_pids(name))) for name in HOSTS)
    workers = dict((name, nginx_workers(name)) for name in HOSTS)
    proc, loads = loads_during(background_load, lambda: deploy("v2"))
    show("deploy v1 -> v2", proc, loads)
    ok(proc)
    for container, instances in HOSTS.items():
        old_state, old_pids = before[container]
        report = proc.reports[container]
        now = state(container)
        assert now["current"] != old_state["current"] and now["statuses"][now["current"]] == "good"
        assert report["outcome"] == "deployed"
        assert (report["release_from"], report["release_to"]) == (old_state["current"], now["current"])
        assert report["mode"] == MODES[container]
        # The restart the playbook measured, and the load that ran through the whole playbook run.
        assert report["requests"] > 0 and report["failed_requests"] == 0, report
        assert loads[container]["requests"] > 0 and loads[container]["failed"] == 0, loads[container]
        new_pids = main_pids(container)
        # As many instances as before, every one a new process (the surge moves them to the other slots).
        assert len(new_pids) == len(old_pids) == instances and not set(new_pids.values()) & set(old_pids.values()), (old_pids, new_pids)
        assert set(unit for unit, pids in report["pids"].items() if pids["new"]) == set(new_pids), report["pids"]
        # The slowest request stayed within the bound the deploy enforces (3 x the steady p99 + app_verify_latency_allowance_ms).
        assert report["during_max_ms"] <= 3 * report["before_p99_ms"] + app_vars()["app_verify_latency_allowance_ms"], report
        assert served(container)["release"] == "v2"
        # The links moved, nginx was never reloaded: its workers, and the clients' keep-alive connections to them, are
        # the same as before the deploy.
        assert nginx_workers(container) == workers[container] and workers[container], (workers[container], nginx_workers(container))
        assert sorted(position_links(container).values()) == sorted("shop-%s.sock" % u.split("@")[1].split(".")[0] for u in new_pids)
        # Old workers (gone now) and new ones (alive) both answered the load: it really spanned the restart.
        alive = set(podman_exec(container, "ps", "-eo", "pid=").stdout.split())
        markers = set(loads[container]["markers"])
        assert markers - alive and markers & alive, (markers, alive)
        saved = json.loads(podman_exec(container, "cat", report["report_path"]).stdout)
        assert saved["restart"]["failed_requests"] == 0 and saved["release_to"] == now["current"]
        timeline = json.loads(podman_exec(container, "cat", report["timeline_path"]).stdout)
        assert len(timeline) == report["requests"]
    assert "restart: surge (1 instance)" in said(proc) and "restart: drain_rolling (2 instances)" in said(proc), said(proc)[-3000:]
    assert "0 failed" in said(proc)


# --------------------------------------------------------------------------- a release that cannot boot

def test_release_that_crashes_at_boot_is_rejected_in_preflight_and_nothing_live_changes(background_load):
    before = dict((name, (state(name), main_pids(name))) for name in HOSTS)
    proc, loads = loads_during(background_load, lambda: deploy("v3", crash_at_boot=True))
    show("deploy v3 (crashes at boot)", proc, loads)
    assert proc.returncode != 0
    text = said(proc)
    assert "the pre-flight of release" in text and "nothing live was touched" in text and "crash_at_boot" in text
    for container in HOSTS:
        old_state, old_pids = before[container]
        now = state(container)
        assert now["current"] == old_state["current"]
        bad = [rid for rid in now["statuses"] if rid not in old_state["statuses"]]
        assert len(bad) == 1 and now["statuses"][bad[0]] == "bad"
        assert now["releases"][bad[0]]["reason"].startswith("pre-flight failed: "), now["releases"][bad[0]]["reason"]
        # Nothing restarted, nothing failed, no pre-flight unit left behind.
        assert main_pids(container) == old_pids
        assert loads[container]["requests"] > 0 and loads[container]["failed"] == 0, loads[container]
        assert served(container)["release"] == "v2"
        assert podman_exec(container, "systemctl", "list-units", "--all", "--no-legend", "shop-preflight*").stdout.strip() == ""
        assert podman_exec(container, "test", "-e", "/run/systemd/system/shop-preflight.service").returncode == 1


# --------------------------------------------------------------------------- a release that fails behind nginx

def test_release_failing_its_health_gate_after_the_switch_is_rolled_back_automatically(background_load):
    before = dict((name, state(name)) for name in HOSTS)
    # Answers the pre-flight (probed as localhost), fails as shop.test behind nginx: 400 DisallowedHost.
    proc, loads = loads_during(background_load, lambda: deploy("v4", allowed_hosts=["localhost"]))
    show("deploy v4 (fails behind its server name)", proc, loads)
    assert proc.returncode != 0
    text = said(proc)
    assert "rolled back automatically" in text
    for container in HOSTS:
        old = before[container]
        now = state(container)
        assert now["current"] == old["current"]
        new = [rid for rid in now["statuses"] if rid not in old["statuses"]]
        assert len(new) == 1 and now["statuses"][new[0]] == "bad"
        reason = now["releases"][new[0]]["reason"]
        assert reason.startswith("failed after the switch: ") and ("Restart under load" in reason or "health path" in reason), reason
        assert container in proc.reports, "no report from %s: %s" % (container, fatal_lines(proc))
        report = proc.reports[container]
        assert report["outcome"] == "rolled back" and report["rolled_back_from"] == new[0]
        assert report["release_to"] == old["current"]
        # The rollback's restart was measured too. Until it replaced them, the bad release's processes
        # answered 400 (http_other); no request was refused, reset or lost.
        assert report["requests"] > 0 and report["health_gate"] == {"HTTP 200": 5}
        assert set(report["failures_by_kind"]) <= {"http_other"}, report
        assert served(container)["release"] == "v2"
        kinds = dict((k, v) for k, v in loads[container]["failures_by_kind"].items() if v)
        assert set(kinds) <= {"http_other"}, kinds


# --------------------------------------------------------------------------- the rollback playbook

def test_rollback_playbook_puts_v1_back_into_service_under_load(background_load):
    before = dict((name, state(name)) for name in HOSTS)
    proc, loads = loads_during(background_load, lambda: Play("rollback").run())
    show("rollback.yml v2 -> v1", proc, loads)
    ok(proc)
    for container in HOSTS:
        now = state(container)
        assert now["current"] != before[container]["current"]
        assert served(container)["release"] == "v1"
        report = proc.reports[container]
        assert report["outcome"] == "rolled back" and report["release_to"] == now["current"]
        assert report["failed_requests"] == 0 and loads[container]["failed"] == 0, loads[container]
        # The bad releases were never candidates.
        assert now["statuses"][now["current"]] == "good"


def test_verify_playbook_restarts_under_load_and_reports():
    before = dict((name, main_pids(name)) for name in HOSTS)
    proc = ok(Play("verify").run())
    for container, instances in HOSTS.items():
        report = proc.reports[container]
        assert report["outcome"] == "verified" and report["failed_requests"] == 0 and report["requests"] > 0
        after = main_pids(container)
        assert len(after) == instances and not set(after.values()) & set(before[container].values()), (before[container], after)
    assert re.search(r"restart: drain_rolling \(2 instances\), \d+ requests through \S+, 0 failed", said(proc)), said(proc)[-3000:]


def test_the_same_release_again_changes_nothing():
    before = dict((name, (state(name), main_pids(name))) for name in HOSTS)
    proc = ok(deploy("v1"))
    for container in HOSTS:
        assert recap(proc)[container]["changed"] == 0, proc.stdout[-3000:]
        assert proc.reports[container]["outcome"] == "unchanged"
        assert (state(container), main_pids(container)) == before[container]


def test_check_mode_deploy_changes_nothing():
    before = dict((name, (state(name), main_pids(name))) for name in HOSTS)
    proc = Play("deploy", {"app_source": {"type": "local", "path": source_tree("v5")}}, check=True).run()
    ok(proc)
    assert proc.reports == {}
    for container in HOSTS:
        assert (state(container), main_pids(container)) == before[container]
        assert podman_exec(container, "sh", "-c", "ls %s/releases | wc -l" % BASE).stdout.strip() == str(len(before[container][0]["statuses"]))


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_rejected_with_a_clear_error_and_changes_nothing(rejections, host):
    good = dict(app_vars(), app_name="rejected", app_base_path=REJECTED_BASE,
                app_source={"type": "local", "path": source_tree("v1")})
    cases = {
        "no name": dict(good, app_name=""),
        "bad name": dict(good, app_name="shop/../x"),
        "relative base": dict(good, app_base_path="srv/shop"),
        "no exec_start": dict(good, app_exec_start=""),
        "relative exec_start": dict(good, app_exec_start="gunicorn app"),
        "no source": dict(good, app_source={}),
        "unknown source type": dict(good, app_source={"type": "svn", "repo": "x"}),
        "git without repo": dict(good, app_source={"type": "git"}),
        "archive without src": dict(good, app_source={"type": "archive"}),
        "local without path": dict(good, app_source={"type": "local"}),
        "unknown source key": dict(good, app_source={"type": "local", "path": "/tmp", "branch": "main"}),
        "zero instances": dict(good, app_instances=0),
        "health path": dict(good, app_health_path="health"),
        "listen": dict(good, app_listen="localhost"),
        "server name": dict(good, app_server_name="shop test"),
        "workers": dict(good, app_verify_workers=65),
        "rate": dict(good, app_verify_rate=0),
        "post ratio": dict(good, app_verify_post_ratio=1.5),
        "max duration": dict(good, app_verify_max_duration=3, app_verify_baseline_seconds=2, app_verify_tail_seconds=2),
        "gate successes": dict(good, app_health_gate_successes=0),
        "keep releases": dict(good, app_keep_releases=0),
        "env key": dict(good, app_environment={"BAD-KEY": "1"}),
        "service type": dict(good, app_service_type="oneshot"),
        "hardening profile": dict(good, app_hardening_profile="paranoid"),
        "instances type": dict(good, app_instances="many"),
    }
    expected = {
        "no name": "app_name must match",
        "bad name": "app_name must match",
        "relative base": "app_base_path must be an absolute path",
        "no exec_start": "app_exec_start is required",
        "relative exec_start": "app_exec_start is required and must start with an absolute path",
        "no source": "app_source must be {type: git",
        "unknown source type": "app_source must be {type: git",
        "git without repo": "app_source of type git needs repo",
        "archive without src": "app_source of type archive needs src",
        "local without path": "app_source of type local needs path",
        "unknown source key": "app_source has keys that type local does not know: ['branch']",
        "zero instances": "app_instances must be between 1 and 64",
        "health path": "app_health_path must start with '/'",
        "listen": "app_listen must be an absolute Unix socket path or 'host:port'",
        "server name": "app_server_name must be one host name",
        "workers": "app_verify_workers must be between 1 and 64",
        "rate": "app_verify_rate must be more than 0",
        "post ratio": "app_verify_post_ratio must be between 0 and 1",
        "max duration": "app_verify_max_duration (3 s) must exceed",
        "gate successes": "app_health_gate_successes must be between 1 and 100",
        "keep releases": "app_keep_releases must be 1 or more",
        "env key": "app_environment keys must be variable names",
        "service type": "app_service_type",
        "hardening profile": "app_hardening_profile",
        "instances type": "app_instances",
    }
    results = rejections("zerodown.deploy.app", cases)
    for case, fragment in expected.items():
        message = " ".join((results[case] or "").split())
        assert results[case] is not None, "%s was not rejected" % case
        assert fragment in message, "%s: %s" % (case, message)
    container = host.backend.name
    assert podman_exec(container, "test", "-e", REJECTED_BASE).returncode == 1
    assert podman_exec(container, "test", "-e", "/etc/systemd/system/rejected.socket").returncode == 1
