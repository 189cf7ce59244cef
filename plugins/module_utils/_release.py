# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The release state machine (internal): the layout BASE/releases/ID, BASE/shared, BASE/current, and its manifest.

:class:`ReleaseManager` is the ``release`` module's backend: prepare, atomic
switch, mark bad, rollback, prune, and the deploy lease (lock, unlock), each
returning the module's result or raising :class:`ReleaseError`, the domain
error whose ``details`` go into the failure result. The rules no state may
break: ``current`` never dangles and never points at a bad release; the
current and the previous good release are never pruned; bad and unfinished
releases never count towards ``keep_releases`` and are never chosen by
rollback. Ordering uses the manifest's recorded order, never mtimes.

Standard library only (no ``ansible.*``): file attributes (owner, group,
mode) come in as a callback from the module.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import stat
import sys
import time
import traceback
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import (
    FsError,
    atomic_symlink,
    atomic_write,
    fsync_dir,
    read_link,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._layout import Changes, LayoutError, ensure_users, link_shared, make_layout
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import (
    LEASE_FILE,
    LOCK_FILE,
    STATE_DIR,
    FileLock,
    LockError,
    acquire_lease,
    check_lease,
    current_user,
    epoch_to_iso,
    lease_expired,
    read_lease,
    release_lease,
)
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError

ID_PATTERN = r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'
ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}')  # always used with fullmatch(): '$' would accept a trailing newline
ID_TIME_RE = re.compile(r'\d{8}T\d{6}Z', re.ASCII)
GENERATED_ID_RE = re.compile(r'(\d{8}T\d{6}Z)(?:-([A-Za-z0-9]{1,7}))?(?:-\d+)?', re.ASCII)
STATUSES = ('good', 'bad', 'unfinished', 'unknown')
MUTATING_STATES = ('layout', 'prepare', 'link', 'switch', 'mark_bad', 'rollback', 'prune')
MANIFEST_FILE = 'manifest.json'
MANIFEST_VERSION = 1
HISTORY_LIMIT = 100
PRUNE_PREFIX = '.prune-'
STATE_LOCK_MIN_WAIT = 60
STATE_LOCK_TTL = 3600  # a module run holding the short lock for an hour is hung; its lock may be broken


class ReleaseError(Exception):
    """A rule would be broken or the request cannot be satisfied; ``details`` go into the failure result."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def validate_release_id(value: t.Any, what: str = 'release') -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ReleaseError(
            'Invalid %s ID %s: it must match %s (letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128 '
            'characters; no "/", no "." or "..")' % (what, json.dumps(value), ID_PATTERN))
    return value


def generate_release_id(now: float, revision: t.Optional[str], id_time: t.Optional[str] = None) -> str:
    stamp = id_time or datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    short = re.sub(r'[^A-Za-z0-9]', '', revision or '')[:7]
    return '%s-%s' % (stamp, short) if short else stamp


def _parse_generated_id(release_id: str) -> t.Tuple[t.Optional[str], t.Optional[str]]:
    """``(created ISO, short revision)`` recovered from a generated ID, for rebuilt records."""
    match = GENERATED_ID_RE.fullmatch(release_id)
    if not match:
        return None, None
    try:
        created = datetime.datetime.strptime(match.group(1), '%Y%m%dT%H%M%SZ').strftime('%Y-%m-%dT%H:%M:%SZ')
    except ValueError:
        return None, None
    return created, match.group(2)


def _is_int(value: t.Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Layout:
    """Paths of one application base directory."""

    def __init__(self, base: str) -> None:
        self.base = os.path.normpath(base)
        self.releases = os.path.join(self.base, 'releases')
        self.shared = os.path.join(self.base, 'shared')
        self.current = os.path.join(self.base, 'current')
        self.state_dir = os.path.join(self.base, STATE_DIR)
        self.manifest = os.path.join(self.state_dir, MANIFEST_FILE)
        self.lock = os.path.join(self.state_dir, LOCK_FILE)
        self.lease = os.path.join(self.state_dir, LEASE_FILE)

    def release_path(self, release_id: t.Optional[str]) -> t.Optional[str]:
        return os.path.join(self.releases, release_id) if release_id else None

    @staticmethod
    def link_target(release_id: str) -> str:
        return 'releases/%s' % release_id


class State:
    """What is on disk: ``current``, release directories and their manifest records."""

    def __init__(self) -> None:
        self.entries: t.Dict[str, dict] = {}
        self.seq = 0
        self.history: t.List[dict] = []
        self.current_kind = 'missing'  # missing | link | other
        self.current_target: t.Optional[str] = None
        self.current_id: t.Optional[str] = None
        self.rebuilt = False
        self.dirty = False  # the manifest on disk differs from this state
        self.leftovers: t.List[str] = []  # hidden .prune-* directories of an interrupted prune
        self.warnings: t.List[str] = []

    def next_seq(self) -> int:
        self.seq = max([self.seq] + [e.get('created_seq') or 0 for e in self.entries.values()]
                       + [e.get('switch_seq') or 0 for e in self.entries.values()]) + 1
        return self.seq

    @staticmethod
    def order_key(release_id: str, entry: dict) -> t.Tuple[int, str]:
        return (entry.get('created_seq') or 0, release_id)

    def ordered(self) -> t.List[t.Tuple[str, dict]]:
        return sorted(self.entries.items(), key=lambda item: self.order_key(*item))

    def previous_good(self) -> t.Optional[str]:
        """The automatic rollback target: among good releases created before current, the most recently switched to."""
        cur = self.current_id
        if cur is not None and cur in self.entries:
            limit = self.order_key(cur, self.entries[cur])
            candidates = [(rid, e) for rid, e in self.entries.items()
                          if rid != cur and e['status'] == 'good' and self.order_key(rid, e) < limit]
        else:
            candidates = [(rid, e) for rid, e in self.entries.items() if rid != cur and e['status'] == 'good']
        if not candidates:
            return None
        return max(candidates, key=lambda item: (item[1].get('switch_seq') or 0, self.order_key(*item)))[0]

    def record(self, action: str, release_id: t.Optional[str], now: float, **extra: t.Any) -> None:
        event = {'at': epoch_to_iso(now), 'action': action, 'release': release_id, 'by': current_user()}
        event.update(extra)
        self.history.append(event)
        del self.history[:-HISTORY_LIMIT]
        self.dirty = True

    def to_manifest(self) -> dict:
        return {
            'version': MANIFEST_VERSION,
            'seq': self.seq,
            'releases': dict(self.ordered()),
            'history': self.history,
        }

    def releases_list(self) -> t.List[dict]:
        out = []
        for rid, entry in self.ordered():
            out.append({
                'id': rid,
                'status': entry['status'],
                'created': entry.get('created'),
                'switched_at': entry.get('switched_at'),
                'revision': entry.get('revision'),
                'reason': entry.get('reason'),
                'current': rid == self.current_id,
            })
        return out


def _new_entry(status: str, created_seq: int, created: t.Optional[str] = None, revision: t.Optional[str] = None) -> dict:
    return {
        'status': status,
        'created': created,
        'created_seq': created_seq,
        'created_by': None,
        'switched_at': None,
        'switch_seq': None,
        'revision': revision,
        'reason': None,
        'marked_bad_at': None,
    }


_ENTRY_TYPES = {
    'created': str,
    'created_by': str,
    'switched_at': str,
    'revision': str,
    'reason': str,
    'marked_bad_at': str,
}


def _manifest_shape_error(data: t.Any) -> t.Optional[str]:
    """Why ``data`` is not a manifest we can trust, or ``None``."""
    if not isinstance(data, dict):
        return 'the top level is not a JSON object'
    if data.get('version') != MANIFEST_VERSION:
        return 'unsupported version %r' % (data.get('version'),)
    if not _is_int(data.get('seq', 0)):
        return '"seq" is not an integer'
    releases = data.get('releases')
    if not isinstance(releases, dict):
        return '"releases" is not an object'
    for rid, entry in releases.items():
        if not ID_RE.fullmatch(rid):
            return 'invalid release ID %s' % json.dumps(rid)
        if not isinstance(entry, dict):
            return 'the record of %s is not an object' % rid
        if entry.get('status') not in STATUSES:
            return 'the record of %s has an invalid status %r' % (rid, entry.get('status'))
        if not _is_int(entry.get('created_seq')):
            return 'the record of %s has no integer created_seq' % rid
        if entry.get('switch_seq') is not None and not _is_int(entry.get('switch_seq')):
            return 'the record of %s has a non-integer switch_seq' % rid
        for key, typ in _ENTRY_TYPES.items():
            if entry.get(key) is not None and not isinstance(entry[key], typ):
                return 'the record of %s has an invalid %s' % (rid, key)
    if not isinstance(data.get('history', []), list):
        return '"history" is not a list'
    return None


class ReleaseManager:
    """The release state machine over one base directory.

    Every public state method returns a result dict (see ``RETURN``) or raises
    :class:`ReleaseError`.  With ``check_mode`` nothing on disk is changed.
    """

    def __init__(self, base: str, check_mode: bool = False, clock: t.Callable[[], float] = time.time,
                 fs_attributes: t.Optional[t.Callable[[str, bool], bool]] = None, lock_id: t.Optional[str] = None,
                 force: bool = False, lock_wait: float = STATE_LOCK_MIN_WAIT, lock_play: t.Optional[str] = None) -> None:
        if not isinstance(base, str) or not os.path.isabs(base):
            raise ReleaseError('path must be an absolute path, got %s' % json.dumps(base))
        # The base holds releases/ and shared/, and prune and rollback act inside it: never the root, and no ".." that
        # would put it somewhere else than it says.
        if '..' in base.split('/') or not base.strip('/'):
            raise ReleaseError('path must be a directory below / without ".." components (the base of one app, such as '
                               '/srv/shop), got %s' % json.dumps(base))
        self.layout = Layout(base)
        self.check_mode = check_mode
        self.clock = clock
        self.fs_attributes = fs_attributes
        self.lock_id = lock_id
        self.force = force
        self.lock_wait = lock_wait
        self.lock_play = lock_play
        self.warnings: t.List[str] = []
        self._flock: t.Optional[FileLock] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> State:
        st = State()
        self._read_current(st)
        on_disk = self._scan_releases(st)
        data, problem = self._read_manifest()
        if problem is None and data is None:
            if on_disk:
                problem = 'it is missing'
            else:
                # fresh base: nothing to rebuild
                self._adopt_current(st)
                return st
        if problem is not None:
            self._rebuild(st, on_disk, problem)
        else:
            self._reconcile(st, data, on_disk)
        self._adopt_current(st)
        return st

    def _read_current(self, st: State) -> None:
        path = self.layout.current
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISLNK(mode):
            st.current_kind = 'other'
            st.warnings.append('%s exists but is not a symbolic link' % path)
            return
        st.current_kind = 'link'
        st.current_target = read_link(path)
        st.current_id = self._release_id_of(st.current_target)
        if st.current_id is None:
            st.warnings.append('%s -> %s does not point at a release directory under %s' % (path, st.current_target, self.layout.releases))

    def _release_id_of(self, target: t.Optional[str]) -> t.Optional[str]:
        if not target:
            return None
        full = os.path.normpath(target if os.path.isabs(target) else os.path.join(self.layout.base, target))
        parent, name = os.path.split(full)
        if not ID_RE.fullmatch(name) or not os.path.isdir(full) or os.path.islink(full):
            return None
        if parent == self.layout.releases or os.path.realpath(parent) == os.path.realpath(self.layout.releases):
            return name
        return None

    def _scan_releases(self, st: State) -> t.Set[str]:
        found = set()
        try:
            entries = list(os.scandir(self.layout.releases))
        except FileNotFoundError:
            return found
        except NotADirectoryError:
            raise ReleaseError('%s exists but is not a directory' % self.layout.releases)
        for entry in entries:
            if entry.name.startswith(PRUNE_PREFIX):
                st.leftovers.append(entry.path)
            elif ID_RE.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                found.add(entry.name)
        return found

    def _read_manifest(self) -> t.Tuple[t.Optional[dict], t.Optional[str]]:
        try:
            with open(self.layout.manifest, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return None, None
        except IsADirectoryError:
            return None, 'it is a directory'
        try:
            data = json.loads(raw.decode('utf-8'))
        except ValueError as exc:
            return None, 'it is not valid JSON (%s)' % exc
        problem = _manifest_shape_error(data)
        if problem:
            return None, 'it has the wrong shape: %s' % problem
        return data, None

    def _rebuild(self, st: State, on_disk: t.Set[str], problem: str) -> None:
        st.rebuilt = True
        st.dirty = True
        st.warnings.append('manifest %s was rebuilt from the release directories because %s; releases other than the current one '
                           'are recorded as "unknown" (rollback only uses them when named)' % (self.layout.manifest, problem))
        for seq, rid in enumerate(sorted(on_disk), start=1):
            created, revision = _parse_generated_id(rid)
            st.entries[rid] = _new_entry('unknown', seq, created, revision)
        st.seq = len(on_disk)

    def _reconcile(self, st: State, data: dict, on_disk: t.Set[str]) -> None:
        st.seq = data.get('seq', 0)
        st.history = [h for h in data.get('history', []) if isinstance(h, dict)]
        for rid, entry in data['releases'].items():
            if rid in on_disk:
                merged = _new_entry(entry['status'], entry['created_seq'])
                merged.update(entry)
                st.entries[rid] = merged
            else:
                st.dirty = True
                st.warnings.append('release %s is recorded in the manifest but its directory is gone; dropping the record' % rid)
        for rid in sorted(on_disk - set(st.entries)):
            created, revision = _parse_generated_id(rid)
            st.entries[rid] = _new_entry('unknown', 0, created, revision)
            st.dirty = True
            st.warnings.append('release directory %s has no manifest record; adopted as "unknown"' % rid)

    def _adopt_current(self, st: State) -> None:
        cur = st.current_id
        if cur is None:
            return
        entry = st.entries.get(cur)
        if entry is None:  # fresh base without manifest but with a current link
            entry = st.entries[cur] = _new_entry('unknown', st.next_seq())
            st.dirty = True
        if entry['status'] in ('unfinished', 'unknown'):
            if not st.rebuilt and entry['status'] == 'unfinished':
                st.warnings.append('current points at %s, recorded as unfinished (interrupted switch?); recording it as good' % cur)
            entry['status'] = 'good'
            entry['switch_seq'] = st.next_seq()
            st.dirty = True
        elif entry['status'] == 'bad':
            st.warnings.append('current points at %s, which is marked bad; roll back to a good release' % cur)

    # ------------------------------------------------------------------ running

    def _run(self, action: t.Callable[[State], dict], create_base: bool = False) -> dict:
        base_exists = os.path.isdir(self.layout.base)
        if self.check_mode or not (base_exists or create_base):
            self._check_lease()
            st = self.load()
            self.warnings.extend(st.warnings)
            return self._finish(st, action(st))
        os.makedirs(self.layout.state_dir, exist_ok=True)
        self._flock = FileLock(self.layout.lock, timeout=self.lock_wait, ttl=STATE_LOCK_TTL, play=self.lock_play)
        try:
            self._flock.acquire()
        except LockError as exc:
            self._flock = None
            raise ReleaseError(exc.msg, holder=exc.holder)
        try:
            if self._flock.broken_holder is not None:
                self.warnings.append('broke the stale release lock of pid %s (started %s)'
                                     % (self._flock.broken_holder.get('pid'), self._flock.broken_holder.get('started')))
            self._check_lease()
            st = self.load()
            self.warnings.extend(st.warnings)
            result = action(st)
            if st.dirty:
                self._write_manifest(st)
                result['changed'] = True
            return self._finish(st, result)
        finally:
            self._flock.release()
            self._flock = None

    def _renew_lease(self) -> None:
        """A long build must not let the deploy's lease expire before the switch: renew it (same holder, fresh TTL)."""
        if self.check_mode or not self.lock_id or self.force:
            return
        lease, dummy_error = read_lease(self.layout.state_dir)
        if lease is None or lease.get('lock_id') != self.lock_id:
            return  # _check_lease says why the switch may not go ahead
        try:
            acquire_lease(self.layout.state_dir, self.lock_id, ttl=lease.get('ttl') or 3600, timeout=0, flock_timeout=self.lock_wait,
                          clock=self.clock)
        except LockError as exc:
            raise ReleaseError(exc.msg, holder=_public_lease(exc.holder))

    # ------------------------------------------------------------------ the layout around the releases

    def make_layout(self, group: str, mode, owner: t.Optional[str] = None, git_cache: bool = False,
                    env_content: t.Optional[str] = None, env_owner: t.Optional[str] = None) -> dict:
        """BASE and its directories, the repository cache and shared/.env (see module_utils/_layout)."""
        if not self.check_mode:
            self._check_lease()
        try:
            result = make_layout(self.layout.base, group, mode, owner=owner, git_cache=git_cache, env_content=env_content,
                                 env_owner=env_owner, check_mode=self.check_mode)
        except LayoutError as exc:
            raise ReleaseError(str(exc))
        if self.check_mode and not os.path.isdir(self.layout.base):
            result['release'] = None
            result.update(current=None, previous=None, releases=[], release_path=None)
            return result
        st = self.load()
        return self._finish_readonly(st, result)

    def link(self, release: t.Optional[str], shared_dirs: list, shared_files: list, group: str, app_user: str,
             env_file: bool = False) -> dict:
        """Link the shared paths (and the environment file) into an unfinished release."""
        if release is None:
            raise ReleaseError('release is required for state=link')
        validate_release_id(release)
        self._check_lease()
        st = self.load()
        entry = self._existing(st, release)
        if entry['status'] != 'unfinished' and not self.force:
            raise ReleaseError('release %s is %s; shared paths are linked into a release before it goes live' % (release, entry['status']))
        try:
            result = link_shared(self.layout.base, self.layout.release_path(release), shared_dirs, shared_files, group, app_user,
                                 env_file=env_file, check_mode=self.check_mode)
        except LayoutError as exc:
            raise ReleaseError(str(exc))
        result['release'] = release
        return self._finish_readonly(st, result)

    def build(self, release: t.Optional[str], shared_dirs: list, shared_files: list, group: str, app_user: str,
              env_file: bool = False, commands: t.Optional[list] = None, environment: t.Optional[dict] = None,
              run_as: t.Optional[str] = None, run_command=None) -> dict:
        """Link the shared paths, then run the build commands in the release as ``run_as``; the first failure stops it."""
        result = self.link(release, shared_dirs, shared_files, group, app_user, env_file=env_file)
        result['commands'] = []
        if self.check_mode or not commands:
            return result
        path = self.layout.release_path(release)
        for command in commands:
            argv = ['/bin/sh', '-c', command] if isinstance(command, str) else [str(arg) for arg in command]
            if run_as and os.geteuid() == 0 and run_as != 'root':
                argv = ['runuser', '-u', run_as, '--'] + argv
            rc, out, err = run_command(argv, cwd=path, environ_update=dict(environment or {}))
            shown = command if isinstance(command, str) else ' '.join(str(arg) for arg in command)
            ran = {'item': shown, 'rc': rc, 'stdout': (out or '')[-4000:], 'stderr': (err or '')[-4000:]}
            result['commands'].append(ran)
            result['changed'] = True
            if rc != 0:
                raise ReleaseError('the build command %s failed (rc %d): %s' % (shown, rc, ((err or '').strip() or (out or '').strip())[-600:]),
                                   **ran)
        return result

    def _check_lease(self) -> None:
        ok, msg, lease, warnings = check_lease(self.layout.state_dir, self.lock_id, self.force, now=self.clock())
        self.warnings.extend(warnings)
        if not ok:
            raise ReleaseError(msg, holder=_public_lease(lease, self.clock()))

    def _finish(self, st: State, result: dict) -> dict:
        if self.check_mode and st.dirty:
            result['changed'] = True
        result.setdefault('changed', False)
        result.setdefault('release', None)
        result['release_path'] = self.layout.release_path(result['release'])
        result.setdefault('previous', st.current_id)
        result['current'] = st.current_id
        result['previous_good'] = st.previous_good()
        result['releases'] = st.releases_list()
        result.setdefault('removed', [])
        result['manifest_rebuilt'] = st.rebuilt
        if 'lock' not in result:
            lease, dummy_error = read_lease(self.layout.state_dir)
            result['lock'] = _public_lease(lease, self.clock())
        return result

    def _write_manifest(self, st: State) -> None:
        if self.check_mode:
            return
        if self._flock is not None:
            self._flock.verify()
        atomic_write(self.layout.manifest, json.dumps(st.to_manifest(), indent=2, sort_keys=True) + '\n')
        st.dirty = False

    def _swap_current(self, st: State, release_id: str) -> None:
        """Atomically point current at release_id (unless check mode) and update ``st``."""
        if st.current_kind == 'other':
            raise ReleaseError('%s exists and is not a symbolic link; move it away before switching releases' % self.layout.current)
        path = self.layout.release_path(release_id)
        if not os.path.isdir(path) or os.path.islink(path):
            raise ReleaseError('release directory %s does not exist' % path)
        if not self.check_mode:
            if self._flock is not None:
                self._flock.verify()
            atomic_symlink(self.layout.link_target(release_id), self.layout.current)
            if not os.path.isdir(self.layout.current):  # paranoia: never leave a dangling current
                raise ReleaseError('%s does not resolve to a directory after the switch' % self.layout.current)
        st.current_kind = 'link'
        st.current_target = self.layout.link_target(release_id)
        st.current_id = release_id

    def _existing(self, st: State, release_id: str) -> dict:
        entry = st.entries.get(release_id)
        if entry is None:
            raise ReleaseError('release %s does not exist under %s' % (release_id, self.layout.releases),
                               releases=sorted(st.entries))
        return entry

    def _mark_switched(self, st: State, release_id: str, now: float) -> None:
        entry = st.entries[release_id]
        entry['status'] = 'good'
        entry['switch_seq'] = st.next_seq()
        entry['switched_at'] = epoch_to_iso(now)
        st.dirty = True

    # ------------------------------------------------------------------ states

    def info(self) -> dict:
        st = self.load()
        self.warnings.extend(st.warnings)
        result = self._finish(st, {'release': st.current_id})
        result['changed'] = False  # never writes, even if the manifest would be rebuilt
        return result

    def prepare(self, release: t.Optional[str] = None, revision: t.Optional[str] = None, id_time: t.Optional[str] = None,
                reuse_live: bool = False) -> dict:
        """A new release directory, recorded unfinished; with ``reuse_live``, none when current already has ``revision``."""
        if release is not None:
            validate_release_id(release)
        if id_time is not None and not ID_TIME_RE.fullmatch(id_time):
            raise ReleaseError('Invalid id_time %s: it must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ)' % json.dumps(id_time))

        def action(st: State) -> dict:
            now = self.clock()
            live = st.entries.get(st.current_id) if st.current_id else None
            if reuse_live and revision and live is not None and live.get('revision') == revision and live['status'] in ('good', 'unknown'):
                return {'changed': False, 'release': st.current_id, 'new': False,
                        'msg': 'revision %s is already live in release %s; nothing to deploy (release_force: true builds a new '
                               'release from it anyway)' % (revision, st.current_id)}
            if release is not None:
                rid = release
                entry = st.entries.get(rid)
                path = self.layout.release_path(rid)
                if entry is not None:
                    if entry['status'] != 'unfinished':
                        raise ReleaseError('release %s already exists with status %s; prepare a release with a new ID'
                                           % (rid, entry['status']), status=entry['status'])
                    changed = self._apply_fs_attributes(path, False)
                    return {'changed': changed, 'release': rid, 'new': True}
                if os.path.lexists(path):
                    raise ReleaseError('%s exists but is not a release directory' % path)
            else:
                rid = self._unique_id(st, generate_release_id(now, revision, id_time))
                path = self.layout.release_path(rid)
            entry = _new_entry('unfinished', st.next_seq(), epoch_to_iso(now), revision)
            entry['created_by'] = current_user()
            st.entries[rid] = entry
            st.record('prepare', rid, now, revision=revision)
            if not self.check_mode:
                for directory in (self.layout.releases, self.layout.shared):
                    if not os.path.isdir(directory):
                        os.makedirs(directory)
                # Record first, then create: a crash in between leaves a record without a directory, which the
                # next run drops; never a directory the manifest does not know.
                self._write_manifest(st)
                os.mkdir(path, 0o755)
                fsync_dir(self.layout.releases)
                self._apply_fs_attributes(path, True)
            return {'changed': True, 'release': rid, 'new': True}

        return self._run(action, create_base=True)

    def _unique_id(self, st: State, candidate: str) -> str:
        rid, n = candidate, 1
        while rid in st.entries or os.path.lexists(self.layout.release_path(rid)):
            n += 1
            rid = '%s-%d' % (candidate, n)
        return validate_release_id(rid)

    def _apply_fs_attributes(self, path: str, changed: bool) -> bool:
        if self.fs_attributes is None or (self.check_mode and not os.path.isdir(path)):
            return changed
        return self.fs_attributes(path, changed)

    def switch(self, release: t.Optional[str]) -> dict:
        if release is None:
            raise ReleaseError('release is required for state=switch')
        validate_release_id(release)
        self._renew_lease()

        def action(st: State) -> dict:
            entry = self._existing(st, release)
            previous = st.current_id
            if entry['status'] == 'bad':
                raise ReleaseError('release %s is marked bad (%s); current must never point at a bad release'
                                   % (release, entry.get('reason') or 'no reason given'), status='bad')
            if previous == release and entry['status'] == 'good':
                return {'changed': False, 'release': release, 'previous': previous}
            now = self.clock()
            if previous != release:
                self._swap_current(st, release)
            self._mark_switched(st, release, now)
            st.record('switch', release, now, previous=previous)
            return {'changed': True, 'release': release, 'previous': previous}

        return self._run(action)

    def mark_bad(self, release: t.Optional[str], reason: t.Optional[str] = None, remove: bool = False) -> dict:
        """Mark a release bad (never current); with ``remove``, its directory goes too (the record stays)."""
        result = self._mark_bad(release, reason)
        path = self.layout.release_path(release)
        if remove and os.path.lexists(path):
            result['changed'] = True
            result['removed'] = [release]
            if not self.check_mode:
                error = _rmtree(path)
                if error:
                    raise ReleaseError('release %s was marked bad, but its directory could not be removed: %s' % (release, error))
        return result

    def _mark_bad(self, release: t.Optional[str], reason: t.Optional[str] = None) -> dict:
        if release is None:
            raise ReleaseError('release is required for state=mark_bad')
        validate_release_id(release)

        def action(st: State) -> dict:
            entry = self._existing(st, release)
            if release == st.current_id:
                raise ReleaseError('release %s is the current release; roll back first (state=rollback with mark_current_bad=true '
                                   'switches away and marks it bad in one step)' % release)
            if entry['status'] == 'bad' and (reason is None or reason == entry.get('reason')):
                return {'changed': False, 'release': release}
            now = self.clock()
            if entry['status'] != 'bad':
                entry['marked_bad_at'] = epoch_to_iso(now)
            entry['status'] = 'bad'
            if reason is not None:
                entry['reason'] = reason
            st.record('mark_bad', release, now, reason=reason)
            return {'changed': True, 'release': release}

        return self._run(action)

    def rollback(self, release: t.Optional[str] = None, mark_current_bad: bool = False, reason: t.Optional[str] = None) -> dict:
        if release is not None:
            validate_release_id(release)

        def action(st: State) -> dict:
            previous = st.current_id
            if release is not None:
                target = release
                entry = self._existing(st, target)
                if entry['status'] == 'bad':
                    raise ReleaseError('release %s is marked bad (%s); rollback never chooses a bad release'
                                       % (target, entry.get('reason') or 'no reason given'), status='bad')
                if entry['status'] == 'unfinished':
                    raise ReleaseError('release %s is unfinished (it never went live); use state=switch to deploy it' % target,
                                       status='unfinished')
            else:
                # Without a current release (link missing or dangling) this is the most recently switched good release.
                target = st.previous_good()
                if target is None:
                    if previous is None:
                        raise ReleaseError('there is no current release to roll back from (%s) and no good release to restore'
                                           % self.layout.current, releases=st.releases_list())
                    raise ReleaseError('no good release older than the current release %s exists to roll back to' % previous,
                                       releases=st.releases_list())
            if target == previous:
                if mark_current_bad:
                    raise ReleaseError('cannot roll back to %s and mark it bad: it is the current release' % target)
                if st.entries[target]['status'] == 'good':
                    return {'changed': False, 'release': target, 'previous': previous}
            now = self.clock()
            if target != previous:
                self._swap_current(st, target)
            self._mark_switched(st, target, now)
            if mark_current_bad and previous is not None and previous in st.entries:
                left = st.entries[previous]
                left['status'] = 'bad'
                left['marked_bad_at'] = epoch_to_iso(now)
                if reason is not None:
                    left['reason'] = reason
            st.record('rollback', target, now, previous=previous, marked_bad=previous if mark_current_bad else None, reason=reason)
            return {'changed': True, 'release': target, 'previous': previous}

        return self._run(action)

    def prune(self, keep_releases: int = 5) -> dict:
        if not _is_int(keep_releases) or keep_releases < 1:
            raise ReleaseError('keep_releases must be an integer >= 1, got %r' % (keep_releases,))

        def action(st: State) -> dict:
            doomed = self.prune_plan(st, keep_releases)
            changed = bool(doomed or st.leftovers)
            if self.check_mode or not changed:
                for rid in doomed:
                    del st.entries[rid]
                return {'changed': changed, 'removed': doomed}
            removed, renamed = [], []
            for rid in doomed:
                # Re-check under the lock, against the link itself: never remove what current points at.
                if self._release_id_of(read_link(self.layout.current)) == rid:
                    self.warnings.append('not pruning %s: current points at it' % rid)
                    continue
                if self._flock is not None:
                    self._flock.verify()
                hidden = os.path.join(self.layout.releases, '%s%s-%d-%s' % (PRUNE_PREFIX, rid, os.getpid(), secrets.token_hex(4)))
                os.rename(self.layout.release_path(rid), hidden)
                renamed.append(hidden)
                removed.append(rid)
                del st.entries[rid]
            if removed:
                st.record('prune', None, self.clock(), removed=removed)
                fsync_dir(self.layout.releases)
                self._write_manifest(st)
            for path in renamed + st.leftovers:
                error = _rmtree(path)
                if error:
                    self.warnings.append('could not fully delete %s: %s (the next prune retries)' % (path, error))
            return {'changed': True, 'removed': removed}

        return self._run(action)

    @staticmethod
    def prune_plan(st: State, keep_releases: int) -> t.List[str]:
        """Release IDs to delete, oldest first."""
        ordered = st.ordered()
        if not ordered:
            return []
        protected = {st.current_id, st.previous_good(), ordered[-1][0]}  # the newest one may be a deploy in progress
        good_like = [rid for rid, e in ordered if e['status'] in ('good', 'unknown')]
        protected.update(good_like[-keep_releases:])
        return [rid for rid, dummy in ordered if rid not in protected]

    def lock(self, lock_id: t.Optional[str], ttl: int = 3600, timeout: int = 0, owner: t.Optional[str] = None,
             host: t.Optional[str] = None, pid: t.Optional[int] = None, play: t.Optional[str] = None, poll_interval: float = 1.0,
             layout: t.Optional[dict] = None, run_command=None) -> dict:
        """Take the deploy lease; with ``layout``, then make the layout (users, directories, shared/.env) under it."""
        result = self._lock(lock_id, ttl=ttl, timeout=timeout, owner=owner, host=host, pid=pid, play=play, poll_interval=poll_interval)
        if layout is None:
            return result
        changes = Changes(self.check_mode)
        try:
            ensure_users(layout.get('users') or [], run_command, changes)
            made = make_layout(self.layout.base, layout['group'], layout.get('mode') or '0750', owner=layout.get('owner'),
                               git_cache=bool(layout.get('git_cache')), env_content=layout.get('env_content'),
                               env_owner=layout.get('env_owner'), check_mode=self.check_mode)
        except LayoutError as exc:
            raise ReleaseError(str(exc))
        result['changed_paths'] = changes.paths + made['changed_paths']
        result['env_changed'] = made['env_changed']
        result['changed'] = result['changed'] or bool(result['changed_paths'])
        return result

    def _lock(self, lock_id: t.Optional[str], ttl: int = 3600, timeout: int = 0, owner: t.Optional[str] = None,
              host: t.Optional[str] = None, pid: t.Optional[int] = None, play: t.Optional[str] = None, poll_interval: float = 1.0) -> dict:
        if not lock_id:
            raise ReleaseError('lock_id is required for state=lock')
        if not _is_int(ttl) or ttl < 1:
            raise ReleaseError('lock_ttl must be an integer >= 1, got %r' % (ttl,))
        try:
            res = acquire_lease(self.layout.state_dir, lock_id, ttl=ttl, timeout=timeout, owner=owner, host=host, pid=pid,
                                play=play, check_mode=self.check_mode, poll_interval=poll_interval,
                                flock_timeout=self.lock_wait, clock=self.clock)
        except LockError as exc:
            raise ReleaseError(exc.msg, holder=_public_lease(exc.holder))
        self.warnings.extend(res['warnings'])
        st = self.load()
        result = {
            'changed': res['changed'],
            'lock': _public_lease(res['lease'], self.clock()),
            'lock_taken_over': res['taken_over'],
            'previous_holder': _public_lease(res['previous_holder']),
        }
        return self._finish_readonly(st, result)

    def unlock(self, lock_id: t.Optional[str], report: t.Optional[dict] = None, report_path: t.Optional[str] = None,
               prune_keep: t.Optional[int] = None) -> dict:
        """Give the lease back; first prune to ``prune_keep`` releases, and write the run's report to ``report_path`` (JSON, 0640)."""
        removed = []
        if prune_keep:
            removed = self.prune(prune_keep)['removed']
        wrote = None
        if report is not None and report_path and not self.check_mode:
            os.makedirs(os.path.dirname(report_path), mode=0o750, exist_ok=True)
            atomic_write(report_path, json.dumps(report, indent=4, sort_keys=True, default=str) + '\n', mode=0o640)
            wrote = report_path
        result = self._unlock(lock_id)
        result['report_path'] = wrote
        result['removed'] = removed
        result['changed'] = result['changed'] or bool(removed)
        return result

    def _unlock(self, lock_id: t.Optional[str]) -> dict:
        if not lock_id and not self.force:
            raise ReleaseError('lock_id is required for state=unlock (or force=true)')
        try:
            res = release_lease(self.layout.state_dir, lock_id, force=self.force, check_mode=self.check_mode,
                                flock_timeout=self.lock_wait)
        except LockError as exc:
            raise ReleaseError(exc.msg, holder=_public_lease(exc.holder))
        self.warnings.extend(res['warnings'])
        st = self.load()
        lease, dummy_error = read_lease(self.layout.state_dir)
        result = {
            'changed': res['changed'],
            'lock': None if res['changed'] else _public_lease(lease),
            'previous_holder': _public_lease(res['previous_holder']),
        }
        return self._finish_readonly(st, result)

    def _finish_readonly(self, st: State, result: dict) -> dict:
        """Summary for states that do not touch releases (a pending manifest repair is left to the next mutation)."""
        self.warnings.extend(st.warnings)
        changed = result['changed']
        result = self._finish(st, result)
        result['changed'] = changed
        return result


def _public_lease(lease: t.Optional[dict], now: t.Optional[float] = None) -> t.Optional[dict]:
    if not lease:
        return None
    if 'error' in lease and 'lock_id' not in lease:
        return {'error': lease['error']}
    keys = ('lock_id', 'owner', 'host', 'pid', 'play', 'started', 'renewed', 'expires', 'ttl')
    out = {k: lease.get(k) for k in keys}
    out['expired'] = lease_expired(lease, time.time() if now is None else now)
    return out


def _rmtree(path: str) -> t.Optional[str]:
    """Delete a directory tree, making read-only directories writable on the way; return an error text or None."""
    errors = []
    if os.path.islink(path) or not os.path.isdir(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return str(exc)
        return None

    def handler(dummy_func: t.Callable[..., t.Any], failed: str, dummy_exc: t.Any) -> None:
        try:
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed)
            else:
                os.unlink(failed)
        except OSError as exc:
            errors.append('%s: %s' % (failed, exc))

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=handler)  # pylint: disable=unexpected-keyword-arg
    else:
        shutil.rmtree(path, onerror=handler)  # pylint: disable=deprecated-argument
    if os.path.lexists(path) and not errors:
        errors.append('still exists')
    return '; '.join(errors) or None


def check_params(params: dict) -> None:
    """The module's numeric and lock_id options beyond their types."""
    for name in ('keep_releases', 'lock_ttl'):
        if params[name] < 1:
            raise ReleaseError('%s must be >= 1, got %d' % (name, params[name]))
    if params['lock_timeout'] < 0:
        raise ReleaseError('lock_timeout must be >= 0, got %d' % params['lock_timeout'])
    if params['lock_id'] is not None and (not params['lock_id'].strip() or len(params['lock_id']) > 256):
        raise ReleaseError('lock_id must be a non-empty string of at most 256 characters')


def manager_for(params: dict, check_mode: bool = False,
                fs_attributes: t.Optional[t.Callable[[str, bool], bool]] = None) -> ReleaseManager:
    """The manager of the module's options (checked first)."""
    check_params(params)
    return ReleaseManager(
        params['path'],
        check_mode=check_mode,
        fs_attributes=fs_attributes,
        lock_id=params['lock_id'],
        force=params['force'],
        lock_wait=max(STATE_LOCK_MIN_WAIT, params['lock_timeout']),
        lock_play=params['lock_play'],
    )


@contextlib.contextmanager
def module_errors():
    """The release and release_info modules' failures: a domain error with its details, an OS error with its traceback."""
    try:
        yield
    except ReleaseError as exc:
        raise ModuleError(exc.msg, exc.details)
    except (FsError, LockError) as exc:
        raise ModuleError(str(exc))
    except OSError as exc:
        # The traceback as text: ansible-core before 2.19 cannot serialize the exception itself.
        raise ModuleError('%s: %s' % (type(exc).__name__, exc), {'exception': traceback.format_exc()})


def read_info(path: str, warnings: list) -> dict:
    """What release_info returns: the layout's releases, current, the rollback target and the lease; never writes."""
    manager = ReleaseManager(path, check_mode=True)
    try:
        result = manager.info()
    finally:
        warnings.extend(manager.warnings)
    for key in ('previous', 'removed'):
        result.pop(key, None)
    result['changed'] = False
    return result


def run_state(manager: ReleaseManager, params: dict, run_command=None) -> dict:
    """Run the module's ``state`` on ``manager``; returns its result. ``run_command`` runs builds and user commands."""
    state = params['state']
    if state == 'query':
        return manager.info()
    if state == 'layout':
        return manager.make_layout(params['group'] or 'root', params['mode'] or '0750', owner=params['owner'], git_cache=params['git_cache'],
                                   env_content=params['env_content'], env_owner=params['env_owner'])
    if state == 'prepare':
        return manager.prepare(params['release'], params['revision'], params['id_time'], reuse_live=params['reuse_live'])
    if state == 'link':
        return manager.link(params['release'], params['shared_dirs'], params['shared_files'], params['group'] or 'root',
                            params['env_owner'] or 'root', env_file=params['env_file'])
    if state == 'build':
        return manager.build(params['release'], params['shared_dirs'], params['shared_files'], params['group'] or 'root',
                             params['env_owner'] or 'root', env_file=params['env_file'], commands=params['commands'],
                             environment=params['environment'], run_as=params['owner'], run_command=run_command)
    if state == 'switch':
        return manager.switch(params['release'])
    if state == 'mark_bad':
        return manager.mark_bad(params['release'], params['reason'], remove=params['remove'])
    if state == 'rollback':
        return manager.rollback(params['release'], params['mark_current_bad'], params['reason'])
    if state == 'prune':
        return manager.prune(params['keep_releases'])
    if state == 'lock':
        layout = None
        if params['group']:
            layout = dict(users=params['users'], group=params['group'], mode=params['mode'], owner=params['owner'],
                          git_cache=params['git_cache'], env_content=params['env_content'], env_owner=params['env_owner'])
        return manager.lock(params['lock_id'], ttl=params['lock_ttl'], timeout=params['lock_timeout'], owner=params['lock_owner'],
                            host=params['lock_host'], pid=params['lock_pid'], play=params['lock_play'], layout=layout,
                            run_command=run_command)
    return manager.unlock(params['lock_id'], report=params['report'], report_path=params['report_path'],
                          prune_keep=params['keep_releases'] if params['prune'] else None)


def current_text(release_id: t.Optional[str]) -> str:
    return (Layout.link_target(release_id) + '\n') if release_id else ''


def current_diff(manager: ReleaseManager, result: dict) -> dict:
    """The diff of a result: the target of BASE/current before and after."""
    return {
        'before_header': manager.layout.current,
        'after_header': manager.layout.current,
        'before': current_text(result.get('previous')),
        'after': current_text(result.get('current')),
    }
