# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sample app of the tests and the demo: a tiny WSGI app for gunicorn.

Every response names the serving process (X-Served-By: pid) so a load test
can tell old and new processes apart. HELLO_BOOT_SECONDS makes the app slow
to import, like a real framework, so a restart has a window to survive.

A release.json next to the app (in the working directory) lets a test ship
releases that differ: {"release": "v2"} names it, {"crash_at_boot": true}
makes it die at import (a missing dependency), and {"allowed_hosts": [...]}
answers 400 to any other Host header, like Django's ALLOWED_HOSTS set for a
laptop: fine when probed as localhost, broken behind the real server name.
{"health_status": 503} makes the health paths answer that while every other
path still answers 200: a release that only its health check finds broken.
Every answer names the host too, for tests behind a load balancer.
"""
import json
import os
import socket
import time

time.sleep(float(os.environ.get("HELLO_BOOT_SECONDS", "0")))


def _release_settings():
    try:
        with open("release.json") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


SETTINGS = _release_settings()
if SETTINGS.get("crash_at_boot"):
    raise RuntimeError("release.json says crash_at_boot: this release cannot start")
RELEASE = SETTINGS.get("release") or os.environ.get("HELLO_RELEASE", "dev")
ALLOWED_HOSTS = SETTINGS.get("allowed_hosts")
HEALTH_STATUS = SETTINGS.get("health_status")
HEALTH_PATHS = ("/health", "/healthz")
HOSTNAME = socket.gethostname()


def application(environ, start_response):
    """Answer GET / and /healthz, and POST anything (echoing the body size)."""
    method = environ["REQUEST_METHOD"]
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
    if ALLOWED_HOSTS is not None and host not in ALLOWED_HOSTS:
        body = b"DisallowedHost"
        start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if HEALTH_STATUS and environ.get("PATH_INFO") in HEALTH_PATHS:
        body = b"unhealthy"
        start_response("%d Unhealthy" % HEALTH_STATUS, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    received = len(environ["wsgi.input"].read(length)) if length else 0
    body = json.dumps({"pid": os.getpid(), "release": RELEASE, "method": method,
                       "path": environ.get("PATH_INFO", "/"), "received": received, "host": HOSTNAME}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Served-By", str(os.getpid()))])
    return [body]
