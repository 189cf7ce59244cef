# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Crash-safe file system primitives used by the release state machine.

Everything here relies on one POSIX guarantee: ``rename(2)`` within one file
system atomically replaces the destination name.  A reader that resolves the
destination at any instant sees either the complete old object or the
complete new one, never nothing and never a half-written file.

* :func:`atomic_write` writes a temporary file in the destination's directory,
  ``fsync``s it, renames it over the destination and ``fsync``s the directory
  so that the rename itself survives a power loss.
* :func:`atomic_symlink` creates the new link under a temporary name in the
  link's directory and renames it over the old link.  It never unlinks the old
  link first, so there is no instant at which the link is missing.
* :func:`read_link` is ``os.readlink`` that answers ``None`` instead of raising
  for a missing path or a path that is not a symbolic link.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import typing as t

__all__ = [
    'FsError',
    'atomic_symlink',
    'atomic_write',
    'fsync_dir',
    'read_link',
    'read_text',
    'temp_name',
]


class FsError(Exception):
    """A file system operation could not be completed safely."""


def temp_name(path: str, tag: str = 'tmp') -> str:
    """Return an unused-looking hidden name in the same directory as ``path``.

    The name starts with a dot so that directory listings that only accept
    valid release IDs (which start with a letter or digit) never mistake it
    for real content.
    """
    directory, base = os.path.split(path)
    return os.path.join(directory, '.%s.%s-%d-%s' % (base, tag, os.getpid(), secrets.token_hex(6)))


def fsync_dir(path: str) -> None:
    """``fsync`` a directory so that renames and creations inside it are durable.

    Some file systems refuse ``fsync`` on a directory descriptor (``EINVAL``);
    durability is then the file system's business and the error is ignored.
    """
    flags = os.O_RDONLY
    if hasattr(os, 'O_DIRECTORY'):
        flags |= os.O_DIRECTORY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str, data: t.Union[bytes, str], mode: int = 0o644, durable: bool = True) -> None:
    """Atomically replace the content of ``path`` with ``data``.

    The temporary file lives in the same directory as ``path`` (a rename
    across file systems would not be atomic).  On any error the temporary
    file is removed and ``path`` keeps its old content.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(path) or '.'
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # not subject to the umask, unlike os.open's mode
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    if durable:
        fsync_dir(directory)


def atomic_symlink(target: str, link_path: str, durable: bool = True) -> None:
    """Make ``link_path`` a symbolic link to ``target`` without a gap.

    ``os.symlink(target, tmp)`` in the link's directory, then
    ``os.replace(tmp, link_path)``: rename(2) swaps the name in one step, so
    any concurrent ``readlink``/``stat`` of ``link_path`` sees either the old
    or the new target.

    ``link_path`` must be missing or a symbolic link.  Renaming a symlink over
    a real directory is impossible (``EISDIR``), and over a regular file would
    silently destroy data, so both are refused with :class:`FsError`.
    """
    try:
        st = os.lstat(link_path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISLNK(st.st_mode):
        raise FsError('%s exists and is not a symbolic link; refusing to replace it' % link_path)

    directory = os.path.dirname(link_path) or '.'
    for _attempt in range(100):
        tmp = temp_name(link_path, 'new')
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FsError('could not create a temporary symbolic link next to %s' % link_path)
    try:
        os.replace(tmp, link_path)
    except BaseException:
        _discard(tmp)
        raise
    if durable:
        fsync_dir(directory)


def _discard(path: str) -> None:
    """Remove a temporary file left by a failed write or swap; a failure to remove it must not hide the original error."""
    try:
        os.unlink(path)
    except OSError:
        pass


def read_link(path: str) -> t.Optional[str]:
    """Return the target of the symbolic link ``path``.

    ``None`` when ``path`` does not exist or is not a symbolic link; any other
    error (for example permission denied) is raised.
    """
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # exists, but is not a symlink
            return None
        raise


def read_text(path: str) -> t.Optional[str]:
    """The text of ``path``, or ``None`` when it does not exist (undecodable bytes are replaced: it only gets compared)."""
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
