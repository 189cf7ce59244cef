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
current and the previous good release are never pruned (nor any release that
``current`` resolves into or through); bad and unfinished releases never count
towards ``keep_releases`` and are never chosen by rollback. Ordering uses the
manifest's recorded order, never mtimes.

The manifest has a last-good copy beside it (``manifest.json.bak``); a corrupt
manifest is restored from it, and only when that is unusable too is the state
rebuilt from the directories, which then stays marked as rebuilt until a run
with ``force_rebuilt`` accepts it: prune, and switch or rollback to a release
of unknown history, refuse before that. Deletions never follow a symbolic link
(see :func:`_rmtree`).

Standard library only (no ``ansible.*``): file attributes (owner, group,
mode) come in as a callback from the module.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import secrets
import stat
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
    IDENTITY_KEYS,
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
STATUSES = ('good', 'switched', 'bad', 'unfinished', 'unknown')
MUTATING_STATES = ('layout', 'prepare', 'link', 'switch', 'mark_bad', 'rollback', 'prune')
MANIFEST_FILE = 'manifest.json'
BACKUP_SUFFIX = '.bak'
CORRUPT_SUFFIX = '.corrupt-'
MANIFEST_VERSION = 1
HISTORY_LIMIT = 100
PRUNE_PREFIX = '.prune-'
STATE_LOCK_MIN_WAIT = 60
STATE_LOCK_TTL = 3600  # a module run holding the short lock for an hour is hung; its lock may be broken
# The names module_utils/_fs.temp_name() gives the temporary link of a switch (BASE/.current.new-PID-HEX) and the temporary
# files of the manifest and backup writes (.zerodown/.manifest.json.tmp-PID-HEX, .manifest.json.bak.tmp-PID-HEX).
CURRENT_TEMP_RE = re.compile(r'\.current\.new-[0-9]+-[0-9a-f]{12}', re.ASCII)
MANIFEST_TEMP_RE = re.compile(r'\.manifest\.json(?:\.bak)?\.tmp-[0-9]+-[0-9a-f]{12}', re.ASCII)
# Such a file lives for milliseconds, created and renamed by a writer holding the short lock. One older than this was left by a
# run that died; the age keeps a cleanup from pulling a file from under a writer that holds no lock, or whose hung run's lock was
# broken and who is still finishing (its rename then fails instead of installing a stale file).
TEMP_MIN_AGE = 60
_DIR_FLAGS = (os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0)
              | getattr(os, 'O_CLOEXEC', 0))
_NOT_A_DIR = {errno.ELOOP, errno.ENOTDIR, getattr(errno, 'EMLINK', errno.ELOOP)}  # what O_NOFOLLOW|O_DIRECTORY says of a link or file


class ReleaseError(Exception):
    """A rule would be broken or the request cannot be satisfied; ``details`` go into the failure result."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ReleaseRefused(ReleaseError):
    """The state on disk is not one a change may be made on (a rebuilt manifest, a current the module does not understand)."""


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
        self.manifest_backup = self.manifest + BACKUP_SUFFIX
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
        # For a link that is not exactly a release (current_id None): gone (releases/ID whose directory vanished) | inside (resolves
        # into a release, or through one, but is not releases/ID) | outside (resolves outside releases/) | dangling
        self.current_shape: t.Optional[str] = None
        self.current_problem: t.Optional[str] = None
        self.live: t.Set[str] = set()  # every release the resolution of current passes through: deleting one breaks current
        self.swapped_from: t.Optional[dict] = None  # where current pointed before this run moved it
        self.rebuilt = False  # the manifest was unusable in this run (restored from the backup or rebuilt from the disk)
        self.untrusted: t.Optional[str] = None  # rebuilt from the disk (now or earlier) and not yet accepted: when and why
        self.corrupt = False  # the manifest file exists but is unusable: set it aside before writing
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
        data = {
            'version': MANIFEST_VERSION,
            'seq': self.seq,
            'releases': dict(self.ordered()),
            'history': self.history,
        }
        if self.untrusted:
            data['rebuilt'] = self.untrusted  # the refusals outlive this run until a run with force_rebuilt accepts the state
        return data

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
    if data.get('rebuilt') is not None and not isinstance(data['rebuilt'], str):
        return '"rebuilt" is not a string'
    return None


class ReleaseManager:
    """The release state machine over one base directory.

    Every public state method returns a result dict (see ``RETURN``) or raises
    :class:`ReleaseError`.  With ``check_mode`` nothing on disk is changed.
    """

    def __init__(self, base: str, check_mode: bool = False, clock: t.Callable[[], float] = time.time,
                 fs_attributes: t.Optional[t.Callable[[str, bool], bool]] = None, lock_id: t.Optional[str] = None,
                 force: bool = False, lock_wait: float = STATE_LOCK_MIN_WAIT, lock_play: t.Optional[str] = None,
                 force_rebuilt: bool = False) -> None:
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
        self.force_rebuilt = force_rebuilt
        self.lock_wait = lock_wait
        self.lock_play = lock_play
        self.warnings: t.List[str] = []
        self._flock: t.Optional[FileLock] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> State:
        st = State()
        self._read_current(st)
        on_disk = self._scan_releases(st)
        data, problem = _read_manifest(self.layout.manifest)
        if problem is None and data is None:
            if on_disk:
                problem = 'it is missing'
            else:
                # fresh base: nothing to rebuild
                self._adopt_current(st)
                return st
        if problem is not None:
            data = self._restore_backup(st, problem)
        if data is None:
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
        trail, end = _resolution_trail(path)
        st.live = self._releases_on(trail)
        if st.current_id is None:
            st.current_shape, st.current_problem = self._current_shape(st.current_target, end, st.live)
            st.warnings.append('%s -> %s does not point at a release directory under %s (it %s)'
                               % (path, st.current_target, self.layout.releases, st.current_problem))

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

    def _releases_on(self, trail: t.List[str]) -> t.Set[str]:
        """The release IDs whose directories hold a path of ``trail``."""
        root = os.path.join(os.path.realpath(self.layout.releases), '')
        found = set()
        for path in trail:
            if path.startswith(root):
                rid = path[len(root):].split('/')[0]
                if ID_RE.fullmatch(rid):
                    found.add(rid)
        return found

    def _current_shape(self, target: t.Optional[str], end: t.Optional[str], live: t.Set[str]) -> t.Tuple[str, str]:
        """What a current link that is not exactly ``releases/ID`` is, as (shape, the reason in words)."""
        if end is None or not os.path.isdir(end):
            full = os.path.normpath(os.path.join(self.layout.base, target or ''))
            parent, name = os.path.split(full)
            if parent == self.layout.releases and ID_RE.fullmatch(name) and not os.path.lexists(full):
                return 'gone', 'dangles: release directory %s is gone' % name
            return 'dangling', 'does not resolve to a directory'
        if live:
            return 'inside', 'resolves to %s, into or through release %s, but is not the link releases/ID' % (end, ', '.join(sorted(live)))
        return 'outside', 'resolves to %s, outside %s' % (end, self.layout.releases)

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

    def _restore_backup(self, st: State, problem: str) -> t.Optional[dict]:
        """The last good manifest when the manifest itself is unusable, or ``None`` when the backup is no better."""
        st.rebuilt = True
        st.dirty = True
        st.corrupt = os.path.lexists(self.layout.manifest)
        data, backup_problem = _read_manifest(self.layout.manifest_backup)
        if data is None:
            st.warnings.append('the backup manifest %s cannot be used either: %s' % (self.layout.manifest_backup, backup_problem or 'it is missing'))
            return None
        st.warnings.append('manifest %s was rebuilt from its backup %s because %s' % (self.layout.manifest, self.layout.manifest_backup, problem))
        return data

    def _rebuild(self, st: State, on_disk: t.Set[str], problem: str) -> None:
        st.untrusted = 'at %s, because %s' % (epoch_to_iso(self.clock()), problem)
        st.warnings.append('manifest %s was rebuilt from the release directories because %s; releases other than the current one '
                           'are recorded as "unknown" (rollback only uses them when named), and until a run with force_rebuilt=true '
                           'accepts this, prune and a switch or rollback to an "unknown" release refuse' % (self.layout.manifest, problem))
        for seq, rid in enumerate(sorted(on_disk), start=1):
            created, revision = _parse_generated_id(rid)
            st.entries[rid] = _new_entry('unknown', seq, created, revision)
        st.seq = len(on_disk)

    def _reconcile(self, st: State, data: dict, on_disk: t.Set[str]) -> None:
        st.seq = data.get('seq', 0)
        st.untrusted = data.get('rebuilt')
        if st.untrusted:
            st.warnings.append('manifest %s was rebuilt from the release directories %s and not accepted since: prune and a switch or '
                               'rollback to an "unknown" release refuse until a run with force_rebuilt=true' % (self.layout.manifest, st.untrusted))
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
            self._accept_rebuilt(st)
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
            self._set_aside_corrupt(st)
            self._remove_crash_leftovers()
            self._accept_rebuilt(st)
            result = action(st)
            if st.dirty:
                self._commit(st)
                result['changed'] = True
            return self._finish(st, result)
        finally:
            self._flock.release()
            self._flock = None

    def _accept_rebuilt(self, st: State) -> None:
        """With force_rebuilt, the operator has looked at the rebuilt state: lift its refusals, and drop its mark from the manifest."""
        if st.untrusted and self.force_rebuilt:
            self.warnings.append('force_rebuilt: accepting the manifest rebuilt from the release directories %s' % st.untrusted)
            st.untrusted = None
            st.dirty = True

    def _refuse_untrusted(self, st: State, what: str) -> None:
        if st.untrusted:
            raise ReleaseRefused(
                'refusing to %s: the manifest %s was rebuilt from the release directories %s, so the records of the releases other '
                'than the one current pointed at are lost (an "unknown" release may be one that failed). Check %s (an unusable '
                'manifest file is kept as %s*) and run again with force_rebuilt=true' % (
                    what, self.layout.manifest, st.untrusted, self.layout.releases, self.layout.manifest + CORRUPT_SUFFIX),
                rebuilt=st.untrusted)

    def _refuse_current(self, st: State, what: str, shapes: t.Tuple[str, ...]) -> None:
        """No change while current is a link the module does not understand: it would replace it, or delete what it leads to."""
        if st.current_shape in shapes:
            raise ReleaseRefused(
                'refusing to %s: %s -> %s %s. The module only changes a layout whose current is the link releases/ID (or missing); '
                'point it at a release directory by hand, or remove it, and run again' % (
                    what, self.layout.current, st.current_target, st.current_problem),
                current_target=st.current_target)

    def _set_aside_corrupt(self, st: State) -> None:
        """Keep an unusable manifest for a post-mortem under a name of its own, before a good one is written over it."""
        if not st.corrupt:
            return
        stamp = datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
        aside, n = self.layout.manifest + CORRUPT_SUFFIX + stamp, 1
        while os.path.lexists(aside):
            n += 1
            aside = '%s%s%s-%d' % (self.layout.manifest, CORRUPT_SUFFIX, stamp, n)
        self._flock.verify()
        os.rename(self.layout.manifest, aside)
        fsync_dir(self.layout.state_dir)
        st.corrupt = False
        self.warnings.append('moved the unusable manifest %s aside to %s' % (self.layout.manifest, aside))

    def _remove_crash_leftovers(self) -> None:
        """The temporary link of a switch and the temporary manifest files that a run killed mid-write left behind."""
        removed = []
        for directory, pattern, kind in ((self.layout.base, CURRENT_TEMP_RE, stat.S_ISLNK),
                                         (self.layout.state_dir, MANIFEST_TEMP_RE, stat.S_ISREG)):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(directory, name)
                if pattern.fullmatch(name) and _left_behind(path, kind):
                    try:
                        os.unlink(path)  # a link is removed itself, never its target
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        self.warnings.append('could not remove %s, left by an interrupted run: %s' % (path, exc))
                        continue
                    removed.append(path)
        if removed:
            self.warnings.append('removed what an interrupted run left: %s' % ', '.join(sorted(removed)))

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
        text = json.dumps(st.to_manifest(), indent=2, sort_keys=True) + '\n'
        atomic_write(self.layout.manifest, text)
        st.dirty = False
        self._write_backup(text)

    def _write_backup(self, text: str) -> None:
        """The copy a corrupt manifest is restored from. Written after the manifest: its failure costs the copy, never the run."""
        try:
            atomic_write(self.layout.manifest_backup, text)
        except OSError as exc:
            self.warnings.append('could not write the backup manifest %s: %s' % (self.layout.manifest_backup, exc))

    def _commit(self, st: State) -> None:
        """Write the manifest at the end of a run; when that fails after current moved, the failure says where current is."""
        try:
            self._write_manifest(st)
        except (OSError, LockError) as exc:
            if st.swapped_from is None:
                raise
            raise self._unrecorded_swap(st, exc)

    def _unrecorded_swap(self, st: State, exc: Exception) -> ReleaseError:
        """current moved but the manifest does not say so: switch back where that is safe, and say where current points now.

        A switch goes back to the release that was live, so its failure leaves things as they were. A rollback stays where it
        went: going back would put the release being left, usually a broken one, live again over a bookkeeping error.
        """
        came = st.swapped_from
        why = 'the manifest %s could not be written (%s)' % (self.layout.manifest, exc)
        if came['undo'] and came['id'] is not None:
            try:
                if self._flock is not None:
                    self._flock.verify()
                atomic_symlink(came['target'], self.layout.current)
            except (OSError, LockError) as undo_exc:
                why += ', and switching current back to %s failed (%s)' % (came['target'], undo_exc)
            else:
                where, details = self._current_now()
                return ReleaseError('%s to %s failed: %s; current was switched back: %s' % (came['action'], st.current_id, why, where),
                                    **details)
        where, details = self._current_now()
        msg = '%s to %s: %s now, but %s; the link is what counts: the next run records %s as the current release' % (
            came['action'], st.current_id, where, why, st.current_id)
        if came['marks_bad'] and came['id'] is not None:
            msg += '. %s is not recorded as bad: mark it bad (state=mark_bad) once the manifest can be written' % came['id']
        return ReleaseError(msg, **details)

    def _current_now(self) -> t.Tuple[str, dict]:
        """Where current points on disk, in words and as the failure's details."""
        target = read_link(self.layout.current)
        if target is None:
            where = '%s does not exist' % self.layout.current if not os.path.lexists(self.layout.current) else \
                '%s is not a symbolic link' % self.layout.current
        else:
            where = 'current points at %s' % target
        return where, {'current': self._release_id_of(target), 'current_target': target}

    def _swap_current(self, st: State, release_id: str, action: str = 'switch', undo: bool = True, marks_bad: bool = False) -> None:
        """Atomically point current at release_id (unless check mode) and update ``st``; ``undo``: switch back if it goes unrecorded."""
        if st.current_kind == 'other':
            raise ReleaseError('%s exists and is not a symbolic link; move it away before switching releases' % self.layout.current)
        path = self.layout.release_path(release_id)
        if not os.path.isdir(path) or os.path.islink(path):
            raise ReleaseError('release directory %s does not exist' % path)
        if not self.check_mode:
            if self._flock is not None:
                self._flock.verify()
            try:
                atomic_symlink(self.layout.link_target(release_id), self.layout.current)
            except OSError as exc:
                where, details = self._current_now()
                raise ReleaseError('%s to %s failed: could not replace %s (%s); %s' % (action, release_id, self.layout.current, exc, where),
                                   **details)
            st.swapped_from = {'id': st.current_id, 'target': st.current_target, 'action': action, 'undo': undo, 'marks_bad': marks_bad}
            if not os.path.isdir(self.layout.current):  # paranoia: never leave a dangling current
                raise ReleaseError('%s does not resolve to a directory after the switch' % self.layout.current)
        st.current_kind = 'link'
        st.current_target = self.layout.link_target(release_id)
        st.current_id = release_id
        st.current_shape = st.current_problem = None
        st.live = {release_id}

    def _existing(self, st: State, release_id: str) -> dict:
        entry = st.entries.get(release_id)
        if entry is None:
            raise ReleaseError('release %s does not exist under %s' % (release_id, self.layout.releases),
                               releases=sorted(st.entries))
        return entry

    def _mark_switched(self, st: State, release_id: str, now: float, status: str = 'good') -> None:
        entry = st.entries[release_id]
        entry['status'] = status
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
            same = reuse_live and revision and live is not None and live.get('revision') == revision
            if same and live['status'] in ('good', 'unknown'):
                return {'changed': False, 'release': st.current_id, 'new': False, 'resume': False,
                        'msg': 'revision %s is already live in release %s; nothing to deploy (release_force: true builds a new '
                               'release from it anyway)' % (revision, st.current_id)}
            if same and live['status'] == 'switched':
                # An earlier run moved current and stopped before the health gate: the processes may still serve the
                # release before. No new release; the caller restarts onto current and holds it to the gate.
                return {'changed': False, 'release': st.current_id, 'new': False, 'resume': True, 'previous': st.previous_good(),
                        'msg': 'revision %s is live in release %s, but that release never passed its health gate (an interrupted '
                               'deploy); finishing its activation' % (revision, st.current_id)}
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

    def switch(self, release: t.Optional[str], pending: bool = False) -> dict:
        """Point current at ``release``. With ``pending``, it is recorded ``switched`` until :meth:`verify` (its health gate
        passed): never a rollback target, and a re-run of the same revision finishes its activation."""
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
            # A current gone with its release directory is repaired by a switch; any other link the module did not make is not.
            self._refuse_current(st, 'switch to %s' % release, ('inside', 'outside', 'dangling'))
            if entry['status'] == 'unknown':
                self._refuse_untrusted(st, 'switch to release %s, whose status is unknown' % release)
            now = self.clock()
            if previous != release:
                self._swap_current(st, release)
            self._mark_switched(st, release, now, 'switched' if pending else 'good')
            st.record('switch', release, now, previous=previous)
            return {'changed': True, 'release': release, 'previous': previous}

        return self._run(action)

    def verify(self, release: t.Optional[str]) -> dict:
        """``release`` passed its health gate: ``switched`` becomes ``good``, a rollback target from now on."""
        validate_release_id(release)

        def action(st: State) -> dict:
            entry = self._existing(st, release)
            if entry['status'] != 'switched':
                return {'changed': False, 'release': release}
            entry['status'] = 'good'
            st.dirty = True
            st.record('verify', release, self.clock())
            return {'changed': True, 'release': release}

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
            if release in st.live:
                raise ReleaseRefused('release %s is what %s -> %s resolves into or through; it can be marked bad (or removed) only once '
                                     'current points elsewhere' % (release, self.layout.current, st.current_target))
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
            # Rollback repairs a current gone with its release directory (it then picks the most recently switched good release).
            self._refuse_current(st, 'roll back', ('inside', 'outside', 'dangling'))
            if release is not None:
                target = release
                entry = self._existing(st, target)
                if entry['status'] == 'bad':
                    raise ReleaseError('release %s is marked bad (%s); rollback never chooses a bad release'
                                       % (target, entry.get('reason') or 'no reason given'), status='bad')
                if entry['status'] == 'unfinished':
                    raise ReleaseError('release %s is unfinished (it never went live); use state=switch to deploy it' % target,
                                       status='unfinished')
                if entry['status'] == 'switched':
                    raise ReleaseError('release %s was switched to but never passed its health gate (an interrupted or failed '
                                       'deploy); rollback never chooses an unverified release. Deploy its revision again to '
                                       'finish its activation' % target, status='switched')
                if entry['status'] == 'unknown':
                    # Without a release, rollback picks good releases only: after a rebuild, those current was seen on.
                    self._refuse_untrusted(st, 'roll back to release %s, whose status is unknown' % target)
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
                self._swap_current(st, target, action='rollback', undo=False, marks_bad=mark_current_bad)
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
            # With current broken, what is safe to delete cannot be told: the release it should lead to may be among the doomed.
            self._refuse_current(st, 'prune', ('gone', 'outside', 'dangling'))
            doomed = self.prune_plan(st, keep_releases)
            if doomed:
                self._refuse_untrusted(st, 'prune %s' % ', '.join(doomed))
            changed = bool(doomed or st.leftovers)
            if self.check_mode or not changed:
                for rid in doomed:
                    del st.entries[rid]
                return {'changed': changed, 'removed': doomed}
            removed, renamed = [], []
            for rid in doomed:
                # Re-check under the lock, against the link itself: never remove what current resolves into or through.
                if rid in self._releases_on(_resolution_trail(self.layout.current)[0]):
                    self.warnings.append('not pruning %s: current resolves into or through it' % rid)
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
        protected.update(st.live)
        good_like = [rid for rid, e in ordered if e['status'] in ('good', 'unknown')]
        protected.update(good_like[-keep_releases:])
        return [rid for rid, dummy in ordered if rid not in protected]

    def lock(self, lock_id: t.Optional[str], ttl: int = 3600, timeout: int = 0, owner: t.Optional[str] = None,
             host: t.Optional[str] = None, pid: t.Optional[int] = None, play: t.Optional[str] = None, poll_interval: float = 1.0,
             layout: t.Optional[dict] = None, run_command=None, identity: t.Optional[dict] = None) -> dict:
        """Take the deploy lease; with ``layout``, then make the layout (users, directories, shared/.env) under it."""
        result = self._lock(lock_id, ttl=ttl, timeout=timeout, owner=owner, host=host, pid=pid, play=play, poll_interval=poll_interval,
                            identity=identity)
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
              host: t.Optional[str] = None, pid: t.Optional[int] = None, play: t.Optional[str] = None, poll_interval: float = 1.0,
              identity: t.Optional[dict] = None) -> dict:
        if not lock_id:
            raise ReleaseError('lock_id is required for state=lock')
        if not _is_int(ttl) or ttl < 1:
            raise ReleaseError('lock_ttl must be an integer >= 1, got %r' % (ttl,))
        try:
            res = acquire_lease(self.layout.state_dir, lock_id, ttl=ttl, timeout=timeout, owner=owner, host=host, pid=pid,
                                play=play, check_mode=self.check_mode, poll_interval=poll_interval,
                                flock_timeout=self.lock_wait, clock=self.clock, identity=identity)
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
               prune_keep: t.Optional[int] = None, verified: t.Optional[str] = None) -> dict:
        """Give the lease back; first record ``verified`` as good (it passed its health gate), prune to ``prune_keep``
        releases, and write the run's report to ``report_path`` (JSON, 0640)."""
        verified_changed = bool(verified) and self.verify(verified)['changed']
        removed = []
        if prune_keep:
            try:
                removed = self.prune(prune_keep)['removed']
            except ReleaseRefused as exc:
                # The lease goes back all the same: a prune refused on a state that needs a person must not also block
                # every deploy until the lease expires.
                self.warnings.append('did not prune: %s' % exc.msg)
        wrote = None
        if report is not None and report_path and not self.check_mode:
            os.makedirs(os.path.dirname(report_path), mode=0o750, exist_ok=True)
            atomic_write(report_path, json.dumps(report, indent=4, sort_keys=True, default=str) + '\n', mode=0o640)
            wrote = report_path
        result = self._unlock(lock_id)
        result['report_path'] = wrote
        result['removed'] = removed
        result['changed'] = result['changed'] or bool(removed) or verified_changed
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
    # Who the holder process is, for the action plugin to prove it dead on its controller (absent in older leases).
    out.update((k, lease[k]) for k in IDENTITY_KEYS if k in lease)
    out['expired'] = lease_expired(lease, time.time() if now is None else now)
    return out


def _read_manifest(path: str) -> t.Tuple[t.Optional[dict], t.Optional[str]]:
    """``(data, None)``, ``(None, None)`` when ``path`` is missing, or ``(None, why it is unusable)``."""
    try:
        with open(path, 'rb') as f:
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


def _resolution_trail(path: str, max_links: int = 40) -> t.Tuple[t.List[str], t.Optional[str]]:
    """Every path met while resolving the absolute ``path`` (each link and directory on the way, as real paths), and its end.

    ``os.path.realpath`` gives only the end, but current also depends on every link on the way: with current ->
    releases/v2/app and releases/v2/app -> ../v1/app, deleting v2 breaks current as surely as deleting v1. The end is
    ``None`` when the path dangles or loops.
    """
    trail: t.List[str] = []
    resolved = '/'
    pending = path.split('/')
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ('', '.'):
            continue
        if name == '..':
            resolved = os.path.dirname(resolved)
            continue
        step = os.path.join(resolved, name)
        trail.append(step)
        try:
            mode = os.lstat(step).st_mode
            target = os.readlink(step) if stat.S_ISLNK(mode) else None
        except OSError:
            return trail, None
        if target is None:
            resolved = step
            continue
        links += 1
        if links > max_links:
            return trail, None
        if target.startswith('/'):
            resolved = '/'
        pending[:0] = target.split('/')
    return trail, resolved


def _left_behind(path: str, kind: t.Callable[[int], bool]) -> bool:
    """Whether ``path`` is of the kind its temporary name promises and old enough that no live writer can still own it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return kind(st.st_mode) and time.time() - st.st_mtime > TEMP_MIN_AGE


def _rmtree(path: str) -> t.Optional[str]:
    """Delete ``path`` (a tree, a file or a link) without ever following a symbolic link; return an error text or None.

    It runs as root on trees the deploy user wrote, and that user may swap a directory for a link to anywhere at any moment.
    So below the trusted parent nothing is reached by path: each directory is opened with O_NOFOLLOW relative to its
    parent's descriptor, and its entries are removed by name relative to its own. A name that is a link (or became one since
    it was listed) fails that open and is unlinked itself; its target is never listed, chmod'ed or deleted. A read-only
    directory (a build's 0555) is made writable through its own descriptor before its entries go. A directory on another
    file system (a mount) is not entered.
    """
    parent, name = os.path.split(os.path.normpath(path))
    try:
        parent_fd = os.open(parent, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_CLOEXEC', 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return '%s: %s' % (parent, exc)
    errors: t.List[str] = []
    try:
        _remove_at(parent_fd, name, path, os.fstat(parent_fd).st_dev, errors)
    finally:
        os.close(parent_fd)
    if not errors and os.path.lexists(path):
        errors.append('still exists')
    return '; '.join(errors) or None


def _remove_at(dir_fd: int, name: str, shown: str, device: int, errors: t.List[str]) -> None:
    """Remove the entry ``name`` of the directory ``dir_fd``, a directory with everything in it."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in _NOT_A_DIR:
            _unlink_at(dir_fd, name, shown, errors)
        else:
            errors.append('%s: %s' % (shown, exc))
        return
    try:
        if os.fstat(fd).st_dev != device:
            errors.append('%s: on another file system (a mount point?); not deleted' % shown)
            return
        _empty(fd, shown, device, errors)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        errors.append('%s: %s' % (shown, exc))


def _empty(fd: int, shown: str, device: int, errors: t.List[str]) -> None:
    """Remove everything in the directory open as ``fd`` (opened with O_NOFOLLOW: it is the directory itself, never a link's target)."""
    if stat.S_IMODE(os.fstat(fd).st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        # Not ours to chmod (EPERM) need not stop anything: root deletes regardless, and what really fails is reported below.
        with contextlib.suppress(OSError):
            os.fchmod(fd, stat.S_IRWXU)
    try:
        names = _entry_names(fd)
    except OSError as exc:
        errors.append('%s: %s' % (shown, exc))
        return
    for name in names:
        _remove_at(fd, name, os.path.join(shown, name), device, errors)


def _entry_names(fd: int) -> t.List[str]:
    """The names in the directory open as ``fd``, read to the end at once (one descriptor per level of the tree, not two)."""
    with os.scandir(fd) as entries:
        return [entry.name for entry in entries]


def _unlink_at(dir_fd: int, name: str, shown: str, errors: t.List[str]) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)  # a link goes itself, whatever it points at
    except FileNotFoundError:
        pass
    except OSError as exc:
        errors.append('%s: %s' % (shown, exc))


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
        force_rebuilt=params['force_rebuilt'],
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
        return manager.switch(params['release'], pending=params['pending_verification'])
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
                            run_command=run_command, identity=params['lock_holder'])
    return manager.unlock(params['lock_id'], report=params['report'], report_path=params['report_path'],
                          prune_keep=params['keep_releases'] if params['prune'] else None, verified=params['verified'])


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
