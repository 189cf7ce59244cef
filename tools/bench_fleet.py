# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet benchmark: deploy wall time for 1 host vs 3, each deploy under load through the load balancer.

Run by `scripts/bench.sh --fleet` after Molecule created and converged the
fleet scenario (molecule/fleet: zd-fleet-lb in front of zd-fleet-1..3).
Every deploy is the collection's deploy playbook with a new release, run
while GET and POST go through the load balancer's nginx at a steady rate
from inside its container (bounded: 20 minutes, 200000 requests).

    python3 tools/bench_fleet.py OUTDIR [--repeat N] [--cases one,three,waves]

Writes OUTDIR/results.json and prints a markdown table: medians with
[min-max] of the wall time, the requests at the load balancer and how many
failed. A deploy that fails or drops a request is reported, and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'molecule'))

from bench import cell  # noqa: E402 pylint: disable=wrong-import-position,import-error
import zd_fleet as fleet  # noqa: E402 pylint: disable=wrong-import-position,import-error
from zd_scenario import failures, podman_exec  # noqa: E402 pylint: disable=wrong-import-position,import-error

# name: (what it is, deploy keyword arguments)
CASES = {
    'one': ('1 host (--limit), no drain', {'extra': {'app_lb_drain': False}, 'limit': [fleet.WEB[0], fleet.LB]}),
    'three': ('3 hosts in one wave, no drain', {'extra': {'app_lb_drain': False, 'zerodown_waves': ['100%']}}),
    'waves': ('3 hosts, waves [1, 25%, 100%], drained', {'extra': {'app_lb_drain': True, 'zerodown_waves': [1, '25%', '100%']}}),
}


def run_once(case: str, index: int, tag: str) -> dict:
    """One deploy of a new release; its wall time, waves and the load balancer's load report."""
    proc, load = fleet.loaded(lambda: fleet.deploy('bench-%s-%s-%d' % (tag, case, index), **CASES[case][1]))
    return {'rc': proc.returncode, 'seconds': round(proc.seconds, 1), 'waves': fleet.waves(proc), 'requests': load['requests'],
            'failed': load['failed'], 'failures_by_kind': failures(load), 'output_tail': proc.stdout[-3000:] if proc.returncode else ''}


def table(results: dict) -> str:
    lines = ['| deploy | runs | wall time s | waves | requests at the LB | failed | deploys failed |', '|---|---|---|---|---|---|---|']
    for case, runs in results.items():
        lines.append('| %s | %d | %s | %s | %s | %d | %d |' % (
            CASES[case][0], len(runs), cell([r['seconds'] for r in runs], '%.1f'), cell([r['waves'] for r in runs], '%d'),
            cell([r['requests'] for r in runs], '%d'), sum(r['failed'] for r in runs), sum(1 for r in runs if r['rc'])))
    return '\n'.join(lines)


def ready() -> str | None:
    """Why the fleet cannot be benchmarked, or None."""
    for name in [fleet.LB] + fleet.WEB:
        if podman_exec(name, 'true').returncode:
            return 'container %s is not running: create and converge molecule/fleet first (scripts/bench.sh --fleet does)' % name
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('outdir')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--cases', default='one,three', help='comma-separated, of: %s (default one,three)' % ', '.join(CASES))
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(',') if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error('unknown or no cases %s; known: %s' % (unknown, ', '.join(CASES)))
    if args.repeat < 1:
        parser.error('--repeat must be at least 1')
    problem = ready()
    if problem:
        parser.error(problem)
    os.makedirs(args.outdir, exist_ok=True)
    tag = time.strftime('%Y%m%dT%H%M%S', time.gmtime())
    results = dict((case, []) for case in cases)
    # Interleaved (one, three, one, three, ...) so slow drift of the machine hits every case alike.
    for index in range(args.repeat):
        for case in cases:
            entry = run_once(case, index + 1, tag)
            results[case].append(entry)
            sys.stderr.write('  %-6s run %d: rc %d, %.1f s, %d wave(s), %d requests at the LB, %d failed %s\n' % (
                case, index + 1, entry['rc'], entry['seconds'], entry['waves'], entry['requests'], entry['failed'],
                entry['failures_by_kind'] or ''))
    with open(os.path.join(args.outdir, 'results.json'), 'w', encoding='utf-8') as handle:
        json.dump({'settings': {'repeat': args.repeat, 'load_rate': fleet.LOAD_RATE, 'cases': dict((c, CASES[c][0]) for c in cases)},
                   'results': results}, handle, indent=1)
    print('### Deploy wall time, 1 vs 3 hosts (each under %s req/s GET+POST through the load balancer, %d runs)\n'
          % (fleet.LOAD_RATE, args.repeat))
    print(table(results))
    bad = any(r['rc'] or r['failed'] for runs in results.values() for r in runs)
    return 1 if bad else 0


if __name__ == '__main__':
    raise SystemExit(main())
