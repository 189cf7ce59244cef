# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Minimal HTTP/1.1 client over a Unix socket or TCP, standard library only.

It exists to *measure* a service, not to be a general HTTP library: every
request returns an :class:`HttpResult` (never raises for network trouble), and
every failure is classified into one of :data:`FAILURE_KINDS` so that a load
run can say exactly how a restart hurt clients.

This file must not import ``ansible.*``: it is also copied next to
``tests/helpers/restart_under_load.py`` and run on a bare host's Python 3.9+.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import socket
import time

# Failure kinds, in the order reports list them.
KIND_CONNECT_REFUSED = 'connect_refused'
KIND_CONNECT_TIMEOUT = 'connect_timeout'
KIND_RESET = 'reset'
KIND_TIMEOUT = 'timeout'
KIND_EOF = 'eof'
KIND_HTTP_5XX = 'http_5xx'
KIND_HTTP_OTHER = 'http_other'
KIND_PROTOCOL = 'protocol'
KIND_OTHER = 'other'

FAILURE_KINDS = (
    KIND_CONNECT_REFUSED,
    KIND_CONNECT_TIMEOUT,
    KIND_RESET,
    KIND_TIMEOUT,
    KIND_EOF,
    KIND_HTTP_5XX,
    KIND_HTTP_OTHER,
    KIND_PROTOCOL,
    KIND_OTHER,
)

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 1024 * 1024
USER_AGENT = 'zerodown-load/1'

# Phases of one request; the same exception means different things in each.
PHASE_CONNECT = 'connect'
PHASE_SEND = 'send'
PHASE_READ = 'read'

# How long to sleep between attempts when a Unix socket's listen backlog is full.
_UNIX_BACKLOG_RETRY_S = 0.005
# Methods that carry a body, so they always get a Content-Length (0 if empty).
_BODY_METHODS = ('POST', 'PUT', 'PATCH')


class Endpoint:
    """A parsed endpoint: either a Unix socket path or a TCP host and port."""

    __slots__ = ('family', 'path', 'host', 'port')

    def __init__(self, family: str, path: str | None = None, host: str | None = None, port: int | None = None):
        self.family = family
        self.path = path
        self.host = host
        self.port = port

    @property
    def is_unix(self) -> bool:
        """True for a Unix socket endpoint."""
        return self.family == 'unix'

    @property
    def host_header(self) -> str:
        """Default Host header: ``host:port`` for TCP (IPv6 in brackets), ``localhost`` for Unix sockets."""
        if self.is_unix:
            return 'localhost'
        if ':' in self.host:
            return '[%s]:%d' % (self.host, self.port)
        return '%s:%d' % (self.host, self.port)

    def __str__(self) -> str:
        if self.is_unix:
            return 'unix:%s' % self.path
        return self.host_header

    def __repr__(self) -> str:
        return 'Endpoint(%r)' % str(self)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        return (self.family, self.path, self.host, self.port) == (other.family, other.path, other.host, other.port)

    def __hash__(self) -> int:
        return hash((self.family, self.path, self.host, self.port))


def _bad_endpoint(value: str, why: str) -> ValueError:
    """Build the one error type endpoint parsing raises, always quoting the input."""
    return ValueError('invalid endpoint %r: %s (expected unix:/path.sock, /path.sock, host:port, [v6]:port or http://host[:port])' % (value, why))


def _parse_port(value: str, text: str) -> int:
    """Parse a decimal TCP port 1..65535."""
    if not text.isdigit() or not text.isascii():
        raise _bad_endpoint(value, 'port %r is not a number' % text)
    port = int(text)
    if not 1 <= port <= 65535:
        raise _bad_endpoint(value, 'port %d is out of range 1-65535' % port)
    return port


def _parse_unix(value: str, path: str) -> Endpoint:
    """Validate a Unix socket path (the kernel limits it to 107 bytes)."""
    if not path:
        raise _bad_endpoint(value, 'empty Unix socket path')
    if '\x00' in path or any(c.isspace() for c in path):
        raise _bad_endpoint(value, 'Unix socket path contains whitespace or NUL')
    if len(path.encode('utf-8')) > 107:
        raise _bad_endpoint(value, 'Unix socket path is longer than 107 bytes')
    return Endpoint('unix', path=path)


def _parse_hostport(value: str, hostport: str, default_port: int | None) -> Endpoint:
    """Parse ``host:port``, ``[v6]:port`` or, with a default port, a bare host."""
    if hostport.startswith('['):
        close = hostport.find(']')
        if close < 0:
            raise _bad_endpoint(value, 'unclosed "[" in IPv6 address')
        host, rest = hostport[1:close], hostport[close + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad_endpoint(value, '%r is not an IPv6 address' % host)
        if rest and not rest.startswith(':'):
            raise _bad_endpoint(value, 'unexpected text %r after "]"' % rest)
        port_text = rest[1:] if rest else None
    else:
        if hostport.count(':') > 1:
            raise _bad_endpoint(value, 'IPv6 addresses must be written in brackets, e.g. [::1]:8000')
        host, sep, port_text = hostport.partition(':')
        if not sep:
            port_text = None
    if not host:
        raise _bad_endpoint(value, 'empty host')
    if any(c.isspace() or c in '/@?#[]' for c in host):
        raise _bad_endpoint(value, 'host %r contains an invalid character' % host)
    if port_text is None:
        if default_port is None:
            raise _bad_endpoint(value, 'a port is required')
        port = default_port
    else:
        port = _parse_port(value, port_text)
    return Endpoint('tcp', host=host, port=port)


def split_url_path(value: str):
    """``(endpoint text, ignored path)``: an ``http://host[:port]/path`` option loses its path (None when it had none).

    The modules send their requests to their own path options; they warn about
    a path given in the endpoint instead of silently using or dropping it.
    """
    text = (value or '').strip()
    if not text.lower().startswith('http://'):
        return text, None
    hostport, slash, rest = text[len('http://'):].partition('/')
    return 'http://' + hostport, ('/' + rest) if slash and rest else None


def parse_endpoint(value) -> Endpoint:
    """Parse an endpoint string into an :class:`Endpoint`.

    Accepted forms: ``unix:/run/app.sock``, ``/run/app.sock``, ``127.0.0.1:8000``,
    ``localhost:8000``, ``[::1]:8000``, ``http://host:port`` (port defaults to 80,
    a trailing ``/`` is allowed). Anything else raises ``ValueError``.
    An :class:`Endpoint` is returned unchanged.
    """
    if isinstance(value, Endpoint):
        return value
    if not isinstance(value, str):
        raise ValueError('invalid endpoint %r: expected a string' % (value,))
    text = value.strip()
    if not text:
        raise _bad_endpoint(value, 'empty')
    if text.startswith('unix:'):
        return _parse_unix(value, text[len('unix:'):])
    if text.startswith('/'):
        return _parse_unix(value, text)
    lowered = text.lower()
    if lowered.startswith('https://'):
        raise _bad_endpoint(value, 'https is not supported; point at the plain HTTP listener')
    if lowered.startswith('http://'):
        hostport, slash, rest = text[len('http://'):].partition('/')
        if slash and rest:
            raise _bad_endpoint(value, 'the endpoint must not contain a path; request paths are given separately')
        return _parse_hostport(value, hostport, 80)
    if '://' in text:
        raise _bad_endpoint(value, 'unsupported scheme')
    return _parse_hostport(value, text, None)


class HttpResult:
    """Outcome of one request. ``ok`` is True for a complete 2xx/3xx response.

    On failure ``kind`` is one of :data:`FAILURE_KINDS` and ``error`` a short message.
    ``elapsed`` (seconds) runs from before connect to the end of the body or the failure.
    """

    __slots__ = ('method', 'path', 'ok', 'kind', 'status', 'reason', 'headers', 'body', 'elapsed',
                 'connect_elapsed', 'error', 'reused', 'truncated')

    def __init__(self, method: str, path: str):
        self.method = method
        self.path = path
        self.ok = False
        self.kind = None
        self.status = None
        self.reason = None
        self.headers = {}
        self.body = b''
        self.elapsed = 0.0
        self.connect_elapsed = None
        self.error = None
        self.reused = False
        self.truncated = False

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode('utf-8', 'replace')

    def header(self, name: str, default=None):
        """A response header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def to_dict(self, include_body: bool = False) -> dict:
        """A JSON-serialisable view of the result."""
        data = {
            'method': self.method,
            'path': self.path,
            'ok': self.ok,
            'kind': self.kind,
            'status': self.status,
            'reason': self.reason,
            'headers': dict(self.headers),
            'elapsed_ms': round(self.elapsed * 1000.0, 3),
            'error': self.error,
            'reused': self.reused,
            'truncated': self.truncated,
        }
        if include_body:
            data['body'] = self.text
        return data

    def __repr__(self) -> str:
        return 'HttpResult(%s %s ok=%r kind=%r status=%r elapsed=%.4f)' % (self.method, self.path, self.ok, self.kind, self.status, self.elapsed)


def classify_status(status: int) -> str | None:
    """Failure kind for an HTTP status, or None when the status counts as success (2xx/3xx)."""
    if 200 <= status < 400:
        return None
    if status >= 500:
        return KIND_HTTP_5XX
    return KIND_HTTP_OTHER


def _is_timeout(exc: BaseException) -> bool:
    # socket.timeout is only an alias of TimeoutError from Python 3.10 on.
    return isinstance(exc, (socket.timeout, TimeoutError))


def _is_reset(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)


def classify_exception(exc: BaseException, phase: str) -> str:
    """Map an exception raised in ``phase`` (connect, send or read) to a failure kind."""
    if phase == PHASE_CONNECT:
        if _is_timeout(exc):
            return KIND_CONNECT_TIMEOUT
        # A missing Unix socket file is the same situation for a client as a closed port.
        if isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
            return KIND_CONNECT_REFUSED
        if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return KIND_CONNECT_REFUSED
        if _is_reset(exc):
            return KIND_RESET
        return KIND_OTHER
    # RemoteDisconnected subclasses ConnectionResetError but means a clean close (FIN)
    # before any status line, so it is tested before the reset check.
    if isinstance(exc, (http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return KIND_EOF
    if _is_timeout(exc):
        return KIND_TIMEOUT
    if _is_reset(exc):
        return KIND_RESET
    if isinstance(exc, (http.client.HTTPException, ValueError)):
        return KIND_PROTOCOL
    return KIND_OTHER


def _describe(exc: BaseException) -> str:
    """Short one-line description of an exception for reports."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, http.client.RemoteDisconnected):
        text = 'connection closed before a response'
    elif isinstance(exc, http.client.IncompleteRead):
        text = 'connection closed after %d body bytes, %s more expected' % (len(exc.partial), exc.expected)
    return '%s: %s' % (exc.__class__.__name__, text.splitlines()[0][:200])


def connect_unix(path: str, timeout: float) -> socket.socket:
    """Connect a stream socket to ``path``, waiting up to ``timeout`` seconds.

    With a timeout Python puts the socket in non-blocking mode, and a non-blocking
    connect to a Unix socket whose listen backlog is full fails at once with EAGAIN
    (a TCP connect would just wait for the SYN to be accepted). Retrying until the
    deadline gives Unix sockets the same "wait, then connect_timeout" semantics.
    """
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout('connect timed out: listen backlog of %s is full' % path)
            time.sleep(min(_UNIX_BACKLOG_RETRY_S, remaining))
        except BaseException:
            sock.close()
            raise


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to ``host:port`` within ``timeout`` seconds, with Nagle disabled."""
    sock = socket.create_connection((host, port), timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not fatal: only affects latency of small writes
    return sock


class _Connection(http.client.HTTPConnection):
    """HTTPConnection that connects to an :class:`Endpoint` with a separate connect timeout."""

    def __init__(self, endpoint: Endpoint, timeout: float, connect_timeout: float):
        host = 'localhost' if endpoint.is_unix else endpoint.host
        super().__init__(host, port=endpoint.port or 80, timeout=timeout)
        self._endpoint = endpoint
        self._connect_timeout = connect_timeout

    def connect(self):
        if self._endpoint.is_unix:
            sock = connect_unix(self._endpoint.path, self._connect_timeout)
        else:
            sock = connect_tcp(self._endpoint.host, self._endpoint.port, self._connect_timeout)
        sock.settimeout(self.timeout)
        self.sock = sock


def _validate_request(method: str, path: str) -> None:
    """Refuse methods and paths that would produce a malformed request line."""
    if not method or not method.isalpha() or not method.isupper():
        raise ValueError('invalid HTTP method %r: expected an upper-case token such as GET or POST' % (method,))
    if not isinstance(path, str) or not path.startswith('/') or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError('invalid request path %r: it must start with "/" and contain no whitespace or control characters' % (path,))


def _to_bytes(body) -> bytes:
    if body is None:
        return b''
    if isinstance(body, str):
        return body.encode('utf-8')
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise ValueError('request body must be str or bytes, not %s' % type(body).__name__)


def _merge_headers(defaults: dict, extra) -> list:
    """Defaults overridden case-insensitively by ``extra`` (a dict or a list of pairs)."""
    merged = {}
    for name, value in defaults.items():
        merged[name.lower()] = (name, value)
    items = extra.items() if isinstance(extra, dict) else (extra or ())
    for name, value in items:
        if not name or any(c in name for c in ' :\r\n') or any(c in str(value) for c in '\r\n'):
            raise ValueError('invalid header %r: %r' % (name, value))
        merged[name.lower()] = (name, str(value))
    return list(merged.values())


def _header_dict(message) -> dict:
    """Lower-cased header names; repeated headers are joined with ', ' as RFC 9110 allows."""
    headers = {}
    for name, value in message.items():
        key = name.lower()
        headers[key] = '%s, %s' % (headers[key], value) if key in headers else value
    return headers


class HttpClient:
    """Sends requests to one endpoint.

    By default every request uses a fresh connection and ``Connection: close``:
    that is what exercises a server's accept path during a restart. With
    ``keep_alive=True`` the connection is reused while the server allows it;
    a failure on a reused connection is flagged with ``result.reused`` because a
    server closing an idle keep-alive connection is a different problem from a
    refused new one. Failed requests are never retried: the point is to count them.

    ``timeout`` applies to each socket operation after connecting (send, each
    read); ``connect_timeout`` (default: ``timeout``) to establishing the connection.
    """

    def __init__(self, endpoint, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float | None = None, keep_alive: bool = False,
                 host_header: str | None = None, max_body: int = DEFAULT_MAX_BODY, headers=None):
        self.endpoint = parse_endpoint(endpoint)
        self.timeout = _positive(timeout, 'timeout')
        self.connect_timeout = self.timeout if connect_timeout is None else _positive(connect_timeout, 'connect_timeout')
        self.keep_alive = bool(keep_alive)
        self.host_header = host_header or self.endpoint.host_header
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
            raise ValueError('max_body must be a whole number of bytes >= 0, got %r' % (max_body,))
        self.max_body = max_body
        _merge_headers({}, headers)  # reject bad extra headers now, not on the first request
        self.headers = headers
        self._conn = None

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _request_headers(self, method: str, body: bytes, headers) -> list:
        defaults = {
            'Host': self.host_header,
            'User-Agent': USER_AGENT,
            'Accept': '*/*',
            'Connection': 'keep-alive' if self.keep_alive else 'close',
        }
        if body or method in _BODY_METHODS:
            defaults['Content-Length'] = str(len(body))
        merged = _merge_headers(defaults, self.headers)
        return _merge_headers(dict(merged), headers)

    def _read_body(self, response, result: HttpResult) -> bytes:
        """Read the whole body (so the connection can be reused), keeping at most max_body bytes."""
        chunks = []
        size = 0
        while True:
            chunk = response.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                result.truncated = True
                chunks.append(chunk[:max(0, self.max_body - (size - len(chunk)))])
                break
            chunks.append(chunk)
        # read(amt) ends quietly at EOF even when Content-Length promised more; only read() raises.
        if not result.truncated and response.length:
            raise http.client.IncompleteRead(b''.join(chunks), response.length)
        return b''.join(chunks)

    def request(self, method: str = 'GET', path: str = '/', body=None, headers=None) -> HttpResult:
        """Send one request and return its :class:`HttpResult`; network errors never raise.

        ``ValueError`` is raised only for invalid arguments (method, path, body, headers).
        """
        method = (method or '').upper()
        _validate_request(method, path)
        payload = _to_bytes(body)
        header_list = self._request_headers(method, payload, headers)
        result = HttpResult(method, path)
        started = time.monotonic()
        phase = PHASE_CONNECT
        try:
            if self._conn is None:
                self._conn = _Connection(self.endpoint, self.timeout, self.connect_timeout)
                self._conn.connect()
                result.connect_elapsed = time.monotonic() - started
            else:
                result.reused = True
            phase = PHASE_SEND
            conn = self._conn
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in header_list:
                conn.putheader(name, value)
            conn.endheaders(message_body=payload or None)
            phase = PHASE_READ
            response = conn.getresponse()
            result.status = response.status
            result.reason = response.reason
            result.headers = _header_dict(response.msg)
            result.body = self._read_body(response, result)
            result.kind = classify_status(response.status)
            result.ok = result.kind is None
            if result.kind is not None:
                result.error = 'HTTP %d %s' % (response.status, response.reason)
            if not self.keep_alive or response.will_close or result.truncated:
                self.close()
        except Exception as exc:  # every failure becomes a classified result, by design
            result.kind = classify_exception(exc, phase)
            result.error = _describe(exc)
            result.ok = False
            self.close()
        result.elapsed = time.monotonic() - started
        return result


def _positive(value, name: str) -> float:
    """A finite number > 0, or ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float('inf'):
        raise ValueError('%s must be a positive number of seconds, got %r' % (name, value))
    return float(value)


def request(endpoint, method: str = 'GET', path: str = '/', body=None, headers=None, timeout: float = DEFAULT_TIMEOUT,
            connect_timeout: float | None = None, host_header: str | None = None, max_body: int = DEFAULT_MAX_BODY) -> HttpResult:
    """Send one request on a fresh connection (``Connection: close``) and return its result."""
    with HttpClient(endpoint, timeout=timeout, connect_timeout=connect_timeout, host_header=host_header, max_body=max_body) as client:
        return client.request(method, path, body=body, headers=headers)
