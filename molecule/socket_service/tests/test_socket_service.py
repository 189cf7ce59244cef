# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What socket_service promises, checked in the running systemd container.

hello: gunicorn, one instance, default profile, Type=exec.
hello2: gunicorn, two instances on one socket, isolated profile, Type=notify.
hello-node: Node.js (a JIT runtime), one instance, default profile.
"""
import json
import os
import re

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROLE = "zerodown.deploy.socket_service"


def converge_vars(name):
    """The role variables converge.yml used for service NAME, so a re-run starts from the same input."""
    with open(os.path.join(HERE, os.pardir, "converge.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    for task in play["tasks"]:
        role_vars = task.get("vars", {})
        if role_vars.get("socket_service_name") == name:
            text = yaml.safe_dump(role_vars).replace("{{ sample_app_dir }}", play["vars"]["sample_app_dir"])
            return yaml.safe_load(text)
    raise LookupError(name)


def exposure(host, unit):
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    return float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))


def main_pid(host, unit):
    return int(host.check_output("systemctl show --property=MainPID --value %s", unit))


def checksum(host, path):
    return host.check_output("sha256sum %s", path).split()[0]


@pytest.mark.parametrize("unit", ["hello.socket", "hello.service", "hello2.socket", "hello2@1.service", "hello2@2.service",
                                  "hello-node.socket", "hello-node.service"])
def test_units_are_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("path", ["/run/hello.sock", "/run/hello2.sock", "/run/hello-node.sock"])
def test_socket_owner_and_mode_let_only_the_web_server_group_connect(host, path):
    sock = host.file(path)
    assert sock.is_socket
    assert sock.user == "root"
    assert sock.group == "www-data"
    assert sock.mode == 0o660


@pytest.mark.parametrize("unit,user", [("hello.service", "hello"), ("hello2@1.service", "hello2")])
def test_service_runs_as_its_own_unprivileged_user(host, unit, user):
    pid = main_pid(host, unit)
    assert host.check_output("ps -o user= -p %s", str(pid)).strip() == user


def test_both_instances_share_the_one_socket(host):
    unit = host.file("/etc/systemd/system/hello2@.service").content_string
    assert "Sockets=hello2.socket" in unit
    assert main_pid(host, "hello2@1.service") != main_pid(host, "hello2@2.service")


@pytest.mark.parametrize("sock", ["/run/hello.sock", "/run/hello2.sock", "/run/hello-node.sock"])
def test_app_answers_through_the_socket(host, sock):
    script = ("import socket,http.client\n"
              "class C(http.client.HTTPConnection):\n"
              "    def connect(self):\n"
              "        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(%r)\n"
              "c = C('localhost'); c.request('GET', '/healthz'); r = c.getresponse(); print(r.status, r.read().decode())\n") % sock
    status, body = host.check_output("python3 -c %s", script).split(" ", 1)
    assert status == "200"
    assert json.loads(body)["path"] == "/healthz"


@pytest.mark.parametrize("unit,limit", [("hello.service", 1.5), ("hello2@1.service", 0.5), ("hello-node.service", 1.5)])
def test_exposure_is_within_the_profile_threshold(host, unit, limit):
    score = exposure(host, unit)
    print("exposure %s = %s" % (unit, score))
    assert score <= limit


def test_somaxconn_was_raised_to_the_backlog(host):
    assert int(host.file("/proc/sys/net/core/somaxconn").content_string) >= 4096


def test_restart_of_a_single_instance_under_load_fails_no_request(host, load_tool):
    before = main_pid(host, "hello.service")
    report = load_tool("unix:/run/hello.sock", ["systemctl restart hello.service"])
    print("single restart:", {k: report[k] for k in ("requests", "failed", "failures_by_kind", "gap_ms", "latency_ms")})
    assert report["commands_ok"], report["commands"]
    assert report["load_covered_commands"]
    assert report["phases"]["during"]["requests"] > 0
    assert report["failed"] == 0, report["failure_examples"]
    assert main_pid(host, "hello.service") != before


def test_restart_of_a_node_app_under_load_fails_no_request(host, load_tool):
    before = main_pid(host, "hello-node.service")
    report = load_tool("unix:/run/hello-node.sock", ["systemctl restart hello-node.service"])
    print("node restart:", {k: report[k] for k in ("requests", "failed", "failures_by_kind", "gap_ms", "latency_ms")})
    assert report["commands_ok"], report["commands"]
    assert report["phases"]["during"]["requests"] > 0
    assert report["failed"] == 0, report["failure_examples"]
    assert main_pid(host, "hello-node.service") != before


def test_rolling_restart_of_two_instances_under_load_fails_no_request(host, load_tool):
    units = ["hello2@1.service", "hello2@2.service"]
    before = [main_pid(host, unit) for unit in units]
    report = load_tool("unix:/run/hello2.sock", ["systemctl restart %s" % unit for unit in units])
    print("rolling restart:", {k: report[k] for k in ("requests", "failed", "failures_by_kind", "gap_ms", "latency_ms")})
    assert report["commands_ok"], report["commands"]
    assert report["load_covered_commands"]
    assert report["failed"] == 0, report["failure_examples"]
    after = [main_pid(host, unit) for unit in units]
    assert all(old != new for old, new in zip(before, after))


def test_a_unit_that_does_not_verify_never_replaces_the_running_one(host, play):
    unit = "/etc/systemd/system/hello.service"
    before = (checksum(host, unit), main_pid(host, "hello.service"))
    broken = dict(converge_vars("hello"), socket_service_exec_start="/nonexistent/gunicorn hello_wsgi:application")
    result = play(ROLE, broken)
    assert result.returncode != 0
    assert "failed `systemd-analyze verify`" in result.stdout
    assert "the installed units and the running service are unchanged" in result.stdout
    assert (checksum(host, unit), main_pid(host, "hello.service")) == before


def test_changing_the_socket_without_opt_in_is_refused(host, play):
    unit = "/etc/systemd/system/hello.socket"
    before = checksum(host, unit)
    result = play(ROLE, dict(converge_vars("hello"), socket_service_backlog=1024))
    assert result.returncode != 0
    assert "set socket_service_allow_socket_restart: true" in result.stdout
    assert checksum(host, unit) == before
    assert host.service("hello.socket").is_running


def test_exposure_above_the_limit_installs_nothing(host, play):
    result = play(ROLE, dict(converge_vars("hello"), socket_service_name="hello-bare", socket_service_hardening_profile="none",
                             socket_service_exposure_max=1.5))
    assert result.returncode != 0
    assert "above the limit 1.5" in result.stdout and "Nothing was installed" in result.stdout
    assert not host.file("/etc/systemd/system/hello-bare.service").exists


def test_a_failure_caused_by_hardening_says_so(host, play):
    # ProtectSystem=strict makes /srv read-only for the service.
    result = play(ROLE, {"socket_service_name": "hello-ro", "socket_service_exec_start": "/usr/bin/touch /srv/hello/written",
                         "socket_service_ready_timeout": 5})
    host.run("systemctl disable --now hello-ro.service hello-ro.socket")
    assert result.returncode != 0
    assert "looks caused by hardening" in result.stdout
    assert "Read-only file system" in result.stdout


def test_the_strict_tier_stops_a_jit_runtime_and_says_why(host, play):
    result = play(ROLE, {"socket_service_name": "hello-node-strict", "socket_service_hardening_strict": True,
                         "socket_service_exec_start": "/usr/bin/node /srv/hello/hello_node.js",
                         "socket_service_health_path": "/healthz", "socket_service_ready_timeout": 5})
    host.run("systemctl disable --now hello-node-strict.service hello-node-strict.socket")
    assert result.returncode != 0
    assert "MemoryDenyWriteExecute=yes (the strict tier) kills JIT runtimes" in result.stdout


# Each rejected input: (variables merged over hello's, text the error must contain).
REJECTED = {
    "relative exec_start": ({"socket_service_exec_start": "gunicorn hello_wsgi:application"}, "exec_start must start with an absolute path"),
    "instances below one": ({"socket_service_instances": 0}, "socket_service_instances must be 1 or more"),
    "instances not a number": ({"socket_service_instances": "two"}, "socket_service_instances"),
    "unknown profile": ({"socket_service_hardening_profile": "paranoid"}, "value of socket_service_hardening_profile must be one of"),
    "exposure limit above 10": ({"socket_service_exposure_max": 11}, "socket_service_exposure_max must be between 0 and 10"),
    "unknown service type": ({"socket_service_type": "forking"}, "value of socket_service_type must be one of"),
    "malformed listen address": ({"socket_service_listen": ["localhost:http"]}, "listen address 'localhost:http' is malformed"),
    "port out of range": ({"socket_service_listen": ["127.0.0.1:70000"]}, "is malformed"),
    "mode not octal": ({"socket_service_socket_mode": "rw-rw----"}, "socket_mode must be a quoted octal string"),
    "mode with digit 9": ({"socket_service_socket_mode": "0699"}, "socket_mode must be a quoted octal string"),
    "missing name": ({"socket_service_name": ""}, "socket_service_name must match"),
    "socket in runtime directory": ({"socket_service_runtime_directory": "hello", "socket_service_listen": ["/run/hello/app.sock"]},
                                    "RuntimeDirectory=/run/hello"),
    "start limit reachable by a crash loop": ({"socket_service_start_limit_interval_sec": 60}, "lets a crash loop reach the start limit"),
    "bad environment name": ({"socket_service_environment": {"BAD-NAME": "x"}}, "socket_service_environment keys must be variable names"),
    "relative working directory": ({"socket_service_working_directory": "srv/hello"}, "socket_service_working_directory must be absolute"),
    "override that is not a directive": ({"socket_service_hardening_overrides": {"privateNetwork": "yes"}}, "directive names"),
    "health path without slash": ({"socket_service_health_path": "healthz"}, "socket_service_health_path must start with '/'"),
}


@pytest.fixture(scope="module")
def rejected(host, rejections):
    """Run every REJECTED case once; returns (messages by case, state before, state after)."""
    def state():
        units = ["/etc/systemd/system/hello.service", "/etc/systemd/system/hello.socket"]
        return [checksum(host, unit) for unit in units] + [main_pid(host, "hello.service")]

    before = state()
    messages = rejections(ROLE, dict((case, dict(converge_vars("hello"), **spec[0])) for case, spec in REJECTED.items()))
    return messages, before, state()


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_bad_input_gets_a_clear_error(rejected, case):
    messages = rejected[0]
    expected = REJECTED[case][1]
    assert messages[case] is not None, "the role accepted %s" % case
    assert expected in messages[case]


def test_bad_input_changes_nothing(rejected):
    before, after = rejected[1], rejected[2]
    assert after == before
