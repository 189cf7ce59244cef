# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on real systemd: what a crash, a full disk or a stranger's lease leaves, and what the next run does.

The app is the app scenario's (gunicorn, one instance, a surge restart, behind nginx as shop.test). A load generator
sends GET and POST through nginx, with keep-alive, for the whole of each case: the killed run and the run after it.

- A deploy is killed with SIGKILL (the whole ansible-playbook session: a controller that dies) at each named step: after
  fetch, after build, after the pre-flight, right after the switch, during the restart, during the health gate (once
  nginx moved to the new instance) and during prune. At each point: current points at a complete release, nginx serves
  the release that served before or the one current points at, the manifest is consistent, and a plain re-run of the same
  deploy completes, 0 requests failed over both runs.
- The disk holding the manifest is full at the switch (a tmpfs over BASE/.zerodown): the deploy fails saying where
  current points, current is back on the release that served, and the run after the disk is freed completes.
- A truncated manifest: the next deploy restores it from its backup and completes; nothing is forgotten.
- A lease held by another machine with the same host name (another machine ID), unexpired: the deploy waits, then fails
  naming why it could not take the lease over, and changes nothing.
- The new instance is killed with SIGKILL during its health gate: the deploy fails and rolls back automatically.

The last test prints the table of fault and outcome.
"""
import json
import os
import signal
import socket
import tempfile
import time

import pytest
import yaml

from zd_scenario import BackgroundLoad, ansible_playbook, failures, load_vars, ok, podman_exec, podman_inventory  # pylint: disable=import-error
from zd_scenario import release_state, said, served, source_tree  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
APP_SOURCE = os.path.join(ROOT, "tests", "apps", "hello_wsgi.py")
NAME = os.environ.get("MOLECULE_SCENARIO_NAME", "faults")
CONTAINER = "zd-%s" % NAME
SOURCES = "/tmp/zd-%s-sources" % NAME
BASE = "/srv/shop"
STATE = BASE + "/.zerodown"
NGINX = "http://127.0.0.1:80"
SERVER_NAME = "shop.test"
APP_VARS = load_vars(os.path.join(ROOT, "molecule", "app", "vars", "app.yml"))
# The table the last test prints: (fault, what it left, what the next run did, requests, failed).
TABLE = []


class KillPoint:
    """Where a deploy is killed: when the banner of a task appears, after a delay, or once nginx moved to the new slot."""

    def __init__(self, name, banner, after=0.0, moved=False):
        self.name, self.banner, self.after, self.moved = name, banner, after, moved


KILL_POINTS = [
    KillPoint("after fetch", "Link the shared paths and run the build commands in the release"),
    KillPoint("after build", "Pre-flight the candidate on a private socket"),
    KillPoint("after pre-flight", "Point current at the new release"),
    KillPoint("right after the switch", "Verify, install and start the units of shop"),
    KillPoint("during the restart", "Restart under load and measure what clients saw", after=1.0),
    KillPoint("during the health gate", "Restart under load and measure what clients saw", moved=True),
    KillPoint("during prune", "Give the deploy lock back"),
]


@pytest.fixture(scope="module")
def inventory():
    directory = tempfile.mkdtemp(prefix="zd-faults-")
    path = os.path.join(directory, "inventory.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump(podman_inventory(APP_VARS, hosts={CONTAINER: {"app_instances": 1}})))
    return path


def extra_vars(version, **more):
    return dict({"zerodown_waves": ["100%"], "app_source": {"type": "local", "path": source_tree(SOURCES, APP_SOURCE, version)}}, **more)


def deploy(inventory, version, start=False, **more):
    return ansible_playbook("zerodown.deploy.deploy", inventory=inventory, extra=extra_vars(version, **more), start=start,
                            env={"PYTHONUNBUFFERED": "1"})


def sh(command):
    return podman_exec(CONTAINER, "sh", "-c", command)


def position_links():
    listed = sh("find /run/shop -maxdepth 1 -name 'shop-live-*.sock' -printf '%p %l\\n'")
    return dict(line.split() for line in listed.stdout.splitlines() if line.strip())


def observe():
    """What the host shows: current and its release's version, whether it is complete, what nginx serves, the statuses."""
    state = release_state(CONTAINER, BASE)
    version = sh("cat %s/current/release.json" % BASE)
    complete = sh("test -f %s/current/hello_wsgi.py && test -f %s/current/release.json" % (BASE, BASE)).returncode == 0
    answer = served(CONTAINER, SERVER_NAME)
    return {"current": state["current"], "statuses": state["statuses"], "complete": complete,
            "current_version": json.loads(version.stdout)["release"] if version.returncode == 0 else None,
            "served": answer.get("release"), "status": answer["status"]}


def consistent(seen):
    """The manifest's view: current is recorded, good or switched (never bad, unfinished or unknown)."""
    return seen["statuses"].get(seen["current"]) in ("good", "switched")


def load(tag):
    # 100 requests/s, GET and POST, keep-alive to nginx; bounded at 10 minutes and 150,000 requests.
    return BackgroundLoad(CONTAINER, NGINX, tag, workers=4, max_requests=150000,
                          extra=("--host-header", SERVER_NAME, "--rate", "100", "--keep-alive"))


def wait_until_nginx_moved():
    """Until the surge moved nginx's positions to the new instance (at most a minute); returns the links then."""
    before = position_links()
    deadline = time.monotonic() + 60
    while position_links() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    return position_links()


def act_at(proc, banner, action):
    """Read the run's output to its end, doing action() when the banner of a step first appears (an automatic rollback
    runs the same task again); returns the output, folded."""
    seen, done = [], False
    for line in proc.stdout:
        seen.append(line)
        if banner in line and not done:
            action()
            done = True
    proc.wait(timeout=120)
    return " ".join("".join(seen).split())


def kill_at(proc, point):
    """Read the run's output until the step's banner, wait as the point says, then SIGKILL the whole session."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if point.banner in line:
            break
    else:
        raise AssertionError("the run ended before %r:\n%s" % (point.banner, "".join(seen)[-3000:]))
    if point.moved:
        wait_until_nginx_moved()
    time.sleep(point.after)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return "".join(seen)


def test_v1_serves():
    seen = observe()
    assert seen["status"] == 200 and seen["served"] == "v1" and consistent(seen), seen


@pytest.mark.parametrize("point", KILL_POINTS, ids=[point.name.replace(" ", "-") for point in KILL_POINTS])
def test_a_deploy_killed_at_a_step_is_finished_by_a_plain_rerun(inventory, point):
    version = "killed-" + point.name.replace(" ", "-")
    before = observe()
    running = load("faults-" + version)
    try:
        kill_at(deploy(inventory, version, start=True), point)
        killed = observe()
        rerun = deploy(inventory, version)
    finally:
        report = running.stop()
    after = observe()
    TABLE.append(("SIGKILL of ansible-playbook " + point.name,
                  "current %s (%s, %s), serves %s" % (killed["current_version"], killed["statuses"].get(killed["current"]),
                                                      "complete" if killed["complete"] else "INCOMPLETE", killed["served"]),
                  "re-run rc %d: current %s (%s), serves %s" % (rerun.returncode, after["current_version"],
                                                                after["statuses"].get(after["current"]), after["served"]),
                  report["requests"], report["failed"]))
    assert killed["complete"] and consistent(killed), killed
    # What serves is the release that served before, or the one current points at (whose restart the host finished).
    assert killed["status"] == 200 and killed["served"] in (before["served"], killed["current_version"]), (before, killed)
    ok(rerun)
    assert after["served"] == after["current_version"] == version and after["statuses"][after["current"]] == "good", after
    assert report["failed"] == 0, failures(report)


def test_a_full_disk_at_the_switch_leaves_current_where_it_was_and_the_next_run_deploys(inventory):
    before = observe()
    size = int(sh("du -sk %s | cut -f1" % STATE).stdout.split()[0]) + 2048
    # The state directory on a tmpfs of its own, with what it holds, so that only its writes can fail.
    assert sh("cp -a %s /tmp/zd-state && mount -t tmpfs -o size=%dk tmpfs %s && cp -a /tmp/zd-state/. %s && rm -rf /tmp/zd-state"
              % (STATE, size, STATE, STATE)).returncode == 0
    running = load("faults-full")
    try:
        proc = deploy(inventory, "full-disk", start=True)
        output = act_at(proc, "Pre-flight the candidate on a private socket",
                        lambda: sh("dd if=/dev/zero of=%s/filler bs=64k 2>/dev/null; true" % STATE))
        full = observe()
        sh("rm -f %s/filler" % STATE)
        rerun = deploy(inventory, "full-disk")
    finally:
        report = running.stop()
        sh("cp -a %s /tmp/zd-state && umount %s && cp -a /tmp/zd-state/. %s && rm -rf /tmp/zd-state" % (STATE, STATE, STATE))
    after = observe()
    TABLE.append(("disk full at the switch (ENOSPC on the manifest)",
                  "deploy rc %d, current %s, serves %s" % (proc.returncode, full["current_version"], full["served"]),
                  "re-run rc %d: current %s (%s)" % (rerun.returncode, after["current_version"], after["statuses"].get(after["current"])),
                  report["requests"], report["failed"]))
    assert proc.returncode != 0 and "No space left on device" in output, output[-3000:]
    assert full["current_version"] == full["served"] == before["served"] and consistent(full), full
    ok(rerun)
    assert after["served"] == after["current_version"] == "full-disk" and after["statuses"][after["current"]] == "good", after
    assert report["failed"] == 0, failures(report)


def test_a_truncated_manifest_is_restored_from_its_backup(inventory):
    before = observe()
    good_before = sorted(rid for rid, status in before["statuses"].items() if status == "good")
    assert sh("truncate -s 37 %s/manifest.json" % STATE).returncode == 0
    proc = deploy(inventory, "after-truncation")
    after = observe()
    kept = sorted(rid for rid, status in after["statuses"].items() if status == "good" and rid in good_before)
    TABLE.append(("truncated manifest", "manifest.json cut to 37 bytes",
                  "deploy rc %d: restored from manifest.json.bak, %d of %d good releases kept"
                  % (proc.returncode, len(kept), len(good_before)), "-", "-"))
    ok(proc)
    assert "manifest.json.bak" in said(proc), said(proc)[-3000:]
    assert sh("ls %s/manifest.json.corrupt-*" % STATE).returncode == 0
    assert after["served"] == "after-truncation" and consistent(after)
    # Nothing forgotten: the good releases that were not pruned are still good, none became unknown.
    assert "unknown" not in after["statuses"].values(), after["statuses"]
    assert kept == [rid for rid in good_before if rid in after["statuses"]], (good_before, after["statuses"])


def test_a_live_lease_of_another_machine_with_the_same_host_name_is_not_taken_over(inventory):
    before = observe()
    now = time.time()
    lease = {"lock_id": "other-machine", "owner": "deploy", "host": socket.gethostname(), "pid": 4194000, "play": "deploy",
             "started": "2026-12-03T00:00:00Z", "started_epoch": now, "renewed": "2026-12-03T00:00:00Z", "renewed_epoch": now,
             "ttl": 3600, "expires": "2026-12-03T01:00:00Z", "expires_epoch": now + 3600,
             "machine_id": "0123456789abcdef0123456789abcdef", "boot_id": "00000000-0000-0000-0000-000000000000",
             "pid_namespace": "pid:[4026531836]", "pid_start": 1}
    assert sh("cat > %s/deploy.lock <<'EOF'\n%s\nEOF" % (STATE, json.dumps(lease))).returncode == 0
    try:
        proc = deploy(inventory, "against-a-lease", app_lock_timeout=3)
        after = observe()
    finally:
        sh("rm -f %s/deploy.lock" % STATE)
    TABLE.append(("unexpired lease of another machine with the same host name",
                  "lease host %s, another machine ID" % lease["host"],
                  "deploy rc %d after a 3 s wait; current and what serves unchanged: %s"
                  % (proc.returncode, after["current"] == before["current"] and after["served"] == before["served"]), "-", "-"))
    assert proc.returncode != 0
    text = said(proc)
    assert "waiting for the deploy lock of %s held by lock_id=other-machine" % BASE in text, text[-3000:]
    assert "its holder could not be proven dead" in text and "machine-id differs" in text, text[-3000:]
    assert (after["current"], after["served"], after["statuses"]) == (before["current"], before["served"], before["statuses"])


KILLED = {}


def kill_the_new_instance():
    """Once nginx moved to the new slot, its service dies as a crash would (KILLED says which, and when)."""
    slot = sorted(wait_until_nginx_moved().values())[0].rsplit("-", 1)[-1].split(".")[0]
    KILLED.update(unit="shop@%s.service" % slot, at=time.monotonic(),
                  rc=sh("systemctl kill --signal=SIGKILL shop@%s.service" % slot).returncode)


def test_the_app_killed_during_its_health_gate_is_rolled_back(inventory):
    before = observe()
    running = load("faults-gate-kill")
    try:
        # 5 s of load after the surge before the gate: the kill lands before the gate, however busy the machine is.
        proc = deploy(inventory, "killed-in-gate", start=True, app_verify_tail_seconds=5)
        started = time.monotonic()
        output = act_at(proc, "Restart under load and measure what clients saw", kill_the_new_instance)
        after = observe()
    finally:
        report = running.stop()
    TABLE.append(("SIGKILL of the new instance once nginx moved to it, before its health gate passed (%s, %.1f s into the restart task)"
                  % (KILLED.get("unit"), KILLED.get("at", started) - started),
                  "deploy rc %d, %s" % (proc.returncode, "rolled back" if "rolled back" in output else "NOT rolled back"),
                  "current %s (%s), serves %s" % (after["current_version"], after["statuses"].get(after["current"]), after["served"]),
                  report["requests"], report["failed"]))
    assert KILLED.get("rc") == 0, KILLED
    assert proc.returncode != 0 and "rolled back" in output, output[-3000:]
    # Either check sees the crash: the gate (systemd restarted the instance), or, when the kill lands during the load
    # after the surge, the latency bound (requests waited in the socket's backlog while systemd restarted it).
    assert ("was restarted by systemd 1 time(s) after it was started for this restart" in output
            or "a request during the restart took" in output), output[-3000:]
    assert after["served"] == after["current_version"] == before["served"] and consistent(after), after
    assert "bad" in [status for rid, status in after["statuses"].items() if rid != after["current"]]


def test_print_the_table_of_faults_and_outcomes():
    print("\n| fault | what it left | next run | requests | failed |\n|---|---|---|---|---|")
    for row in TABLE:
        print("| %s |" % " | ".join(str(cell) for cell in row))
    assert len(TABLE) == len(KILL_POINTS) + 4, TABLE
