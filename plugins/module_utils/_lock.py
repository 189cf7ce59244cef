# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Locking for a release base directory.

Two layers live here.

1. :class:`FileLock` -- a short, process-scoped mutual exclusion lock:
   ``fcntl.flock(LOCK_EX)`` on ``BASE/.zerodown/lock`` plus a JSON sidecar
   ``BASE/.zerodown/lock.json`` that names the holder (owner, host, pid, start
   time, play) so that a waiter that gives up can say who is in the way.

   *Dead holders free the lock by themselves.*  A ``flock`` lock belongs to
   the open file description, not to the path and not to a pid file.  When
   the holding process exits -- normally, by an exception, by ``SIGKILL``, by
   the OOM killer -- the kernel closes all its descriptors and with the last
   one the lock is released.  There is therefore no "stale lock file" problem
   and no pid-reuse problem: the sidecar may stay behind, but it is only
   informational and is overwritten by the next holder.  (The descriptor is
   opened with ``O_CLOEXEC`` so that children started by the holder do not
   inherit, and thereby prolong, the lock.)

   *TTL for hung holders.*  A holder that is alive but stuck (for example in
   uninterruptible I/O on a dead NFS mount) keeps its lock forever.  A waiter
   constructed with ``ttl=N`` treats a holder record whose ``started`` (or
   last :meth:`FileLock.refresh`) is more than ``N`` seconds old as stale and
   *breaks* it: serialised by a second flock on ``lock.break``, it re-checks
   that the same stale record is still in place, creates a fresh lock file,
   locks it, writes its own sidecar and renames the fresh file over
   ``BASE/.zerodown/lock``.  From then on everybody opens and locks the new
   inode; the stale holder still owns a lock on the old, now nameless inode,
   which excludes nobody.  Every acquirer re-checks after ``flock`` that the
   inode it locked is still the one at the path (otherwise it retries), so a
   lock on an orphaned inode is never mistaken for the lock.  A broken holder
   can notice with :meth:`FileLock.is_held` / :meth:`FileLock.verify`, and its
   :meth:`FileLock.release` leaves the new holder's sidecar alone (records are
   matched by a random token).

2. The *deploy lease* -- ``BASE/.zerodown/deploy.lock``, a JSON record
   ``{lock_id, owner, host, pid, play, started, ttl, expires, ...}``.  An
   Ansible play spans many tasks and many module processes, so no single
   process can hold a ``flock`` for the whole deploy.  The lease is a plain
   file that is only ever read-modified-written while holding the short
   :class:`FileLock`, so two runs can never both believe they acquired it.  A
   lease whose ``expires`` is in the past is free and is taken over by the
   next acquirer (which reports the previous holder).  See
   :func:`acquire_lease`, :func:`release_lease` and :func:`check_lease`.

   *Early takeover only on proof.*  The lease may also record the holder
   process's identity (:data:`IDENTITY_KEYS`: machine ID, boot ID, PID
   namespace, start time; see :func:`process_identity`).  A host name and a
   PID alone prove nothing: cloned machines share host names, another PID
   namespace reuses the same numbers, and ``hidepid=2`` hides live processes
   of other users from ``/proc``.  An unexpired lease is therefore taken over
   only when :func:`holder_gone` proves its holder dead -- same machine and
   then either a later boot, or the same boot and PID namespace and a PID
   that is gone or belongs to a process started at another time.  Anything
   it cannot tell (an older lease without these fields, an unreadable
   ``/proc``) counts as alive, and the lease is free only when it expires.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import pwd
import secrets
import socket
import time
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write, fsync_dir

__all__ = [
    'FileLock',
    'IDENTITY_KEYS',
    'LockError',
    'LockLost',
    'LockTimeout',
    'LEASE_FILE',
    'LOCK_FILE',
    'STATE_DIR',
    'acquire',
    'acquire_lease',
    'check_lease',
    'current_host',
    'current_user',
    'describe_holder',
    'epoch_to_iso',
    'holder_gone',
    'lease_expired',
    'process_identity',
    'read_holder',
    'read_lease',
    'release',
    'release_lease',
]

STATE_DIR = '.zerodown'
LOCK_FILE = 'lock'
LEASE_FILE = 'deploy.lock'

# What a lease records about its holder process besides host and pid: enough to prove it dead (see holder_gone).
IDENTITY_KEYS = ('machine_id', 'boot_id', 'pid_namespace', 'pid_start')
# systemd's file first; D-Bus's older copy on systems without it.
MACHINE_ID_FILES = ('/etc/machine-id', '/var/lib/dbus/machine-id')
BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id'
PROC = '/proc'


class LockError(Exception):
    """Base class of the errors raised here."""

    def __init__(self, msg: str, holder: t.Optional[dict] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.holder = holder


class LockTimeout(LockError):
    """The lock (or lease) is held by somebody else and the wait timed out."""


class LockLost(LockError):
    """The lock this process held was broken by another process (TTL)."""


# ----------------------------------------------------------------------------
# helpers

def epoch_to_iso(epoch: t.Optional[float]) -> t.Optional[str]:
    """UTC ISO 8601 with a ``Z`` suffix, second precision."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def current_user() -> str:
    """Name of the effective user (not ``$USER``, which ``become`` leaves stale)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def current_host() -> str:
    return socket.gethostname()


def _pid_alive(pid: t.Any) -> t.Optional[bool]:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # OverflowError: a number beyond pid_t, from a hand-edited record
        return None
    return True


# ----------------------------------------------------------------------------
# who a holder process is (each reader answers None when it cannot tell; tests replace them)

def _read_text(path: str) -> t.Optional[str]:
    try:
        with open(path, 'rb') as f:
            value = f.read(4096).decode('ascii', 'replace').strip()
    except OSError:
        return None
    return value or None


def read_machine_id() -> t.Optional[str]:
    """This machine's ID; None when unset (systemd writes ``uninitialized`` until the first boot completes)."""
    for path in MACHINE_ID_FILES:
        value = _read_text(path)
        if value and value != 'uninitialized':
            return value
    return None


def read_boot_id() -> t.Optional[str]:
    """A random ID the kernel draws at every boot."""
    return _read_text(BOOT_ID_FILE)


def read_boot_time() -> t.Optional[float]:
    """When this machine booted (epoch seconds, ``btime`` of /proc/stat, after the long per-CPU and interrupt lines)."""
    try:
        with open(os.path.join(PROC, 'stat'), 'rb') as f:
            for line in f:
                if line.startswith(b'btime '):
                    return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


def read_pid_namespace() -> t.Optional[str]:
    """The PID namespace this process sees PIDs in, ``pid:[INODE]``: a PID names a process only within one."""
    try:
        return os.readlink(os.path.join(PROC, 'self', 'ns', 'pid'))
    except OSError:
        return None


def _proc_is_ours() -> bool:
    """Whether /proc lists the PIDs of our own namespace (a container may see the host's /proc, where numbers differ)."""
    try:
        return int(os.readlink(os.path.join(PROC, 'self'))) == os.getpid()
    except (OSError, ValueError):
        return False


def _parse_stat(raw: bytes) -> t.Optional[t.Tuple[str, int]]:
    """``(state, starttime)`` from /proc/PID/stat: fields 3 and 22, counted after the last ``)``.

    Field 2 is the command name in parentheses and may itself hold spaces and parentheses.
    """
    text = raw.decode('ascii', 'replace')
    end = text.rfind(')')
    fields = text[end + 1:].split() if end >= 0 else []
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> t.Tuple[t.Optional[bool], t.Optional[int]]:
    """Whether ``pid`` runs here, and its start time in clock ticks since boot.

    ``(True, ticks)``; ``(False, None)`` when it provably does not run (or is a zombie: it has exited);
    ``(None, None)`` when that cannot be told.  hidepid=1/2 hides other users' processes from /proc, so a
    missing /proc/PID only counts as gone when ``kill(pid, 0)`` agrees.
    """
    if not _proc_is_ours():
        return None, None
    try:
        with open(os.path.join(PROC, str(pid), 'stat'), 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return (False, None) if _pid_alive(pid) is False else (None, None)
    except OSError:
        return None, None
    parsed = _parse_stat(raw)
    if parsed is None:
        return None, None
    state, start = parsed
    if state in ('Z', 'X'):
        return False, None
    return True, start


def process_identity(pid: t.Optional[int]) -> dict:
    """What a lease records about its holder ``pid`` of this machine, as seen from this process (see :data:`IDENTITY_KEYS`).

    Call it where ``pid`` was observed (for a play, the controller): only there do the machine, the boot and the
    PID namespace match the number.  Fields that cannot be read are None and are not recorded.
    """
    start = process_start(pid)[1] if _is_pid(pid) else None
    return {'machine_id': read_machine_id(), 'boot_id': read_boot_id(), 'pid_namespace': read_pid_namespace(), 'pid_start': start}


def _is_pid(pid: t.Any) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0


def _missing_identity(lease: dict) -> t.List[str]:
    missing = [key for key in ('machine_id', 'boot_id', 'pid_namespace') if not isinstance(lease.get(key), str) or not lease[key]]
    if not isinstance(lease.get('pid_start'), int) or isinstance(lease.get('pid_start'), bool):
        missing.append('pid_start')
    return missing


def holder_gone(lease: dict) -> t.Tuple[bool, str]:
    """Whether the holder process of ``lease`` has provably ended; and why, or why that cannot be proven.

    Proof needs every one of: the holder's machine is this one (machine ID), and either it has booted since
    (boot ID), or in the same boot and PID namespace its PID no longer exists or names a process that started at
    another time (the PID was reused).  Whatever cannot be told counts as alive: such a lease waits for its TTL.
    """
    pid = lease.get('pid')
    if not _is_pid(pid):
        return False, 'the lease names no holder process'
    missing = _missing_identity(lease)
    if missing:
        return False, ("the lease does not record the holder's %s (an older lease, or not readable where it was taken)"
                       % ', '.join(missing))
    machine_id = read_machine_id()
    if machine_id is None:
        return False, "this machine's machine-id cannot be read"
    if lease['machine_id'] != machine_id:
        if lease.get('host') == current_host():
            return False, 'another machine with the same host name: machine-id differs'
        return False, 'the holder runs on another machine: machine-id differs'
    boot_id = read_boot_id()
    if boot_id is None:
        return False, "this machine's boot_id cannot be read"
    if lease['boot_id'] != boot_id:
        return _rebooted_since(lease)
    return _process_gone(pid, lease)


def _rebooted_since(lease: dict) -> t.Tuple[bool, str]:
    """Same machine ID, another boot ID: a reboot ended the holder, unless the holder renewed after this boot.

    Then it cannot be a previous boot of this machine but a clone of its image that kept the machine ID.
    """
    booted = read_boot_time()
    stamp = lease.get('renewed_epoch', lease.get('started_epoch'))
    if booted is None or not isinstance(stamp, (int, float)):
        return False, "its boot_id differs, but this machine's boot time, which tells a reboot from a clone, cannot be read"
    if stamp >= booted:
        return False, ('its boot_id differs but it renewed the lease after this machine booted: another machine with the same '
                       'machine-id (a cloned image)')
    return True, 'this machine rebooted since (boot_id differs)'


def _process_gone(pid: int, lease: dict) -> t.Tuple[bool, str]:
    """Same machine and boot: the PID, read in the holder's PID namespace, is gone or reused."""
    namespace = read_pid_namespace()
    if namespace is None:
        return False, "this process's PID namespace cannot be read"
    if lease['pid_namespace'] != namespace:
        return False, 'pid %d is in another PID namespace (%s, here %s)' % (pid, lease['pid_namespace'], namespace)
    exists, start = process_start(pid)
    if exists is False:
        return True, 'pid %d no longer runs' % pid
    if exists is None or start is None:
        return False, 'whether pid %d still runs cannot be told (/proc/%d is not readable here)' % (pid, pid)
    if start != lease['pid_start']:
        return True, 'pid %d is now another process (its start time differs)' % pid
    return False, 'pid %d still runs' % pid


def _read_json(path: str) -> t.Tuple[t.Optional[dict], t.Optional[str]]:
    """Return ``(data, error)``; ``(None, None)`` when the file does not exist."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, 'cannot read %s: %s' % (path, exc)
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        return None, '%s is not valid JSON: %s' % (path, exc)
    if not isinstance(data, dict):
        return None, '%s does not hold a JSON object' % path
    return data, None


def describe_holder(holder: t.Optional[dict], local_host: t.Optional[str] = None) -> str:
    """Human readable ``owner=... host=... pid=... since=... play=...``."""
    if not holder:
        return 'an unknown holder (no holder record)'
    parts = []
    for key, label in (('lock_id', 'lock_id'), ('owner', 'owner'), ('host', 'host'), ('pid', 'pid'),
                       ('started', 'since'), ('expires', 'expires'), ('play', 'play')):
        value = holder.get(key)
        if value is None or value == '':
            continue
        parts.append('%s=%s' % (label, json.dumps(value) if key == 'play' else value))
    text = ' '.join(parts) or 'an unknown holder (empty holder record)'
    host = local_host if local_host is not None else current_host()
    if holder.get('host') == host and 'lock_id' not in holder and _pid_alive(holder.get('pid')) is False:
        text += ' (that process is gone; the record is left over)'
    return text


# ----------------------------------------------------------------------------
# short flock

def read_holder(lock_path: str) -> t.Optional[dict]:
    """The sidecar record of ``lock_path`` (``None`` if absent or unreadable)."""
    data, dummy_error = _read_json(lock_path + '.json')
    return data


class FileLock:
    """``flock`` based exclusive lock with a holder sidecar.

    >>> with FileLock('/srv/app/.zerodown/lock', timeout=30, play='deploy'):
    ...     pass  # mutate the release tree

    ``timeout`` -- seconds to wait (0: try once).  ``ttl`` -- if set, a holder
    record older than this many seconds is stale and is broken (see the
    module docstring).  ``owner``/``host``/``pid``/``play`` go into the
    sidecar; the defaults describe this process.
    """

    def __init__(self, path: str, timeout: float = 0, poll_interval: float = 0.1, ttl: t.Optional[float] = None,
                 play: t.Optional[str] = None, owner: t.Optional[str] = None, host: t.Optional[str] = None,
                 create_dirs: bool = True, clock: t.Callable[[], float] = time.time) -> None:
        self.path = path
        self.info_path = path + '.json'
        self.break_path = path + '.break'
        self.timeout = max(0.0, float(timeout))
        self.poll_interval = max(0.001, float(poll_interval))
        self.ttl = ttl
        self.play = play
        self.owner = owner
        self.host = host
        self.create_dirs = create_dirs
        self.clock = clock
        self.fd: t.Optional[int] = None
        self.token: t.Optional[str] = None
        self.record: t.Optional[dict] = None
        self.broken_holder: t.Optional[dict] = None

    # -- public API ---------------------------------------------------------

    def acquire(self) -> 'FileLock':
        if self.fd is not None:
            raise LockError('%s is already held by this object' % self.path)
        directory = os.path.dirname(self.path)
        if self.create_dirs and directory and not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        while True:
            fd = self._open(self.path)
            if self._try_flock(fd):
                if self._is_current_inode(fd):
                    self.fd = fd
                    self._write_record()
                    return self
                # The file was replaced (a stale holder was broken) between our open() and flock():
                # we locked an orphaned inode. Try again on the new one.
                os.close(fd)
                continue
            os.close(fd)
            holder = read_holder(self.path)
            if self.ttl is not None and self._is_stale(holder) and self._break(holder):
                return self
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    'Timed out after %ss waiting for lock %s held by %s' % (_fmt_secs(self.timeout), self.path, describe_holder(holder)),
                    holder=holder,
                )
            time.sleep(min(self.poll_interval, remaining))

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            current = read_holder(self.path)
            if current is not None and current.get('token') == self.token and self._is_current_inode(self.fd):
                try:
                    os.unlink(self.info_path)
                except FileNotFoundError:
                    pass
        finally:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
                self.token = None

    def is_held(self) -> bool:
        """True while this object holds the lock and nobody broke it."""
        return self.fd is not None and self._is_current_inode(self.fd)

    def verify(self) -> None:
        """Raise :class:`LockLost` if the lock was broken under us."""
        if not self.is_held():
            raise LockLost('lock %s is no longer held by this process (it was broken as stale by %s)'
                           % (self.path, describe_holder(read_holder(self.path))), holder=read_holder(self.path))

    def refresh(self) -> None:
        """Renew the holder record so that waiters with a TTL do not consider it stale."""
        self.verify()
        self._write_record(refresh=True)

    def __enter__(self) -> 'FileLock':
        return self.acquire()

    def __exit__(self, *exc_info: t.Any) -> None:
        self.release()

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _open(path: str) -> int:
        flags = os.O_CREAT | getattr(os, 'O_CLOEXEC', 0)
        try:
            return os.open(path, os.O_RDWR | flags, 0o644)
        except PermissionError:
            # flock() works on read-only descriptors too (e.g. lock file owned by another deploy user)
            return os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))

    @staticmethod
    def _try_flock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        return True

    def _is_current_inode(self, fd: int) -> bool:
        try:
            st_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        st_fd = os.fstat(fd)
        return (st_fd.st_dev, st_fd.st_ino) == (st_path.st_dev, st_path.st_ino)

    def _is_stale(self, holder: t.Optional[dict]) -> bool:
        if not holder or self.ttl is None:
            return False
        stamp = holder.get('renewed_epoch', holder.get('started_epoch'))
        if not isinstance(stamp, (int, float)):
            return False
        return self.clock() - stamp > self.ttl

    def _new_record(self) -> dict:
        now = self.clock()
        self.token = secrets.token_hex(16)
        return {
            'token': self.token,
            'owner': self.owner if self.owner is not None else current_user(),
            'host': self.host if self.host is not None else current_host(),
            'pid': os.getpid(),
            'started': epoch_to_iso(now),
            'started_epoch': now,
            'play': self.play,
            'ttl': self.ttl,
        }

    def _write_record(self, refresh: bool = False) -> None:
        if refresh and self.record is not None:
            now = self.clock()
            self.record['renewed'] = epoch_to_iso(now)
            self.record['renewed_epoch'] = now
        else:
            self.record = self._new_record()
        # The sidecar is informational; not being able to write it must not fail the lock.
        try:
            atomic_write(self.info_path, json.dumps(self.record, sort_keys=True) + '\n', durable=False)
        except OSError:
            pass

    def _break(self, stale: dict) -> bool:
        """Replace the lock file of a stale holder; True if we now hold the lock."""
        bfd = self._open(self.break_path)
        try:
            if not self._try_flock(bfd):
                return False  # somebody else is breaking it right now
            # Re-check under the break lock: maybe the holder released, or somebody else already broke it.
            fd = self._open(self.path)
            if self._try_flock(fd):
                if self._is_current_inode(fd):
                    self.fd = fd
                    self._write_record()
                    return True
                os.close(fd)
                return False
            os.close(fd)
            holder = read_holder(self.path)
            if not holder or holder.get('token') != stale.get('token') or not self._is_stale(holder):
                return False
            tmp = '%s.new-%d-%s' % (self.path, os.getpid(), secrets.token_hex(4))
            nfd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0), 0o644)
            try:
                fcntl.flock(nfd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fresh inode, nobody else knows it
                self.fd = nfd
                self._write_record()  # new sidecar first: a concurrent re-check must never see the stale record again
                os.replace(tmp, self.path)
            except BaseException:
                self.fd = None
                os.close(nfd)
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            try:
                fsync_dir(os.path.dirname(self.path) or '.')
            except OSError:
                pass
            self.broken_holder = stale
            return True
        finally:
            os.close(bfd)  # also releases the break flock


def acquire(path: str, timeout: float = 0, **kwargs: t.Any) -> FileLock:
    """Functional form: acquire and return a :class:`FileLock`."""
    lock = FileLock(path, timeout=timeout, **kwargs)
    lock.acquire()
    return lock


def release(lock: t.Optional[FileLock]) -> None:
    """Functional form of :meth:`FileLock.release` (``None`` is accepted)."""
    if lock is not None:
        lock.release()


def _fmt_secs(value: float) -> str:
    return ('%d' % value) if float(value).is_integer() else ('%.1f' % value)


# ----------------------------------------------------------------------------
# deploy lease

def read_lease(state_dir: str) -> t.Tuple[t.Optional[dict], t.Optional[str]]:
    """``(lease, error)``.  ``(None, None)`` means no lease; ``error`` is set for an unreadable/corrupt file."""
    data, error = _read_json(os.path.join(state_dir, LEASE_FILE))
    if data is not None and not isinstance(data.get('lock_id'), str):
        return None, '%s has no lock_id' % os.path.join(state_dir, LEASE_FILE)
    return data, error


def lease_expired(lease: dict, now: float) -> bool:
    expires = lease.get('expires_epoch')
    if not isinstance(expires, (int, float)):
        return True
    return now >= expires


def check_lease(state_dir: str, lock_id: t.Optional[str], force: bool = False,
                now: t.Optional[float] = None) -> t.Tuple[bool, t.Optional[str], t.Optional[dict], t.List[str]]:
    """May a mutation by ``lock_id`` (``None``: caller holds no lease) go ahead?

    Returns ``(ok, message, lease, warnings)``.  Rules:

    * ``force`` -- always ok.
    * ``lock_id`` given -- the lease must exist and carry this ``lock_id``
      (an expired lease still carrying our id is accepted with a warning:
      nobody has taken it over).
    * no ``lock_id`` -- ok unless an unexpired lease exists.
    """
    now = time.time() if now is None else now
    lease, error = read_lease(state_dir)
    warnings = []
    if error:
        warnings.append('ignoring unreadable deploy lease: %s' % error)
    if force:
        if lease is not None and not lease_expired(lease, now) and lease.get('lock_id') != lock_id:
            warnings.append('force=true: ignoring the deploy lock held by %s' % describe_holder(lease))
        return True, None, lease, warnings
    if lock_id is not None:
        if lease is None:
            return False, ('lock_id %s was given but no deploy lock is held (it was released or force-removed); '
                           'acquire it again with state=lock' % lock_id), None, warnings
        if lease.get('lock_id') != lock_id:
            return False, ('the deploy lock is held by %s, not by lock_id %s (it may have been taken over after '
                           'its TTL expired)' % (describe_holder(lease), lock_id)), lease, warnings
        if lease_expired(lease, now):
            warnings.append('the deploy lock held by lock_id %s expired at %s; renew it with state=lock' % (lock_id, lease.get('expires')))
        return True, None, lease, warnings
    if lease is not None:
        if not lease_expired(lease, now):
            return False, ('another deploy holds the deploy lock: %s; pass its lock_id, wait, or use force=true'
                           % describe_holder(lease)), lease, warnings
        warnings.append('ignoring the expired deploy lock of %s' % describe_holder(lease))
    return True, None, lease, warnings


def acquire_lease(state_dir: str, lock_id: str, ttl: float = 3600, timeout: float = 0, owner: t.Optional[str] = None,
                  host: t.Optional[str] = None, pid: t.Optional[int] = None, play: t.Optional[str] = None,
                  check_mode: bool = False, poll_interval: float = 1.0, flock_timeout: float = 60,
                  clock: t.Callable[[], float] = time.time, identity: t.Optional[dict] = None) -> dict:
    """Take (or renew) the deploy lease for ``lock_id``.

    Waits up to ``timeout`` seconds while somebody else holds an unexpired
    lease, then raises :class:`LockTimeout` naming the holder and why it was
    not taken over early.  An unexpired lease whose holder :func:`holder_gone`
    proves dead is taken over at once.  ``identity`` is :func:`process_identity`
    of ``pid``, read where ``pid`` runs; a renewal of the same ``pid`` keeps the
    recorded one.  Returns
    ``{'changed', 'lease', 'renewed', 'taken_over', 'previous_holder', 'warnings'}``.
    In ``check_mode`` nothing is written (and the short flock is not taken,
    since that would create files); the answer is what would happen now.
    """
    deadline = time.monotonic() + max(0.0, float(timeout))
    while True:
        flock = None
        if not check_mode:
            flock = FileLock(os.path.join(state_dir, LOCK_FILE), timeout=flock_timeout, play=play, clock=clock)
            flock.acquire()
        try:
            result = _try_take_lease(state_dir, lock_id, ttl, owner, host, pid, play, clock(), flock, identity)
        finally:
            release(flock)
        if result is not None:
            return result
        lease, dummy_error = read_lease(state_dir)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeout(
                'Timed out after %ss waiting for the deploy lock of %s held by %s'
                % (_fmt_secs(timeout), os.path.dirname(os.path.normpath(state_dir)), _why_waiting(lease)),
                holder=lease,
            )
        time.sleep(min(poll_interval, remaining))


def _why_waiting(lease: t.Optional[dict]) -> str:
    """The holder, and why its lease is not free before it expires."""
    if not lease:
        return describe_holder(lease)
    dummy, why = holder_gone(lease)
    return '%s; its holder could not be proven dead (%s), so the lease is free only when it expires at %s' % (
        describe_holder(lease), why, lease.get('expires'))


def _identity_fields(identity: t.Optional[dict]) -> dict:
    """The readable fields of ``identity``: a field not recorded counts as unknown, which never frees a lease early."""
    return dict((key, identity[key]) for key in IDENTITY_KEYS if identity and identity.get(key) is not None)


def _try_take_lease(state_dir: str, lock_id: str, ttl: float, owner: t.Optional[str], host: t.Optional[str],
                    pid: t.Optional[int], play: t.Optional[str], now: float, flock: t.Optional[FileLock],
                    identity: t.Optional[dict] = None) -> t.Optional[dict]:
    """One attempt; ``None`` while somebody else holds an unexpired lease.  ``flock`` is None in check mode."""
    lease, error = read_lease(state_dir)
    warnings = []
    previous = None
    taken_over = False
    renewed = False
    if error:
        warnings.append('replacing unreadable deploy lease: %s' % error)
        previous = {'error': error}
        taken_over = True
    elif lease is not None:
        if lease.get('lock_id') == lock_id:
            renewed = True
        elif lease_expired(lease, now):
            taken_over = True
            previous = lease
            warnings.append('took over the expired deploy lock of %s' % describe_holder(lease))
        else:
            gone, why = holder_gone(lease)
            if not gone:
                return None
            taken_over = True
            previous = lease
            warnings.append('took over the deploy lock of %s before it expired: %s' % (describe_holder(lease), why))
    started = now
    if renewed:
        # A renewal keeps what the first acquisition said about the holder unless told otherwise.
        if isinstance(lease.get('started_epoch'), (int, float)):
            started = lease['started_epoch']
        owner = owner if owner is not None else lease.get('owner')
        host = host if host is not None else lease.get('host')
        if identity is None and pid in (None, lease.get('pid')):
            identity = lease  # what was recorded still describes the same process
        pid = pid if pid is not None else lease.get('pid')
        play = play if play is not None else lease.get('play')
    record = {
        'lock_id': lock_id,
        'owner': owner if owner is not None else current_user(),
        'host': host if host is not None else current_host(),
        'pid': pid,
        'play': play,
        'started': epoch_to_iso(started),
        'started_epoch': started,
        'renewed': epoch_to_iso(now),
        'renewed_epoch': now,
        'ttl': ttl,
        'expires': epoch_to_iso(now + ttl),
        'expires_epoch': now + ttl,
    }
    record.update(_identity_fields(identity))
    if flock is not None:
        flock.verify()
        atomic_write(os.path.join(state_dir, LEASE_FILE), json.dumps(record, sort_keys=True, indent=2) + '\n')
    return {
        'changed': not renewed,
        'lease': record,
        'renewed': renewed,
        'taken_over': taken_over,
        'previous_holder': previous,
        'warnings': warnings,
    }


def release_lease(state_dir: str, lock_id: t.Optional[str], force: bool = False, check_mode: bool = False,
                  flock_timeout: float = 60) -> dict:
    """Drop the deploy lease; only its own ``lock_id`` may, unless ``force``.

    Returns ``{'changed', 'previous_holder', 'warnings'}``; raises
    :class:`LockError` when the lease belongs to somebody else.
    """
    flock = None
    if not check_mode and os.path.isdir(state_dir):
        flock = FileLock(os.path.join(state_dir, LOCK_FILE), timeout=flock_timeout)
        flock.acquire()
    try:
        lease, error = read_lease(state_dir)
        path = os.path.join(state_dir, LEASE_FILE)
        warnings = []
        if lease is None and error is None:
            return {'changed': False, 'previous_holder': None, 'warnings': warnings}
        if error is not None:
            if not force:
                raise LockError('the deploy lock file is unreadable (%s); use force=true to remove it' % error)
            lease = {'error': error}
        elif lease.get('lock_id') != lock_id:
            if not force:
                raise LockError('refusing to release the deploy lock held by %s: lock_id %s does not own it '
                                '(use force=true to remove it anyway)' % (describe_holder(lease), lock_id), holder=lease)
            warnings.append('force=true: removed the deploy lock held by %s' % describe_holder(lease))
        if not check_mode:
            flock.verify()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            fsync_dir(state_dir)
        return {'changed': True, 'previous_holder': lease, 'warnings': warnings}
    finally:
        release(flock)


# ----------------------------------------------------------------------------
# the restart lock

RESTART_LOCK_DIR = '/run/zerodown/restart'
# Longer than any one restart the modules allow (a measured restart is bounded at an hour of load, a blue/green drain at
# an hour), so a waiter outlasts a slow restart rather than failing beside it.
RESTART_LOCK_TIMEOUT = 3900.0


class _Unlocked:
    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return False


def restart_lock(service: t.Optional[str], check_mode: bool = False, directory: t.Optional[str] = None,
                 timeout: t.Optional[float] = None, play: t.Optional[str] = None):
    """The lock every module that starts, stops or restarts SERVICE's processes holds for its whole run.

    Two restarts of one app never overlap, whoever started them: a deploy, a verify, a converge of the role alone, or a
    module still running on the host after its controller died (its flock goes only when it ends). In proxy mode two
    blue/green switches would otherwise pick the same idle slot. An flock on tmpfs: a process that dies frees it, and a
    reboot removes it. Check mode changes nothing and takes nothing.
    """
    if not service or check_mode:
        return _Unlocked()
    directory = directory or RESTART_LOCK_DIR
    os.makedirs(directory, mode=0o755, exist_ok=True)
    name = service[:-len('.service')] if service.endswith('.service') else service
    return FileLock(os.path.join(directory, name + '.lock'), timeout=RESTART_LOCK_TIMEOUT if timeout is None else timeout,
                    play=play or 'restart of %s' % name)
