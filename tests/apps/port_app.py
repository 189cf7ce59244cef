# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sample app of proxy mode: it binds its own TCP port and cannot take an inherited socket.

It listens on 127.0.0.1:$PORT (the socket_service role's proxy mode sets
PORT to the slot's port), after PORT_APP_BOOT_SECONDS (default 1) of "boot",
so a naive restart has a window in which connections are refused.

Every response names the serving process (X-Served-By: pid). GET and POST /
answer 200 with the release name, GET /health 200, GET and POST /slow answer
after PORT_APP_SLOW_SECONDS (default 0.5), to keep requests in flight.

A release.json in the working directory names the release ({"release":
"v2"}) and can break it: {"crash_at_boot": true} exits before binding,
{"unhealthy": true} binds and answers, but /health answers 503.

    PORT=8001 python3 port_app.py
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _release_settings():
    try:
        with open("release.json", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


SETTINGS = _release_settings()
RELEASE = SETTINGS.get("release") or os.environ.get("PORT_APP_RELEASE", "dev")
SLOW_SECONDS = float(os.environ.get("PORT_APP_SLOW_SECONDS", "0.5"))


class Handler(BaseHTTPRequestHandler):
    """GET / and /health, POST / (the body is read and counted), GET and POST /slow."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", str(os.getpid()))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        received = len(self.rfile.read(length)) if length else 0
        path = self.path.split("?", 1)[0]
        if path == "/health":
            healthy = not SETTINGS.get("unhealthy")
            self._answer(200 if healthy else 503, {"healthy": healthy, "release": RELEASE})
            return
        if path == "/slow":
            time.sleep(SLOW_SECONDS)
        self._answer(200, {"pid": os.getpid(), "release": RELEASE, "method": method, "path": path,
                           "port": self.server.server_address[1], "received": received})

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


class Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of connections overflows it and the kernel
    # drops SYNs, which the client retries after a second. Real servers listen with more.
    request_queue_size = 1024
    daemon_threads = True


def main():
    port = int(os.environ["PORT"])
    time.sleep(float(os.environ.get("PORT_APP_BOOT_SECONDS", "1")))
    if SETTINGS.get("crash_at_boot"):
        sys.exit("release.json says crash_at_boot: this release cannot start")
    Server(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
