// Copyright (c) 2026, zerodown.deploy developers
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// A Node.js app written the way socket-activation tutorials write server.js:
// it takes the socket with server.listen({fd: 3}), keeps client connections
// alive for 65 s (keepAliveTimeout, the value load balancers ask for), and
// on SIGTERM calls server.close() and closeIdleConnections(). Answers like
// hello_wsgi.py (release.json next to it names the release, and its allowed_hosts
// and health_status break it on purpose; HELLO_BOOT_SECONDS
// delays the listen, like loading a framework). The benchmark and the
// Molecule scenarios restart it under load.
'use strict';
const fs = require('fs');
const http = require('http');
const os = require('os');

let settings = {};
try { settings = JSON.parse(fs.readFileSync('release.json', 'utf8')); } catch (err) { settings = {}; }
if (settings.crash_at_boot) { throw new Error('release.json says crash_at_boot: this release cannot start'); }
const release = settings.release || process.env.HELLO_RELEASE || 'dev';
const healthPaths = ['/health', '/healthz'];

const server = http.createServer((req, res) => {
  // release.json's allowed_hosts: answer 400 to any other Host, like a framework's host check.
  const host = (req.headers.host || '').replace(/:\d+$/, '');
  if (settings.allowed_hosts && !settings.allowed_hosts.includes(host)) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end('DisallowedHost');
    return;
  }
  if (settings.health_status && healthPaths.includes(req.url)) {
    res.writeHead(settings.health_status, { 'Content-Type': 'text/plain' });
    res.end('unhealthy');
    return;
  }
  let received = 0;
  req.on('data', (chunk) => { received += chunk.length; });
  req.on('end', () => {
    const body = JSON.stringify({ pid: process.pid, release, method: req.method, path: req.url, received,
      host: os.hostname() });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
      'X-Served-By': String(process.pid) });
    res.end(body);
  });
});
server.keepAliveTimeout = 65000;

setTimeout(() => server.listen({ fd: 3 }), 1000 * parseFloat(process.env.HELLO_BOOT_SECONDS || '0'));
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
