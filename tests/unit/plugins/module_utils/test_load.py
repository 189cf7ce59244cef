# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the load generator and its report: pure statistics functions, then real runs against local servers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._http import FAILURE_KINDS, HttpResult
from ansible_collections.zerodown.deploy.plugins.module_utils._load import (
    LoadRun,
    RequestRecord,
    extract_marker,
    is_post,
    latency_summary,
    longest_gap,
    percentile,
    phase_of,
    summarize_records,
)

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, 'helpers', 'restart_under_load.py')


# -- servers -------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Answers with the server's current marker in a header and in the body, like an app showing its PID."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def address_string(self):
        return 'test-client'

    def _reply(self, method):
        with self.server.lock:
            self.server.methods[method] = self.server.methods.get(method, 0) + 1
        status = 503 if self.path == '/fail' else 200
        body = ('pid=%s' % self.server.marker).encode('ascii')
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Pid', self.server.marker)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply('GET')

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self._reply('POST')


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _Serving:
    """A running server and its thread."""

    def __init__(self, server, endpoint, marker='old'):
        self.server = server
        self.endpoint = endpoint
        server.lock = threading.Lock()
        server.methods = {}
        server.marker = marker
        self.thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextlib.contextmanager
def _serve_unix(path, marker='old'):
    serving = _Serving(_UnixServer(path, _Handler), 'unix:' + path, marker)
    try:
        yield serving
    finally:
        serving.close()


@pytest.fixture
def tcp():
    server = _TCPServer(('127.0.0.1', 0), _Handler)
    serving = _Serving(server, '127.0.0.1:%d' % server.server_address[1])
    yield serving
    serving.close()


@pytest.fixture
def unix(sock_dir):
    with _serve_unix(os.path.join(sock_dir, 'app.sock')) as serving:
        yield serving


def _record(index, start, latency, ok=True, kind=None, status=200, marker=None, method='GET'):
    return RequestRecord(index, method, '/', start, start + latency, ok, kind, status, None if ok else '%s happened' % kind, marker)


# -- percentile and statistics ----------------------------------------------------


@pytest.mark.parametrize('pct, expected', [(0, 15), (5, 15), (30, 20), (40, 20), (50, 35), (75, 40), (95, 50), (100, 50)])
def test_percentile_nearest_rank(pct, expected):
    # The textbook nearest-rank example: always an observed value, never interpolated.
    assert percentile([35, 20, 50, 15, 40], pct) == expected


def test_percentile_edges():
    assert percentile([], 50) is None
    assert percentile([7], 0) == 7 and percentile([7], 99) == 7
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile(range(1, 1001), 99.9) == 999
    for bad in (-1, 100.1):
        with pytest.raises(ValueError, match='within 0..100'):
            percentile(values, bad)


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.001 * i for i in range(1, 101)])
    assert summary == {'count': 100, 'p50': 50.0, 'p90': 90.0, 'p99': 99.0, 'max': 100.0}
    assert latency_summary([]) == {'count': 0, 'p50': None, 'p90': None, 'p99': None, 'max': None}


def test_longest_gap():
    assert longest_gap([]) is None
    assert longest_gap([1.0]) is None
    assert longest_gap([5.0, 1.0, 1.5, 4.0, 2.0]) == (2.0, 2.0, 4.0)  # unsorted input is fine
    assert longest_gap([1.0, 2.0, 3.0]) == (1.0, 1.0, 2.0)  # first of equal gaps wins


def test_phase_of():
    assert phase_of(1.0, 1.5, None, None) == 'before'  # no marks: one phase
    assert phase_of(1.0, 1.5, 2.0, 3.0) == 'before'
    assert phase_of(1.0, 2.5, 2.0, 3.0) == 'during'  # overlaps the begin mark
    assert phase_of(2.5, 2.6, 2.0, 3.0) == 'during'
    assert phase_of(2.5, 3.5, 2.0, 3.0) == 'during'  # started during, finished after
    assert phase_of(3.0, 3.1, 2.0, 3.0) == 'after'
    assert phase_of(9.0, 9.1, 2.0, None) == 'during'  # no end mark yet


def test_is_post_mix_is_exact_and_deterministic():
    for ratio, posts in ((0.0, 0), (0.25, 25), (0.5, 50), (0.3, 30), (1.0, 100)):
        assert sum(is_post(i, ratio) for i in range(100)) == posts
    assert [is_post(i, 0.5) for i in range(4)] == [False, True, False, True]


def test_summarize_records_phases_gap_failures_markers():
    records = [
        _record(0, 0.00, 0.010, marker='100'),
        _record(1, 0.10, 0.020, marker='100', method='POST'),
        _record(2, 0.90, 0.200, marker='100'),  # started before the begin mark, slowed by the restart
        _record(3, 1.05, 0.001, ok=False, kind='connect_refused', status=None),
        _record(4, 1.10, 0.300, ok=False, kind='http_5xx', status=502, method='POST'),
        _record(5, 1.20, 0.700, marker='200'),  # the new process answers
        _record(6, 2.10, 0.005, marker='200'),
        _record(7, 2.20, 0.005, marker='200'),
    ]
    marks = [('restart_begin', 1.0), ('something', 1.5), ('restart_end', 2.0)]
    report = summarize_records(records, marks, started_at=0.0, finished_at=2.5)
    json.dumps(report)  # must be JSON-serialisable as is

    assert (report['requests'], report['ok'], report['failed']) == (8, 6, 2)
    assert set(report['failures_by_kind']) == set(FAILURE_KINDS)
    assert report['failures_by_kind']['connect_refused'] == 1 and report['failures_by_kind']['http_5xx'] == 1
    assert sum(report['failures_by_kind'].values()) == 2
    assert [e['kind'] for e in report['failure_examples']] == ['connect_refused', 'http_5xx']
    assert report['failure_examples'][1] == {'kind': 'http_5xx', 'error': 'http_5xx happened', 'method': 'POST', 'path': '/',
                                             'status': 502, 'start_ms': 1100.0, 'latency_ms': 300.0}
    assert report['elapsed_s'] == 2.5 and report['requests_per_s'] == 3.2
    assert report['methods'] == {'GET': 6, 'POST': 2}
    assert report['statuses'] == {'200': 6, '502': 1}
    assert report['latency_ms'] == {'count': 6, 'p50': 10.0, 'p90': 700.0, 'p99': 700.0, 'max': 700.0}

    phases = report['phases']
    assert [phases[p]['requests'] for p in ('before', 'during', 'after')] == [2, 4, 2]
    assert phases['during']['failed'] == 2 and phases['before']['failed'] == phases['after']['failed'] == 0
    assert phases['during']['latency_ms']['max'] == 700.0
    assert phases['after']['latency_ms']['max'] == 5.0

    assert report['marks'] == [{'name': 'restart_begin', 'at_ms': 1000.0}, {'name': 'something', 'at_ms': 1500.0},
                               {'name': 'restart_end', 'at_ms': 2000.0}]
    # Successful completions: 0.01, 0.12, 1.1, 1.9, 2.105, 2.205 -> longest gap 0.12 .. 1.1.
    assert report['gap_ms'] == 980.0
    assert report['gap'] == {'start_ms': 120.0, 'end_ms': 1100.0}
    assert report['markers'] == ['100', '200']
    assert report['marker_counts'] == {'100': 3, '200': 3}


def test_summarize_records_empty_and_examples_limit():
    report = summarize_records([], [], started_at=10.0, finished_at=10.0)
    assert report['requests'] == 0 and report['gap_ms'] is None and report['gap'] is None
    assert report['requests_per_s'] is None and report['markers'] == []
    failing = [_record(i, i * 0.01, 0.001, ok=False, kind='reset', status=None) for i in range(20)]
    report = summarize_records(failing, max_examples=3)
    assert len(report['failure_examples']) == 3 and report['failures_by_kind']['reset'] == 20
    assert report['phases']['before']['requests'] == 20  # no marks: everything is "before"


def _result(status=200, body=b'', headers=None):
    result = HttpResult('GET', '/')
    result.status = status
    result.body = body
    result.headers = dict((k.lower(), v) for k, v in (headers or {}).items())
    return result


def test_extract_marker():
    result = _result(body=b'hello pid=4242 bye', headers={'X-Pid': '77', 'Server': 'gunicorn pid 9'})
    assert extract_marker(result) is None
    assert extract_marker(result, header='x-pid') == '77'
    assert extract_marker(result, regex=r'pid=(\d+)') == '4242'
    assert extract_marker(result, regex=r'pid=\d+') == 'pid=4242'  # no group: the whole match
    assert extract_marker(result, header='Server', regex=r'pid (\d+)') == '9'
    assert extract_marker(result, header='X-Missing') is None
    assert extract_marker(result, regex=r'uid=(\d+)') is None
    assert extract_marker(_result(status=None, body=b'pid=1'), regex=r'pid=(\d+)') is None  # no response, no marker


# -- validation --------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, message', [
    (dict(duration=None, max_requests=10), 'unbounded load is refused'),
    (dict(duration=1, max_requests=None), 'unbounded load is refused'),
    (dict(duration=0, max_requests=10), 'duration must be within'),
    (dict(duration=-1, max_requests=10), 'duration must be within'),
    (dict(duration=float('inf'), max_requests=10), 'duration must be within'),
    (dict(duration=float('nan'), max_requests=10), 'duration must be within'),
    (dict(duration=1, max_requests=0), 'max_requests must be within'),
    (dict(duration=1, max_requests=10 ** 9), 'max_requests must be within'),
    (dict(duration=1, max_requests=1.5), 'max_requests must be a whole number'),
    (dict(duration=1, max_requests=True), 'max_requests must be a whole number'),
    (dict(duration=1, max_requests=10, workers=0), 'workers must be within'),
    (dict(duration=1, max_requests=10, post_ratio=1.5), 'post_ratio must be within'),
    (dict(duration=1, max_requests=10, rate=0), 'rate must be within'),
    (dict(duration=1, max_requests=10, paths=['healthz']), 'must start with "/"'),
    (dict(duration=1, max_requests=10, paths=[]), 'at least one request path'),
    (dict(duration=1, max_requests=10, marker_regex='pid=('), 'invalid marker regex'),
    (dict(duration=1, max_requests=10, timeout=0), 'timeout must be a positive number'),
    (dict(duration=1, max_requests=10, failure_pause=-1), 'failure_pause must be within'),
    (dict(duration=1, max_requests=10, post_body=42), 'post_body must be str or bytes'),
])
def test_invalid_settings_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace('.', r'\.')):
        LoadRun('127.0.0.1:9', **kwargs)


def test_invalid_endpoint_raises_value_error():
    with pytest.raises(ValueError, match='invalid endpoint'):
        LoadRun('nowhere', duration=1, max_requests=1)


# -- real runs -------------------------------------------------------------------------


def test_max_requests_bound_and_post_mix(tcp):
    run = LoadRun(tcp.endpoint, duration=10, max_requests=40, workers=4, post_ratio=0.25)
    started = time.monotonic()
    report = run.run()
    assert time.monotonic() - started < 5
    assert report['stopped_by'] == 'max_requests'
    assert (report['requests'], report['ok'], report['failed']) == (40, 40, 0)
    assert report['methods'] == {'GET': 30, 'POST': 10}
    assert tcp.server.methods == {'GET': 30, 'POST': 10}
    assert report['statuses'] == {'200': 40}
    assert report['endpoint'] == tcp.endpoint
    assert report['settings']['max_requests'] == 40 and report['settings']['workers'] == 4
    assert sorted(r.index for r in run.results) == list(range(40))
    assert sorted(set(r.worker for r in run.results)) == [0, 1, 2, 3]
    json.dumps(report)


def test_duration_bound(unix):
    run = LoadRun(unix.endpoint, duration=0.3, max_requests=1000000, workers=2)
    started = time.monotonic()
    report = run.run()
    assert time.monotonic() - started < 2
    assert report['stopped_by'] == 'duration'
    assert 0 < report['requests'] < 1000000 and report['failed'] == 0
    assert 0.3 <= report['elapsed_s'] < 1.5
    assert all(r.start < run.started_at + 0.3 for r in run.results)  # nothing starts after the deadline


def test_rate_limit(unix):
    report = LoadRun(unix.endpoint, duration=0.5, max_requests=10000, workers=4, rate=40).run()
    # Slots at 0, 25, 50, ... 475 ms: 20 fit in half a second (a starved worker may miss the last ones).
    assert 18 <= report['requests'] <= 20 and report['stopped_by'] == 'duration'


def test_stop_ends_a_run_early_and_is_idempotent(unix):
    run = LoadRun(unix.endpoint, duration=30, max_requests=1000000, rate=100)
    run.start()
    assert run.running
    time.sleep(0.1)
    run.stop()
    run.stop()
    assert not run.running and run.stopped_by == 'stop'
    assert run.summarize()['elapsed_s'] < 1
    with pytest.raises(RuntimeError, match='already started'):
        run.start()


def test_context_manager_stops_on_error(unix):
    with pytest.raises(KeyError):
        with LoadRun(unix.endpoint, duration=30, max_requests=1000000, rate=100) as run:
            time.sleep(0.05)
            raise KeyError('boom')
    assert not run.running and run.stopped_by == 'stop'


def test_phases_split_by_marks(unix):
    with LoadRun(unix.endpoint, duration=5, max_requests=100000, workers=2, rate=200, post_ratio=0.5) as run:
        time.sleep(0.15)
        run.mark('restart_begin')
        time.sleep(0.15)
        run.mark('restart_end')
        time.sleep(0.15)
    report = run.summarize()
    phases = report['phases']
    assert all(phases[p]['requests'] > 5 for p in ('before', 'during', 'after'))
    assert sum(phases[p]['requests'] for p in phases) == report['requests']
    assert sum(phases[p]['ok'] for p in phases) == report['ok'] == report['requests']
    assert [m['name'] for m in report['marks']] == ['restart_begin', 'restart_end']
    assert 100 <= report['marks'][0]['at_ms'] < report['marks'][1]['at_ms']
    assert phases['before']['latency_ms']['count'] == phases['before']['ok']
    assert report['gap_ms'] is not None and report['gap_ms'] < 150


@pytest.mark.parametrize('options', [dict(marker_header='X-Pid'), dict(marker_regex=r'pid=(\w+)')])
def test_markers_follow_the_serving_process(unix, options):
    with LoadRun(unix.endpoint, duration=5, max_requests=100000, rate=200, **options) as run:
        time.sleep(0.1)
        unix.server.marker = 'new'
        time.sleep(0.1)
    report = run.summarize()
    assert report['markers'] == ['old', 'new']
    assert sum(report['marker_counts'].values()) == report['ok']


def test_http_failures_are_counted_with_examples(tcp):
    report = LoadRun(tcp.endpoint, duration=5, max_requests=12, paths=['/fail'], max_examples=3).run()
    assert (report['requests'], report['ok'], report['failed']) == (12, 0, 12)
    assert report['failures_by_kind']['http_5xx'] == 12
    assert len(report['failure_examples']) == 3
    assert report['failure_examples'][0]['error'] == 'HTTP 503 Service Unavailable'
    assert report['latency_ms']['count'] == 0 and report['gap_ms'] is None


def test_refused_endpoint_is_counted_not_raised(sock_dir):
    report = LoadRun('unix:' + os.path.join(sock_dir, 'nobody.sock'), duration=5, max_requests=10).run()
    assert report['failed'] == 10 and report['failures_by_kind']['connect_refused'] == 10
    assert report['markers'] == []


def test_failure_pause_throttles_a_dead_endpoint(sock_dir):
    dead = 'unix:' + os.path.join(sock_dir, 'dead.sock')
    paused = LoadRun(dead, duration=0.2, max_requests=100000, workers=1, failure_pause=0.05).run()
    assert 2 <= paused['requests'] <= 6 and paused['settings']['failure_pause'] == 0.05
    eager = LoadRun(dead, duration=0.2, max_requests=100000, workers=1, failure_pause=0).run()
    assert eager['requests'] > 50


def test_a_real_restart_with_downtime_is_detected(sock_dir):
    # Stop the server, leave the socket missing for 200 ms, start a new one: the
    # report must show refused connections, a gap of about 200 ms, and both processes.
    path = os.path.join(sock_dir, 'restart.sock')
    old = _Serving(_UnixServer(path, _Handler), 'unix:' + path, 'old')
    with LoadRun('unix:' + path, duration=5, max_requests=100000, workers=2, rate=300, marker_header='X-Pid') as run:
        time.sleep(0.1)
        run.mark('restart_begin')
        old.close()
        os.unlink(path)
        time.sleep(0.2)
        new = _Serving(_UnixServer(path, _Handler), 'unix:' + path, 'new')
        run.mark('restart_end')
        time.sleep(0.1)
    new.close()
    report = run.summarize()
    assert report['failures_by_kind']['connect_refused'] > 0
    assert report['phases']['during']['failed'] == report['failed']
    assert report['phases']['before']['failed'] == report['phases']['after']['failed'] == 0
    assert report['gap_ms'] >= 150
    assert report['markers'] == ['old', 'new']


# -- the helper script -------------------------------------------------------------------


def _run_script(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30, check=False)


@pytest.fixture
def script():
    if not os.path.exists(SCRIPT):
        pytest.skip('tests/helpers/restart_under_load.py is not in this tree')
    return _run_script


def test_script_runs_commands_under_load(unix, script):
    done = script('--endpoint', unix.endpoint, '--settle', '0.2', '--duration', '5', '--rate', '200',
                  '--marker-header', 'X-Pid', '--command', 'true', '--command', 'sh -c "echo restarted"')
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report['failed'] == 0 and report['requests'] > 20
    assert report['commands_ok'] is True and report['load_covered_commands'] is True
    assert [(c['command'], c['rc'], c['stdout']) for c in report['commands']] == [('true', 0, ''), ('sh -c "echo restarted"', 0, 'restarted\n')]
    assert [m['name'] for m in report['marks']] == ['restart_begin', 'restart_end']
    assert report['markers'] == ['old'] and report['stopped_by'] == 'stop'
    assert report['methods']['POST'] > 0  # default mix includes POSTs


def test_script_reports_a_failing_command(unix, script):
    done = script('--endpoint', unix.endpoint, '--settle', '0.1', '--rate', '100',
                  '--command', 'sh -c "echo nope >&2; exit 3"', '--command', 'true')
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert report['commands_ok'] is False
    assert report['commands'] == [dict(report['commands'][0], command='sh -c "echo nope >&2; exit 3"', rc=3, stderr='nope\n', ok=False)]
    assert len(report['commands']) == 1  # stops at the first failure


def test_script_missing_command_and_bad_arguments(unix, script):
    done = script('--endpoint', unix.endpoint, '--settle', '0.05', '--rate', '100', '--command', '/nonexistent/zerodown-cmd')
    assert done.returncode == 2
    assert 'FileNotFoundError' in json.loads(done.stdout)['commands'][0]['stderr']
    done = script('--endpoint', 'nowhere', '--command', 'true')
    assert done.returncode == 1 and 'invalid endpoint' in done.stderr and done.stdout == ''
    done = script('--endpoint', unix.endpoint, '--duration', '0')
    assert done.returncode == 1 and 'unbounded' not in done.stderr and 'duration must be within' in done.stderr
    done = script('--bogus')
    assert done.returncode == 1


def test_script_works_from_a_plain_directory(unix, script, tmp_path):
    # As on a target host: the three files side by side, no ansible_collections anywhere.
    utils = os.path.join(os.path.dirname(SCRIPT), os.pardir, os.pardir, 'plugins', 'module_utils')
    for source in (SCRIPT, os.path.join(utils, '_http.py'), os.path.join(utils, '_load.py')):
        shutil.copy(source, str(tmp_path))
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    done = subprocess.run([sys.executable, '-S', str(tmp_path / 'restart_under_load.py'), '--endpoint', unix.endpoint,
                           '--settle', '0.05', '--rate', '100', '--command', 'true'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30, check=False, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)['ok'] > 0


# -- phase timing and timeline -------------------------------------------------------------


def test_phase_timing_windows_and_throughput():
    from ansible_collections.zerodown.deploy.plugins.module_utils._load import phase_timing

    records = [_record(i, 0.1 * i, 0.15) for i in range(30)]  # starts 0.0 .. 2.9 s, 10 requests/s, each 150 ms long
    report = summarize_records(records, [('restart_begin', 1.0), ('restart_end', 2.0)], started_at=0.0, finished_at=3.0)
    timing = phase_timing(report)
    assert timing == {
        'before': {'duration_s': 1.0, 'requests_per_s': 9.0},
        'during': {'duration_s': 1.0, 'requests_per_s': 11.0},  # the request overlapping the begin mark counts as during
        'after': {'duration_s': 1.0, 'requests_per_s': 10.0},
    }
    assert sum(report['phases'][p]['requests'] for p in timing) == 30


def test_phase_timing_edges():
    from ansible_collections.zerodown.deploy.plugins.module_utils._load import phase_timing

    records = [_record(i, 0.1 * i, 0.01) for i in range(10)]
    # No marks: the whole run is before.
    timing = phase_timing(summarize_records(records, [], started_at=0.0, finished_at=1.0))
    assert timing['before'] == {'duration_s': 1.0, 'requests_per_s': 10.0}
    assert timing['during'] == timing['after'] == {'duration_s': 0.0, 'requests_per_s': None}
    # The load ended (a bound) before the end mark: the mark is clamped, after is empty.
    timing = phase_timing(summarize_records(records, [('restart_begin', 0.5), ('restart_end', 5.0)], started_at=0.0, finished_at=1.0))
    assert timing['before']['duration_s'] == 0.5 and timing['during']['duration_s'] == 0.5
    assert timing['after'] == {'duration_s': 0.0, 'requests_per_s': None}
    # Begin without end: during runs to the end of the run; custom mark names work.
    timing = phase_timing(summarize_records(records, [('go', 0.25)], started_at=0.0, finished_at=1.0, begin_mark='go'), begin_mark='go')
    assert timing['during']['duration_s'] == 0.75 and timing['after']['duration_s'] == 0.0
    # An empty report.
    assert phase_timing(summarize_records([]))['before'] == {'duration_s': 0.0, 'requests_per_s': None}


def test_timeline_entries():
    from ansible_collections.zerodown.deploy.plugins.module_utils._load import timeline

    records = [
        _record(2, 10.5, 0.002, marker=41),
        _record(0, 10.0, 0.001, marker=40),
        _record(1, 10.2, 0.5, ok=False, kind='connect_refused', status=None, method='POST'),
    ]
    entries = timeline(records, [('restart_begin', 10.1), ('restart_end', 10.4)], started_at=9.0)
    assert entries == [
        {'t_ms': 1000.0, 'latency_ms': 1.0, 'ok': True, 'kind': None, 'status': 200, 'method': 'GET', 'phase': 'before', 'marker': '40'},
        {'t_ms': 1200.0, 'latency_ms': 500.0, 'ok': False, 'kind': 'connect_refused', 'status': None, 'method': 'POST', 'phase': 'during',
         'marker': None},
        {'t_ms': 1500.0, 'latency_ms': 2.0, 'ok': True, 'kind': None, 'status': 200, 'method': 'GET', 'phase': 'after', 'marker': '41'},
    ]
    assert json.loads(json.dumps(entries)) == entries
    assert timeline([]) == []
    assert timeline(records)[0]['t_ms'] == 0.0 and {e['phase'] for e in timeline(records)} == {'before'}
