# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hello_wsgi plus /headers, which answers with the request headers the app received.

Lets the tests see what a proxy in front of the app forwarded (Host,
X-Forwarded-*, X-Real-IP). Every other path is hello_wsgi's answer, with its
boot delay (HELLO_BOOT_SECONDS) and X-Served-By header. Install it next to
hello_wsgi.py and run ``gunicorn echo_wsgi:application``.
"""
import json
import os

from hello_wsgi import application as hello


def application(environ, start_response):
    """GET /headers: the HTTP headers received, as JSON; anything else: hello_wsgi."""
    if environ.get("PATH_INFO") != "/headers":
        return hello(environ, start_response)
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
    body = json.dumps({"pid": os.getpid(), "headers": headers, "remote_addr": environ.get("REMOTE_ADDR", ""),
                       "scheme": environ.get("wsgi.url_scheme", "")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Served-By", str(os.getpid()))])
    return [body]
