# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the testinfra verifiers of every Molecule scenario.

The verifiers run on the machine that runs Molecule and reach the systemd
container through podman (connection: podman in .config/molecule/config.yml).
"""
import json
import os
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD_FILES = [
    os.path.join(ROOT, "plugins", "module_utils", "_http.py"),
    os.path.join(ROOT, "plugins", "module_utils", "_load.py"),
    os.path.join(ROOT, "tests", "helpers", "restart_under_load.py"),
]
REMOTE_TOOL_DIR = "/opt/zerodown-test"


@pytest.fixture(scope="module")
def container(host):
    """Name of the scenario's container (the podman backend's host name)."""
    return host.backend.name


def podman(*args, check=True):
    """Run a podman command on the machine running the tests."""
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


@pytest.fixture(scope="module")
def load_tool(container):
    """Copy the load generator into the container; returns a runner.

    The runner drives bounded HTTP load at an endpoint inside the container
    while it runs the given commands, and returns the JSON report.
    """
    podman("exec", container, "mkdir", "-p", REMOTE_TOOL_DIR)
    for path in LOAD_FILES:
        podman("cp", path, "%s:%s/" % (container, REMOTE_TOOL_DIR))

    def run(endpoint, commands, duration=20, max_requests=20000, workers=4, settle=1.0, extra=()):
        argv = ["exec", container, "python3", REMOTE_TOOL_DIR + "/restart_under_load.py",
                "--endpoint", endpoint, "--duration", str(duration), "--max-requests", str(max_requests),
                "--workers", str(workers), "--settle", str(settle), "--marker-header", "X-Served-By", *extra]
        for command in commands:
            argv += ["--command", command]
        result = podman(*argv, check=False)
        assert result.stdout, "load tool printed nothing (rc %s): %s" % (result.returncode, result.stderr)
        report = json.loads(result.stdout)
        report["rc"] = result.returncode
        return report

    return run


@pytest.fixture(scope="module")
def play(container):
    """Run a one-role play against the container; returns the CompletedProcess.

    Used to prove what a second run does (bad input, broken units): it goes
    through ansible-playbook exactly as a user's run would.
    """
    def run(role, role_vars, check=False):
        playbook = [{
            "name": "Run %s" % role,
            "hosts": "all",
            "gather_facts": False,
            "roles": [{"role": role, "vars": role_vars}],
        }]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
            json.dump(playbook, handle)
        try:
            argv = ["ansible-playbook", "-i", container + ",", "-c", "containers.podman.podman",
                    "-e", "ansible_python_interpreter=/usr/bin/python3", handle.name]
            if check:
                argv.append("--check")
            env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
            # Ansible prints task errors on stderr: keep both in one stream.
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
        finally:
            os.unlink(handle.name)

    return run
