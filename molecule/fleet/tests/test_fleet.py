# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet behind a load balancer, deployed wave by wave.

zd-fleet-lb runs nginx with one TCP upstream server per app host (drained
for its restart, app_lb_drain); zd-fleet-1..3 run the app behind their own
nginx. Every play is the collection's own deploy or rollback playbook, run
from the controller while a separate load sends GET and POST through the
load balancer for the whole playbook run. The tests run in order: converge
deployed v1 everywhere.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import yaml

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(SCENARIO))
APP_SOURCE = os.path.join(ROOT, "tests", "apps", "hello_wsgi.py")
SOURCES = "/tmp/zd-fleet-sources"
LB = "zd-fleet-lb"
WEB = ["zd-fleet-1", "zd-fleet-2", "zd-fleet-3"]
BASE = "/srv/shop"
SERVER_NAME = "shop.test"
SERVERS_DIR = "/etc/nginx/conf.d/shop.servers"
WAVE_PLAYS = ("Deploy with zero downtime, wave by wave", "Roll back to a good release")
# The wall times of the deploys measured here, printed at the end for the closing note.
WALL_TIMES = {}


def podman_exec(container, *argv):
    return subprocess.run(["podman", "exec", container, *argv], capture_output=True, text=True, check=False)


def source_tree(name, **settings):
    """A release of the sample app on the controller; the same name and settings give the same revision."""
    path = os.path.join(SOURCES, name)
    os.makedirs(path, exist_ok=True)
    shutil.copy(APP_SOURCE, os.path.join(path, "hello_wsgi.py"))
    with open(os.path.join(path, "release.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(dict({"release": name}, **settings)))
    return path


def playbook(name, extra=None, limit=None):
    """Run zerodown.deploy.NAME against the fleet; returns the CompletedProcess with .seconds (wall time)."""
    with open(os.path.join(SCENARIO, "inventory", "group_vars", "all.yml"), encoding="utf-8") as handle:
        app_vars = yaml.safe_load(handle)
    inventory = {"all": {
        "vars": dict(app_vars, ansible_connection="containers.podman.podman", ansible_python_interpreter="/usr/bin/python3"),
        "children": {"zerodown_lb": {"hosts": {LB: {}}}, "web": {"hosts": dict((name, {}) for name in WEB)}},
    }}
    directory = tempfile.mkdtemp(prefix="zd-fleet-")
    try:
        inventory_path = os.path.join(directory, "inventory.yml")
        extra_path = os.path.join(directory, "extra.json")
        with open(inventory_path, "w", encoding="utf-8") as handle:
            handle.write(yaml.safe_dump(inventory))
        with open(extra_path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(extra or {}))
        argv = ["ansible-playbook", "-i", inventory_path, "-e", "@" + extra_path, "zerodown.deploy.%s" % name]
        if limit:
            argv += ["--limit", ",".join(limit)]
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_PIPELINING="1")
        started = time.monotonic()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
        proc.seconds = time.monotonic() - started
        return proc
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def deploy(name, extra=None, limit=None, **settings):
    return playbook("deploy", dict({"app_source": {"type": "local", "path": source_tree(name, **settings)}}, **(extra or {})), limit)


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-8000:]
    return proc


def waves(proc):
    """The batches the deploy or rollback play ran (one play header per wave)."""
    return sum(proc.stdout.count("PLAY [%s]" % name) for name in WAVE_PLAYS)


def recap(proc):
    return dict((host, dict(zip(("ok", "changed", "unreachable", "failed"), map(int, numbers))))
                for host, *numbers in re.findall(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                                                 proc.stdout, re.M))


def state(container):
    """current and the status of every release, from the release module's manifest."""
    manifest = json.loads(podman_exec(container, "cat", BASE + "/.zerodown/manifest.json").stdout)
    current = os.path.basename(podman_exec(container, "readlink", BASE + "/current").stdout.strip())
    return {"current": current, "statuses": dict((rid, entry["status"]) for rid, entry in manifest["releases"].items())}


ASK = r"""
import http.client, json, sys
answers = []
for _ in range(int(sys.argv[1])):
    conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    conn.request("GET", "/", headers={"Host": "shop.test"})
    response = conn.getresponse()
    body = response.read()
    answers.append({"status": response.status, **(json.loads(body) if response.status == 200 else {})})
    conn.close()
print(json.dumps(answers))
"""


def through_lb(count=30):
    """count GETs through the load balancer: [{status, release, host, ...}]."""
    result = podman_exec(LB, "python3", "-c", ASK, str(count))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hostnames():
    return dict((podman_exec(name, "hostname").stdout.strip(), name) for name in WEB)


def lb_servers():
    """{file name: its server line} of the load balancer's upstream."""
    listing = podman_exec(LB, "sh", "-c", "grep -H '^server' %s/*.conf" % SERVERS_DIR).stdout
    return dict(line.split(":", 1) for line in listing.strip().splitlines())


def loaded(background_load, action):
    """Run action() while a load runs through the load balancer; returns (its result, the load's report)."""
    load = background_load(LB, "http://127.0.0.1:80", "fleet", workers=4, max_requests=150000,
                           extra=("--host-header", SERVER_NAME, "--rate", "150"))
    try:
        result = action()
    finally:
        report = load.stop()
    assert report["stopped_by"] not in ("duration", "max_requests") and report["load_covered_commands"], report["stopped_by"]
    return result, report


def show(title, proc, load):
    WALL_TIMES[title] = proc.seconds
    print("\n== %s: rc %d, %.1f s, %d wave(s) | load through the LB: %d requests, %d failed %s" % (
        title, proc.returncode, proc.seconds, waves(proc), load.get("requests", 0), load.get("failed", 0),
        dict((k, v) for k, v in load.get("failures_by_kind", {}).items() if v)))


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
    proc, load = loaded(background_load, lambda: deploy("v2"))
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
    proc, load = loaded(background_load, lambda: deploy("v3", health_status=503))
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
    proc, load = loaded(background_load, lambda: playbook("rollback", {"app_rollback_to": v1, "zerodown_waves": [1, "100%"]}))
    show("rollback.yml to one release ID, 3 hosts, waves [1, 100%], drained", proc, load)
    ok(proc)
    assert load["requests"] > 0 and load["failed"] == 0, load
    assert waves(proc) == 2
    assert all(state(name)["current"] == v1 for name in WEB)
    assert all(answer["release"] == "v1" for answer in through_lb(30))


# --------------------------------------------------------------------------- wall time, 1 vs 3 hosts

def test_deploy_wall_time_of_one_host_and_of_three(background_load):
    """Not a speed assertion: each deploy must drop nothing; the times are printed for the docs."""
    # The load balancer keeps all three servers although only one host is in the run (--limit).
    one, load = loaded(background_load, lambda: deploy("v4", extra={"app_lb_drain": False}, limit=[WEB[0], LB]))
    show("deploy to 1 host, no drain", one, load)
    ok(one)
    assert load["failed"] == 0 and len(lb_servers()) == 3
    three, load = loaded(background_load, lambda: deploy("v5", extra={"app_lb_drain": False, "zerodown_waves": ["100%"]}))
    show("deploy to 3 hosts in one wave, no drain", three, load)
    ok(three)
    assert load["failed"] == 0 and waves(three) == 1
    assert len(set(state(name)["current"] for name in WEB)) == 1
    print("\n== deploy wall time (s), each under load through the load balancer:")
    for title, seconds in WALL_TIMES.items():
        print("  %-55s %6.1f" % (title, seconds))


# --------------------------------------------------------------------------- refused input

def test_draining_a_wave_that_holds_every_host_is_refused_and_changes_nothing():
    before = dict((name, state(name)) for name in WEB)
    proc = deploy("v6", extra={"zerodown_waves": ["100%"]})
    assert proc.returncode != 0
    assert "app_lb_drain: this wave holds every host of the play (3)" in " ".join(proc.stdout.split())
    assert all(state(name) == before[name] for name in WEB)


def test_a_malformed_deploy_time_is_refused_and_changes_nothing():
    before = dict((name, state(name)) for name in WEB)
    proc = deploy("v6", extra={"app_deploy_time": "2026-11-21 10:15"})
    assert proc.returncode != 0
    assert "app_deploy_time must be a UTC time like 20261121T101500Z" in " ".join(proc.stdout.split())
    assert all(state(name) == before[name] for name in WEB)
