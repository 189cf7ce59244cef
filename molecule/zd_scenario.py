# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the scenario verifiers and the benchmarks (tools/bench.py, tools/bench_fleet.py).

Plain functions, no pytest: they drive the collection's own playbooks
against the scenario's containers exactly as a user's run would, and run
bounded load inside a container. molecule/conftest.py wraps the load in
fixtures; importable because pytest puts this directory on sys.path for
molecule/conftest.py (the tools add it themselves).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD_FILES = [
    os.path.join(ROOT, "plugins", "module_utils", "_http.py"),
    os.path.join(ROOT, "plugins", "module_utils", "_load.py"),
    os.path.join(ROOT, "tests", "helpers", "restart_under_load.py"),
]
REMOTE_TOOL_DIR = "/opt/zerodown-test"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def podman(*args, check=True):
    """Run a podman command on the machine running the tests."""
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def podman_exec(container, *argv):
    return podman("exec", container, *argv, check=False)


def nginx_workers(container):
    """nginx's worker PIDs: a reload replaces them all."""
    listed = podman_exec(container, "ps", "-C", "nginx", "-o", "pid=,args=").stdout.splitlines()
    return sorted(line.split()[0] for line in listed if "worker process" in line)


def copy_load_tools(container, remote_dir=REMOTE_TOOL_DIR):
    """Put the load generator into the container (it runs there, next to the endpoint it loads)."""
    podman("exec", container, "mkdir", "-p", remote_dir)
    for path in LOAD_FILES:
        podman("cp", path, "%s:%s/" % (container, remote_dir))


class BackgroundLoad:
    """Bounded load inside a container that runs until stop() (or its own bounds), across whole playbook runs."""

    def __init__(self, container, endpoint, tag, duration=600, max_requests=200000, workers=4, extra=()):
        self.container = container
        self.stop_file = "/tmp/zd-load-%s.stop" % tag
        copy_load_tools(container)
        podman("exec", container, "rm", "-f", self.stop_file)
        wait = "while [ ! -e %s ]; do sleep 0.1; done" % self.stop_file
        argv = ["podman", "exec", container, "python3", REMOTE_TOOL_DIR + "/restart_under_load.py", "--endpoint", endpoint,
                "--duration", str(duration), "--max-requests", str(max_requests), "--workers", str(workers), "--settle", "1",
                "--marker-header", "X-Served-By", "--command-timeout", str(duration), *extra, "--command", "sh -c '%s'" % wait]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        """End the load; returns its JSON report (requests, failed, failures_by_kind, markers, ...)."""
        podman("exec", self.container, "touch", self.stop_file)
        out, err = self.process.communicate(timeout=120)
        assert out, "background load printed nothing (rc %s): %s" % (self.process.returncode, err)
        return json.loads(out)

    def kill(self):
        if self.process.poll() is None:
            podman("exec", self.container, "touch", self.stop_file, check=False)
            self.process.kill()


def during(loads, action):
    """Run action() while the started loads {name: BackgroundLoad} run; returns (its result, {name: load report}).

    The loads must span the whole action: one that its own bounds (time,
    count) ended early would not have measured all of it.
    """
    try:
        result = action()
    finally:
        reports = dict((name, load.stop()) for name, load in loads.items())
    for name, report in reports.items():
        assert report["stopped_by"] not in ("duration", "max_requests") and report["load_covered_commands"], (name, report["stopped_by"])
    return result, reports


def source_tree(sources, app_source, name, **settings):
    """A release of a sample app in sources/name; the same name and settings give the same revision."""
    path = os.path.join(sources, name)
    os.makedirs(path, exist_ok=True)
    shutil.copy(app_source, os.path.join(path, os.path.basename(app_source)))
    with open(os.path.join(path, "release.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(dict({"release": name}, **settings)))
    return path


def load_vars(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def podman_inventory(app_vars, hosts=None, children=None):
    """An inventory of podman containers: hosts {name: vars}, children {group: [names]}, app_vars for all."""
    inventory = {"all": {"vars": dict(app_vars, ansible_connection="containers.podman.podman",
                                      ansible_python_interpreter="/usr/bin/python3")}}
    if hosts:
        inventory["all"]["hosts"] = hosts
    if children:
        inventory["all"]["children"] = dict((group, {"hosts": dict((name, {}) for name in names)})
                                            for group, names in children.items())
    return inventory


def ansible_env(**overrides):
    """The environment of every ansible-playbook run of the tests and benchmarks.

    No colour (the output is matched), pipelining (one podman exec a task) and the target's Python.
    """
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_PIPELINING="1",
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    env.pop("ANSIBLE_FORCE_COLOR", None)  # Molecule sets it, and it wins over ANSIBLE_NOCOLOR
    env.update(overrides)
    return env


def write_play(directory, tasks=(), name="Test", hosts="all", roles=()):
    """A playbook of one play with these roles and tasks, written into directory; returns its path."""
    play = {"name": name, "hosts": hosts, "gather_facts": False, "tasks": list(tasks)}
    if roles:
        play["roles"] = list(roles)
    path = os.path.join(directory, "playbook.yml")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([play], handle)
    return path


def ansible_playbook(playbook, containers=None, inventory=None, extra=None, check=False, limit=None, args=(), env=None,
                     start=False):
    """The one way the tests run ansible-playbook: a playbook file, or zerodown.deploy.NAME, as a user would.

    The hosts are containers (a list of names, over the podman connection) or an inventory file. Returns the
    CompletedProcess with .seconds (wall time) and .stdout without colour (stderr merged in: Ansible prints task
    errors there); with start=True, the running Popen, in a session of its own so that the whole run can be
    killed like a crashed controller.
    """
    argv = ["ansible-playbook"]
    if containers:
        argv += ["-i", ",".join(containers) + ",", "-c", "containers.podman.podman"]
    if inventory:
        argv += ["-i", inventory]
    if extra:
        argv += ["-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    if limit:
        argv += ["--limit", ",".join(limit)]
    argv += list(args) + [playbook]
    environment = ansible_env(**(env or {}))
    if start:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
                                start_new_session=True)
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, check=False)
    proc.seconds = time.monotonic() - started
    proc.stdout = ANSI.sub("", proc.stdout)
    return proc


def run_playbook(name, inventory, extra=None, check=False, limit=None):
    """Run zerodown.deploy.NAME with that inventory {all: ...}; the CompletedProcess has .seconds (wall time)."""
    directory = tempfile.mkdtemp(prefix="zd-play-")
    try:
        inventory_path = os.path.join(directory, "inventory.yml")
        with open(inventory_path, "w", encoding="utf-8") as handle:
            handle.write(yaml.safe_dump(inventory))
        return ansible_playbook("zerodown.deploy.%s" % name, inventory=inventory_path, extra=extra or {}, check=check, limit=limit)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def said(proc):
    """The run's output with whitespace folded, for matching messages Ansible wrapped."""
    return " ".join(proc.stdout.split())


def fatal_lines(proc):
    """Each failed task's "fatal:" line with the result block under it (its msg), folded onto one line."""
    failures, current = [], None
    for line in ANSI.sub("", proc.stdout).splitlines():
        if line.startswith("fatal:"):
            current = [line]
            failures.append(current)
        elif current is not None and line.startswith(" "):
            current.append(line.strip())
        else:
            current = None
    return [" ".join(lines) for lines in failures]


def recap(proc):
    """{host: {ok, changed, unreachable, failed}} from the PLAY RECAP (the last one when there are several)."""
    return dict((host, dict(zip(("ok", "changed", "unreachable", "failed"), map(int, numbers))))
                for host, *numbers in RECAP.findall(ANSI.sub("", proc.stdout)))


def release_state(container, base):
    """current's target and the manifest's releases and their statuses."""
    current = podman_exec(container, "readlink", base + "/current").stdout.strip()
    manifest = json.loads(podman_exec(container, "cat", base + "/.zerodown/manifest.json").stdout)
    return {"current": current.rsplit("/", 1)[-1], "releases": manifest["releases"],
            "statuses": dict((rid, entry["status"]) for rid, entry in manifest["releases"].items())}


def report_files(container, base):
    """The deploy reports written on the host so far (not their timelines)."""
    result = podman_exec(container, "sh", "-c", "ls %s/.zerodown/reports/*.json 2>/dev/null || true" % base)
    return set(name for name in result.stdout.split() if not name.endswith("-timeline.json"))


def new_report(container, base, before):
    """The one report a run wrote since before (report_files), or None."""
    new = sorted(report_files(container, base) - before)
    assert len(new) <= 1, new
    return json.loads(podman_exec(container, "cat", new[0]).stdout) if new else None


GET = r"""
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
conn.request("GET", "/", headers={"Host": sys.argv[1]})
response = conn.getresponse()
print(json.dumps({"status": response.status, "body": response.read().decode()}))
"""


def served(container, server_name):
    """What the container's nginx answers for server_name: {"status", ...the app's JSON body}."""
    result = json.loads(podman_exec(container, "python3", "-c", GET, server_name).stdout)
    if result["status"] == 200:
        result.update(json.loads(result.pop("body")))
    return result


def failures(load):
    """The failure kinds that happened, for printing."""
    return dict((kind, count) for kind, count in load.get("failures_by_kind", {}).items() if count)
