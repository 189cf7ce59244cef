// Copyright (c) 2026, zerodown.deploy developers
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// The Node.js sample app: serves on the socket systemd passes as fd 3
// (LISTEN_FDS), answers like hello_wsgi.py, and drains on SIGTERM.
'use strict';
const http = require('http');

const SD_LISTEN_FDS_START = 3;
if (parseInt(process.env.LISTEN_FDS || '0', 10) < 1) {
  console.error('hello_node: no socket from systemd (LISTEN_FDS unset): start me through the .socket unit');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  let received = 0;
  req.on('data', (chunk) => { received += chunk.length; });
  req.on('end', () => {
    const body = JSON.stringify({ pid: process.pid, release: process.env.HELLO_RELEASE || 'dev',
      method: req.method, path: req.url, received });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
      'X-Served-By': String(process.pid) });
    res.end(body);
  });
});

server.listen({ fd: SD_LISTEN_FDS_START });
// Stop accepting, finish what is in flight, then exit; queued connections
// stay in the socket's backlog for the next process.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections && server.closeIdleConnections();
});
