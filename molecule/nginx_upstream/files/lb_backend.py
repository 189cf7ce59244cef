# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny app server for the drain test: python3 lb_backend.py PORT NAME DELAY.

Answers every GET and POST on 127.0.0.1:PORT after DELAY seconds (so that
some requests are always in flight when it is killed) and names itself in
X-Served-By as NAME-PID. No socket activation: when it dies, its port is
closed until it is started again.
"""
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, NAME, DELAY = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
MARK = "%s-%d" % (NAME, os.getpid())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(DELAY)
        body = ("%s %s %s\n" % (MARK, self.command, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", MARK)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128


Server(("127.0.0.1", PORT), Handler).serve_forever()
