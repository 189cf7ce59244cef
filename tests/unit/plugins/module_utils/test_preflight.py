# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_preflight: the candidate on a private socket, probed, and always removed.

The candidate's "socket" is a real Unix socket served by a small HTTP server
in the test (conftest's helpers), systemd is a fake, and the unit files go to
a temporary directory.
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn, UnixStreamServer

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._preflight import Candidate, PreflightError


class _Server(ThreadingMixIn, UnixStreamServer):
    daemon_threads = True


def serve(path, status):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            self.send_response(status)
            self.send_header('Content-Length', '2')
            self.end_headers()
            self.wfile.write(b'ok')

        def log_message(self, *args):
            pass

        def address_string(self):
            return 'unix'

    server = _Server(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class FakeSystemd:
    def __init__(self, start_rc=0, state='active', journal='', verify=(True, '')):
        self.start_rc = start_rc
        self.state = state
        self.journal_text = journal
        self.verify_answer = verify
        self.score = 1.2
        self.scored = None
        self.verified = []
        self.calls = []

    def verify(self, paths):
        # What systemd-analyze would read: the staged files, which exist while it runs.
        self.verified.append([(os.path.basename(path), open(path, encoding='utf-8').read()) for path in paths])
        return self.verify_answer

    def security(self, path, offline=False):
        self.scored = (os.path.basename(path), os.path.exists(path), offline)
        return self.score, 'PrivateNetwork=', ''

    def daemon_reload(self):
        self.calls.append(('daemon-reload',))

    def run(self, verb, units, check=True, extra=()):
        self.calls.append((verb,) + tuple(units))
        rc = self.start_rc if verb == 'start' and units[0].endswith('.service') else 0
        return {'rc': rc}

    def show(self, unit):
        return {'LoadState': 'loaded', 'ActiveState': self.state, 'Result': 'exit-code' if self.state == 'failed' else 'success',
                'ExecMainStatus': '1' if self.state == 'failed' else '0'}

    def describe(self, unit):
        return '%s: ActiveState=%s' % (unit, self.state)

    def journal(self, units, lines=20, since=None):
        return self.journal_text

    def reset_failed(self, units):
        self.calls.append(('reset-failed',) + tuple(units))


def candidate(tmp_path, systemd, endpoint, timeout=2.0):
    units = {'hello-preflight.socket': '[Socket]\n', 'hello-preflight.service': '[Service]\n'}
    return Candidate(systemd, 'hello-preflight.socket', 'hello-preflight.service', units, endpoint, '/health', timeout,
                     unit_dir=str(tmp_path), what='/usr/bin/gunicorn app')


def assert_cleaned_up(tmp_path, systemd):
    assert os.listdir(tmp_path) == [] or all(not name.startswith('hello-preflight') for name in os.listdir(tmp_path))
    kill = systemd.calls.index(('kill', 'hello-preflight.service'))
    assert systemd.calls[kill + 1] == ('stop', 'hello-preflight.service', 'hello-preflight.socket')
    assert systemd.calls[-1] == ('reset-failed', 'hello-preflight.service', 'hello-preflight.socket')


def test_a_healthy_candidate_passes_and_is_removed(tmp_path, sock_dir):
    path = os.path.join(sock_dir, 'pf.sock')
    server = serve(path, 200)
    try:
        systemd = FakeSystemd()
        result = candidate(tmp_path, systemd, 'unix:' + path).run()
    finally:
        server.shutdown()
    assert result['answers'] == {'HTTP 200': 3} and result['changed'] is False
    # Started explicitly, socket first: a crash at boot shows at once.
    assert systemd.calls[:3] == [('daemon-reload',), ('start', 'hello-preflight.socket'), ('start', 'hello-preflight.service')]
    assert_cleaned_up(tmp_path, systemd)


def test_a_candidate_that_answers_500_fails_and_is_removed(tmp_path, sock_dir):
    path = os.path.join(sock_dir, 'pf.sock')
    server = serve(path, 500)
    try:
        systemd = FakeSystemd(journal='Traceback: boom')
        with pytest.raises(PreflightError) as exc:
            candidate(tmp_path, systemd, 'unix:' + path, timeout=0.5).run()
    finally:
        server.shutdown()
    assert exc.value.msg.startswith('socket_service: pre-flight of /usr/bin/gunicorn app failed; nothing live was touched.')
    assert 'HTTP 500' in exc.value.msg and 'last journal lines: Traceback: boom' in exc.value.msg
    assert_cleaned_up(tmp_path, systemd)


def test_a_candidate_that_dies_ends_the_wait_at_once(tmp_path, sock_dir):
    systemd = FakeSystemd(state='failed', journal='RuntimeError: crash_at_boot')
    with pytest.raises(PreflightError) as exc:
        candidate(tmp_path, systemd, 'unix:' + os.path.join(sock_dir, 'none.sock'), timeout=30).run()
    assert 'stopped early because hello-preflight.service failed' in exc.value.msg
    assert 'crash_at_boot' in exc.value.msg
    assert_cleaned_up(tmp_path, systemd)


def test_a_candidate_that_does_not_start_fails_with_its_state(tmp_path, sock_dir):
    systemd = FakeSystemd(start_rc=1, state='failed')
    with pytest.raises(PreflightError) as exc:
        candidate(tmp_path, systemd, 'unix:' + os.path.join(sock_dir, 'none.sock')).run()
    assert 'hello-preflight.service did not start' in exc.value.msg
    assert_cleaned_up(tmp_path, systemd)


def test_the_candidates_units_are_verified_before_systemd_sees_them(tmp_path, sock_dir):
    path = os.path.join(sock_dir, 'pf.sock')
    server = serve(path, 200)
    try:
        systemd = FakeSystemd()
        candidate(tmp_path, systemd, 'unix:' + path).run()
    finally:
        server.shutdown()
    assert systemd.verified == [[('hello-preflight.socket', '[Socket]\n'), ('hello-preflight.service', '[Service]\n')]]


def test_a_candidate_whose_units_fail_verify_is_never_started(tmp_path):
    systemd = FakeSystemd(verify=(False, 'hello-preflight.service:3: Unknown key name \'ExecStartPr\' in section \'Service\''))
    with pytest.raises(PreflightError, match="its units failed `systemd-analyze verify`: hello-preflight.service:3: Unknown key"):
        candidate(tmp_path, systemd, 'unix:/nonexistent.sock').run()
    assert ('daemon-reload',) not in systemd.calls and not any(call[0] == 'start' for call in systemd.calls)
    assert not any(name.startswith('hello-preflight') for name in os.listdir(tmp_path))


def test_a_socket_that_would_change_is_seen_and_a_first_install_is_not(tmp_path):
    from ansible_collections.zerodown.deploy.plugins.module_utils._preflight import socket_would_change  # pylint: disable=import-outside-toplevel
    unit = tmp_path / 'shop.socket'
    assert socket_would_change(str(unit), '[Socket]\nListenStream=/run/shop.sock\n') is False
    unit.write_text('[Socket]\nListenStream=/run/shop.sock\n')
    assert socket_would_change(str(unit), '[Socket]\nListenStream=/run/shop.sock\n') is False
    assert socket_would_change(str(unit), '[Socket]\nListenStream=/run/shop/shop.sock\n') is True


def test_a_candidate_above_its_exposure_limit_is_never_started(tmp_path):
    systemd = FakeSystemd()
    systemd.score = 9.6
    unit = candidate(tmp_path, systemd, 'unix:/nonexistent.sock')
    unit.exposure_limit = 1.5
    with pytest.raises(PreflightError, match='its service scores 9.6 in `systemd-analyze security`, above the limit 1.5'):
        unit.run()
    assert systemd.scored == ('hello-preflight.service', True, True)
    assert not any(call[0] == 'start' for call in systemd.calls)
