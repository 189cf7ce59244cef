# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run commands (e.g. a service restart) while HTTP load runs, and print the load report as JSON.

Copy this file together with ``plugins/module_utils/_http.py`` and ``_load.py``
into one directory on the target and run it with the host's Python 3::

    python3 restart_under_load.py --endpoint unix:/run/app.sock --command 'systemctl restart app.service'

Exit status: 0 when every command succeeded (the caller asserts on the JSON,
e.g. ``failed == 0``), 2 when a command failed or could not run, 1 for bad
arguments. The report is printed on stdout in every case but bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Copied onto a host, _load.py and _http.py sit next to this file; in the
# collection's source tree they live in plugins/module_utils.
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, os.pardir, os.pardir, 'plugins', 'module_utils'))

import _load  # noqa: E402  pylint: disable=wrong-import-position

EXIT_OK = 0
EXIT_BAD_ARGS = 1
EXIT_COMMAND_FAILED = 2
# Keep the JSON readable when a command is chatty.
OUTPUT_TAIL = 2000


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; 2 means "a command failed" here, so use 1."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_ARGS, '%s: error: %s\n' % (self.prog, message))


def parse_args(argv=None):
    """Command line options; see --help."""
    parser = _Parser(description='Drive HTTP load at an endpoint while running commands, then print a JSON report.')
    parser.add_argument('--endpoint', required=True, help='unix:/run/x.sock, /run/x.sock, host:port, [v6]:port or http://host:port')
    parser.add_argument('--duration', type=float, default=8.0, help='maximum seconds of load (default: 8)')
    parser.add_argument('--max-requests', type=int, default=20000, help='maximum number of requests (default: 20000)')
    parser.add_argument('--workers', type=int, default=_load.DEFAULT_WORKERS, help='concurrent client threads (default: 4)')
    parser.add_argument('--post-ratio', type=float, default=0.5, help='share of POST requests, 0..1 (default: 0.5)')
    parser.add_argument('--path', action='append', dest='paths', help='GET path, repeatable (default: /)')
    parser.add_argument('--post-path', action='append', dest='post_paths', help='POST path, repeatable (default: the GET paths)')
    parser.add_argument('--post-body', default=_load.DEFAULT_POST_BODY.decode('ascii'), help='POST body')
    parser.add_argument('--rate', type=float, default=None, help='target requests per second over all workers (default: unlimited)')
    parser.add_argument('--timeout', type=float, default=10.0, help='per-operation socket timeout in seconds (default: 10)')
    parser.add_argument('--failure-pause', type=float, default=_load.DEFAULT_FAILURE_PAUSE,
                        help='seconds a worker pauses after a failed request (default: 0.01)')
    parser.add_argument('--keep-alive', action='store_true', help='reuse connections instead of one request per connection')
    parser.add_argument('--host-header', default=None, help='Host header (default: host:port, or localhost for Unix sockets)')
    parser.add_argument('--settle', type=float, default=1.0, help='seconds of load before and after the commands (default: 1.0)')
    parser.add_argument('--marker-header', default=None, help='response header identifying the serving process, e.g. X-Pid')
    parser.add_argument('--marker-regex', default=None, help='regex (first group, if any) identifying the serving process in the body or marker header')
    parser.add_argument('--command', action='append', dest='commands', default=[],
                        help='command to run under load (split with shlex, no shell); repeatable, run in order')
    parser.add_argument('--timeline', default=None,
                        help='also write one JSON entry per request (t_ms, latency_ms, ok, kind, phase, ...) to this file, for plotting')
    parser.add_argument('--command-timeout', type=float, default=300.0, help='seconds each command may take (default: 300)')
    return parser.parse_args(argv)


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL:] if text else ''


def run_command(command: str, timeout: float) -> dict:
    """Run one command without a shell and describe its outcome."""
    started = time.monotonic()
    outcome = {'command': command, 'rc': None, 'stdout': '', 'stderr': '', 'elapsed_s': None, 'ok': False}
    try:
        argv = shlex.split(command)
        if not argv:
            raise ValueError('empty command')
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   timeout=timeout, check=False, universal_newlines=True)
        outcome.update(rc=completed.returncode, stdout=_tail(completed.stdout), stderr=_tail(completed.stderr), ok=completed.returncode == 0)
    except subprocess.TimeoutExpired:
        outcome['stderr'] = 'timed out after %s s' % timeout
    except (OSError, ValueError) as exc:
        outcome['stderr'] = '%s: %s' % (type(exc).__name__, exc)
    outcome['elapsed_s'] = round(time.monotonic() - started, 3)
    return outcome


def run_commands(commands, timeout: float) -> list:
    """Run commands in order, stopping at the first failure."""
    outcomes = []
    for command in commands:
        outcomes.append(run_command(command, timeout))
        if not outcomes[-1]['ok']:
            break
    return outcomes


def build_run(args) -> _load.LoadRun:
    """The LoadRun described by the command line (raises ValueError for bad values)."""
    return _load.LoadRun(
        args.endpoint,
        duration=args.duration,
        max_requests=args.max_requests,
        workers=args.workers,
        post_ratio=args.post_ratio,
        paths=args.paths or ('/',),
        post_paths=args.post_paths,
        post_body=args.post_body.encode('utf-8'),
        rate=args.rate,
        timeout=args.timeout,
        keep_alive=args.keep_alive,
        host_header=args.host_header,
        marker_header=args.marker_header,
        marker_regex=args.marker_regex,
        failure_pause=args.failure_pause,
    )


def restart_under_load(run: _load.LoadRun, commands, settle: float, command_timeout: float) -> dict:
    """settle, mark, run the commands, mark, settle; return the report with the commands' outcomes."""
    with run:
        run.wait(settle)
        run.mark(_load.BEGIN_MARK)
        outcomes = run_commands(commands, command_timeout)
        run.mark(_load.END_MARK)
        # If a bound already ended the load, part of the action ran without traffic.
        covered = run.running
        run.wait(settle)
    report = run.summarize()
    report['timeline'] = _load.timeline(run.results, run.marks, run.started_at)
    report['commands'] = outcomes
    report['commands_ok'] = all(o['ok'] for o in outcomes) and len(outcomes) == len(commands)
    report['load_covered_commands'] = covered
    return report


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        run = build_run(args)
    except ValueError as exc:
        sys.stderr.write('restart_under_load: %s\n' % exc)
        return EXIT_BAD_ARGS
    if args.settle < 0:
        sys.stderr.write('restart_under_load: --settle must not be negative\n')
        return EXIT_BAD_ARGS
    report = restart_under_load(run, args.commands, args.settle, args.command_timeout)
    entries = report.pop('timeline')
    if args.timeline:
        with open(args.timeline, 'w', encoding='utf-8') as handle:
            json.dump(entries, handle, separators=(',', ':'))
    sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + '\n')
    return EXIT_OK if report['commands_ok'] else EXIT_COMMAND_FAILED


if __name__ == '__main__':
    sys.exit(main())
