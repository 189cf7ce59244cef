# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bounded HTTP load generator and its report, standard library only.

A :class:`LoadRun` drives requests at one endpoint from a few threads while the
caller does something disruptive (restart a service), places named marks around
it, and then summarises what clients saw: failures by kind, latency percentiles
before / during / after the marks, the longest stretch without a successful
response, and which server processes answered (markers such as PIDs).

Every run is bounded by both a duration and a request count, so a mistake can
never turn it into an open-ended flood. This file must not import ``ansible.*``:
it is also copied next to ``tests/helpers/restart_under_load.py`` and run on a
bare host's Python 3.9+.
"""

from __future__ import annotations

import math
import re
import threading
import time

try:
    # Inside the collection: this import form is what makes AnsiBallZ ship _http with a module.
    from ansible_collections.zerodown.deploy.plugins.module_utils._http import (
        FAILURE_KINDS,
        KIND_OTHER,
        DEFAULT_TIMEOUT,
        HttpClient,
        parse_endpoint,
    )
except ImportError:
    # Copied next to a script as plain files.
    from _http import (  # type: ignore[no-redef]
        FAILURE_KINDS,
        KIND_OTHER,
        DEFAULT_TIMEOUT,
        HttpClient,
        parse_endpoint,
    )

PHASES = ('before', 'during', 'after')
BEGIN_MARK = 'restart_begin'
END_MARK = 'restart_end'

DEFAULT_WORKERS = 4
# Hard ceilings so that a typo cannot turn a test into a long flood.
MAX_DURATION = 3600.0
MAX_REQUESTS = 1000000
MAX_WORKERS = 64
DEFAULT_POST_BODY = b'zerodown=probe'
DEFAULT_POST_CONTENT_TYPE = 'application/x-www-form-urlencoded'
DEFAULT_MAX_EXAMPLES = 5
# After a failed request a worker pauses this long, so that a service that is down is probed
# about a hundred times a second per worker instead of burning the request budget and the
# CPU the restarting service needs (a refused connect takes microseconds).
DEFAULT_FAILURE_PAUSE = 0.01

STOPPED_BY_DURATION = 'duration'
STOPPED_BY_MAX_REQUESTS = 'max_requests'
STOPPED_BY_STOP = 'stop'


def percentile(values, pct: float):
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of values at or below it.

    Returns None for no values. ``pct`` must be within 0..100; 0 gives the minimum.
    Nearest-rank always returns an observed value, which keeps "max latency" honest.
    """
    if not 0 <= pct <= 100:
        raise ValueError('percentile must be within 0..100, got %r' % (pct,))
    ordered = sorted(values)
    if not ordered:
        return None
    # Rounding first keeps float noise (99.9 / 100 * 1000 = 999.0000000000001) from bumping the rank.
    rank = max(1, int(math.ceil(round(pct * len(ordered) / 100.0, 9))))
    return ordered[rank - 1]


def _ms(seconds):
    """Seconds to milliseconds rounded to microseconds, None stays None."""
    return None if seconds is None else round(seconds * 1000.0, 3)


def latency_summary(latencies) -> dict:
    """count, p50, p90, p99 and max of latencies given in seconds, reported in milliseconds."""
    values = sorted(latencies)
    return {
        'count': len(values),
        'p50': _ms(percentile(values, 50)),
        'p90': _ms(percentile(values, 90)),
        'p99': _ms(percentile(values, 99)),
        'max': _ms(values[-1] if values else None),
    }


def longest_gap(times):
    """Longest interval between consecutive instants (seconds) as ``(gap, start, end)``; None with fewer than two."""
    ordered = sorted(times)
    best = None
    for previous, current in zip(ordered, ordered[1:]):
        if best is None or current - previous > best[0]:
            best = (current - previous, previous, current)
    return best


def phase_of(start: float, end: float, begin, finish) -> str:
    """Phase of a request that ran from ``start`` to ``end`` relative to the begin/end marks.

    ``before``: completed before the begin mark (or there is no begin mark);
    ``after``: started at or after the end mark; ``during``: everything else, i.e.
    every request whose lifetime overlaps the disruption, including one that
    started just before it and was held up by it.
    """
    if begin is None or end < begin:
        return 'before'
    if finish is not None and start >= finish:
        return 'after'
    return 'during'


def compile_marker_regex(pattern):
    """Compile a marker regex, with a clear ValueError for a bad one."""
    if pattern is None or hasattr(pattern, 'search'):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError('invalid marker regex %r: %s' % (pattern, exc))


def extract_marker(result, header: str | None = None, regex=None):
    """Identify which server answered, e.g. its PID.

    With ``header``, the marker is that response header (searched with ``regex`` if
    given); otherwise ``regex`` is searched in the body. The first capture group is
    used when the regex has one, else the whole match. None when nothing matches.
    """
    if result.status is None:
        return None
    if header:
        source = result.header(header)
    elif regex is not None:
        source = result.text
    else:
        return None
    if source is None or regex is None:
        return source
    match = compile_marker_regex(regex).search(source)
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


class RequestRecord:
    """What one request did, as the load generator records it (times are time.monotonic())."""

    __slots__ = ('index', 'worker', 'method', 'path', 'start', 'end', 'ok', 'kind', 'status', 'error', 'marker', 'reused')

    def __init__(self, index: int, method: str, path: str, start: float, end: float, ok: bool, kind=None, status=None,
                 error=None, marker=None, worker: int = 0, reused: bool = False):
        self.index = index
        self.worker = worker
        self.method = method
        self.path = path
        self.start = start
        self.end = end
        self.ok = ok
        self.kind = kind
        self.status = status
        self.error = error
        self.marker = marker
        self.reused = reused

    @property
    def latency(self) -> float:
        """Seconds from before connect to the end of the response or the failure."""
        return self.end - self.start

    def to_dict(self, origin: float = 0.0) -> dict:
        """JSON-serialisable view; times in ms relative to ``origin``."""
        return {
            'index': self.index,
            'worker': self.worker,
            'method': self.method,
            'path': self.path,
            'start_ms': _ms(self.start - origin),
            'latency_ms': _ms(self.latency),
            'ok': self.ok,
            'kind': self.kind,
            'status': self.status,
            'error': self.error,
            'marker': self.marker,
            'reused': self.reused,
        }

    def __repr__(self) -> str:
        return 'RequestRecord(#%d %s %s ok=%r kind=%r status=%r)' % (self.index, self.method, self.path, self.ok, self.kind, self.status)


def _count_failures(records) -> dict:
    counts = dict((kind, 0) for kind in FAILURE_KINDS)
    for record in records:
        if not record.ok:
            counts[record.kind or KIND_OTHER] = counts.get(record.kind or KIND_OTHER, 0) + 1
    return counts


def _group_stats(records) -> dict:
    """Counts, failures by kind and latency of successful requests for one group of records."""
    ok = [r for r in records if r.ok]
    return {
        'requests': len(records),
        'ok': len(ok),
        'failed': len(records) - len(ok),
        'failures_by_kind': _count_failures(records),
        'latency_ms': latency_summary([r.latency for r in ok]),
    }


def _first_mark(marks, name):
    for mark_name, at in marks:
        if mark_name == name:
            return at
    return None


def _tally(values) -> dict:
    counts = {}
    for value in values:
        key = str(value)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _markers(records):
    """Distinct markers in order of first completion, and how many responses carried each."""
    order = []
    counts = {}
    for record in sorted(records, key=lambda r: r.end):
        if record.marker is None:
            continue
        if record.marker not in counts:
            order.append(record.marker)
            counts[record.marker] = 0
        counts[record.marker] += 1
    return order, counts


def _failure_examples(records, origin: float, limit: int) -> list:
    examples = []
    for record in sorted((r for r in records if not r.ok), key=lambda r: r.start)[:limit]:
        examples.append({
            'kind': record.kind,
            'error': record.error,
            'method': record.method,
            'path': record.path,
            'status': record.status,
            'start_ms': _ms(record.start - origin),
            'latency_ms': _ms(record.latency),
        })
    return examples


def summarize_records(records, marks=(), started_at=None, finished_at=None, begin_mark: str = BEGIN_MARK, end_mark: str = END_MARK,
                      max_examples: int = DEFAULT_MAX_EXAMPLES) -> dict:
    """Build the JSON-serialisable report from request records and ``(name, monotonic time)`` marks.

    Times in the report are milliseconds relative to ``started_at`` (default: the
    first request's start). Latency percentiles cover successful requests only;
    failures are counted by kind instead. Phases are split by the first
    ``begin_mark`` and ``end_mark`` (see :func:`phase_of`).
    """
    records = list(records)
    marks = list(marks)
    if started_at is None:
        started_at = min([r.start for r in records] or [0.0])
    if finished_at is None:
        finished_at = max([r.end for r in records] or [started_at])
    elapsed = max(finished_at - started_at, 0.0)

    report = _group_stats(records)
    report['elapsed_s'] = round(elapsed, 3)
    report['requests_per_s'] = round(len(records) / elapsed, 1) if elapsed > 0 else None
    report['methods'] = _tally(r.method for r in records)
    report['statuses'] = _tally(r.status for r in records if r.status is not None)
    report['failure_examples'] = _failure_examples(records, started_at, max_examples)

    begin, finish = _first_mark(marks, begin_mark), _first_mark(marks, end_mark)
    by_phase = dict((phase, []) for phase in PHASES)
    for record in records:
        by_phase[phase_of(record.start, record.end, begin, finish)].append(record)
    report['phases'] = dict((phase, _group_stats(by_phase[phase])) for phase in PHASES)
    report['marks'] = [{'name': name, 'at_ms': _ms(at - started_at)} for name, at in marks]

    gap = longest_gap([r.end for r in records if r.ok])
    report['gap_ms'] = _ms(gap[0]) if gap else None
    report['gap'] = {'start_ms': _ms(gap[1] - started_at), 'end_ms': _ms(gap[2] - started_at)} if gap else None

    order, counts = _markers(records)
    report['markers'] = [str(m) for m in order]
    report['marker_counts'] = dict((str(m), counts[m]) for m in order)
    return report


def _bounded_number(value, name: str, low, high, integer: bool = False):
    """Validate a numeric bound; None is refused because every run must be bounded."""
    if value is None:
        raise ValueError('%s is required: unbounded load is refused (both duration and max_requests must be set)' % name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError('%s must be a %s, got %r' % (name, 'whole number' if integer else 'number', value))
    if not low <= value <= high:
        raise ValueError('%s must be within %s..%s, got %r' % (name, low, high, value))
    return value


def _paths(value, name: str) -> tuple:
    if isinstance(value, str):
        value = (value,)
    paths = tuple(value or ())
    if not paths:
        raise ValueError('%s must name at least one request path' % name)
    for path in paths:
        if not isinstance(path, str) or not path.startswith('/'):
            raise ValueError('%s entries must start with "/", got %r' % (name, path))
    return paths


def is_post(index: int, post_ratio: float) -> bool:
    """Deterministic GET/POST mix: request ``index`` is a POST when it crosses the next multiple of the ratio.

    Over any n consecutive requests the POST count is within 1 of n * post_ratio,
    and the same run always sends the same sequence.
    """
    return math.floor((index + 1) * post_ratio + 1e-9) > math.floor(index * post_ratio + 1e-9)


class LoadRun:
    """A bounded load run against one endpoint.

    ``duration`` (seconds) and ``max_requests`` are both mandatory and both
    enforced: no request *starts* after the duration or beyond the count.
    Requests already in flight when a bound is hit or :meth:`stop` is called are
    finished, so a run can outlast ``duration`` by at most the request timeouts.

    Request ``i`` is a POST when :func:`is_post` says so for ``post_ratio``, else a
    GET; paths rotate through ``paths`` / ``post_paths``. ``rate`` caps requests per
    second over all workers. ``marker_header`` / ``marker_regex`` pick the marker
    (see :func:`extract_marker`). ``timeout``, ``connect_timeout``, ``keep_alive``,
    ``host_header`` and ``headers`` go to each worker's :class:`HttpClient`.
    ``failure_pause`` is the pause of a worker after a failed request (0: none).

    Usage::

        with LoadRun('unix:/run/app.sock', duration=10, max_requests=20000) as run:
            run.wait(1)  # settle; returns early if a bound already ended the run
            run.mark('restart_begin')
            restart()
            run.mark('restart_end')
            run.wait(1)
        report = run.summarize()
    """

    def __init__(self, endpoint, duration: float, max_requests: int, workers: int = DEFAULT_WORKERS, post_ratio: float = 0.0,
                 paths=('/',), post_paths=None, post_body=DEFAULT_POST_BODY, post_content_type: str = DEFAULT_POST_CONTENT_TYPE,
                 headers=None, rate: float | None = None, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float | None = None,
                 keep_alive: bool = False, host_header: str | None = None, marker_header: str | None = None, marker_regex=None,
                 max_examples: int = DEFAULT_MAX_EXAMPLES, failure_pause: float = DEFAULT_FAILURE_PAUSE):
        self.endpoint = parse_endpoint(endpoint)
        self.duration = float(_bounded_number(duration, 'duration', 0.001, MAX_DURATION))
        self.max_requests = _bounded_number(max_requests, 'max_requests', 1, MAX_REQUESTS, integer=True)
        self.workers = _bounded_number(workers, 'workers', 1, MAX_WORKERS, integer=True)
        self.post_ratio = float(_bounded_number(post_ratio, 'post_ratio', 0, 1))
        self.rate = None if rate is None else float(_bounded_number(rate, 'rate', 0.001, 1e6))
        self.paths = _paths(paths, 'paths')
        self.post_paths = _paths(post_paths or self.paths, 'post_paths')
        if not isinstance(post_body, (str, bytes)):
            raise ValueError('post_body must be str or bytes, not %s' % type(post_body).__name__)
        self.post_body = post_body
        self.post_content_type = post_content_type
        self.marker_header = marker_header
        self.marker_regex = compile_marker_regex(marker_regex)
        self.max_examples = max_examples
        self.failure_pause = float(_bounded_number(failure_pause, 'failure_pause', 0, 10))
        # Building one client validates timeouts, headers and host now rather than in a worker thread.
        self._client_options = dict(timeout=timeout, connect_timeout=connect_timeout, keep_alive=keep_alive, host_header=host_header, headers=headers)
        HttpClient(self.endpoint, **self._client_options).close()

        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._done_event = threading.Event()
        self._threads = []
        self._records = []
        self._marks = []
        self._issued = 0
        self._active = 0
        self.started_at = None
        self.finished_at = None
        self.stopped_by = None

    # -- control -------------------------------------------------------------

    def start(self):
        """Start the worker threads; returns self. A run can be started once."""
        with self._lock:
            if self.started_at is not None:
                raise RuntimeError('this LoadRun was already started')
            self.started_at = time.monotonic()
            self._active = self.workers
        for worker in range(self.workers):
            thread = threading.Thread(target=self._worker, args=(worker,), name='zerodown-load-%d' % worker)
            thread.daemon = True  # never keep a caller's process alive
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float | None = None):
        """Stop issuing requests, wait for in-flight ones, and return self. Safe to call repeatedly."""
        self._stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            self._set_stopped_by(STOPPED_BY_STOP)
            if self.finished_at is None and not any(t.is_alive() for t in self._threads):
                self.finished_at = time.monotonic()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends by itself (a bound was reached); True if it has ended."""
        if self.started_at is None:
            return False
        return self._done_event.wait(timeout)

    def run(self) -> dict:
        """Start, wait for a bound, stop, and return :meth:`summarize`."""
        self.start()
        self.wait()
        self.stop()
        return self.summarize()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def running(self) -> bool:
        """True between start() and the moment the last worker exits."""
        return self.started_at is not None and not self._done_event.is_set()

    def mark(self, name: str) -> float:
        """Record a named instant (e.g. 'restart_begin'); returns its monotonic time."""
        at = time.monotonic()
        with self._lock:
            self._marks.append((str(name), at))
        return at

    # -- results -------------------------------------------------------------

    @property
    def results(self) -> list:
        """A snapshot of the request records so far, in start order."""
        with self._lock:
            records = list(self._records)
        return sorted(records, key=lambda r: r.start)

    @property
    def marks(self) -> list:
        """A snapshot of the ``(name, monotonic time)`` marks."""
        with self._lock:
            return list(self._marks)

    def summarize(self, begin_mark: str = BEGIN_MARK, end_mark: str = END_MARK) -> dict:
        """The JSON-serialisable report (see :func:`summarize_records`) plus the run's settings."""
        started = self.started_at if self.started_at is not None else time.monotonic()
        finished = self.finished_at if self.finished_at is not None else time.monotonic()
        report = summarize_records(self.results, self.marks, started, finished, begin_mark, end_mark, self.max_examples)
        report['endpoint'] = str(self.endpoint)
        report['stopped_by'] = self.stopped_by
        report['settings'] = {
            'duration': self.duration,
            'max_requests': self.max_requests,
            'workers': self.workers,
            'post_ratio': self.post_ratio,
            'rate': self.rate,
            'timeout': self._client_options['timeout'],
            'keep_alive': bool(self._client_options['keep_alive']),
            'failure_pause': self.failure_pause,
            'paths': list(self.paths),
            'post_paths': list(self.post_paths),
        }
        return report

    # -- workers -------------------------------------------------------------

    def _set_stopped_by(self, reason: str) -> None:
        # Caller holds the lock; the first reason wins.
        if self.stopped_by is None:
            self.stopped_by = reason

    def _next_ticket(self):
        """Reserve the next request index, or None when a bound is reached or stop() was called."""
        with self._lock:
            if self._stop_event.is_set():
                self._set_stopped_by(STOPPED_BY_STOP)
                return None
            if self._issued >= self.max_requests:
                self._set_stopped_by(STOPPED_BY_MAX_REQUESTS)
                return None
            if time.monotonic() >= self.started_at + self.duration:
                self._set_stopped_by(STOPPED_BY_DURATION)
                return None
            index = self._issued
            self._issued += 1
            return index

    def _wait_for_slot(self, index: int) -> bool:
        """With a rate limit, sleep until request ``index``'s slot; False if the run must end instead."""
        if self.rate is None:
            return True
        slot = self.started_at + index / self.rate
        if slot >= self.started_at + self.duration:
            with self._lock:
                self._set_stopped_by(STOPPED_BY_DURATION)
            return False
        delay = slot - time.monotonic()
        if delay > 0 and self._stop_event.wait(delay):
            return False
        return True

    def _request_spec(self, index: int):
        """Method, path, body and extra headers of request ``index``."""
        if is_post(index, self.post_ratio):
            path = self.post_paths[index % len(self.post_paths)]
            return 'POST', path, self.post_body, {'Content-Type': self.post_content_type}
        return 'GET', self.paths[index % len(self.paths)], None, None

    def _send(self, client, index: int, worker: int):
        """Send request ``index``; None if the deadline passed meanwhile (a starved thread may get its ticket in time but run late)."""
        method, path, body, headers = self._request_spec(index)
        start = time.monotonic()
        if start >= self.started_at + self.duration:
            with self._lock:
                self._set_stopped_by(STOPPED_BY_DURATION)
            return None
        try:
            result = client.request(method, path, body=body, headers=headers)
        except Exception as exc:  # a bug or bad argument must be counted, not kill the worker silently
            return RequestRecord(index, method, path, start, time.monotonic(), False, KIND_OTHER, error='%s: %s' % (type(exc).__name__, exc),
                                 worker=worker)
        end = start + result.elapsed
        marker = extract_marker(result, self.marker_header, self.marker_regex)
        return RequestRecord(index, method, path, start, end, result.ok, result.kind, result.status, result.error, marker, worker, result.reused)

    def _worker(self, worker: int) -> None:
        client = HttpClient(self.endpoint, **self._client_options)
        try:
            while True:
                index = self._next_ticket()
                if index is None or not self._wait_for_slot(index):
                    break
                record = self._send(client, index, worker)
                if record is None:
                    break
                with self._lock:
                    self._records.append(record)
                if not record.ok and self.failure_pause and self._stop_event.wait(self.failure_pause):
                    break
        finally:
            client.close()
            self._worker_exited()

    def _worker_exited(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self.finished_at = time.monotonic()
                self._done_event.set()


# -- derived views of a report ---------------------------------------------------------------


def phase_timing(report: dict, begin_mark: str = BEGIN_MARK, end_mark: str = END_MARK) -> dict:
    """Length and throughput of each phase of a report built by :func:`summarize_records`.

    The windows come from the report's ``marks`` and ``elapsed_s``: ``before`` runs
    from the start of the run to the first ``begin_mark``, ``during`` from there to
    the first ``end_mark``, ``after`` from there to the end of the run. Marks placed
    after the run ended (a bound stopped the load first) are clamped to its end; an
    end mark that is missing (or earlier than the begin mark) means the end of the
    run; without a begin mark the whole run is ``before``, as in :func:`phase_of`.

    Returns ``{phase: {'duration_s': float, 'requests_per_s': float or None}}``;
    ``requests_per_s`` divides the phase's request count (requests are assigned by
    overlap, see :func:`phase_of`) by its window and is None for an empty window.
    """
    elapsed = max(float(report.get('elapsed_s') or 0.0), 0.0)

    def mark_at(name):
        for mark in report.get('marks') or ():
            if mark.get('name') == name and mark.get('at_ms') is not None:
                return min(max(mark['at_ms'] / 1000.0, 0.0), elapsed)
        return None

    begin, finish = mark_at(begin_mark), mark_at(end_mark)
    if begin is None:
        windows = {'before': (0.0, elapsed), 'during': (elapsed, elapsed), 'after': (elapsed, elapsed)}
    else:
        if finish is None or finish < begin:
            finish = elapsed
        windows = {'before': (0.0, begin), 'during': (begin, finish), 'after': (finish, elapsed)}
    timing = {}
    for phase in PHASES:
        duration = round(max(windows[phase][1] - windows[phase][0], 0.0), 3)
        requests = ((report.get('phases') or {}).get(phase) or {}).get('requests', 0)
        timing[phase] = {
            'duration_s': duration,
            'requests_per_s': round(requests / duration, 1) if duration > 0 else None,
        }
    return timing


def timeline(records, marks=(), started_at=None, begin_mark: str = BEGIN_MARK, end_mark: str = END_MARK) -> list:
    """One small JSON-serialisable entry per request, in start order, for plotting a run.

    Each entry is ``{t_ms, latency_ms, ok, kind, status, method, phase, marker}``:
    ``t_ms`` is the request's start in milliseconds after ``started_at`` (default:
    the first request's start) and ``phase`` is ``before``, ``during`` or ``after``
    as :func:`summarize_records` assigns it from the first begin and end marks.
    """
    records = sorted(records, key=lambda r: r.start)
    if started_at is None:
        started_at = records[0].start if records else 0.0
    marks = list(marks)
    begin, finish = _first_mark(marks, begin_mark), _first_mark(marks, end_mark)
    entries = []
    for record in records:
        entries.append({
            't_ms': _ms(record.start - started_at),
            'latency_ms': _ms(record.latency),
            'ok': record.ok,
            'kind': record.kind,
            'status': record.status,
            'method': record.method,
            'phase': phase_of(record.start, record.end, begin, finish),
            'marker': None if record.marker is None else str(record.marker),
        })
    return entries
