# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxy mode (app_mode: proxy): blue/green between two slots, checked on a real systemd.

The app ("legacy", tests/apps/port_app.py) binds 127.0.0.1:$PORT itself
after a one-second boot and cannot take an inherited socket. nginx talks to
legacy.socket; legacy.service is systemd-socket-proxyd forwarding every
connection to /var/lib/zerodown/legacy/live.sock, a symbolic link to the live
slot's socket; each slot is legacy-slot@PORT.socket/.service in front of
legacy-app@PORT.service.

converge.yml deployed v1 with the collection's deploy playbook. The tests run
in file order and build on each other: v2 under load (slot 8001 -> 8002) ->
rollback.yml (back to v1 on 8001) -> the same release again (no change) ->
a release that never gets healthy (the old slot keeps serving, the deploy
rolls back) -> a changed app unit (a switch, not a restart) -> requests in
flight during a switch (they finish on the old slot) -> check mode -> a
reboot (back on the live slot) -> what the naive design (restarting the
public proxy) does. The bad-input test runs first: it takes testinfra's
host fixture, and pytest runs the tests parametrized by host first.

During the deploys a separate load generator sends GET and POST requests
through nginx for the whole playbook run, not only during the switch the
playbook measures itself.
"""
import json
import os
import re
import subprocess
import time

from zd_scenario import during, failures, load_vars, new_report, ok, podman_inventory, release_state, report_files  # pylint: disable=import-error
from zd_scenario import run_playbook, said  # pylint: disable=import-error
from zd_scenario import podman_exec as exec_in  # pylint: disable=import-error
from zd_scenario import recap as recaps  # pylint: disable=import-error
from zd_scenario import served as served_by  # pylint: disable=import-error
from zd_scenario import source_tree as write_tree  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(SCENARIO))
APP_SOURCE = os.path.join(ROOT, "tests", "apps", "port_app.py")
SOURCES = "/tmp/zd-proxy-sources"
CONTAINER = "zd-proxy"
NAME = "legacy"
BASE = "/srv/legacy"
NGINX = "http://127.0.0.1:80"
SERVER_NAME = "legacy.test"
LINK = "/var/lib/zerodown/legacy/live.sock"
PORTS = (8001, 8002)
REJECTED_BASE = "/srv/rejected"

# The public proxy's main PID, from the first test: no deploy may restart it.
PROXY = {}


def app_vars():
    return load_vars(os.path.join(SCENARIO, "inventory", "group_vars", "all.yml"))


def podman_exec(*argv):
    return exec_in(CONTAINER, *argv)


def source_tree(name, **settings):
    return write_tree(SOURCES, APP_SOURCE, name, **settings)


def play(playbook, extra=None, check=False):
    """Run zerodown.deploy.PLAYBOOK with the scenario's inventory; .report is the JSON report the run wrote, if any."""
    before = report_files(CONTAINER, BASE)
    proc = run_playbook(playbook, podman_inventory(app_vars(), hosts={CONTAINER: {}}), extra, check=check)
    proc.report = new_report(CONTAINER, BASE, before)
    return proc


def deploy(name, extra=None, **settings):
    return play("deploy", dict({"app_source": {"type": "local", "path": source_tree(name, **settings)}}, **(extra or {})))


def recap(proc):
    found = recaps(proc)
    assert CONTAINER in found, proc.stdout[-3000:]
    return found[CONTAINER]


def served():
    """What nginx answers for legacy.test: {"status", "release", "pid", "port"}."""
    return served_by(CONTAINER, SERVER_NAME)


def live_port():
    target = podman_exec("readlink", LINK).stdout.strip()
    match = re.fullmatch(r"/run/zerodown/legacy/slot-(\d+)\.sock", target)
    assert match, "LINK points at %r" % target
    return int(match.group(1))


def show(unit):
    out = podman_exec("systemctl", "show", "--property=ActiveState,UnitFileState,MainPID,Result", unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def slot(port):
    """State of the slot's three units."""
    units = {"app": "%s-app@%d.service" % (NAME, port), "socket": "%s-slot@%d.socket" % (NAME, port),
             "proxy": "%s-slot@%d.service" % (NAME, port)}
    return dict((kind, show(unit)) for kind, unit in units.items())


def assert_live(port):
    """port is the one live slot: LINK points at it, its units run and are enabled, the other slot's are stopped and disabled."""
    assert live_port() == port
    other = [p for p in PORTS if p != port][0]
    live, idle = slot(port), slot(other)
    assert live["app"]["ActiveState"] == "active" and live["socket"]["ActiveState"] == "active", live
    assert live["app"]["UnitFileState"] == "enabled" and live["socket"]["UnitFileState"] == "enabled", live
    assert all(unit["ActiveState"] == "inactive" for unit in idle.values()), idle
    assert idle["app"]["UnitFileState"] != "enabled" and idle["socket"]["UnitFileState"] != "enabled", idle
    answer = served()
    assert answer["status"] == 200 and answer["port"] == port, answer
    return answer


def app_pid(port):
    return int(show("%s-app@%d.service" % (NAME, port))["MainPID"])


def proxy_pid():
    return int(show(NAME + ".service")["MainPID"])


def loads_during(background_load, action, path="/", workers=4, rate="150"):
    """Run action() while a load runs through nginx; returns (action's result, the load's report)."""
    extra = ("--host-header", SERVER_NAME, "--path", path) + (("--rate", rate) if rate else ())
    result, reports = during({CONTAINER: background_load(CONTAINER, NGINX, "proxy", workers=workers, max_requests=120000, extra=extra)},
                             action)
    return result, reports[CONTAINER]


def report_line(title, proc, load):
    """Print the measurements (the closing notes quote them)."""
    report = proc.report or {}
    print("\n== %s: outcome=%s %s -> %s | switch %s: %s requests, %s failed, p99 %s ms, max %s ms | whole-run load: %d requests, "
          "%d failed %s" % (title, report.get("outcome"), report.get("release_from"), report.get("release_to"), report.get("mode"),
                            report.get("requests"), report.get("failed_requests"), report.get("during_p99_ms"),
                            report.get("during_max_ms"), load.get("requests", 0), load.get("failed", 0), failures(load)))


def assert_switched(proc, load, before_port):
    """A measured switch from before_port to the other slot, with no failed request anywhere."""
    report = proc.report
    after = [p for p in PORTS if p != before_port][0]
    assert report["mode"] == "blue_green", report
    assert report["requests"] > 0 and report["failed_requests"] == 0, report
    assert load["requests"] > 0 and load["failed"] == 0, load
    assert set(report["pids"]) == {"%s-app@%d.service" % (NAME, port) for port in PORTS}, report["pids"]
    assert report["pids"]["%s-app@%d.service" % (NAME, before_port)]["new"] == 0
    assert report["pids"]["%s-app@%d.service" % (NAME, after)]["new"] == app_pid(after)
    saved = json.loads(podman_exec("cat", report["report_path"]).stdout)
    switch = saved["restart"]["blue_green"]
    assert (switch["live_before"], switch["live_after"], switch["switched"]) == (before_port, after, True), switch
    assert switch["drain"]["drained"], switch
    assert proxy_pid() == PROXY["pid"], "the public proxy was restarted"
    return assert_live(after)


# --------------------------------------------------------------------------- v1 from converge

# Only the bad-input test takes testinfra's host fixture (through rejections): pytest runs the tests
# parametrized by host first, and the others must run in file order.
def test_v1_is_live_on_the_first_slot_behind_the_public_proxy():
    answer = assert_live(8001)
    assert answer["release"] == "v1"
    PROXY["pid"] = proxy_pid()
    assert PROXY["pid"] > 0
    unit = podman_exec("systemctl", "cat", NAME + ".service").stdout
    assert re.search(r"^ExecStart=/(usr/)?lib/systemd/systemd-socket-proxyd %s$" % re.escape(LINK), unit, re.M), unit
    app_unit = podman_exec("systemctl", "cat", NAME + "-app@8001.service").stdout
    assert "Environment=PORT=%i" in app_unit and "Sockets=" not in app_unit
    # Only the app's user (the public proxy) may connect to a slot socket; nginx's group to the public one.
    assert podman_exec("stat", "-c", "%U %a", "/run/zerodown/legacy/slot-8001.sock").stdout.split() == [NAME, "600"]
    assert podman_exec("stat", "-c", "%U:%G %a", "/run/legacy/legacy.sock").stdout.split() == ["root:www-data", "660"]
    # The app listens on loopback only: 127.0.0.1:8001 (0100007F:1F41) in state LISTEN (0A).
    assert re.search(r"^\s*\d+: 0100007F:1F41 00000000:0000 0A ", podman_exec("cat", "/proc/net/tcp").stdout, re.M)
    # The proxies are hardened: no network at all for the public one, loopback only for the slots'.
    scores = {}
    for unit in (NAME + ".service", NAME + "-slot@8001.service", NAME + "-app@8001.service"):
        out = podman_exec("systemd-analyze", "security", "--no-pager", unit).stdout
        scores[unit] = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    print("\n== exposure: %s" % scores)
    assert scores[NAME + ".service"] <= 0.5 and scores[NAME + "-slot@8001.service"] <= 1.5 and scores[NAME + "-app@8001.service"] <= 1.5
    # No pre-flight in proxy mode: the new slot's health check before the switch is the pre-flight.
    assert podman_exec("systemctl", "list-units", "--all", "--no-legend", "legacy-preflight*").stdout.strip() == ""


# --------------------------------------------------------------------------- deploys under load

def test_v2_goes_live_on_the_other_slot_under_load_with_zero_failed_requests(background_load):
    old_pid = app_pid(8001)
    proc, load = loads_during(background_load, lambda: deploy("v2"))
    report_line("deploy v1 -> v2 (slot 8001 -> 8002)", proc, load)
    ok(proc)
    assert proc.report["outcome"] == "deployed"
    answer = assert_switched(proc, load, 8001)
    assert answer["release"] == "v2"
    assert proc.report["pids"]["%s-app@8001.service" % NAME]["old"] == old_pid
    # Both apps answered the whole-run load: it really spanned the switch.
    assert {str(old_pid), str(app_pid(8002))} <= set(load["markers"]), load["markers"]
    assert "restart: blue_green (1 instance)" in said(proc) and "0 failed" in said(proc)


def test_rollback_flips_back_to_v1_on_the_first_slot_under_load(background_load):
    proc, load = loads_during(background_load, lambda: play("rollback"))
    report_line("rollback.yml v2 -> v1 (slot 8002 -> 8001)", proc, load)
    ok(proc)
    assert proc.report["outcome"] == "rolled back"
    answer = assert_switched(proc, load, 8002)
    assert answer["release"] == "v1"


def test_the_same_release_again_changes_nothing():
    before = (release_state(CONTAINER, BASE), live_port(), app_pid(8001), proxy_pid())
    proc = ok(deploy("v1"))
    assert recap(proc)["changed"] == 0, proc.stdout[-3000:]
    assert proc.report["outcome"] == "unchanged"
    assert (release_state(CONTAINER, BASE), live_port(), app_pid(8001), proxy_pid()) == before


def test_release_that_never_gets_healthy_leaves_the_old_slot_live_and_is_rolled_back(background_load):
    before = release_state(CONTAINER, BASE)
    old_pid = app_pid(8001)
    proc, load = loads_during(background_load, lambda: deploy("v3", unhealthy=True))
    report_line("deploy v3 (never healthy)", proc, load)
    assert proc.returncode != 0
    text = said(proc)
    assert "rolled back automatically" in text and "did not come up" in text and "HTTP 503" in text, text[-3000:]
    # Nothing failed, nothing live moved: the old slot (same process) served throughout.
    assert load["requests"] > 0 and load["failed"] == 0, load
    assert app_pid(8001) == old_pid and proxy_pid() == PROXY["pid"]
    assert assert_live(8001)["release"] == "v1"
    # The new slot was stopped again, and not left failed.
    assert all(unit["ActiveState"] == "inactive" for unit in slot(8002).values()), slot(8002)
    # The deploy rolled back: current back, the release marked bad.
    now = release_state(CONTAINER, BASE)
    assert now["current"] == before["current"]
    new = [rid for rid in now["statuses"] if rid not in before["statuses"]]
    assert len(new) == 1 and now["statuses"][new[0]] == "bad"
    assert now["releases"][new[0]]["reason"].startswith("failed after the switch: ")
    report = proc.report
    assert report["outcome"] == "rolled back" and report["rolled_back_from"] == new[0]
    assert " 0 failed" in report["failed_deploy_restart"], report["failed_deploy_restart"]


def test_a_changed_app_unit_goes_live_blue_green_not_by_a_restart(background_load):
    changed = {"app_environment": dict(app_vars()["app_environment"], PORT_APP_RELEASE_NOTE="changed")}
    proc, load = loads_during(background_load, lambda: deploy("v1", extra=changed))
    report_line("changed app unit (converge)", proc, load)
    ok(proc)
    assert proc.report["outcome"] == "unchanged"
    assert load["requests"] > 0 and load["failed"] == 0, load
    assert "PORT_APP_RELEASE_NOTE=changed" in podman_exec("systemctl", "cat", NAME + "-app@8002.service").stdout
    assert assert_live(8002)["release"] == "v1"
    assert proxy_pid() == PROXY["pid"]
    # And back, the same way.
    proc, load = loads_during(background_load, lambda: deploy("v1"))
    ok(proc)
    assert load["failed"] == 0, load
    assert_live(8001)
    assert proxy_pid() == PROXY["pid"]


def test_requests_in_flight_during_a_switch_finish_on_the_old_slot(background_load):
    # Every request takes 0.5 s, so the switch always finds some in flight on the old slot.
    proc, load = loads_during(background_load, lambda: play("verify", {"app_verify_path": "/slow", "app_verify_workers": 4}),
                              path="/slow", workers=8, rate=None)
    report_line("verify.yml with 0.5 s requests (slot 8001 -> 8002)", proc, load)
    ok(proc)
    assert proc.report["outcome"] == "verified"
    assert_switched(proc, load, 8001)


def test_check_mode_deploy_changes_nothing():
    before = (release_state(CONTAINER, BASE), live_port(), app_pid(8002))
    proc = ok(play("deploy", {"app_source": {"type": "local", "path": source_tree("v5")}}, check=True))
    assert proc.report is None
    assert (release_state(CONTAINER, BASE), live_port(), app_pid(8002)) == before


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_rejected_with_a_clear_error_and_changes_nothing(rejections):
    good = dict(app_vars(), app_name="rejected", app_base_path=REJECTED_BASE,
                app_source={"type": "local", "path": source_tree("v1")})
    cases = {
        "bad mode": dict(good, app_mode="sidecar"),
        "one port": dict(good, app_proxy_ports=[8001]),
        "three ports": dict(good, app_proxy_ports=[8001, 8002, 8003]),
        "equal ports": dict(good, app_proxy_ports=[8001, 8001]),
        "port out of range": dict(good, app_proxy_ports=[8001, 70000]),
        "port zero": dict(good, app_proxy_ports=[0, 8002]),
        "drain timeout zero": dict(good, app_proxy_drain_timeout=0),
        "drain timeout negative": dict(good, app_proxy_drain_timeout=-5),
        "instances": dict(good, app_instances=2),
        "isolated": dict(good, app_hardening_profile="isolated"),
    }
    expected = {
        "bad mode": "app_mode",
        "one port": "app_proxy_ports must list exactly 2 TCP ports",
        "three ports": "app_proxy_ports must list exactly 2 TCP ports",
        "equal ports": "app_proxy_ports must be 2 different ports",
        "port out of range": "app_proxy_ports must be between 1 and 65535",
        "port zero": "app_proxy_ports must be between 1 and 65535",
        "drain timeout zero": "app_proxy_drain_timeout must be more than 0 seconds",
        "drain timeout negative": "app_proxy_drain_timeout must be more than 0 seconds",
        "instances": "app_instances must be 1 with app_mode: proxy",
        "isolated": "app_hardening_profile: isolated",
    }
    results = rejections("zerodown.deploy.app", cases)
    for case, fragment in expected.items():
        message = " ".join((results[case] or "").split())
        assert results[case] is not None, "%s was not rejected" % case
        assert fragment in message, "%s: %s" % (case, message)
    assert "socket, proxy" in " ".join(results["bad mode"].split())
    # The socket_service role checks its own variables the same way.
    service = {"socket_service_name": "rejected", "socket_service_mode": "proxy",
               "socket_service_exec_start": "/usr/bin/python3 /nonexistent.py"}
    results = rejections("zerodown.deploy.socket_service", {
        "bad mode": dict(service, socket_service_mode="sidecar"),
        "equal ports": dict(service, socket_service_proxy_ports=[9000, 9000]),
        "drain timeout": dict(service, socket_service_proxy_drain_timeout=0),
        "instances": dict(service, socket_service_instances=3),
        "listen on a slot port": dict(service, socket_service_listen=["127.0.0.1:8001"]),
    })
    assert "socket, proxy" in results["bad mode"], results
    assert "socket_service_proxy_ports must be 2 different ports" in results["equal ports"], results
    assert "socket_service_proxy_drain_timeout must be more than 0" in results["drain timeout"], results
    assert "socket_service_instances must be 1 with socket_service_mode: proxy" in " ".join(results["instances"].split()), results
    assert "must not use a slot port" in " ".join(results["listen on a slot port"].split()), results
    assert podman_exec("test", "-e", REJECTED_BASE).returncode == 1
    for unit in ("rejected.socket", "rejected.service", "rejected-app@.service"):
        assert podman_exec("test", "-e", "/etc/systemd/system/" + unit).returncode == 1


# --------------------------------------------------------------------------- a reboot

def test_a_reboot_comes_back_on_the_live_slot():
    live, release = live_port(), served()["release"]
    subprocess.run(["podman", "restart", CONTAINER], check=True, capture_output=True)
    # Until systemd has set up its bus, systemctl fails at once ("Failed to connect to bus").
    deadline = time.monotonic() + 60
    while podman_exec("systemctl", "is-system-running", "--wait").stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "the container did not boot within 60 s"
        time.sleep(0.5)
    # The app binds its port a second after boot; until then the slot's proxy cannot reach it (docs/proxy.md, limits).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if served()["status"] == 200:
                break
        except ValueError:  # nginx not listening yet: the probe printed no answer
            pass
        time.sleep(0.2)
    assert assert_live(live)["release"] == release


# --------------------------------------------------------------------------- the naive design

def test_restarting_the_public_proxy_drops_requests_in_flight(background_load):
    """Why deploys never restart legacy.service: socket-proxyd resets what it carries. Measured, not assumed."""
    load = background_load(CONTAINER, NGINX, "naive", workers=8, extra=("--host-header", SERVER_NAME, "--path", "/slow"))
    time.sleep(2)  # the load runs, with 0.5 s requests in flight
    assert podman_exec("systemctl", "restart", NAME + ".service").returncode == 0
    time.sleep(2)
    report = load.stop()
    kinds = dict((k, v) for k, v in report["failures_by_kind"].items() if v)
    print("\n== naive: restart of the public proxy under 0.5 s requests: %d requests, %d failed %s"
          % (report["requests"], report["failed"], kinds))
    assert report["failed"] > 0 and set(kinds) <= {"http_5xx"}, report
    assert served()["status"] == 200
