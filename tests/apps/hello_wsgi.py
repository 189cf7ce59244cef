# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sample app of the tests and the demo: a tiny WSGI app for gunicorn.

Every response names the serving process (X-Served-By: pid) so a load test
can tell old and new processes apart. HELLO_BOOT_SECONDS makes the app slow
to import, like a real framework, so a restart has a window to survive.
"""
import json
import os
import time

time.sleep(float(os.environ.get("HELLO_BOOT_SECONDS", "0")))
RELEASE = os.environ.get("HELLO_RELEASE", "dev")


def application(environ, start_response):
    """Answer GET / and /healthz, and POST anything (echoing the body size)."""
    method = environ["REQUEST_METHOD"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    received = len(environ["wsgi.input"].read(length)) if length else 0
    body = json.dumps({"pid": os.getpid(), "release": RELEASE, "method": method,
                       "path": environ.get("PATH_INFO", "/"), "received": received}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Served-By", str(os.getpid()))])
    return [body]
