# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import (
    FsError,
    atomic_symlink,
    atomic_write,
    fsync_dir,
    read_link,
    temp_name,
)


def _hidden(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith('.'))


def test_atomic_write_creates_and_replaces(tmp_path):
    target = tmp_path / 'manifest.json'
    atomic_write(str(target), '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    inode = target.stat().st_ino
    atomic_write(str(target), b'{"a": 2}\n', mode=0o600)
    assert target.read_bytes() == b'{"a": 2}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert _hidden(tmp_path) == []


def test_atomic_write_mode_ignores_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write(str(tmp_path / 'f'), 'x', mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'f').stat().st_mode) == 0o644


def test_atomic_write_failure_keeps_old_content_and_cleans_up(tmp_path):
    victim = tmp_path / 'adir'
    victim.mkdir()
    (victim / 'keep').write_text('kept')
    with pytest.raises(OSError):
        atomic_write(str(victim), 'new content')  # rename of a file over a directory fails
    assert (victim / 'keep').read_text() == 'kept'
    assert _hidden(tmp_path) == []


def test_atomic_symlink_creates_and_replaces(tmp_path):
    (tmp_path / 'releases' / 'a').mkdir(parents=True)
    (tmp_path / 'releases' / 'b').mkdir()
    link = tmp_path / 'current'
    atomic_symlink('releases/a', str(link))
    assert os.readlink(link) == 'releases/a'
    atomic_symlink('releases/b', str(link))
    assert os.readlink(link) == 'releases/b'  # relative target kept as given
    assert os.path.samefile(link, tmp_path / 'releases' / 'b')
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize('kind', ['dir', 'file'])
def test_atomic_symlink_refuses_non_link(tmp_path, kind):
    link = tmp_path / 'current'
    if kind == 'dir':
        link.mkdir()
    else:
        link.write_text('data')
    with pytest.raises(FsError, match='not a symbolic link'):
        atomic_symlink('releases/a', str(link))
    assert link.exists() and not link.is_symlink()
    assert _hidden(tmp_path) == []


def test_read_link(tmp_path):
    assert read_link(str(tmp_path / 'missing')) is None
    (tmp_path / 'file').write_text('x')
    assert read_link(str(tmp_path / 'file')) is None
    assert read_link(str(tmp_path)) is None
    os.symlink('releases/x', tmp_path / 'dangling')
    assert read_link(str(tmp_path / 'dangling')) == 'releases/x'


def test_temp_name_is_hidden_and_in_same_dir(tmp_path):
    name = temp_name(str(tmp_path / 'current'))
    assert os.path.dirname(name) == str(tmp_path)
    assert os.path.basename(name).startswith('.current.')
    assert temp_name(str(tmp_path / 'current')) != name


def test_fsync_dir(tmp_path):
    fsync_dir(str(tmp_path))  # must not raise


def _setup_two_releases(tmp_path):
    for rid in ('a', 'b'):
        (tmp_path / 'releases' / rid).mkdir(parents=True)
        (tmp_path / 'releases' / rid / 'marker').write_text(rid)
    link = tmp_path / 'current'
    atomic_symlink('releases/a', str(link))
    return link


def test_symlink_swap_never_missing_thread_reader(tmp_path):
    """A reader thread never sees current missing or dangling during 2000 swaps."""
    link = _setup_two_releases(tmp_path)
    stop = threading.Event()
    failures = []
    seen = set()
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                target = os.readlink(link)
                os.stat(link)  # follows the link: fails if missing or dangling
                with open(os.path.join(str(link), 'marker')) as f:
                    seen.add((target, f.read()))
            except OSError as exc:  # pragma: no cover - this is the failure being tested for
                failures.append(repr(exc))
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(2000):
            atomic_symlink('releases/b' if i % 2 == 0 else 'releases/a', str(link), durable=False)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    targets = {target for target, dummy in seen}
    assert targets == {'releases/a', 'releases/b'}
    # readlink and open are two lookups, so they may see different releases; both must be complete ones
    assert {marker for dummy, marker in seen} == {'a', 'b'}
    assert reads[0] > 0
    assert _hidden(tmp_path) == []


def test_symlink_swap_never_missing_process_reader(tmp_path):
    """Same, with a reader in another process (true parallelism, no GIL interleaving)."""
    link = _setup_two_releases(tmp_path)
    stop_file = tmp_path / 'stop'
    script = textwrap.dedent('''
        import os, sys
        link, stop = sys.argv[1], sys.argv[2]
        fail = 0; seen = set(); n = 0
        print('ready', flush=True)
        while not os.path.exists(stop):
            try:
                seen.add(os.readlink(link)); os.stat(link)
            except OSError:
                fail += 1
            n += 1
        print(fail, n, ' '.join(sorted(seen)), flush=True)
    ''')
    proc = subprocess.Popen([sys.executable, '-c', script, str(link), str(stop_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        for i in range(3000):
            atomic_symlink('releases/b' if i % 2 == 0 else 'releases/a', str(link), durable=False)
    finally:
        stop_file.write_text('')
        out, dummy = proc.communicate(timeout=60)
    fail, count, seen = out.split(' ', 2)
    assert int(fail) == 0
    assert int(count) > 0
    assert set(seen.split()) == {'releases/a', 'releases/b'}
