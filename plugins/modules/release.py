#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Release state machine for zero-downtime deploys (prepare, atomic switch, mark bad, rollback, prune, lock)
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Manages the release layout C(BASE/releases/ID), C(BASE/shared), C(BASE/current) and the release manifest
    C(BASE/.zerodown/manifest.json) on the target.
  - C(BASE/current) is always a relative symbolic link C(releases/ID). It is switched atomically (a new link is created under
    a temporary name in C(BASE) and renamed over C(current) with V(rename(2\)); it is never removed first), so a reader resolving
    it at any instant sees either the old or the new release, never nothing.
  - The manifest records, for every release, its status (V(good), V(bad), V(unfinished), or V(unknown) for releases found on disk
    without a record), creation order, switch order, revision, and the reason it was marked bad. Ordering decisions (rollback target,
    prune) use this recorded order, never file modification times.
  - Rules enforced by every state. C(current) never dangles and never points at a release marked bad. C(current) and the
    previous good release (the one O(state=rollback) would choose) are never pruned. Bad and unfinished releases never count towards
    O(keep_releases) and are never chosen by rollback.
  - A missing, corrupt or wrongly shaped manifest is rebuilt from the directory listing of C(BASE/releases) and the real target of
    C(BASE/current) (the current release becomes V(good), all others V(unknown)), and RV(manifest_rebuilt) is V(true). Records of
    release directories that have vanished are dropped; directories without a record are adopted as V(unknown).
  - Mutating states (V(prepare), V(switch), V(mark_bad), V(rollback), V(prune)) hold a short exclusive V(flock(2\)) on
    C(BASE/.zerodown/lock) while they run, so two module runs never interleave. The kernel releases it if the process dies.
  - A play spans many tasks, so a deploy-wide lock cannot be a V(flock) of one process. It is a I(lease) instead, the JSON file
    C(BASE/.zerodown/deploy.lock), taken with O(state=lock) and given back with O(state=unlock). While an unexpired lease exists,
    mutating states refuse to run unless they pass the same O(lock_id) (or O(force=true)). A lease older than its O(lock_ttl) is
    taken over by the next O(state=lock).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff shows the target of C(BASE/current) before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
  safe_file_operations:
    description: Uses Ansible's strict file operation functions to ensure proper permissions and avoid data corruption.
    support: full
    details:
      - The manifest and the lease are replaced atomically (temporary file, V(fsync), V(rename), directory V(fsync)).
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: partial
    details:
      - O(state=prepare) without O(release) generates a new release ID on every run.
  action_group:
    description: Use C(group/zerodown.deploy.zerodown) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - zerodown.deploy.zerodown
options:
  path:
    description:
      - The base directory C(BASE) of the application, for example C(/srv/shop). Must be an absolute path.
    type: path
    required: true
  state:
    description:
      - V(prepare) creates C(BASE/releases/ID) (and C(releases), C(shared), C(.zerodown) when missing) and records it as V(unfinished).
        With a named O(release) that already exists and is still V(unfinished), nothing changes. A named release that exists with
        another status is an error.
      - V(switch) atomically points C(BASE/current) at O(release) and records it as V(good). The release must exist and must not be V(bad).
      - V(mark_bad) records O(release) as V(bad) (with O(reason)). The release C(current) points at cannot be marked bad; roll back
        first (O(state=rollback) with O(mark_current_bad=true) does both).
      - V(rollback) points C(current) at O(release) (which must be V(good) or V(unknown)), or, without O(release), at the previous good
        release, that is among the V(good) releases created before the current one, the one that was switched to most recently.
      - V(prune) removes old releases, see O(keep_releases).
      - V(query) only reads and returns the state. It never writes, not even a rebuilt manifest. (Ansible's module guidelines
        reserve V(info) for separate C(_info) modules, hence the name.)
      - V(lock) takes the deploy lease for O(lock_id), waiting up to O(lock_timeout) seconds; taking it again with the same
        O(lock_id) renews it and reports no change.
      - V(unlock) gives the lease back. Only the same O(lock_id) may, unless O(force=true).
    type: str
    choices: [prepare, switch, mark_bad, rollback, prune, query, lock, unlock]
    default: query
  release:
    description:
      - Release ID. Required for O(state=switch) and O(state=mark_bad); optional for O(state=prepare) (default generated) and
        O(state=rollback) (default the previous good release).
      - Must match C(^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$), so it can never be C(.), C(..), contain C(/) or start with C(-).
    type: str
  revision:
    description:
      - VCS revision of the release. Stored in the manifest by O(state=prepare).
      - A generated ID is C(YYYYMMDDTHHMMSSZ-REV) in UTC, where C(REV) is the first 7 letters and digits of the revision, or just
        the timestamp when no revision is given. If that ID is taken, C(-2), C(-3), ... is appended.
    type: str
  id_time:
    description:
      - With O(state=prepare) and no O(release), the UTC time C(YYYYMMDDTHHMMSSZ) the generated ID starts with, instead of now.
      - A deploy to several hosts passes one value to all of them (and to every wave), so a revision gets the same release ID
        everywhere and a rollback can name one ID for the whole fleet.
    type: str
  reason:
    description:
      - Why a release is marked bad (O(state=mark_bad), or O(state=rollback) with O(mark_current_bad=true)). Stored in the manifest.
    type: str
  mark_current_bad:
    description:
      - With O(state=rollback), mark the release being left as V(bad).
    type: bool
    default: false
  keep_releases:
    description:
      - With O(state=prune), the number of V(good) (and V(unknown)) releases to keep, newest by creation order. Must be at least 1.
      - The current release and the previous good release are always kept, even beyond this number. The newest release is always
        kept whatever its status (an V(unfinished) one may be a deploy in progress). Other V(bad) and V(unfinished) releases are
        removed and never count towards this number.
    type: int
    default: 5
  owner:
    description:
      - Owner of the release directory created by O(state=prepare).
    type: str
  group:
    description:
      - Group of the release directory created by O(state=prepare).
    type: str
  mode:
    description:
      - Permissions of the release directory created by O(state=prepare), as an octal string such as V('0755') or a symbolic mode.
    type: raw
  lock_id:
    description:
      - Identifier of the deploy run holding the deploy lease, for example a UUID generated once per play.
      - Required for O(state=lock) and O(state=unlock) (unless O(force=true)).
      - When given to a mutating state, the lease must be held by this O(lock_id), otherwise the state fails. This stops a deploy whose
        lease expired and was taken over by another run.
    type: str
  lock_timeout:
    description:
      - With O(state=lock), how many seconds to wait while another run holds an unexpired lease before failing with a message naming
        the holder. V(0) means do not wait.
      - All mutating states also wait for the short internal lock; they wait for the larger of 60 seconds and this value.
    type: int
    default: 0
  lock_ttl:
    description:
      - With O(state=lock), the lifetime of the lease in seconds. After it, another run's O(state=lock) takes the lease over.
        Renew a lease in long deploys by running O(state=lock) again with the same O(lock_id).
    type: int
    default: 3600
  lock_play:
    description:
      - Name of the play or job holding the lease; shown to runs waiting for it.
    type: str
  lock_owner:
    description:
      - Who holds the lease, shown to waiting runs. Defaults to the remote user running the module.
    type: str
  lock_host:
    description:
      - Host the deploy runs from (for example the controller), shown to waiting runs. Defaults to the target's host name.
    type: str
  lock_pid:
    description:
      - Process ID of the deploy run (for example the controller's C(ansible-playbook)), shown to waiting runs.
    type: int
  force:
    description:
      - Ignore a deploy lease held by someone else in mutating states, and allow O(state=unlock) to remove another run's lease.
      - It does not relax any release rule.
    type: bool
    default: false
notes:
  - The manifest is C(BASE/.zerodown/manifest.json), the short lock is C(BASE/.zerodown/lock) with holder record C(lock.json),
    the lease is C(BASE/.zerodown/deploy.lock).
  - Prune renames a release to a hidden C(releases/.prune-*) name before deleting it, so a half-deleted release is never visible
    under its ID. Leftovers of an interrupted prune are removed by the next prune.
seealso:
  - name: Release layout and rules
    description: The collection's documentation of the release module.
    link: https://github.com/zerodown/deploy/blob/main/docs/release.md
"""

EXAMPLES = r"""
- name: Take the deploy lock for this run
  zerodown.deploy.release:
    path: /srv/shop
    state: lock
    lock_id: "{{ deploy_run_id }}"
    lock_timeout: 600
    lock_play: "{{ ansible_play_name }}"

- name: Create a new release directory
  zerodown.deploy.release:
    path: /srv/shop
    state: prepare
    revision: "{{ git_result.after }}"
    owner: shop
    group: shop
    mode: "0755"
    lock_id: "{{ deploy_run_id }}"
  register: new_release

- name: Point current at it
  zerodown.deploy.release:
    path: /srv/shop
    state: switch
    release: "{{ new_release.release }}"
    lock_id: "{{ deploy_run_id }}"

- name: Health gate failed - go back and never use this release again
  zerodown.deploy.release:
    path: /srv/shop
    state: rollback
    mark_current_bad: true
    reason: health check /healthz returned 502
    lock_id: "{{ deploy_run_id }}"

- name: Keep three good releases
  zerodown.deploy.release:
    path: /srv/shop
    state: prune
    keep_releases: 3
    lock_id: "{{ deploy_run_id }}"

- name: Give the deploy lock back
  zerodown.deploy.release:
    path: /srv/shop
    state: unlock
    lock_id: "{{ deploy_run_id }}"

- name: Roll back to a named release (manual)
  zerodown.deploy.release:
    path: /srv/shop
    state: rollback
    release: 20261121T101500Z-3f2a9c1

- name: Show releases
  zerodown.deploy.release:
    path: /srv/shop
  register: releases
"""

RETURN = r"""
release:
  description: The release ID acted on (prepared, switched to, marked bad, rolled back to); for O(state=query) the current one.
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
release_path:
  description: Absolute path of RV(release).
  returned: success
  type: str
  sample: /srv/shop/releases/20261121T101500Z-3f2a9c1
previous:
  description: The release C(current) pointed at before this task, or V(null).
  returned: success
  type: str
  sample: 20261120T083000Z-91bc0de
current:
  description: The release C(current) points at after this task (in check mode, would point at), or V(null).
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
previous_good:
  description: The release O(state=rollback) without O(release) would choose now, or V(null). Never pruned.
  returned: success
  type: str
  sample: 20261120T083000Z-91bc0de
releases:
  description: All releases, oldest first by creation order.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Release ID.
      type: str
    status:
      description: V(good) (has been switched to), V(bad), V(unfinished) (prepared, never switched to) or V(unknown) (found on disk without a record).
      type: str
    created:
      description: UTC time the release was prepared (ISO 8601), if known.
      type: str
    switched_at:
      description: UTC time C(current) was last switched to it, if known.
      type: str
    revision:
      description: VCS revision, if known.
      type: str
    reason:
      description: Why it was marked bad.
      type: str
    current:
      description: Whether C(current) points at it.
      type: bool
  sample:
    - {id: 20261120T083000Z-91bc0de, status: good, created: "2026-11-20T08:30:00Z", switched_at: "2026-11-20T08:31:02Z",
       revision: 91bc0de, reason: null, current: false}
removed:
  description: Release IDs removed by O(state=prune) (in check mode, that would be removed). Empty for other states.
  returned: success
  type: list
  elements: str
  sample: [20261101T090000Z-0aa1b2c]
manifest_rebuilt:
  description: Whether the manifest was missing (while releases existed), corrupt or wrongly shaped and was rebuilt from the disk.
  returned: success
  type: bool
lock:
  description: The deploy lease after this task, or V(null) when none is held.
  returned: success
  type: dict
  contains:
    lock_id:
      description: Identifier of the run holding the lease.
      type: str
    owner:
      description: Who holds it.
      type: str
    host:
      description: Host the holder runs on.
      type: str
    pid:
      description: Process ID given by the holder.
      type: int
    play:
      description: Play name given by the holder.
      type: str
    started:
      description: When the lease was first taken (UTC).
      type: str
    expires:
      description: When the lease expires (UTC) unless renewed.
      type: str
    ttl:
      description: Lifetime in seconds.
      type: int
lock_taken_over:
  description: With O(state=lock), whether an expired (or unreadable) lease of another run was taken over.
  returned: when O(state=lock)
  type: bool
previous_holder:
  description: With O(state=lock) and O(state=unlock), the lease that was taken over or removed.
  returned: when O(state=lock) or O(state=unlock)
  type: dict
diff:
  description: Target of C(BASE/current) before and after.
  returned: diff mode
  type: dict
  sample: {before: "releases/20261120T083000Z-91bc0de\n", after: "releases/20261121T101500Z-3f2a9c1\n"}
"""

import datetime
import json
import os
import re
import secrets
import shutil
import stat
import sys
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import (
    FsError,
    atomic_symlink,
    atomic_write,
    fsync_dir,
    read_link,
)
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

ID_PATTERN = r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'
ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}')  # always used with fullmatch(): '$' would accept a trailing newline
ID_TIME_RE = re.compile(r'\d{8}T\d{6}Z')
GENERATED_ID_RE = re.compile(r'(\d{8}T\d{6}Z)(?:-([A-Za-z0-9]{1,7}))?(?:-\d+)?')
STATUSES = ('good', 'bad', 'unfinished', 'unknown')
MUTATING_STATES = ('prepare', 'switch', 'mark_bad', 'rollback', 'prune')
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

    def prepare(self, release: t.Optional[str] = None, revision: t.Optional[str] = None, id_time: t.Optional[str] = None) -> dict:
        if release is not None:
            validate_release_id(release)
        if id_time is not None and not ID_TIME_RE.fullmatch(id_time):
            raise ReleaseError('Invalid id_time %s: it must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ)' % json.dumps(id_time))

        def action(st: State) -> dict:
            now = self.clock()
            if release is not None:
                rid = release
                entry = st.entries.get(rid)
                path = self.layout.release_path(rid)
                if entry is not None:
                    if entry['status'] != 'unfinished':
                        raise ReleaseError('release %s already exists with status %s; prepare a release with a new ID'
                                           % (rid, entry['status']), status=entry['status'])
                    changed = self._apply_fs_attributes(path, False)
                    return {'changed': changed, 'release': rid}
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
            return {'changed': True, 'release': rid}

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

    def mark_bad(self, release: t.Optional[str], reason: t.Optional[str] = None) -> dict:
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

    def unlock(self, lock_id: t.Optional[str]) -> dict:
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


def _fs_attributes_callback(module: AnsibleModule) -> t.Optional[t.Callable[[str, bool], bool]]:
    params = module.params
    if params['owner'] is None and params['group'] is None and params['mode'] is None:
        return None

    def apply(path: str, changed: bool) -> bool:
        changed = module.set_owner_if_different(path, params['owner'], changed)
        changed = module.set_group_if_different(path, params['group'], changed)
        return module.set_mode_if_different(path, params['mode'], changed)

    return apply


def run_module(module: AnsibleModule) -> dict:
    p = module.params
    for name in ('keep_releases', 'lock_ttl'):
        if p[name] < 1:
            raise ReleaseError('%s must be >= 1, got %d' % (name, p[name]))
    if p['lock_timeout'] < 0:
        raise ReleaseError('lock_timeout must be >= 0, got %d' % p['lock_timeout'])
    if p['lock_id'] is not None and (not p['lock_id'].strip() or len(p['lock_id']) > 256):
        raise ReleaseError('lock_id must be a non-empty string of at most 256 characters')
    manager = ReleaseManager(
        p['path'],
        check_mode=module.check_mode,
        fs_attributes=_fs_attributes_callback(module),
        lock_id=p['lock_id'],
        force=p['force'],
        lock_wait=max(STATE_LOCK_MIN_WAIT, p['lock_timeout']),
        lock_play=p['lock_play'],
    )
    state = p['state']
    try:
        if state == 'query':
            result = manager.info()
        elif state == 'prepare':
            result = manager.prepare(p['release'], p['revision'], p['id_time'])
        elif state == 'switch':
            result = manager.switch(p['release'])
        elif state == 'mark_bad':
            result = manager.mark_bad(p['release'], p['reason'])
        elif state == 'rollback':
            result = manager.rollback(p['release'], p['mark_current_bad'], p['reason'])
        elif state == 'prune':
            result = manager.prune(p['keep_releases'])
        elif state == 'lock':
            result = manager.lock(p['lock_id'], ttl=p['lock_ttl'], timeout=p['lock_timeout'], owner=p['lock_owner'],
                                  host=p['lock_host'], pid=p['lock_pid'], play=p['lock_play'])
        else:
            result = manager.unlock(p['lock_id'])
    finally:
        for warning in manager.warnings:
            module.warn(warning)
    if module._diff:
        before = manager_current_text(result.get('previous'))
        after = manager_current_text(result.get('current'))
        result['diff'] = {
            'before_header': manager.layout.current,
            'after_header': manager.layout.current,
            'before': before,
            'after': after,
        }
    return result


def manager_current_text(release_id: t.Optional[str]) -> str:
    return (Layout.link_target(release_id) + '\n') if release_id else ''


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', default='query', choices=['prepare', 'switch', 'mark_bad', 'rollback', 'prune', 'query', 'lock', 'unlock']),
            release=dict(type='str'),
            revision=dict(type='str'),
            id_time=dict(type='str'),
            reason=dict(type='str'),
            mark_current_bad=dict(type='bool', default=False),
            keep_releases=dict(type='int', default=5),
            owner=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='raw'),
            lock_id=dict(type='str'),
            lock_timeout=dict(type='int', default=0),
            lock_ttl=dict(type='int', default=3600),
            lock_play=dict(type='str'),
            lock_owner=dict(type='str'),
            lock_host=dict(type='str'),
            lock_pid=dict(type='int'),
            force=dict(type='bool', default=False),
        ),
        required_if=[
            ('state', 'switch', ['release']),
            ('state', 'mark_bad', ['release']),
            ('state', 'lock', ['lock_id']),
        ],
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except (FsError, LockError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (type(exc).__name__, exc), exception=exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
