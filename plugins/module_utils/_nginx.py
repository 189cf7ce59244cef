# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An nginx site in one call (internal; the ``nginx_site`` module): install, check, test, replace, reload.

The ``nginx_upstream`` role renders the site and the shared log format on
the controller. Here, on the target:

1. nginx is installed from the distribution when no nginx package is;
2. the app's Unix sockets, where they exist, must let nginx's user in and
   nobody else;
3. files identical to the live ones are left alone, and a run where nothing
   differs ends here (no test, no reload);
4. otherwise the complete configuration is tested with ``nginx -t`` against a
   throw-away mirror of the configuration directory in which the candidate
   files replace the live ones (a site cannot be tested alone: it is included
   by nginx.conf), so a change nginx rejects never reaches the live files;
5. the tested files replace the live ones atomically, the live configuration
   is tested once more and nginx reloads (a running nginx is never
   restarted: its workers finish their requests).

Messages name the ``nginx_upstream`` role's variables. Standard library only.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import tempfile

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write, read_text
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import parse_servers, read_servers_dir, render

INSTALLED = 'installed'


class SiteError(Exception):
    """The site cannot be installed; the message says what was left as it was."""


# -- nginx -t against a mirror ----------------------------------------------------------------------------


def _mirror(live_dir: str, mirror_dir: str, replacements: dict) -> None:
    """Recreate live_dir in mirror_dir as symlinks; directories holding a replaced file are recreated."""
    os.mkdir(mirror_dir)
    names = set(os.listdir(live_dir)) if os.path.isdir(live_dir) else set()
    names |= {os.path.relpath(path, live_dir).split(os.sep, maxsplit=1)[0] for path in replacements if path.startswith(live_dir + os.sep)}
    for name in sorted(names):
        live = os.path.join(live_dir, name)
        target = os.path.join(mirror_dir, name)
        if live in replacements:
            if replacements[live] is not None:
                os.symlink(replacements[live], target)
        elif any(path.startswith(live + os.sep) for path in replacements):
            _mirror(live, target, replacements)
        else:
            os.symlink(live, target)


def _copy_into_mirror(text: str, target: str, live_dir: str, mirror_dir: str) -> None:
    """Write text at target with live_dir's absolute paths pointed into mirror_dir (includes then read the candidates)."""
    text = text.replace(live_dir + '/', mirror_dir + '/')
    if os.path.lexists(target):
        os.unlink(target)
    with open(target, 'w', encoding='utf-8') as handle:
        handle.write(text)


def mirror_test(run_command, nginx: str, main_config: str, replacements: dict):
    """``nginx -t`` of the configuration as it would be with ``{live path: candidate path or None}``; returns (rc, output).

    ``run_command(argv)`` returns ``(rc, stdout, stderr)`` (the module's).
    """
    config_dir = os.path.dirname(main_config)
    for live in replacements:
        if not live.startswith(config_dir + os.sep):
            raise SiteError('%s is outside the configuration directory %s' % (live, config_dir))
    work = tempfile.mkdtemp(prefix='zerodown-nginx-test.')
    try:
        root = os.path.join(work, 'conf')
        _mirror(config_dir, root, replacements)
        mirrored_main = os.path.join(root, os.path.basename(main_config))
        with open(main_config, encoding='utf-8') as handle:
            _copy_into_mirror(handle.read(), mirrored_main, config_dir, root)
        for live, candidate in sorted(replacements.items()):
            if candidate and os.path.isfile(candidate):
                with open(candidate, encoding='utf-8') as handle:
                    _copy_into_mirror(handle.read(), root + live[len(config_dir):], config_dir, root)
        rc, out, err = run_command([nginx, '-t', '-c', mirrored_main])
        output = ((out or '') + (err or '')).replace(root + '/', config_dir + '/')
        # "2026/11/21 07:17:10 [emerg] 6242#6242: ..." (error_log to stderr) reads as "nginx: [emerg] ...".
        output = re.sub(r'(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: ', r'nginx: [\1] ', output)
        return rc, output.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- who may connect to a Unix socket ---------------------------------------------------------------------


def socket_problems(paths: list, user: str) -> list:
    """Why nginx's ``user`` could not connect to, or others could bypass nginx through, each existing socket."""
    problems = []
    # A position link (layout instances) is checked at the socket it points to; a link to nothing (yet) is skipped.
    existing = [path for path in paths if os.path.exists(path)]
    if not existing:
        return problems
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return ["nginx_upstream: nginx's user '%s' (nginx_upstream_user) does not exist, so the access to %s cannot be checked. Set "
                "nginx_upstream_user to the `user` of nginx.conf." % (user, ', '.join(existing))]
    gids = set([account.pw_gid] + [group.gr_gid for group in grp.getgrall() if user in group.gr_mem])
    for path in existing:
        info = os.stat(path)
        if not stat.S_ISSOCK(info.st_mode):
            problems.append('nginx_upstream: %s exists but is not a Unix socket; nginx cannot proxy to it.' % path)
            continue
        owner = _user_name(info.st_uid)
        group = _group_name(info.st_gid)
        describe = 'socket %s is %s:%s mode %04o' % (path, owner, group, stat.S_IMODE(info.st_mode))
        may_connect = ((owner == user and info.st_mode & stat.S_IWUSR) or (info.st_gid in gids and info.st_mode & stat.S_IWGRP))
        if not may_connect:
            problems.append("nginx_upstream: %s, and nginx's user %s is neither its owner nor in its group with write permission, so "
                            "nginx cannot connect (502). Give the socket to nginx's group: socket_service_socket_group: www-data and "
                            'socket_service_socket_mode: "0660" (the defaults of socket_service).' % (describe, user))
        if info.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
            problems.append('nginx_upstream: %s: every local user can connect to the app and bypass nginx. Remove the permissions for '
                            'others: socket_service_socket_mode: "0660" (the default).' % describe)
    return problems


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- the site ---------------------------------------------------------------------------------------------------


def keep_state(wanted: str, live, new_down: bool = False) -> str:
    """The wanted server file, but up or down as the live one is (the instances' surge decides that, not the site).

    ``new_down``: a server without a file yet is written down (a slot nothing runs on yet must not get requests).
    """
    want = parse_servers(wanted)
    if not live:
        if new_down and len(want) == 1 and not want[0].down:
            return render(want[0].address, ' '.join(want[0].options), down=True)
        return wanted
    have = parse_servers(live)
    if len(want) != 1 or len(have) != 1 or want[0].address != have[0].address or want[0].down == have[0].down:
        return wanted
    return render(want[0].address, ' '.join(want[0].options), down=have[0].down)


def kept_states(wanted: dict, live: dict) -> dict:
    """The server files {name: text} to write when the instances' surge owns up and down.

    Once the site has server files, a new one (more instances) starts down, and a live one that is up stays even when the
    wanted set no longer names it (a slot above 2N after the app shrank): the next surge or rolling restart drains it, and
    until then it serves.
    """
    files = dict((name, keep_state(text, live.get(name), new_down=bool(live))) for name, text in wanted.items())
    for name, text in live.items():
        servers = parse_servers(text)
        if name not in files and len(servers) == 1 and not servers[0].down:
            files[name] = text
    return files


class Site:
    """The wanted files of one site: ``files`` {live path: text, or None for a file that must not exist} and, in include mode,
    ``servers`` {file name: text} in ``servers_dir``."""

    def __init__(self, name: str, files: dict, main_config: str, staging_dir: str, servers_dir: str | None = None,
                 servers: dict | None = None, keep_states: bool = False):
        self.name = name
        self.files = dict(files)
        self.main_config = main_config
        self.stage = os.path.join(staging_dir, name)
        self.servers_dir = servers_dir
        self.servers = dict(servers) if servers is not None else None
        self.live = dict((path, read_text(path) if text is not None or not os.path.lexists(path) else '')
                         for path, text in self.files.items())
        self.live_servers = (read_servers_dir(servers_dir) if servers_dir and os.path.isdir(servers_dir) else {}) \
            if self.servers is not None else {}
        if keep_states and self.servers is not None:
            self.servers = kept_states(self.servers, self.live_servers)

    @property
    def changed_files(self) -> list:
        return sorted(path for path, text in self.files.items() if self.live[path] != text)

    @property
    def changed_servers(self) -> list:
        if self.servers is None:
            return []
        names = set(self.servers) | set(self.live_servers)
        return sorted(name for name in names if self.servers.get(name) != self.live_servers.get(name))

    @property
    def changed(self) -> bool:
        return bool(self.changed_files or self.changed_servers)

    def staged_path(self, live: str) -> str:
        return os.path.join(self.stage, os.path.basename(live))

    def write_stage(self) -> dict:
        """Write every candidate into the staging directory; returns the replacements {live: staged} for the test."""
        os.makedirs(self.stage, mode=0o755, exist_ok=True)
        replacements = {}
        for path, text in self.files.items():
            if text is None:
                # Left out of the mirror, so nginx -t reads the configuration without it.
                replacements[path] = None
                continue
            atomic_write(self.staged_path(path), text, mode=0o644, durable=False)
            replacements[path] = self.staged_path(path)
        if self.servers is not None:
            staged = os.path.join(self.stage, os.path.basename(self.servers_dir))
            if os.path.isdir(staged):
                shutil.rmtree(staged)
            os.makedirs(staged, mode=0o755)
            for name, text in self.servers.items():
                atomic_write(os.path.join(staged, name), text, mode=0o644, durable=False)
            replacements[self.servers_dir] = staged
        return replacements

    def describe_test(self) -> str:
        site = [path for path, text in self.files.items() if os.path.basename(path).startswith('zerodown-')] or \
            [path for path, text in self.files.items() if text is not None]
        text = 'tested with the staged %s in place of %s' % (self.staged_path(site[0]), site[0])
        if self.servers is not None:
            text += ' and the staged %s in place of %s' % (os.path.join(self.stage, os.path.basename(self.servers_dir)), self.servers_dir)
        return text

    def install(self) -> None:
        """Server files first, so that the site's include never reads an empty directory."""
        if self.servers is not None:
            os.makedirs(self.servers_dir, mode=0o755, exist_ok=True)
            for name in self.changed_servers:
                path = os.path.join(self.servers_dir, name)
                if name in self.servers:
                    atomic_write(path, self.servers[name], mode=0o644)
                else:
                    os.unlink(path)
        for path in self.changed_files:
            if self.files[path] is None:
                os.unlink(path)
            else:
                atomic_write(path, self.files[path], mode=0o644)

    def diff(self) -> list:
        out = [{'before_header': path, 'after_header': path, 'before': self.live[path] or '', 'after': self.files[path] or ''}
               for path in self.changed_files]
        for name in self.changed_servers:
            path = os.path.join(self.servers_dir, name)
            out.append({'before_header': path, 'after_header': path, 'before': self.live_servers.get(name) or '',
                        'after': (self.servers or {}).get(name) or ''})
        return out
