# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy-time benchmark: one new-release deploy with zerodown.deploy.deploy vs an ansistrano-style baseline.

Run by `scripts/bench.sh --deploy-time` on one systemd container. Both
deploy the sample app (tests/apps/hello_wsgi.py, two gunicorn instances)
into the same container: ours with the settings of demo/inventory.yml
(/srv/hello, demo.local), the baseline with bench/baseline_deploy.yml
(/srv/baseline, baseline.local: what ansistrano.deploy's copy strategy does,
then a restart of each instance and a health check through nginx).

    python3 tools/bench_deploy.py CONTAINER OUTDIR --setup
    python3 tools/bench_deploy.py CONTAINER OUTDIR [--repeat N] [--noop-repeat N]

--setup is the untimed part: a first deploy of ours, the baseline's
bench/baseline_setup.yml (units, nginx site) and its first deploy, so that
every timed run replaces a live release. Without it, the runs alternate
ours, baseline, ours, baseline, ... (each a fresh source tree with a new
revision), each timed as a whole ansible-playbook process; after each of
the first --noop-repeat rounds, ours runs once more with the revision it
just deployed (nothing to do). The task counts come from the PLAY RECAP:
tasks = ok + skipped + failed (ok already includes changed), changed
separately.

With --load RATE, every timed run has a separate GET+POST load (1 in 4 a
POST, RATE requests/s in all, 4 clients, a new connection per request)
through nginx under that deploy's server name, for the whole
ansible-playbook run: what clients saw during each tool's deploy, its
failed requests and latency, in a second table. The load is bounded (10
minutes, 200,000 requests) and stays inside the container.

Writes OUTDIR/results.json and OUTDIR/logs/*.log (every run's output) and
prints a markdown table of medians with [min-max] and the ratio of each
median to the baseline's. Exits 1 when a run failed or served the wrong
release.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'molecule'))

from bench import cell  # noqa: E402 pylint: disable=wrong-import-position,import-error
from zd_scenario import BackgroundLoad, ansible_playbook, load_vars  # noqa: E402 pylint: disable=wrong-import-position,import-error
from zd_scenario import podman_inventory, served, source_tree  # noqa: E402 pylint: disable=wrong-import-position,import-error

APP = os.path.join(ROOT, 'tests', 'apps', 'hello_wsgi.py')
DEMO_INVENTORY = os.path.join(ROOT, 'demo', 'inventory.yml')
BASELINE_SETUP = os.path.join(ROOT, 'bench', 'baseline_setup.yml')
BASELINE_DEPLOY = os.path.join(ROOT, 'bench', 'baseline_deploy.yml')
BASELINE_SERVER_NAME = 'baseline.local'
# Every count of the recap line, skipped, rescued and ignored included.
RECAP = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)'
                   r'\s+rescued=(\d+)\s+ignored=(\d+)', re.M)
RECAP_KEYS = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored')

# name: what it is (the table's first column)
TOOLS = {
    'ours': 'zerodown.deploy.deploy, new release',
    'baseline': 'baseline (ansistrano copy strategy + restart of each instance), new release',
    'noop': 'zerodown.deploy.deploy, same revision again (no-op)',
}


def recap(output: str) -> dict:
    """The PLAY RECAP's counts summed over its hosts, and tasks = ok + skipped + failed."""
    totals = dict((key, 0) for key in RECAP_KEYS)
    for dummy, *numbers in RECAP.findall(output):
        for key, number in zip(RECAP_KEYS, numbers):
            totals[key] += int(number)
    totals['tasks'] = totals['ok'] + totals['skipped'] + totals['failed']
    return totals


class Bench:
    """The container, its two inventories, the source trees and the logs of one benchmark."""

    def __init__(self, container: str, outdir: str):
        self.container = container
        self.outdir = outdir
        self.sources = os.path.join(outdir, 'sources')
        self.logs = os.path.join(outdir, 'logs')
        self.tag = time.strftime('%Y%m%dT%H%M%S', time.gmtime())
        shutil.rmtree(self.sources, ignore_errors=True)
        os.makedirs(self.sources)
        os.makedirs(self.logs, exist_ok=True)
        demo_vars = load_vars(DEMO_INVENTORY)['all']['vars']
        self.ours_inventory = self.write('inventory-ours.yml', podman_inventory(demo_vars, hosts={container: {}}))
        self.baseline_inventory = self.write('inventory-baseline.yml', podman_inventory({}, hosts={container: {}}))
        self.ours_server_name = demo_vars['app_server_name']

    def write(self, name: str, data) -> str:
        path = os.path.join(self.outdir, name)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(yaml.safe_dump(data) if name.endswith('.yml') else json.dumps(data))
        return path

    def source(self, tool: str, label: str) -> tuple:
        """A fresh source tree of the sample app: a new revision (its release.json names it)."""
        name = '%s-%s-%s' % (tool, self.tag, label)
        return name, source_tree(self.sources, APP, name)

    def play(self, what: str, inventory: str, playbook: str, extra: dict) -> dict:
        """One ansible-playbook run, timed as a whole process; its output goes to OUTDIR/logs."""
        # The verifiers' runner, so both run in the same environment (no colour, pipelining).
        proc = ansible_playbook(playbook, inventory=inventory, extra=extra)
        output = proc.stdout
        log = os.path.join(self.logs, what + '.log')
        with open(log, 'w', encoding='utf-8') as handle:
            handle.write('$ ansible-playbook -i %s %s -e %s\n%s' % (inventory, playbook, json.dumps(extra), output))
        return {'rc': proc.returncode, 'seconds': round(proc.seconds, 1), 'recap': recap(output), 'log': log,
                'output_tail': output[-3000:] if proc.returncode else ''}

    def ours(self, name: str, path: str, what: str, rate: float = 0) -> dict:
        run = self.under_load(rate, self.ours_server_name, what,
                              lambda: self.play(what, self.ours_inventory, 'zerodown.deploy.deploy', {'app_source': {'type': 'local', 'path': path}}))
        return self.check(run, self.ours_server_name, name)

    def baseline(self, name: str, path: str, what: str, rate: float = 0) -> dict:
        run = self.under_load(rate, BASELINE_SERVER_NAME, what,
                              lambda: self.play(what, self.baseline_inventory, BASELINE_DEPLOY, {'baseline_deploy_from': path}))
        return self.check(run, BASELINE_SERVER_NAME, name)

    def under_load(self, rate: float, server_name: str, what: str, action) -> dict:
        """action() (one timed run); with a rate, while a separate load runs through nginx to server_name."""
        if not rate:
            return action()
        load = BackgroundLoad(self.container, 'http://127.0.0.1:80', 'bench-%s' % what, workers=4, max_requests=200000,
                              extra=('--host-header', server_name, '--rate', str(rate), '--post-ratio', '0.25'))
        try:
            run = action()
        finally:
            report = load.stop()
        latency = report.get('latency_ms') or {}
        run['load'] = {'requests': report['requests'], 'failed': report['failed'], 'stopped_by': report['stopped_by'],
                       'failures_by_kind': dict((k, v) for k, v in report['failures_by_kind'].items() if v),
                       'p50_ms': latency.get('p50'), 'p99_ms': latency.get('p99'), 'max_ms': latency.get('max')}
        return run

    def check(self, run: dict, server_name: str, release: str) -> dict:
        """Untimed: does nginx serve the release just deployed under that server name?"""
        answer = served(self.container, server_name)
        run['served'] = answer.get('release')
        run['ok'] = run['rc'] == 0 and answer.get('status') == 200 and answer.get('release') == release
        return run


def table(results: dict, repeat: int) -> str:
    """Markdown: per tool, runs, wall time and tasks (median [min-max]), changed, ratio of the medians to the baseline's."""
    medians = dict((tool, (statistics.median([r['seconds'] for r in runs]), statistics.median([r['recap']['tasks'] for r in runs])))
                   for tool, runs in results.items() if runs)
    base = medians.get('baseline')

    def ratio(value, index):
        return '%.2f' % (value / base[index]) if base and base[index] else '-'

    lines = ['### One deploy, wall time and Ansible tasks (%d run%s each, alternating)\n' % (repeat, '' if repeat == 1 else 's'),
             '| deploy | runs | wall time s | tasks (ok + skipped + failed) | changed | failed runs | wall time / baseline | tasks / baseline |',
             '|---|---|---|---|---|---|---|---|']
    for tool, runs in results.items():
        if not runs:
            continue
        lines.append('| %s | %d | %s | %s | %s | %d | %s | %s |' % (
            TOOLS[tool], len(runs), cell([r['seconds'] for r in runs], '%.1f'), cell([r['recap']['tasks'] for r in runs], '%d'),
            cell([r['recap']['changed'] for r in runs], '%d'), sum(1 for r in runs if not r['ok']),
            ratio(medians[tool][0], 0), ratio(medians[tool][1], 1)))
    if base and 'ours' in medians:
        lines.append('\nours / baseline, medians: wall time %s x, tasks %s x' % (ratio(medians['ours'][0], 0), ratio(medians['ours'][1], 1)))
    return '\n'.join(lines)


def load_table(results: dict, rate: float) -> str:
    """Markdown: what the separate load saw during each tool's runs (sums of requests and failures, medians of p99 and max)."""
    lines = ['### What clients saw during each deploy (separate GET+POST load through nginx, %g requests/s)\n' % rate,
             '| deploy | runs | requests | failed | failures | p50 ms | p99 ms | max ms |', '|---|---|---|---|---|---|---|---|']
    for tool, runs in results.items():
        loads = [r['load'] for r in runs if r.get('load')]
        if not loads:
            continue
        kinds = {}
        for load in loads:
            for kind, count in load['failures_by_kind'].items():
                kinds[kind] = kinds.get(kind, 0) + count
        lines.append('| %s | %d | %d | %d | %s | %s | %s | %s |' % (
            TOOLS[tool], len(loads), sum(x['requests'] for x in loads), sum(x['failed'] for x in loads),
            ', '.join('%s %d' % item for item in sorted(kinds.items())) or '-',
            cell([x['p50_ms'] for x in loads if x['p50_ms'] is not None], '%.1f'),
            cell([x['p99_ms'] for x in loads if x['p99_ms'] is not None], '%.1f'),
            cell([x['max_ms'] for x in loads if x['max_ms'] is not None], '%.0f')))
    return '\n'.join(lines)


def setup(bench: Bench) -> int:
    """The untimed part: a first deploy of ours, the baseline's setup play and its first deploy."""
    steps = (('ours-setup', bench.ours, bench.source('ours', 'setup')), ('baseline-setup', None, None),
             ('baseline-first', bench.baseline, bench.source('baseline', 'setup')))
    for what, deploy, release in steps:
        if deploy:
            run = deploy(release[0], release[1], what)
        else:
            run = bench.play(what, bench.baseline_inventory, BASELINE_SETUP, {})
            run.update(ok=run['rc'] == 0, served=None)
        sys.stderr.write('  %-14s rc %d, %.1f s, %d tasks, served %s\n' % (what, run['rc'], run['seconds'], run['recap']['tasks'], run['served']))
        if not run['ok']:
            sys.stderr.write(run['output_tail'])
            sys.stderr.write('bench_deploy: the setup step %s failed; the whole output is in %s\n' % (what, run['log']))
            return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('container')
    parser.add_argument('outdir')
    parser.add_argument('--setup', action='store_true', help='the untimed first deploys (and the baseline setup play) only')
    parser.add_argument('--repeat', type=int, default=3, help='timed new-release deploys of each, alternating (default 3)')
    parser.add_argument('--noop-repeat', type=int, default=None, help='no-op runs of ours (default: as --repeat; 0 skips them)')
    parser.add_argument('--load', type=float, default=0, metavar='RATE',
                        help='a separate GET+POST load of RATE requests/s through nginx during every timed run (default: none)')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error('--repeat must be at least 1')
    if not 0 <= args.load <= 2000:
        parser.error('--load must be between 0 (none) and 2000 requests/s')
    noop_repeat = args.repeat if args.noop_repeat is None else args.noop_repeat
    os.makedirs(args.outdir, exist_ok=True)
    bench = Bench(args.container, args.outdir)
    if args.setup:
        return setup(bench)

    results = dict((tool, []) for tool in TOOLS)
    load_before = os.getloadavg()
    # Interleaved (ours, baseline, ours, baseline, ...) so slow drift of the machine hits both alike.
    for index in range(1, args.repeat + 1):
        ours_release = bench.source('ours', str(index))
        rounds = [('ours', bench.ours, ours_release), ('baseline', bench.baseline, bench.source('baseline', str(index)))]
        if index <= noop_repeat:
            # The revision ours just deployed, again: the baseline's deploy in between left /srv/hello alone.
            rounds.append(('noop', bench.ours, ours_release))
        for tool, deploy, (name, path) in rounds:
            run = deploy(name, path, '%s-%d' % (tool, index), args.load)
            run['run'] = index
            results[tool].append(run)
            load = run.get('load')
            sys.stderr.write('  %-8s run %d: rc %d, %6.1f s, %3d tasks (%d changed), served %s%s%s\n' % (
                tool, index, run['rc'], run['seconds'], run['recap']['tasks'], run['recap']['changed'], run['served'],
                ', load %d requests %d failed p99 %s ms max %s ms' % (load['requests'], load['failed'], load['p99_ms'], load['max_ms'])
                if load else '', '' if run['ok'] else '  FAILED: ' + run['log']))
    collection = os.environ.get('ZD_BENCH_COLLECTION', 'as installed in ANSIBLE_COLLECTIONS_PATH')
    settings = {'collection': collection, 'repeat': args.repeat, 'noop_repeat': noop_repeat, 'load_rate': args.load,
                'container': args.container, 'tools': TOOLS,
                'ours_inventory': DEMO_INVENTORY, 'baseline_playbook': BASELINE_DEPLOY, 'cores': os.cpu_count(),
                'load_average_before': load_before, 'load_average_after': os.getloadavg()}
    with open(os.path.join(args.outdir, 'results.json'), 'w', encoding='utf-8') as handle:
        json.dump({'settings': settings, 'results': results}, handle, indent=1)
    print(table(results, args.repeat))
    if args.load:
        print('\n' + load_table(results, args.load))
    print('\nzerodown.deploy: %s' % collection)
    # The baseline may lose requests (that is what the load compares); ours must not.
    ours_lost = sum(r['load']['failed'] for tool in ('ours', 'noop') for r in results[tool] if r.get('load'))
    if ours_lost:
        sys.stderr.write('bench_deploy: %d requests of the separate load failed during deploys of ours\n' % ours_lost)
    return 0 if all(r['ok'] for runs in results.values() for r in runs) and not ours_lost else 1


if __name__ == '__main__':
    raise SystemExit(main())
