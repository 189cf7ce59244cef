# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plot request latency over time from load timelines, one panel per run, the restart window shaded.

    python3 tools/plot_timeline.py OUT.png "label=timeline.json" ["label=timeline.json" ...] [--title TITLE]

A timeline is the JSON list that zero_downtime_restart (timeline_path) or
tests/helpers/restart_under_load.py (--timeline) writes: one entry per
request with t_ms, latency_ms, ok, kind and phase. Successful requests are
dots, failed ones red crosses at the time they ended; the shaded band runs
from the first to the last request of the "during" phase.
"""

from __future__ import annotations

import argparse
import json

DURING = ('during',)


def load(path: str) -> list:
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def restart_window(entries: list):
    """(start, end) in seconds of the requests that overlapped the restart, or None."""
    during = [e for e in entries if e.get('phase') in DURING]
    if not during:
        return None
    return (min(e['t_ms'] for e in during) / 1000.0,
            max(e['t_ms'] + (e.get('latency_ms') or 0) for e in during) / 1000.0)


def panel(axis, label: str, entries: list, ticker) -> None:
    ok = [e for e in entries if e.get('ok')]
    bad = [e for e in entries if not e.get('ok')]
    axis.scatter([e['t_ms'] / 1000.0 for e in ok], [max(e['latency_ms'], 0.01) for e in ok], s=2, alpha=0.5, color='tab:blue',
                 label='%d ok' % len(ok))
    if bad:
        axis.scatter([(e['t_ms'] + (e.get('latency_ms') or 0)) / 1000.0 for e in bad], [max(e.get('latency_ms') or 0.01, 0.01) for e in bad],
                     s=14, marker='x', color='tab:red', label='%d failed' % len(bad))
    window = restart_window(entries)
    if window is not None:
        axis.axvspan(window[0], window[1], color='tab:orange', alpha=0.15, label='restart')
    axis.set_yscale('log')
    # Plain numbers (0.5, 2, 1000) read better than powers of ten here.
    axis.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(ticker.FormatStrFormatter('%g'))
    axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    axis.set_ylabel('latency ms')
    axis.set_title(label, fontsize=9, loc='left')
    axis.legend(loc='upper right', fontsize=7, markerscale=3)
    axis.grid(True, which='major', alpha=0.3)


def plot(out: str, runs: list, title: str | None = None) -> None:
    # Imported here: only the tool venv has matplotlib.
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')  # no display here
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from matplotlib import ticker  # pylint: disable=import-outside-toplevel

    figure, axes = plt.subplots(len(runs), 1, figsize=(10, 2.2 * len(runs) + 0.6), sharex=False, squeeze=False)
    for axis, (label, entries) in zip(axes[:, 0], runs):
        panel(axis, label, entries, ticker)
    axes[-1, 0].set_xlabel('seconds since the load started')
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out')
    parser.add_argument('runs', nargs='+', help='label=path of a timeline JSON')
    parser.add_argument('--title')
    args = parser.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, sep, path = spec.rpartition('=')
        runs.append((label if sep else path, load(path)))
    plot(args.out, runs, args.title)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
