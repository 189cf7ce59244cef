# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the HTTP client against real servers on loopback TCP and Unix sockets in a temporary directory."""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import socket
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _http
from ansible_collections.zerodown.deploy.plugins.module_utils._http import (
    FAILURE_KINDS,
    Endpoint,
    HttpClient,
    classify_exception,
    classify_status,
    parse_endpoint,
    request,
)


# -- servers -------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """A well-behaved HTTP/1.1 server with a few routes that produce each status class."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # keep test output clean

    def address_string(self):
        return 'test-client'  # Unix socket clients have no address; the default would fail

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def _reply(self, status, body=b'', headers=None):
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Pid', '4242')
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.seen.append(('GET', self.path, self.headers.get('Host'), self.headers.get('Connection')))
        if self.path == '/ok':
            self._reply(200, b'ok pid=4242')
        elif self.path.startswith('/status/'):
            status = int(self.path.rsplit('/', 1)[1])
            self._reply(status, b'status', {'Location': '/ok'} if status in (301, 302) else None)
        elif self.path == '/big':
            self._reply(200, b'x' * 5000)
        else:
            self._reply(404, b'not found')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.server.seen.append(('POST', self.path, self.headers.get('Host'), body))
        self._reply(200, b'echo:' + body)


def _init_state(server):
    server.lock = threading.Lock()
    server.connections = 0
    server.seen = []


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def _serving(server):
    _init_state(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tcp_server():
    with _serving(_TCPServer(('127.0.0.1', 0), _Handler)) as server:
        server.endpoint = '127.0.0.1:%d' % server.server_address[1]
        yield server


@pytest.fixture
def unix_server(sock_dir):
    path = os.path.join(sock_dir, 'app.sock')
    with _serving(_UnixServer(path, _Handler)) as server:
        server.endpoint = 'unix:' + path
        yield server


def _read_request(conn):
    """Read one request head from a raw connection."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class _RawServer:
    """Accepts connections and hands each to ``behaviour(conn, stop_event)``: for misbehaving servers."""

    def __init__(self, behaviour, unix_path=None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.endpoint = 'unix:' + unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(('127.0.0.1', 0))
            self.endpoint = '127.0.0.1:%d' % self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.behaviour = behaviour
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _addr = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(5)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            self.behaviour(conn, self.stop_event)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop_event.set()
        self.thread.join(5)
        self.sock.close()


def _close_after_request(conn, stop_event):
    _read_request(conn)  # then close cleanly: the client sees EOF instead of a status line


def _reset_after_request(conn, stop_event):
    # Close while the request is still unread: Linux answers with RST (TCP) or ECONNRESET (Unix).
    conn.recv(1, socket.MSG_PEEK)
    if conn.family == socket.AF_INET:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))


def _garbage_reply(conn, stop_event):
    _read_request(conn)
    conn.sendall(b'THIS IS NOT HTTP\r\n\r\n')


def _truncated_body(conn, stop_event):
    _read_request(conn)
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-some')


def _chunked_reply(conn, stop_event):
    _read_request(conn)
    conn.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')


def _sleep_forever(conn, stop_event):
    _read_request(conn)
    stop_event.wait(5)


@contextlib.contextmanager
def _raw(behaviour, unix_path=None):
    server = _RawServer(behaviour, unix_path)
    try:
        yield server
    finally:
        server.close()


# -- endpoint parsing -----------------------------------------------------------


@pytest.mark.parametrize('text, family, where, port, host_header', [
    ('unix:/run/x.sock', 'unix', '/run/x.sock', None, 'localhost'),
    ('/run/x.sock', 'unix', '/run/x.sock', None, 'localhost'),
    ('  /run/x.sock  ', 'unix', '/run/x.sock', None, 'localhost'),
    ('127.0.0.1:8000', 'tcp', '127.0.0.1', 8000, '127.0.0.1:8000'),
    ('localhost:1', 'tcp', 'localhost', 1, 'localhost:1'),
    ('[::1]:8000', 'tcp', '::1', 8000, '[::1]:8000'),
    ('http://127.0.0.1:8080', 'tcp', '127.0.0.1', 8080, '127.0.0.1:8080'),
    ('http://app.internal/', 'tcp', 'app.internal', 80, 'app.internal:80'),
    ('HTTP://[fe80::1]:65535', 'tcp', 'fe80::1', 65535, '[fe80::1]:65535'),
])
def test_parse_endpoint_accepts(text, family, where, port, host_header):
    endpoint = parse_endpoint(text)
    assert endpoint.family == family
    assert (endpoint.path if family == 'unix' else endpoint.host) == where
    assert endpoint.port == port
    assert endpoint.host_header == host_header
    assert parse_endpoint(endpoint) is endpoint
    assert parse_endpoint(str(endpoint)) == endpoint


@pytest.mark.parametrize('text, message', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('unix:', 'empty Unix socket path'),
    ('unix:/run/my app.sock', 'whitespace'),
    ('/' + 'x' * 120, 'longer than 107'),
    ('127.0.0.1', 'port is required'),
    ('127.0.0.1:', 'is not a number'),
    ('127.0.0.1:http', 'is not a number'),
    ('127.0.0.1:0', 'out of range'),
    ('127.0.0.1:65536', 'out of range'),
    (':8000', 'empty host'),
    ('::1:8000', 'must be written in brackets'),
    ('[::1:8000', 'unclosed'),
    ('[nothost]:80', 'not an IPv6 address'),
    ('[::1]x80', 'unexpected text'),
    ('https://example.org', 'https is not supported'),
    ('ftp://example.org:21', 'unsupported scheme'),
    ('http://127.0.0.1:8000/healthz', 'must not contain a path'),
    ('user@host:22', 'invalid character'),
])
def test_parse_endpoint_rejects(text, message):
    with pytest.raises(ValueError) as info:
        parse_endpoint(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)  # the error names the offending input


def test_parse_endpoint_rejects_non_strings():
    with pytest.raises(ValueError, match='expected a string'):
        parse_endpoint(8000)


# -- successful requests ----------------------------------------------------------


@pytest.mark.parametrize('server_fixture', ['tcp_server', 'unix_server'])
def test_get_and_post(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    result = _http.request(server.endpoint, 'GET', '/ok')
    assert result.ok and result.kind is None and result.error is None
    assert result.status == 200
    assert result.body == b'ok pid=4242'
    assert result.header('x-pid') == '4242' and result.header('X-PID') == '4242'
    assert 0 < result.elapsed < 2
    assert result.connect_elapsed is not None and result.connect_elapsed <= result.elapsed

    result = _http.request(server.endpoint, 'POST', '/submit', body='a=1&b=\u00e9')
    assert result.ok and result.status == 200
    assert result.body == 'echo:a=1&b=\u00e9'.encode('utf-8')

    expected_host = 'localhost' if server_fixture == 'unix_server' else server.endpoint
    assert server.seen[0] == ('GET', '/ok', expected_host, 'close')
    assert server.seen[1] == ('POST', '/submit', expected_host, 'a=1&b=\u00e9'.encode('utf-8'))


def test_post_without_body_sends_content_length_zero(tcp_server):
    result = request(tcp_server.endpoint, 'POST', '/empty')
    assert result.ok
    assert tcp_server.seen == [('POST', '/empty', tcp_server.endpoint, b'')]


def test_custom_host_and_headers(unix_server):
    result = request(unix_server.endpoint, 'GET', '/ok', host_header='shop.example', headers={'connection': 'close', 'X-Test': '1'})
    assert result.ok
    assert unix_server.seen[0][2] == 'shop.example'


def test_redirect_counts_as_success(tcp_server):
    result = request(tcp_server.endpoint, 'GET', '/status/302')
    assert result.ok and result.status == 302 and result.kind is None


def test_one_connection_per_request_by_default(tcp_server):
    with HttpClient(tcp_server.endpoint) as client:
        results = [client.request('GET', '/ok') for _i in range(3)]
    assert all(r.ok and not r.reused for r in results)
    assert tcp_server.connections == 3


@pytest.mark.parametrize('server_fixture', ['tcp_server', 'unix_server'])
def test_keep_alive_reuses_the_connection(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    with HttpClient(server.endpoint, keep_alive=True) as client:
        results = [client.request('GET', '/ok'), client.request('POST', '/p', body=b'x'), client.request('GET', '/ok')]
    assert [r.ok for r in results] == [True, True, True]
    assert [r.reused for r in results] == [False, True, True]
    assert results[1].connect_elapsed is None
    assert server.connections == 1


def test_keep_alive_after_server_closed_the_connection_is_flagged_reused(sock_dir):
    # One good response that keeps the connection open, then the server closes it: the next
    # request on the stale connection fails and says it was a reused connection.
    def one_reply_then_close(conn, stop_event):
        _read_request(conn)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        time.sleep(0.05)

    with _raw(one_reply_then_close, os.path.join(sock_dir, 'ka.sock')) as server:
        with HttpClient(server.endpoint, keep_alive=True, timeout=2) as client:
            first = client.request('GET', '/')
            time.sleep(0.2)
            second = client.request('GET', '/')
            third = client.request('GET', '/')
    assert first.ok and not first.reused
    assert not second.ok and second.reused and second.kind in ('eof', 'reset')
    assert third.ok and not third.reused  # a failed connection is dropped, the next one is fresh


def test_body_is_truncated_at_max_body(tcp_server):
    result = request(tcp_server.endpoint, 'GET', '/big', max_body=100)
    assert result.ok and result.truncated
    assert result.body == b'x' * 100


def test_chunked_response(sock_dir):
    with _raw(_chunked_reply, os.path.join(sock_dir, 'chunked.sock')) as server:
        result = request(server.endpoint, 'GET', '/')
    assert result.ok and result.body == b'hello world'


def test_to_dict_is_plain_data(tcp_server):
    data = request(tcp_server.endpoint, 'GET', '/ok').to_dict(include_body=True)
    assert data['ok'] is True and data['status'] == 200 and data['body'] == 'ok pid=4242'
    assert data['headers']['x-pid'] == '4242'


@pytest.mark.parametrize('method, path, body, message', [
    ('GET', 'ok', None, 'must start with "/"'),
    ('GET', '/a b', None, 'must start with "/"'),
    ('GET', '/a\r\nX: y', None, 'must start with "/"'),
    ('G ET', '/', None, 'invalid HTTP method'),
    ('GET', '/', 42, 'must be str or bytes'),
])
def test_invalid_arguments_raise_value_error(tcp_server, method, path, body, message):
    with pytest.raises(ValueError, match=message):
        request(tcp_server.endpoint, method, path, body=body)


def test_invalid_client_options_raise_value_error():
    with pytest.raises(ValueError, match='invalid header'):
        HttpClient('127.0.0.1:1', headers={'X-Bad': 'a\r\nInjected: 1'})
    with pytest.raises(ValueError, match='invalid header'):
        HttpClient('127.0.0.1:1', headers=[('Bad Name', '1')])
    with pytest.raises(ValueError, match='max_body must be'):
        HttpClient('127.0.0.1:1', max_body=-1)


def test_invalid_timeouts_raise_value_error():
    for bad in (0, -1, float('inf'), 'x', True):
        with pytest.raises(ValueError, match='timeout must be a positive number'):
            HttpClient('127.0.0.1:1', timeout=bad)


# -- failure classification -------------------------------------------------------


def test_http_status_classification(tcp_server):
    assert request(tcp_server.endpoint, 'GET', '/status/503').kind == 'http_5xx'
    assert request(tcp_server.endpoint, 'GET', '/status/500').kind == 'http_5xx'
    result = request(tcp_server.endpoint, 'GET', '/status/404')
    assert not result.ok and result.kind == 'http_other' and result.status == 404
    assert result.error == 'HTTP 404 Not Found'
    assert [classify_status(s) for s in (200, 204, 301, 399, 400, 499, 500, 599)] == [
        None, None, None, None, 'http_other', 'http_other', 'http_5xx', 'http_5xx']


def test_refused_on_a_closed_tcp_port():
    # A bound socket that is not listening answers SYN with RST, deterministically.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as placeholder:
        placeholder.bind(('127.0.0.1', 0))
        result = request('127.0.0.1:%d' % placeholder.getsockname()[1], timeout=2)
    assert not result.ok and result.kind == 'connect_refused' and result.status is None
    assert 'ConnectionRefusedError' in result.error


def test_refused_on_a_missing_unix_socket(sock_dir):
    result = request('unix:' + os.path.join(sock_dir, 'missing.sock'), timeout=2)
    assert result.kind == 'connect_refused'
    assert 'FileNotFoundError' in result.error


def test_refused_on_a_stale_unix_socket_file(sock_dir):
    path = os.path.join(sock_dir, 'stale.sock')
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(path)  # the file exists but nobody listens: what a stopped service leaves behind
    assert request('unix:' + path, timeout=2).kind == 'connect_refused'


def test_connect_timeout_when_the_unix_backlog_is_full(sock_dir):
    path = os.path.join(sock_dir, 'full.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)  # never accepted: the queue fills after one or two connections
    fillers = []
    try:
        for _i in range(10):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect(path)
            except BlockingIOError:
                break
        else:
            pytest.skip('could not fill the Unix socket backlog')
        result = request('unix:' + path, timeout=2, connect_timeout=0.2)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert result.kind == 'connect_timeout'
    assert 0.2 <= result.elapsed < 1.5


@pytest.mark.parametrize('unix', [False, True])
def test_server_closing_without_a_response_is_eof(sock_dir, unix):
    with _raw(_close_after_request, os.path.join(sock_dir, 'eof.sock') if unix else None) as server:
        result = request(server.endpoint, timeout=2)
    assert result.kind == 'eof'
    assert 'closed before a response' in result.error


@pytest.mark.parametrize('unix', [False, True])
def test_server_resetting_the_connection_is_reset(sock_dir, unix):
    with _raw(_reset_after_request, os.path.join(sock_dir, 'rst.sock') if unix else None) as server:
        result = request(server.endpoint, timeout=2)
    assert result.kind == 'reset', result.error


def test_truncated_body_is_eof(sock_dir):
    with _raw(_truncated_body, os.path.join(sock_dir, 'short.sock')) as server:
        result = request(server.endpoint, timeout=2)
    assert result.kind == 'eof' and result.status == 200 and not result.ok
    assert '9 body bytes' in result.error


def test_garbage_response_is_protocol(sock_dir):
    with _raw(_garbage_reply, os.path.join(sock_dir, 'junk.sock')) as server:
        result = request(server.endpoint, timeout=2)
    assert result.kind == 'protocol'
    assert 'BadStatusLine' in result.error


@pytest.mark.parametrize('unix', [False, True])
def test_server_too_slow_is_timeout(sock_dir, unix):
    with _raw(_sleep_forever, os.path.join(sock_dir, 'slow.sock') if unix else None) as server:
        result = request(server.endpoint, timeout=0.2)
    assert result.kind == 'timeout'
    assert 0.2 <= result.elapsed < 1.5


@pytest.mark.parametrize('exc, phase, kind', [
    (socket.timeout('timed out'), 'connect', 'connect_timeout'),
    (TimeoutError(errno.ETIMEDOUT, 'timed out'), 'connect', 'connect_timeout'),
    (ConnectionRefusedError(errno.ECONNREFUSED, 'refused'), 'connect', 'connect_refused'),
    (FileNotFoundError(errno.ENOENT, 'missing'), 'connect', 'connect_refused'),
    (ConnectionResetError(errno.ECONNRESET, 'reset'), 'connect', 'reset'),
    (OSError(errno.EHOSTUNREACH, 'unreachable'), 'connect', 'other'),
    (BrokenPipeError(errno.EPIPE, 'broken pipe'), 'send', 'reset'),
    (OSError(errno.ECONNRESET, 'reset'), 'read', 'reset'),
    (ConnectionAbortedError(errno.ECONNABORTED, 'aborted'), 'read', 'reset'),
    (socket.timeout('timed out'), 'read', 'timeout'),
    (http.client.RemoteDisconnected('closed'), 'read', 'eof'),
    (http.client.IncompleteRead(b'abc', 10), 'read', 'eof'),
    (http.client.BadStatusLine('junk'), 'read', 'protocol'),
    (http.client.LineTooLong('header line'), 'read', 'protocol'),
    (RuntimeError('surprise'), 'read', 'other'),
])
def test_classify_exception(exc, phase, kind):
    assert classify_exception(exc, phase) == kind
    assert kind in FAILURE_KINDS


def test_endpoint_equality_and_repr():
    assert Endpoint('unix', path='/a') == parse_endpoint('/a')
    assert parse_endpoint('[::1]:80') != parse_endpoint('127.0.0.1:80')
    assert repr(parse_endpoint('/a')) == "Endpoint('unix:/a')"
    assert len({parse_endpoint('/a'), parse_endpoint('unix:/a')}) == 1
