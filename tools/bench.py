# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restart benchmark: the same app, load and restart, one mode at a time, repeated; median and spread.

Run by scripts/bench.sh after bench/site.yml set the modes up in the
container. Each run drives GET+POST load through nginx from inside the
container (tests/helpers/restart_under_load.py: bounded in time and count),
restarts the mode's service in the middle, and records what the clients saw.

    python3 tools/bench.py CONTAINER OUTDIR [--repeat N] [--modes trad,keepalive32,...] [--workers N] [--settle S]

Writes OUTDIR/results.json (every run), OUTDIR/timelines.png (first run of
each mode) and prints a markdown table of medians with [min-max]. Then,
without restarts, the steady-state throughput of each mode with wrk (GET,
then POST), which saturates the machine where the Python load generator
cannot: a second table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'plugins', 'module_utils'))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'molecule'))

import _load  # noqa: E402 pylint: disable=wrong-import-position,import-error
import plot_timeline  # noqa: E402 pylint: disable=wrong-import-position,import-error
from zd_scenario import copy_load_tools, podman  # noqa: E402 pylint: disable=wrong-import-position,import-error

REMOTE_DIR = '/opt/zerodown-bench'

# name: (what it is, restart commands run one after the other; restart_under_load.py runs each without a shell)
MODES = {
    'trad': ('app binds its own port, systemctl restart', ['systemctl restart bench-trad.service']),
    'keepalive32': ('socket activation, 1 instance, nginx keepalive 32', ['systemctl restart bench-sock.service']),
    'keepalive32-retry': ('as keepalive32, nginx also retries POSTs (non_idempotent)', ['systemctl restart bench-sock.service']),
    'default': ('socket activation, 1 instance, one shared socket, no upstream keepalive (app_surge: false)',
                ['systemctl restart bench-sock.service']),
    # Type=notify: each restart returns once the new instance sent READY=1, so the next one starts only then.
    'rolling': ('socket activation, 2 instances, rolling', ['systemctl restart bench-roll@1.service', 'systemctl restart bench-roll@2.service']),
    'default-tcp': ('as default, over TCP 127.0.0.1:8101', ['systemctl restart bench-socktcp.service']),
    'rolling-tcp': ('as rolling, over TCP 127.0.0.1:8102',
                    ['systemctl restart bench-rolltcp@1.service', 'systemctl restart bench-rolltcp@2.service']),
}


def flip_command(name: str, instances: int, listen: str, mode: str, host: str) -> list:
    """The app role's restart of an app of the instances layout (bench/flip.py, in the container)."""
    return ['python3 %s/flip.py %s %d %s %s --host %s' % (REMOTE_DIR, name, instances, listen, mode, host)]


# The layout a deploy leaves today (bench/site.yml's second play): one socket per instance behind nginx, keepalive 32.
LAYOUT_MODES = {
    'surge': ('one socket per instance, 1 instance, a surge, keepalive 32',
              flip_command('bsurge', 1, '/run/bsurge/bsurge.sock', 'surge', 'surge.bench')),
    'surge-2': ('one socket per instance, 2 instances, a surge, keepalive 32',
                flip_command('bsurge2', 2, '/run/bsurge2/bsurge2.sock', 'surge', 'surge-2.bench')),
    'drain-rolling': ('one socket per instance, 2 instances, one at a time out of nginx, keepalive 32',
                      flip_command('bdrain', 2, '/run/bdrain/bdrain.sock', 'drain_rolling', 'drain-rolling.bench')),
    'surge-tcp': ('as surge, over TCP 127.0.0.K:8201', flip_command('bsurgetcp', 1, '127.0.0.1:8201', 'surge', 'surge-tcp.bench')),
    'surge-uvicorn': ('as surge, uvicorn --fd 3 (ASGI)',
                      flip_command('buvicorn', 1, '/run/buvicorn/buvicorn.sock', 'surge', 'surge-uvicorn.bench')),
    'surge-node': ('as surge, a tutorial-style Node.js app', flip_command('bnode', 1, '/run/bnode/bnode.sock', 'surge', 'surge-node.bench')),
    'drain-rolling-node': ('as drain-rolling, the Node.js app',
                           flip_command('bnoderoll', 2, '/run/bnoderoll/bnoderoll.sock', 'drain_rolling', 'drain-rolling-node.bench')),
}
MODES.update(LAYOUT_MODES)


def copy_flip_tools(container: str) -> None:
    """bench/flip.py and the collection's module_utils it runs, as the package path the modules import."""
    package = REMOTE_DIR + '/ansible_collections/zerodown/deploy/plugins'
    podman('exec', container, 'rm', '-rf', package)
    podman('exec', container, 'mkdir', '-p', package)
    podman('cp', os.path.join(ROOT, 'plugins', 'module_utils'), '%s:%s/module_utils' % (container, package))
    podman('cp', os.path.join(ROOT, 'bench', 'flip.py'), '%s:%s/flip.py' % (container, REMOTE_DIR))


def run_once(container: str, mode: str, index: int, args) -> dict:
    """One restart under load; returns the load report plus the timeline (fetched)."""
    remote_timeline = '/tmp/bench-%s-%d.json' % (mode, index)
    argv = ['exec', container, 'python3', REMOTE_DIR + '/restart_under_load.py', '--endpoint', 'http://127.0.0.1:80',
            '--host-header', '%s.bench' % mode, '--workers', str(args.workers), '--post-ratio', '0.5', '--settle', str(args.settle),
            '--duration', str(args.settle * 2 + 60), '--max-requests', '1000000', '--marker-header', 'X-Served-By',
            '--timeline', remote_timeline]
    for command in MODES[mode][1]:
        argv += ['--command', command]
    if args.keep_alive:
        argv.append('--keep-alive')
    result = podman(*argv, check=False)
    if not result.stdout:
        raise SystemExit('bench: the load of %s printed nothing (rc %d): %s' % (mode, result.returncode, result.stderr))
    report = json.loads(result.stdout)
    if not report['commands_ok']:
        raise SystemExit('bench: the restart of %s failed: %s' % (mode, report['commands']))
    report['timeline'] = json.loads(podman('exec', container, 'cat', remote_timeline).stdout)
    podman('exec', container, 'rm', '-f', remote_timeline)
    return report


def metrics(report: dict) -> dict:
    """The benchmark's numbers of one run."""
    timing = _load.phase_timing(report)
    before, during = report['phases']['before'], report['phases']['during']
    steady_p99 = before['latency_ms']['p99']
    during_p99 = during['latency_ms']['p99']
    return {
        'requests': report['requests'],
        'failed': report['failed'],
        'failed_pct': round(100.0 * report['failed'] / report['requests'], 3) if report['requests'] else None,
        'failures_by_kind': dict((k, v) for k, v in report['failures_by_kind'].items() if v),
        'steady_p50_ms': before['latency_ms']['p50'],
        'steady_p99_ms': steady_p99,
        'restart_p99_ms': during_p99,
        'restart_max_ms': during['latency_ms']['max'],
        'ratio_p99': round(during_p99 / steady_p99, 2) if steady_p99 and during_p99 is not None else None,
        'gap_ms': report['gap_ms'],
        'steady_rps': timing['before']['requests_per_s'],
        'restart_rps': timing['during']['requests_per_s'],
        'restart_s': round(sum(c['elapsed_s'] for c in report['commands']), 3),
        'commands_ok': report['commands_ok'],
    }


COLUMNS = (
    ('failed', 'failed', '%d'), ('failed_pct', 'failed %', '%.2f'), ('steady_p50_ms', 'steady p50 ms', '%.1f'),
    ('steady_p99_ms', 'steady p99 ms', '%.1f'), ('restart_p99_ms', 'restart p99 ms', '%.1f'), ('restart_max_ms', 'restart max ms', '%.1f'),
    ('ratio_p99', 'p99 ratio', '%.2f'), ('gap_ms', 'gap ms', '%.0f'), ('steady_rps', 'steady req/s', '%.0f'),
    ('restart_rps', 'restart req/s', '%.0f'), ('restart_s', 'restart s', '%.2f'), ('requests', 'requests', '%d'),
)


def cell(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    median = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return fmt % median
    return '%s [%s-%s]' % (fmt % median, fmt % min(values), fmt % max(values))


def table(results: dict) -> str:
    lines = ['| mode | ' + ' | '.join(title for dummy, title, dummy2 in COLUMNS) + ' | failures by kind |',
             '|---' * (len(COLUMNS) + 2) + '|']
    for mode, runs in results.items():
        numbers = [run['metrics'] for run in runs]
        kinds = {}
        for entry in numbers:
            for kind, count in entry['failures_by_kind'].items():
                kinds[kind] = kinds.get(kind, 0) + count
        row = [mode] + [cell([n[key] for n in numbers], fmt) for key, dummy, fmt in COLUMNS]
        row.append(', '.join('%s %d' % item for item in sorted(kinds.items())) or '-')
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


WRK_POST = 'wrk.method = "POST"\nwrk.body = "zerodown=probe"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'


def wrk_rate(container: str, mode: str, method: str, seconds: float, connections: int) -> dict:
    """Requests/s and errors of one wrk run against MODE.bench through nginx (loopback in the container)."""
    argv = ['exec', container, 'wrk', '-t2', '-c%d' % connections, '-d%ds' % seconds, '-H', 'Host: %s.bench' % mode]
    if method == 'POST':
        argv += ['-s', REMOTE_DIR + '/post.lua']
    out = podman(*(argv + ['http://127.0.0.1:80/'])).stdout
    rate = re.search(r'Requests/sec:\s+([0-9.]+)', out)
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    socket_errors = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
    return {'rps': float(rate.group(1)) if rate else None, 'non_2xx': int(errors.group(1)) if errors else 0,
            'socket_errors': sum(int(n) for n in socket_errors.groups()) if socket_errors else 0}


def throughput(container: str, modes: list, repeat: int, seconds: float, connections: int) -> dict:
    subprocess.run(['podman', 'exec', '-i', container, 'sh', '-c', 'cat > %s/post.lua' % REMOTE_DIR], input=WRK_POST, text=True,
                   check=True)
    found = dict((mode, {'GET': [], 'POST': []}) for mode in modes)
    for dummy in range(repeat):
        for mode in modes:
            for method in ('GET', 'POST'):
                found[mode][method].append(wrk_rate(container, mode, method, seconds, connections))
    return found


def throughput_table(found: dict, base: str) -> str:
    lines = ['| mode | GET req/s | POST req/s | GET vs %s | POST vs %s | non-2xx / socket errors |' % (base, base), '|---|---|---|---|---|---|']
    medians = dict((mode, dict((method, statistics.median([r['rps'] for r in runs[method] if r['rps'] is not None] or [0]))
                               for method in ('GET', 'POST'))) for mode, runs in found.items())
    for mode, runs in found.items():
        errors = sum(r['non_2xx'] for method in runs for r in runs[method])
        socket_errors = sum(r['socket_errors'] for method in runs for r in runs[method])
        ratios = []
        for method in ('GET', 'POST'):
            reference = medians.get(base, {}).get(method)
            ratios.append('%.0f %%' % (100.0 * medians[mode][method] / reference) if reference else '-')
        lines.append('| %s | %s | %s | %s | %s | %d / %d |' % (
            mode, cell([r['rps'] for r in runs['GET']], '%.0f'), cell([r['rps'] for r in runs['POST']], '%.0f'), ratios[0], ratios[1],
            errors, socket_errors))
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('container')
    parser.add_argument('outdir')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--workers', type=int, default=16, help='concurrent clients (default 16: enough to saturate 2 cores)')
    parser.add_argument('--settle', type=float, default=5.0, help='seconds of load before and after the restart')
    parser.add_argument('--no-keep-alive', dest='keep_alive', action='store_false',
                        help='a new client connection per request (default: keep-alive to nginx, like hey)')
    parser.add_argument('--throughput-seconds', type=float, default=8, help='length of each wrk run; 0 skips the throughput table')
    parser.add_argument('--connections', type=int, default=32, help='wrk connections (default 32)')
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(',') if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error('unknown modes %s; known: %s' % (unknown, ', '.join(MODES)))
    os.makedirs(args.outdir, exist_ok=True)
    copy_load_tools(args.container, REMOTE_DIR)
    if any(mode in LAYOUT_MODES for mode in modes):
        copy_flip_tools(args.container)

    results = dict((mode, []) for mode in modes)
    # Interleaved (trad, keepalive32, ..., trad, keepalive32, ...) so slow drift of the machine hits every mode alike.
    for index in range(args.repeat):
        for mode in modes:
            report = run_once(args.container, mode, index, args)
            entry = {'run': index + 1, 'metrics': metrics(report), 'report': dict((k, v) for k, v in report.items() if k != 'timeline')}
            results[mode].append(entry)
            if index == 0:
                path = os.path.join(args.outdir, 'timeline-%s.json' % mode)
                with open(path, 'w', encoding='utf-8') as handle:
                    json.dump(report['timeline'], handle)
            m = entry['metrics']
            sys.stderr.write('  %-12s run %d: %6d requests, %5d failed, steady p99 %.1f ms, restart p99 %s ms max %s ms, %s req/s\n' % (
                mode, index + 1, m['requests'], m['failed'], m['steady_p99_ms'] or 0, m['restart_p99_ms'], m['restart_max_ms'],
                m['steady_rps']))

    rates = {}
    if args.throughput_seconds > 0:
        rates = throughput(args.container, modes, args.repeat, args.throughput_seconds, args.connections)
    with open(os.path.join(args.outdir, 'results.json'), 'w', encoding='utf-8') as handle:
        json.dump({'settings': {'workers': args.workers, 'settle_s': args.settle, 'keep_alive': args.keep_alive, 'repeat': args.repeat,
                                'throughput_seconds': args.throughput_seconds, 'connections': args.connections,
                                'modes': dict((m, MODES[m]) for m in modes)},
                   'results': results, 'throughput': rates}, handle, indent=1)
    plot_timeline.plot(os.path.join(args.outdir, 'timelines.png'),
                       [('%s: %s' % (mode, MODES[mode][0]), plot_timeline.load(os.path.join(args.outdir, 'timeline-%s.json' % mode)))
                        for mode in modes],
                       title='Restart under GET+POST load through nginx (%d clients), first run of each mode' % args.workers)
    print('### Restart under load (%d clients, %d runs per mode)\n' % (args.workers, args.repeat))
    print(table(results))
    if rates:
        print('\n### Steady-state throughput, no restart (wrk, %d connections, %g s per run, %d runs)\n'
              % (args.connections, args.throughput_seconds, args.repeat))
        print(throughput_table(rates, 'keepalive32' if 'keepalive32' in rates else modes[0]))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
