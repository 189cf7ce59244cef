# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the testinfra verifiers of every Molecule scenario.

The verifiers run on the machine that runs Molecule and reach the systemd
container through podman (connection: podman in .config/molecule/config.yml).
"""
import json
import os
import tempfile

import pytest

from zd_scenario import BackgroundLoad, REMOTE_TOOL_DIR, ansible_playbook, copy_load_tools, podman, write_play  # pylint: disable=import-error


@pytest.fixture(scope="module")
def container(host):
    """Name of the scenario's container (the podman backend's host name)."""
    return host.backend.name


@pytest.fixture(scope="module")
def load_tool(container):
    """Copy the load generator into the container; returns a runner.

    The runner drives bounded HTTP load at an endpoint inside the container
    while it runs the given commands, and returns the JSON report.
    """
    copy_load_tools(container)

    def run(endpoint, commands, duration=30, max_requests=300000, workers=4, settle=1.0, extra=()):
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
def background_load():
    """start(container, endpoint, tag, ...) -> BackgroundLoad; every load still running at the end is stopped."""
    started = []

    def start(*args, **kwargs):
        load = BackgroundLoad(*args, **kwargs)
        started.append(load)
        return load

    yield start
    for load in started:
        load.kill()


@pytest.fixture(scope="module")
def play(container):
    """Run a one-role play against the container; returns the CompletedProcess.

    Used to prove what a second run does (bad input, broken units): it goes
    through ansible-playbook exactly as a user's run would.
    """
    def run(role, role_vars, check=False):
        with tempfile.TemporaryDirectory() as tmp:
            playbook = write_play(tmp, name="Run %s" % role, roles=[{"role": role, "vars": role_vars}])
            return ansible_playbook(playbook, [container], check=check, env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})

    return run


@pytest.fixture(scope="module")
def rejections(container):
    """Run a role once per case of bad input in ONE play; returns {case: error message or None}.

    One play instead of one per case keeps a table of rejected inputs cheap:
    each case is a block whose rescue records the error, so every case runs
    even when an earlier one failed (as it should). None means the role did
    not fail for that case.
    """
    def run(role, cases, tasks_from=None):
        """tasks_from: {case: the role's task file (its entry point)} for the cases that do not start at main."""
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "rejections.json")
            tasks = []
            for index, (case, role_vars) in enumerate(sorted(cases.items())):
                include = {"name": role}
                if (tasks_from or {}).get(case):
                    include["tasks_from"] = tasks_from[case]
                tasks.append({
                    "name": "Case %s" % case,
                    "block": [
                        {"name": "Run the role", "ansible.builtin.include_role": include, "vars": role_vars},
                        {"name": "Record that it did not fail", "ansible.builtin.set_fact": {"zd_case_%d" % index: None}},
                    ],
                    "rescue": [
                        # A looped task fails with "One or more items failed": the
                        # messages that matter are the failed items'.
                        {"name": "Record the error", "ansible.builtin.set_fact": {"zd_case_%d" % index: (
                            "{{ ([ansible_failed_result.msg] + (ansible_failed_result.results | default([])"
                            " | selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') | list))"
                            " | join(' | ') }}")}},
                    ],
                })
            names = sorted(cases)
            collect = "{{ {%s} | to_json }}" % ", ".join("%r: zd_case_%d" % (name, i) for i, name in enumerate(names))
            tasks.append({"name": "Write the results", "ansible.builtin.copy": {"content": collect, "dest": out, "mode": "0600"},
                          "delegate_to": "localhost"})
            result = ansible_playbook(write_play(tmp, tasks, name="Bad input"), [container])
            assert os.path.exists(out), "the rejection play did not finish:\n" + result.stdout[-3000:]
            with open(out, encoding="utf-8") as handle:
                return json.load(handle)

    return run
