# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ASGI sample app, for uvicorn on the socket systemd passes (``uvicorn --fd 3 hello_asgi:app``).

It answers like hello_wsgi.py (the release, the serving pid in X-Served-By,
POST bodies counted, release.json's crash_at_boot, allowed_hosts and
health_status) and takes HELLO_BOOT_SECONDS to import. It is here because of
how uvicorn stops: on SIGTERM it closes the connections it accepted but had
not read a request from yet, so a client that connected just before gets
an empty answer (nginx: 502). A deploy must never send a connection to a
process that is about to stop.
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


async def _answer(send, status, body, content_type="text/plain", extra=()):
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())] + list(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    """Answer GET / and /healthz, and POST anything (echoing the body size)."""
    if scope["type"] != "http":
        return
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0]
    if ALLOWED_HOSTS is not None and host not in ALLOWED_HOSTS:
        return await _answer(send, 400, b"DisallowedHost")
    if HEALTH_STATUS and scope["path"] in HEALTH_PATHS:
        return await _answer(send, HEALTH_STATUS, b"unhealthy")
    received = 0
    more = True
    while more:
        message = await receive()
        received += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"pid": os.getpid(), "release": RELEASE, "method": scope["method"], "path": scope["path"],
                       "received": received, "host": HOSTNAME}).encode()
    await _answer(send, 200, body, "application/json", [(b"x-served-by", str(os.getpid()).encode())])
