# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What nginx_upstream promises, checked in the running containers.

zd-nginx_upstream (the verifier's host): nginx with two sites, "hello" (the
local app over /run/hello.sock, TLS, static files, health location) and
"remote" (the app on zd-nginx-app2 over TCP port 8000).
"""
import json
import os
import re
import tempfile
import time
import uuid

import pytest
import yaml

from zd_scenario import ansible_playbook, write_play  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
ROLE = "zerodown.deploy.nginx_upstream"
APP_HOST = "zd-nginx-app2"
SITE = "/etc/nginx/conf.d/zerodown-%s.conf"
COMMON = "/etc/nginx/conf.d/00-zerodown.conf"
NGINX = "http://127.0.0.1:80"
# Same load for every restart measurement, so the numbers compare.
LOAD = dict(duration=30, max_requests=300000, workers=4, settle=1.5)
RESULTS = {}

REQUEST = r'''
import http.client, json, ssl, sys
a = json.loads(sys.argv[1])
if a["tls"]:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", a["port"], context=ctx, timeout=10)
else:
    c = http.client.HTTPConnection("127.0.0.1", a["port"], timeout=10)
c.request(a["method"], a["path"], body=a["body"], headers=a["headers"])
version = c.sock.version() if a["tls"] else None
r = c.getresponse()
print(json.dumps({"status": r.status, "headers": [[k.lower(), v] for k, v in r.getheaders()],
                  "body": r.read().decode("utf-8", "replace"), "tls": version}))
'''


def converge_vars(name):
    """The role variables converge.yml used for site NAME, so a re-run starts from the same input."""
    with open(os.path.join(HERE, os.pardir, "converge.yml"), encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    for play in plays:
        for task in play["tasks"]:
            role_vars = task.get("vars", {})
            if role_vars.get("nginx_upstream_name") == name:
                return dict(role_vars)
    raise LookupError(name)


def request(host, site, path="/", method="GET", headers=None, body=None, tls=False):
    """One request to nginx from inside its container; returns status, headers (list of pairs), body, tls version."""
    args = {"tls": tls, "port": 443 if tls else 80, "method": method, "path": path, "body": body,
            "headers": dict({"Host": site}, **(headers or {}))}
    return json.loads(host.check_output("python3 -c %s %s", REQUEST, json.dumps(args)))


def header(response, name):
    return [value for key, value in response["headers"] if key == name.lower()]


def checksum(host, path):
    return host.check_output("sha256sum %s", path).split()[0]


def main_pid(host, unit):
    return int(host.check_output("systemctl show --property=MainPID --value %s", unit))


def live_state(host):
    """What must not change when a run is refused: the live files and the running processes."""
    return {"files": [checksum(host, path) for path in (SITE % "hello", SITE % "remote", COMMON)],
            "nginx": main_pid(host, "nginx.service"), "hello": main_pid(host, "hello.service")}


def directives(text):
    """The nginx directives of a config file, comments removed."""
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def app_host(host):
    """The second container, where the "remote" app listens on TCP."""
    return host.get_host("podman://" + APP_HOST)


# --- nginx and the two sites ------------------------------------------------

def test_nginx_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_both_sites_coexist_and_the_live_configuration_passes_nginx_t(host):
    for name in ("hello", "remote"):
        site = host.file(SITE % name)
        assert site.exists and site.user == "root" and site.mode == 0o644
        assert "upstream zerodown_%s {" % name in site.content_string
    assert "log_format zerodown" in host.file(COMMON).content_string
    assert host.run("nginx -t").rc == 0


def test_keepalive_is_off_by_default(host):
    lines = directives(host.file(SITE % "hello").content_string)
    assert not [line for line in lines if line.startswith("keepalive")]
    assert "proxy_http_version 1.1;" not in lines
    assert "server unix:/run/hello.sock max_fails=0 fail_timeout=10s;" in lines
    assert "proxy_next_upstream error timeout;" in lines


def test_the_local_app_answers_through_its_unix_socket(host):
    response = request(host, "hello", "/")
    assert response["status"] == 200
    served_by = int(header(response, "X-Served-By")[0])
    workers = host.check_output("pgrep --parent %s", str(main_pid(host, "hello.service"))).split()
    assert str(served_by) in workers


def test_the_remote_app_answers_over_tcp(host, app_host):
    assert app_host.socket("tcp://0.0.0.0:8000").is_listening
    response = request(host, "remote", "/")
    assert response["status"] == 200
    assert json.loads(response["body"])["release"] == "remote"
    served_by = header(response, "X-Served-By")[0]
    assert served_by in app_host.check_output("pgrep --full gunicorn").split()
    assert host.check_output("tail -n 1 /var/log/nginx/zerodown-remote.access.log").endswith(":8000")


@pytest.mark.parametrize("site", ["hello", "remote"])
def test_forwarded_headers_reach_the_app(host, site):
    response = request(host, site, "/headers", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response["status"] == 200
    seen = json.loads(response["body"])["headers"]
    print(site, seen)
    assert seen["Host"] == site
    assert seen["X-Forwarded-Host"] == site
    assert seen["X-Real-Ip"] == "127.0.0.1"
    # nginx_upstream_forwarded_for: replace (the default): the address the client claimed is dropped.
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"


def test_tls_uses_modern_protocols_and_forwards_https(host):
    response = request(host, "hello", "/headers", tls=True)
    assert response["status"] == 200
    assert response["tls"] in ("TLSv1.2", "TLSv1.3")
    assert json.loads(response["body"])["headers"]["X-Forwarded-Proto"] == "https"
    site = directives(host.file(SITE % "hello").content_string)
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site and "ssl_session_tickets off;" in site
    assert any(line.startswith("ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:") for line in site), site


def test_static_files_are_served_by_nginx_with_caching_headers(host):
    response = request(host, "hello", "/static/app.css")
    assert response["status"] == 200
    assert response["body"] == "body { color: #333; }\n"
    assert not header(response, "X-Served-By"), "the app answered, not nginx"
    cache_control = ", ".join(header(response, "Cache-Control"))
    assert "max-age=604800" in cache_control and "public" in cache_control
    assert header(response, "Expires")
    assert request(host, "hello", "/static/missing.css")["status"] == 404


def test_the_access_log_records_upstream_status_and_time(host):
    probe = uuid.uuid4().hex
    assert request(host, "hello", "/headers?probe=" + probe)["status"] == 200
    line = host.check_output("grep --fixed-strings %s /var/log/nginx/zerodown-hello.access.log", probe)
    print(line)
    assert re.search(r" 200 \d+ .* urt=\d+\.\d{3} us=200 ua=unix:/run/hello\.sock$", line), line


def test_the_health_location_passes_through_without_logging(host):
    probe = uuid.uuid4().hex
    response = request(host, "hello", "/healthz?probe=" + probe)
    assert response["status"] == 200 and json.loads(response["body"])["path"] == "/healthz"
    assert host.run("grep --quiet --fixed-strings %s /var/log/nginx/zerodown-hello.access.log", probe).rc == 1


# --- zero failed requests ----------------------------------------------------

def restart_under_load(host, load_tool):
    before = main_pid(host, "hello.service")
    report = load_tool(NGINX, ["systemctl restart hello.service"], extra=["--host-header", "hello"], **LOAD)
    summary = {k: report[k] for k in ("requests", "ok", "failed", "failures_by_kind", "requests_per_s", "gap_ms", "latency_ms")}
    assert report["commands_ok"], report["commands"]
    assert report["load_covered_commands"]
    assert report["phases"]["during"]["requests"] > 0
    assert main_pid(host, "hello.service") != before
    return report, summary


def steady_throughput(load_tool):
    """Requests per second through nginx with no restart: 5 s of load, client connections kept alive.

    Client keepalive takes the client side's connection setup out of the
    number, so what differs between two runs is nginx's connection to the app.
    """
    report = load_tool(NGINX, ["sleep 5"], extra=["--host-header", "hello", "--keep-alive"], **dict(LOAD, settle=0.5))
    assert report["failed"] == 0, report["failure_examples"]
    return report["requests_per_s"]


def test_restart_under_get_and_post_load_through_nginx_fails_no_request(host, load_tool):
    report, summary = restart_under_load(host, load_tool)
    RESULTS["keepalive off"] = summary
    print("restart through nginx, upstream keepalive off:", summary)
    assert report["failed"] == 0, report["failure_examples"]


def test_measure_the_same_restart_with_upstream_keepalive(host, play, load_tool):
    """A measurement, not a promise: failed requests and throughput with keepalive 32 next to the default.

    Steady throughput is measured off, on, off again, back to back, so that
    the noise of a shared machine shows in the two "off" numbers.
    """
    site = SITE % "hello"
    before = checksum(host, site)
    nginx_pid = main_pid(host, "nginx.service")
    steady = {"off (before)": steady_throughput(load_tool)}
    try:
        result = play(ROLE, dict(converge_vars("hello"), nginx_upstream_keepalive=32))
        assert result.returncode == 0, result.stdout[-3000:]
        lines = directives(host.file(site).content_string)
        assert "keepalive 32;" in lines and "proxy_http_version 1.1;" in lines and 'proxy_set_header Connection "";' in lines
        # Applied with a reload: the master process is the same.
        assert main_pid(host, "nginx.service") == nginx_pid
        steady["keepalive 32"] = steady_throughput(load_tool)
        report, summary = restart_under_load(host, load_tool)
        RESULTS["keepalive 32"] = dict(summary, failure_examples=report["failure_examples"][:5])
    finally:
        restored = play(ROLE, converge_vars("hello"))
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert checksum(host, site) == before
    steady["off (after)"] = steady_throughput(load_tool)
    for mode in ("keepalive off", "keepalive 32"):
        if mode in RESULTS:
            result = RESULTS[mode]
            print("restart with upstream %-13s: %5d requests, %3d failed %s, %6.1f req/s; latency %s" % (
                mode, result["requests"], result["failed"],
                {kind: n for kind, n in result["failures_by_kind"].items() if n}, result["requests_per_s"], result["latency_ms"]))
    print("keepalive 32 failures:", RESULTS.get("keepalive 32", {}).get("failure_examples"))
    print("steady requests/s (client keep-alive):", steady)


def test_a_dead_upstream_server_is_skipped_for_get_and_post(host, play):
    """Connection refused happens before a request is sent, so nginx retries even a POST on the next server."""
    result = play(ROLE, {"nginx_upstream_name": "multi", "nginx_upstream_servers": ["127.0.0.1:9", APP_HOST + ":8000"]})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "max_fails=3 fail_timeout=10s;" in host.file(SITE % "multi").content_string
    statuses = [request(host, "multi", "/", method=method, body="x" if method == "POST" else None)["status"]
                for method in ("GET", "POST") * 6]
    assert statuses == [200] * 12


def test_server_name_underscore_with_default_server_answers_every_host_name(host, play):
    """Debian's default site is the default server of port 80 until a site claims it: then it goes, tested first."""
    default = "/etc/nginx/sites-enabled/default"
    assert host.file(default).is_symlink
    assert "Welcome to nginx" in request(host, "unknown.example", "/")["body"]
    result = play(ROLE, {"nginx_upstream_name": "catchall", "nginx_upstream_servers": ["unix:/run/hello.sock"],
                         "nginx_upstream_server_names": ["_"], "nginx_upstream_listen": ["80 default_server"]})
    assert result.returncode == 0, result.stdout[-3000:]
    assert not host.file(default).exists and host.file("/etc/nginx/sites-available/default").exists
    response = request(host, "unknown.example", "/")
    assert response["status"] == 200 and header(response, "X-Served-By"), response
    # The named sites keep their host names.
    assert request(host, "hello", "/")["status"] == 200
    assert host.run("nginx -t").rc == 0
    # Again: nothing to change.
    again = play(ROLE, {"nginx_upstream_name": "catchall", "nginx_upstream_servers": ["unix:/run/hello.sock"],
                        "nginx_upstream_server_names": ["_"], "nginx_upstream_listen": ["80 default_server"]})
    assert again.returncode == 0 and re.search(r"changed=0\b", again.stdout), again.stdout[-3000:]


# --- a change nginx rejects never reaches the live configuration -------------

def test_an_invalid_extra_directive_is_rejected_and_the_old_config_keeps_serving(host, play):
    before = live_state(host)
    result = play(ROLE, dict(converge_vars("hello"), nginx_upstream_extra_directives=["bogus_directive on;"]))
    assert result.returncode != 0
    assert 'unknown directive "bogus_directive"' in result.stdout, result.stdout[-3000:]
    assert "the live configuration and the served traffic are unchanged" in result.stdout
    assert "bogus_directive" in host.file("/var/lib/zerodown/nginx/hello/zerodown-hello.conf").content_string
    assert live_state(host) == before
    assert "bogus_directive" not in host.file(SITE % "hello").content_string
    assert request(host, "hello", "/")["status"] == 200


# --- bad input ----------------------------------------------------------------

BAD_SOCKETS = {
    # path: (group, mode)
    "/run/zd-wrong-group.sock": ("root", "0660"),
    "/run/zd-world.sock": ("www-data", "0666"),
}

# Each rejected input: (variables merged over hello's, text the error must contain).
REJECTED = {
    "missing name": ({"nginx_upstream_name": ""}, "nginx_upstream_name must match"),
    "malformed unix upstream": ({"nginx_upstream_servers": ["unix:run/hello.sock"]}, "upstream server 'unix:run/hello.sock' is malformed"),
    "upstream without port": ({"nginx_upstream_servers": ["app1.internal"]}, "upstream server 'app1.internal' is malformed"),
    "upstream port out of range": ({"nginx_upstream_servers": ["app1.internal:70000"]}, "has port 70000, outside 1-65535"),
    "no upstream server": ({"nginx_upstream_servers": []}, "must name at least one server"),
    "TLS certificate without key": ({"nginx_upstream_tls_certificate_key": ""}, "TLS needs the private key too"),
    "TLS key without certificate": ({"nginx_upstream_tls_certificate": ""}, "nginx_upstream_tls_certificate is empty: TLS needs both"),
    "relative certificate path": ({"nginx_upstream_tls_certificate": "certs/hello.pem"}, "tls_certificate must be an absolute path"),
    "TLS protocol too old": ({"nginx_upstream_tls_protocols": ["TLSv1", "TLSv1.2"]}, "value of nginx_upstream_tls_protocols must be one or more of"),
    "redirect without TLS": ({"nginx_upstream_tls_certificate": "", "nginx_upstream_tls_certificate_key": "",
                              "nginx_upstream_tls_redirect": True}, "nginx_upstream_tls_redirect needs TLS"),
    "listen port out of range": ({"nginx_upstream_listen": ["80000"]}, "entry '80000' is malformed or its port is outside 1-65535"),
    "ssl in the plain listen list": ({"nginx_upstream_listen": ["443 ssl"]}, "TLS addresses go in nginx_upstream_tls_listen"),
    "relative static path": ({"nginx_upstream_static_path": "current/public"}, "nginx_upstream_static_path must be an absolute path"),
    "static location without trailing slash": ({"nginx_upstream_static_location": "/static"}, "must start and end with '/'"),
    "expires not an nginx time": ({"nginx_upstream_static_expires": "one week"}, "nginx_upstream_static_expires must be an nginx time"),
    "negative keepalive": ({"nginx_upstream_keepalive": -1}, "nginx_upstream_keepalive must be 0 (off) or more"),
    "keepalive not a number": ({"nginx_upstream_keepalive": "many"}, "nginx_upstream_keepalive"),
    "unknown next_upstream value": ({"nginx_upstream_next_upstream": ["error", "http_999"]},
                                    "value of nginx_upstream_next_upstream must be one or more of"),
    "non_idempotent without opt-in": ({"nginx_upstream_next_upstream": ["error", "non_idempotent"]},
                                      "set nginx_upstream_retry_non_idempotent: true instead"),
    "off combined with a condition": ({"nginx_upstream_next_upstream": ["off", "error"]}, "'off' cannot be combined"),
    "negative max_fails": ({"nginx_upstream_max_fails": -1}, "nginx_upstream_max_fails must be 0 or more"),
    "zero read timeout": ({"nginx_upstream_read_timeout": 0}, "nginx_upstream_read_timeout must be 1 or more seconds"),
    "body size with a unit word": ({"nginx_upstream_client_max_body_size": "10 MB"}, "client_max_body_size must be a size"),
    "server name with a space": ({"nginx_upstream_server_names": ["hello test"]}, "nginx_upstream_server_names must be"),
    "health path without slash": ({"nginx_upstream_health_path": "healthz"}, "nginx_upstream_health_path must start with '/'"),
    "conf dir outside nginx's": ({"nginx_upstream_conf_dir": "/srv/nginx"}, "must lie under /etc/nginx"),
    "relative default site": ({"nginx_upstream_distro_default_site": "sites-enabled/default"},
                              "nginx_upstream_distro_default_site must be empty or an absolute path under /etc/nginx"),
    "socket nginx cannot reach": ({"nginx_upstream_servers": ["unix:/run/zd-wrong-group.sock"]},
                                  "socket /run/zd-wrong-group.sock is root:root mode 0660, and nginx's user www-data is neither"),
    "socket open to everyone": ({"nginx_upstream_servers": ["unix:/run/zd-world.sock"]},
                                "socket /run/zd-world.sock is root:www-data mode 0666: every local user can connect"),
    "not a socket": ({"nginx_upstream_servers": ["unix:/etc/hostname"]}, "/etc/hostname exists but is not a Unix socket"),
}


@pytest.fixture(scope="module")
def rejected_runs(host, rejections):
    """Every REJECTED case through the role (one play, a block per case): the errors, and the live state before and after."""
    for path, (group, mode) in BAD_SOCKETS.items():
        host.run("rm -f %s", path)
        host.check_output("python3 -c %s %s", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path)
        host.check_output("chgrp %s %s && chmod %s %s", group, path, mode, path)
    before = live_state(host)
    try:
        errors = rejections(ROLE, {case: dict(converge_vars("hello"), **REJECTED[case][0]) for case in REJECTED})
    finally:
        host.run("rm -f %s", " ".join(BAD_SOCKETS))
    return {"errors": errors, "before": before, "after": live_state(host)}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_bad_input_gets_a_clear_error(rejected_runs, case):
    errors = rejected_runs["errors"]
    assert errors[case] is not None, "the role accepted %s" % case
    assert REJECTED[case][1] in errors[case], errors[case]


def test_bad_input_changes_nothing(host, rejected_runs):
    assert rejected_runs["after"] == rejected_runs["before"]
    assert request(host, "hello", "/")["status"] == 200


# --- draining one server of an upstream (nginx_backend) -----------------------
# Site "lb" (converge) lists two plain app servers in include mode: one file
# per server in LB_DIR. The tests start the servers (files/lb_backend.py, each
# answer takes BACKEND_DELAY so requests are always in flight) as transient
# units, and take one out of the upstream with the module while it is killed
# outright and started again.

LB_DIR = "/etc/nginx/conf.d/lb.servers"
LB_STAGE_DIR = "/var/lib/zerodown/nginx/lb/lb.servers"
LB = {"a": "127.0.0.1:8101", "b": "127.0.0.1:8102"}
LB_FILES = {name: "%s/%s.conf" % (LB_DIR, address.replace(":", "_")) for name, address in LB.items()}
BACKEND_DELAY = 0.05
LB_LOAD = dict(duration=60, max_requests=50000, workers=4, extra=["--host-header", "lb"])

WAIT_PORT = r'''
import socket, sys, time
port, want_open = int(sys.argv[1]), sys.argv[2] == "open"
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        is_open = True
    except OSError:
        is_open = False
    if is_open == want_open:
        sys.exit(0)
    time.sleep(0.05)
sys.exit("port %d is not %s after 10 s" % (port, sys.argv[2]))
'''


class LbBackends:
    """The two app servers of site "lb", each run as a transient unit (a new unit name per start)."""

    def __init__(self, host):
        self.host = host
        self.units = {}
        self.started = 0

    def port(self, name):
        return LB[name].rsplit(":", 1)[1]

    def start(self, name):
        self.started += 1
        unit = "zd-lb-%s-%d" % (name, self.started)
        self.host.check_output("systemd-run --quiet --collect --unit=%s python3 /usr/local/lib/zd_lb_backend.py %s %s %s",
                               unit, self.port(name), name, str(BACKEND_DELAY))
        self.host.check_output("python3 -c %s %s open", WAIT_PORT, self.port(name))
        self.units[name] = unit

    def kill(self, name):
        """A hard stop: SIGKILL, no graceful shutdown; returns when the port refuses connections."""
        self.host.check_output("systemctl kill --signal=SIGKILL %s.service", self.units[name])
        self.host.check_output("python3 -c %s %s closed", WAIT_PORT, self.port(name))

    def stop_all(self):
        for unit in self.units.values():
            self.host.run("systemctl stop %s.service", unit)


@pytest.fixture(scope="module")
def lb_backends(host):
    backends = LbBackends(host)
    for name in sorted(LB):
        backends.start(name)
    yield backends
    backends.stop_all()


@pytest.fixture(scope="module")
def nginx_backend(container):
    """Run zerodown.deploy.nginx_backend on the nginx container (ansible-playbook); returns its result, failed or not."""
    def run(**args):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            tasks = [
                {"name": "Run nginx_backend", "zerodown.deploy.nginx_backend": dict({"servers_dir": LB_DIR}, **args),
                 "register": "zd_result", "ignore_errors": True},
                {"name": "Write the result", "ansible.builtin.copy": {"content": "{{ zd_result | to_json }}", "dest": out, "mode": "0600"},
                 "delegate_to": "localhost"},
            ]
            result = ansible_playbook(write_play(tmp, tasks, name="nginx_backend"), [container])
            assert os.path.exists(out), "the nginx_backend play did not finish:\n" + result.stdout[-3000:]
            with open(out, encoding="utf-8") as handle:
                return json.load(handle)

    return run


def nginx_workers(host):
    return [int(pid) for pid in host.check_output("pgrep --parent %s", str(main_pid(host, "nginx.service"))).split()]


def server_files(host, directory=LB_DIR):
    return sorted(name for name in host.file(directory).listdir() if name.endswith(".conf") and not name.startswith("."))


def by_backend(report):
    """Responses per app server process, e.g. {"a": {"a-101": 300, "a-202": 80}, "b": {"b-102": 410}}."""
    counts = {}
    for marker, count in report["marker_counts"].items():
        counts.setdefault(marker.split("-")[0], {})[marker] = count
    return counts


def test_include_mode_writes_one_file_per_server(host):
    lines = directives(host.file(SITE % "lb").content_string)
    assert "include %s/*.conf;" % LB_DIR in lines
    assert not [line for line in lines if line.startswith("server 127.")]
    assert server_files(host) == server_files(host, LB_STAGE_DIR) == sorted(os.path.basename(path) for path in LB_FILES.values())
    for name, path in LB_FILES.items():
        assert directives(host.file(path).content_string) == ["server %s max_fails=3 fail_timeout=10s;" % LB[name]]
        assert host.file(path).user == "root" and host.file(path).mode == 0o644


def test_a_drained_server_is_killed_and_restarted_under_load_without_a_failed_request(
        host, container, lb_backends, background_load, nginx_backend):
    """Drain A (down + reload + wait for the old workers), SIGKILL it, start it again, put it back: GET+POST load sees nothing."""
    assert request(host, "lb", "/")["status"] == 200
    killed = "a-%s" % host.check_output("systemctl show --property=MainPID --value %s.service", lb_backends.units["a"])
    load = background_load(container, NGINX, "lb-drain", **LB_LOAD)
    down = nginx_backend(backend=LB["a"], state="down")
    assert not down.get("failed"), down
    assert down["changed"] and down["reloaded"] and down["drained"] and down["previous_state"] == "up" and down["state"] == "down"
    assert down["old_workers"] and not set(down["old_workers"]) & set(nginx_workers(host))
    assert host.file(LB_FILES["a"]).content_string.endswith("server %s max_fails=3 fail_timeout=10s down;\n" % LB["a"])
    lb_backends.kill("a")
    lb_backends.start("a")
    up = nginx_backend(backend=LB["a"], state="up")
    assert not up.get("failed"), up
    assert up["changed"] and up["reloaded"] and not up["drained"] and up["previous_state"] == "down"
    restarted = "a-%s" % host.check_output("systemctl show --property=MainPID --value %s.service", lb_backends.units["a"])
    time.sleep(1.5)  # load on the restarted server (and another second when the load stops)
    report = load.stop()
    summary = {k: report[k] for k in ("requests", "ok", "failed", "failures_by_kind", "requests_per_s", "latency_ms", "methods")}
    print("drain, kill and restart of one of two servers under load:", summary, by_backend(report),
          "drain took %.3f s" % down["drain_seconds"])
    assert report["failed"] == 0, report["failure_examples"]
    assert report["methods"].get("POST", 0) > 0 and report["methods"].get("GET", 0) > 0
    served = report["marker_counts"]
    assert served.get(killed, 0) > 0 and served.get(restarted, 0) > 0, served
    assert [marker for marker in served if marker.startswith("b-")], served


def test_measure_the_same_kill_without_a_drain(host, container, lb_backends, background_load):
    """A measurement, not a promise: what the kill costs when the server is NOT drained first (printed)."""
    load = background_load(container, NGINX, "lb-nodrain", **LB_LOAD)
    time.sleep(2)
    lb_backends.kill("a")
    lb_backends.start("a")
    time.sleep(1)
    report = load.stop()
    print("the same kill without a drain:", {k: report[k] for k in ("requests", "failed", "failures_by_kind")},
          report["failure_examples"][:5])


def test_the_last_server_up_cannot_be_drained(host, lb_backends, nginx_backend):
    down = nginx_backend(backend=LB["a"], state="down")
    try:
        assert down["changed"] and down["drained"], down
        again = nginx_backend(backend=LB["a"], state="down")
        assert not again["changed"] and not again["reloaded"] and again["previous_state"] == "down"
        before = host.file(LB_FILES["b"]).content_string
        workers = nginx_workers(host)
        refused = nginx_backend(backend=LB["b"], state="down")
        assert refused.get("failed"), refused
        assert ("refusing to mark %s down: it is the last server that is up in %s (the others: %s down), and nginx would answer 502"
                % (LB["b"], LB_DIR, LB["a"])) in refused["msg"], refused["msg"]
        assert host.file(LB_FILES["b"]).content_string == before
        assert nginx_workers(host) == workers
        assert request(host, "lb", "/")["status"] == 200
    finally:
        restored = nginx_backend(backend=LB["a"], state="up")
    assert restored["changed"] and restored["state"] == "up"


def test_a_converge_marks_every_listed_server_up_and_removes_the_others(host, play, nginx_backend):
    assert nginx_backend(backend=LB["a"], state="down")["changed"]
    nginx_pid = main_pid(host, "nginx.service")
    third = "127.0.0.1:8103"
    result = play(ROLE, dict(converge_vars("lb"), nginx_upstream_servers=[LB["a"], third]))
    assert result.returncode == 0, result.stdout[-3000:]
    assert server_files(host) == server_files(host, LB_STAGE_DIR) == ["127.0.0.1_8101.conf", "127.0.0.1_8103.conf"]
    assert directives(host.file(LB_FILES["a"]).content_string) == ["server %s max_fails=3 fail_timeout=10s;" % LB["a"]]
    restored = play(ROLE, converge_vars("lb"))
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert server_files(host) == sorted(os.path.basename(path) for path in LB_FILES.values())
    assert main_pid(host, "nginx.service") == nginx_pid
