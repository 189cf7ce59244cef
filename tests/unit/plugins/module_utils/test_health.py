# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the readiness helpers: wait_healthy against real HTTP servers (TCP and Unix sockets), and the unit-state helpers."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._health import (
    BODY_EXCERPT,
    HealthOutcome,
    NotHealthy,
    is_healthy_status,
    wait_healthy,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._http import HttpResult, parse_endpoint


# -- servers -------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Answers every GET with the server's next scripted answer."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # keep test output clean

    def address_string(self):
        return 'test-client'  # Unix socket clients have no address; the default would fail

    def do_GET(self):
        status, body, delay = self.server.next_answer(self.path, self.headers.get('Host'))
        if delay:
            time.sleep(delay)
        payload = b'' if status in (204, 304) else body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(payload)))
        if 300 <= status < 400:
            self.send_header('Location', '/elsewhere')
        self.send_header('Connection', 'close')
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (a probe timeout): nothing to report


class _Scripted:
    """The answers a server gives, in order; the last one repeats for ever."""

    def script(self, *answers):
        self.lock = threading.Lock()
        self.answers = [self._normalise(a) for a in answers]
        self.seen = []

    @staticmethod
    def _normalise(answer):
        if isinstance(answer, int):
            return (answer, 'ok' if 200 <= answer < 300 else 'nope', 0)
        status, body = answer[0], answer[1]
        return (status, body, answer[2] if len(answer) > 2 else 0)

    def next_answer(self, path, host):
        with self.lock:
            self.seen.append((path, host))
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _TCPServer(_Scripted, ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _UnixServer(_Scripted, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def _serving(server, answers):
    server.script(*answers)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tcp_server():
    """tcp_server(*answers): a server on loopback TCP; an answer is a status, (status, body) or (status, body, delay_s)."""
    with contextlib.ExitStack() as stack:
        def make(*answers):
            server = stack.enter_context(_serving(_TCPServer(('127.0.0.1', 0), _Handler), answers or (200,)))
            server.endpoint = '127.0.0.1:%d' % server.server_address[1]
            return server
        yield make


@pytest.fixture
def unix_server(sock_dir):
    """unix_server(*answers): the same on a Unix socket."""
    with contextlib.ExitStack() as stack:
        def make(*answers):
            path = os.path.join(sock_dir, 'app.sock')
            server = stack.enter_context(_serving(_UnixServer(path, _Handler), answers or (200,)))
            server.endpoint = 'unix:' + path
            return server
        yield make


def _closed_port():
    """A loopback TCP port nobody listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _soon(seconds):
    return time.monotonic() + seconds


# -- wait_healthy ----------------------------------------------------------------


@pytest.mark.parametrize('status, healthy', [(None, False), (199, False), (200, True), (204, True), (299, True), (300, False),
                                             (302, False), (404, False), (503, False)])
def test_is_healthy_status_means_2xx_only(status, healthy):
    assert is_healthy_status(status) is healthy


@pytest.mark.parametrize('server_fixture', ['tcp_server', 'unix_server'])
def test_succeeds_after_n_in_a_row(request, server_fixture):
    server = request.getfixturevalue(server_fixture)(200)
    outcome = wait_healthy(server.endpoint, '/health', _soon(5), successes=3, interval=0.01)
    assert isinstance(outcome, HealthOutcome)
    assert outcome.attempts == 3 and outcome.streak == 3
    assert outcome.answers == {'HTTP 200': 3}
    assert outcome.last.status == 200 and outcome.last.text == 'ok'
    assert outcome.finished_at is not None and outcome.finished_at >= outcome.started_at
    assert [path for path, dummy in server.seen] == ['/health'] * 3


def test_one_success_is_enough_when_asked_for_one(tcp_server):
    server = tcp_server(200)
    outcome = wait_healthy(server.endpoint, '/ready', _soon(5), successes=1, interval=0.01)
    assert outcome.attempts == 1 and outcome.answers == {'HTTP 200': 1}
    assert server.seen == [('/ready', server.endpoint)]


def test_streak_resets_on_non_2xx(tcp_server):
    server = tcp_server(200, 200, 503, 200, 204, 200, 500)
    outcome = wait_healthy(server.endpoint, '/health', _soon(5), successes=3, interval=0.01)
    # 200 200 | 503 resets | 200 204 200: the third 2xx after the reset ends the wait, the trailing 500 is never asked for.
    assert outcome.attempts == 6 and outcome.streak == 3
    assert outcome.answers == {'HTTP 200': 4, 'HTTP 503': 1, 'HTTP 204': 1}
    assert len(server.seen) == 6


def test_3xx_is_not_healthy(tcp_server):
    server = tcp_server(200, 302, 200, 301, 200, 200)
    outcome = wait_healthy(server.endpoint, '/health', _soon(5), successes=2, interval=0.01)
    assert outcome.attempts == 6
    assert outcome.answers == {'HTTP 200': 4, 'HTTP 302': 1, 'HTTP 301': 1}


def test_only_redirects_never_become_healthy(tcp_server):
    server = tcp_server((302, 'moved'))
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.3), successes=1, interval=0.01)
    assert exc.value.outcome.streak == 0
    assert set(exc.value.outcome.answers) == {'HTTP 302'}
    assert 'last answer: HTTP 302' in str(exc.value)


def test_deadline_raises_with_tally_and_last_answer(tcp_server):
    server = tcp_server(200, 503, 200, 503, (503, 'database down\nretry later'))
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.4), successes=3, interval=0.01, what='ready_timeout', limit=0.4)
    outcome = exc.value.outcome
    assert outcome.attempts >= 5 and outcome.streak == 0
    assert outcome.answers == {'HTTP 200': 2, 'HTTP 503': outcome.attempts - 2}
    assert outcome.finished_at is not None
    message = str(exc.value)
    assert message == ("health check GET /health through %s did not answer 2xx 3 times in a row within ready_timeout (0.4 s); "
                       "last answer: HTTP 503 'database down retry later'; answers: HTTP 503 x%d, HTTP 200 x2"
                       % (server.endpoint, outcome.attempts - 2))


def test_deadline_message_without_a_limit_says_so(unix_server):
    server = unix_server(500)
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.1), successes=2, interval=0.01, what='timeout')
    assert 'did not answer 2xx 2 times in a row within timeout (? s)' in str(exc.value)
    assert 'through %s ' % server.endpoint in str(exc.value)


def test_last_answer_body_is_an_excerpt(tcp_server):
    server = tcp_server((500, 'x' * 1000))
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.05), successes=1, interval=0.01)
    assert "last answer: HTTP 500 '%s';" % ('x' * BODY_EXCERPT) in str(exc.value)
    assert 'x' * (BODY_EXCERPT + 1) not in str(exc.value)
    assert exc.value.outcome.to_dict()['last']['body'] == 'x' * BODY_EXCERPT


def test_last_answer_without_a_body_is_just_the_status(tcp_server):
    server = tcp_server((503, '  \n'))
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.05), successes=1, interval=0.01)
    assert 'last answer: HTTP 503; answers: HTTP 503 x' in str(exc.value)


def test_abort_reason_ends_the_wait_early(tcp_server):
    server = tcp_server(503)
    calls = []

    def abort():
        calls.append(time.monotonic())
        return 'stopped early because app.service failed' if len(calls) == 3 else None

    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(30), successes=3, interval=0.01, abort=abort, limit=30)
    assert len(calls) == 3 and exc.value.outcome.attempts == 3 and len(server.seen) == 3
    message = str(exc.value)
    assert message.startswith('health check GET /health through %s stopped early because app.service failed; ' % server.endpoint)
    assert 'did not answer' not in message
    assert message.endswith('last answer: HTTP 503 \'nope\'; answers: HTTP 503 x3')
    assert exc.value.outcome.to_dict()['elapsed_s'] < 30


def test_abort_is_not_asked_once_healthy(tcp_server):
    server = tcp_server(200)
    calls = []
    outcome = wait_healthy(server.endpoint, '/health', _soon(5), successes=2, interval=0.01, abort=lambda: calls.append(1))
    assert outcome.attempts == 2
    assert len(calls) == 1  # between the two probes only, never after the last one


def test_abort_reason_wins_over_the_deadline(tcp_server):
    server = tcp_server(503)
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', time.monotonic() - 1, successes=1, abort=lambda: 'the unit died')
    assert ' the unit died; ' in str(exc.value) and 'did not answer' not in str(exc.value)


def test_connection_refused_is_counted_by_kind():
    endpoint = '127.0.0.1:%d' % _closed_port()
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(endpoint, '/health', _soon(0.2), successes=1, interval=0.01, what='timeout', limit=0.2)
    outcome = exc.value.outcome
    assert outcome.attempts >= 2
    assert outcome.answers == {'connect_refused': outcome.attempts}
    assert outcome.last.status is None and outcome.last.kind == 'connect_refused'
    assert 'last answer: connect_refused (ConnectionRefusedError: ' in str(exc.value)
    assert str(exc.value).endswith('; answers: connect_refused x%d' % outcome.attempts)


def test_missing_unix_socket_counts_as_refused(sock_dir):
    endpoint = 'unix:' + os.path.join(sock_dir, 'nobody.sock')
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(endpoint, '/health', _soon(0.1), successes=1, interval=0.01)
    assert set(exc.value.outcome.answers) == {'connect_refused'}


def test_refused_then_server_comes_up(sock_dir):
    # The server starts from the abort hook after the second probe, so the order of events is fixed.
    path = os.path.join(sock_dir, 'late.sock')
    started = []

    def abort():
        if abort.calls == 1:
            started.append(stack.enter_context(_serving(_UnixServer(path, _Handler), (200,))))
        abort.calls += 1
        return None

    abort.calls = 0
    with contextlib.ExitStack() as stack:
        outcome = wait_healthy('unix:' + path, '/health', _soon(10), successes=2, interval=0.01, abort=abort)
        assert outcome.attempts == 4
        assert outcome.answers == {'connect_refused': 2, 'HTTP 200': 2}
        assert outcome.tally() == 'connect_refused x2, HTTP 200 x2'  # ties keep the order first seen
        assert len(started[0].seen) == 2


def test_probe_timeout_is_counted_as_timeout(tcp_server):
    server = tcp_server((200, 'slow', 2))
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.1), successes=1, probe_timeout=0.1, interval=0.01)
    assert exc.value.outcome.answers == {'timeout': exc.value.outcome.attempts}
    assert exc.value.outcome.to_dict()['last']['kind'] == 'timeout'


def test_a_probe_near_the_deadline_still_gets_time_to_answer(tcp_server):
    # The deadline has passed, but the probe still gets PROBE_MIN_TIMEOUT (1 s) instead of no time at all.
    server = tcp_server((200, 'late but fine', 0.3))
    outcome = wait_healthy(server.endpoint, '/health', time.monotonic() - 1, successes=1, probe_timeout=5)
    assert outcome.attempts == 1 and outcome.answers == {'HTTP 200': 1}


def test_deadline_in_the_past_still_probes_once(tcp_server):
    server = tcp_server(200)
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', time.monotonic() - 1, successes=2, interval=0.01)
    assert exc.value.outcome.attempts == 1 and len(server.seen) == 1
    assert exc.value.outcome.streak == 1
    assert 'answers: HTTP 200 x1' in str(exc.value)


def test_interval_spaces_the_probes(tcp_server):
    server = tcp_server(503)
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.5), successes=1, interval=0.2)
    # Probes at about 0, 0.2, 0.4 and (the last, at the deadline) 0.5 s: never one per millisecond.
    assert 2 <= exc.value.outcome.attempts <= 4


def test_interval_does_not_stretch_the_wait_past_the_deadline(tcp_server):
    server = tcp_server(503)
    started = time.monotonic()
    with pytest.raises(NotHealthy) as exc:
        wait_healthy(server.endpoint, '/health', _soon(0.2), successes=1, interval=10)
    assert time.monotonic() - started < 5  # not 10 s of sleep after a 0.2 s timeout
    # One probe at the start, one at the deadline (only one if the first took the whole 0.2 s).
    assert exc.value.outcome.attempts in (1, 2) and len(server.seen) == exc.value.outcome.attempts


def test_host_header_and_endpoint_object(tcp_server):
    server = tcp_server(200)
    wait_healthy(parse_endpoint(server.endpoint), '/health?full=1', _soon(5), successes=2, host_header='shop.example.com', interval=0)
    assert server.seen == [('/health?full=1', 'shop.example.com')] * 2


def test_unix_socket_default_host_header(unix_server):
    server = unix_server(200)
    wait_healthy(server.endpoint, '/health', _soon(5), successes=1)
    assert server.seen == [('/health', 'localhost')]


# -- HealthOutcome -------------------------------------------------------------------


def _answer(status=None, body=b'', kind=None, error=None):
    result = HttpResult('GET', '/health')
    result.status, result.body, result.kind, result.error = status, body, kind, error
    result.ok = status is not None and status < 400
    return result


def test_outcome_to_dict_before_any_probe():
    data = HealthOutcome().to_dict()
    assert data['attempts'] == 0 and data['streak'] == 0 and data['answers'] == {} and data['last'] is None
    assert isinstance(data['elapsed_s'], float) and 0 <= data['elapsed_s'] < 5
    assert HealthOutcome().last_text() == 'none'
    assert HealthOutcome().tally() == ''


def test_outcome_to_dict_with_http_answer():
    outcome = HealthOutcome()
    outcome.record(_answer(503))
    outcome.record(_answer(200, b'ok\n'))
    data = outcome.to_dict()
    assert data['attempts'] == 2 and data['streak'] == 1
    assert data['answers'] == {'HTTP 503': 1, 'HTTP 200': 1}
    assert data['last'] == {'status': 200, 'kind': None, 'error': None, 'body': 'ok\n'}
    assert set(data) == {'attempts', 'streak', 'answers', 'last', 'elapsed_s'}


def test_outcome_to_dict_with_failure_has_no_body():
    outcome = HealthOutcome()
    outcome.record(_answer(kind='connect_refused', error='ConnectionRefusedError: [Errno 111] Connection refused'))
    data = outcome.to_dict()
    assert data['streak'] == 0 and data['answers'] == {'connect_refused': 1}
    assert data['last'] == {'status': None, 'kind': 'connect_refused', 'error': 'ConnectionRefusedError: [Errno 111] Connection refused',
                            'body': None}
    assert outcome.last_text() == 'connect_refused (ConnectionRefusedError: [Errno 111] Connection refused)'


def test_outcome_body_excerpt_and_non_utf8():
    outcome = HealthOutcome()
    outcome.record(_answer(500, b'\xff' + b'y' * 1000))
    data = outcome.to_dict()
    assert data['last']['body'] == '\ufffd' + 'y' * (BODY_EXCERPT - 1)
    assert outcome.last_text() == 'HTTP 500 %r' % ('\ufffd' + 'y' * (BODY_EXCERPT - 1))


def test_outcome_elapsed_is_frozen_once_finished():
    outcome = HealthOutcome()
    outcome.started_at -= 2.5
    outcome.finished_at = outcome.started_at + 1.25
    first = outcome.to_dict()['elapsed_s']
    time.sleep(0.02)
    assert first == outcome.to_dict()['elapsed_s'] == 1.25


def test_outcome_elapsed_runs_while_unfinished():
    outcome = HealthOutcome()
    outcome.started_at -= 2.5
    assert outcome.to_dict()['elapsed_s'] >= 2.5


def test_outcome_tally_most_frequent_first():
    outcome = HealthOutcome()
    for answer in (_answer(200), _answer(kind='reset', error='x'), _answer(503), _answer(503), _answer(503), _answer(kind='reset', error='x')):
        outcome.record(answer)
    assert outcome.tally() == 'HTTP 503 x3, reset x2, HTTP 200 x1'
    assert outcome.attempts == 6 and outcome.streak == 0


def test_outcome_streak_counts_consecutive_2xx_only():
    outcome = HealthOutcome()
    streaks = []
    for status in (200, 201, 302, 200, 299, 204, 400):
        outcome.record(_answer(status))
        streaks.append(outcome.streak)
    assert streaks == [1, 2, 0, 1, 2, 3, 0]


class _States:
    """show_many of a systemd client: the states the test sets."""

    def __init__(self, states):
        self.states = states

    def show_many(self, units):
        return dict((unit, self.states[unit]) for unit in units)


def test_a_unit_restarted_by_systemd_after_this_run_started_it_counts_as_dead():
    from ansible_collections.zerodown.deploy.plugins.module_utils._health import UnitWatch  # pylint: disable=import-outside-toplevel
    running = {'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running', 'NRestarts': '0'}
    systemd = _States({'shop@3.service': dict(running), 'shop.service': dict(running, NRestarts='4')})
    # shop.service restarted long ago and is not watched for restarts; shop@3 was started by this run.
    watch = UnitWatch(systemd, ['shop@3.service', 'shop.service'], restarts={'shop@3.service': 0})
    assert watch() is None
    systemd.states['shop@3.service']['NRestarts'] = '1'
    assert watch() == ('stopped early because shop@3.service was restarted by systemd 1 time(s) after it was started for this '
                       'restart (it crashed or was killed)')
    assert UnitWatch(systemd, ['shop@3.service'])() is None
