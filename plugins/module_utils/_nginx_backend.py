# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""One nginx upstream server per file, waiting until a drained server is no longer used, and the nginx_backend
module's backend (internal).

The ``nginx_upstream`` role (with ``nginx_upstream_servers_include``) renders
``include DIR/*.conf;`` in the upstream block, and ``DIR`` holds one file per
server, written only by the ``nginx_backend`` module (the role calls it too):

    # Managed by zerodown.deploy ...
    server 10.0.0.5:8000 max_fails=3 fail_timeout=10s down;

This file owns that format (:func:`file_name`, :func:`render`,
:func:`parse_servers`), the validation of what goes into it, and the
decision of what a change does (:func:`plan_change`), including the refusal
to take the last server that is up out of the upstream.

After a reload that marks a server ``down``, nginx's master starts new
workers with the new configuration and tells the old ones to finish their
requests and exit. Only those old workers can still send a request to the
server, so it is drained when every worker that existed before the reload has
exited (:class:`DrainWatch`, which reads ``/proc``).

:class:`BackendRun` is the module: validate, lock the directory, write,
``nginx -t``, reload through the collection's systemd client, wait; it puts
the previous content back when nginx rejects the change.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import re
import time
import typing as t

from ansible_collections.zerodown.deploy.plugins.module_utils._fs import atomic_write
from ansible_collections.zerodown.deploy.plugins.module_utils._lock import FileLock, LockError
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd, output_failure

__all__ = [
    'DEFAULT_SERVER_OPTIONS',
    'LOCK_NAME',
    'STATES',
    'BackendError',
    'BackendRun',
    'BackendSettings',
    'DrainWatch',
    'Nginx',
    'ProcTable',
    'Server',
    'ServerChange',
    'WorkerDrain',
    'check_backend',
    'check_server_options',
    'file_name',
    'plan_change',
    'parse_servers',
    'read_master_pid',
    'read_servers_dir',
    'render',
]

STATES = ('up', 'down', 'absent')
# What the nginx_upstream role gives each of several servers by default
# (nginx_upstream_max_fails 3 for several servers, nginx_upstream_fail_timeout 10).
DEFAULT_SERVER_OPTIONS = 'max_fails=3 fail_timeout=10s'
HEADER = ('# Managed by zerodown.deploy: one server of an nginx upstream, written by the nginx_upstream role (up)\n'
          '# and by the nginx_backend module, which marks it down (drained) and up. Local edits are overwritten.\n')

_LABEL = r'[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?'
_HOST_PORT_RE = re.compile(r'%s(\.%s)*:(?P<port>[0-9]{1,5})' % (_LABEL, _LABEL))  # fullmatch
_V6_PORT_RE = re.compile(r'\[(?P<address>[0-9A-Fa-f:.]+)\]:(?P<port>[0-9]{1,5})')  # fullmatch
_UNIX_RE = re.compile(r'unix:/[^\s;{}#"\'\\]*[^\s;{}#"\'\\/]')  # fullmatch
_OPTION_RE = re.compile(r'[a-z_]+(=[^\s;{}#"\'\\]+)?')  # fullmatch
_FILE_NAME_UNSAFE_RE = re.compile(r'[^A-Za-z0-9.-]')
# The lock file of a servers directory; runs of the module on one directory take turns on it.
LOCK_NAME = '.nginx_backend.lock'
# Another run on the same directory may hold the lock through its whole drain.
LOCK_EXTRA_SECONDS = 60
MAX_DRAIN_TIMEOUT = 86400


class BackendError(ValueError):
    """Invalid input or a change refused; nothing was written."""


Server = collections.namedtuple('Server', ['address', 'options', 'down'])


def _refuse_characters(name: str, value: str) -> None:
    """The characters that would break out of one nginx statement, each with its own message."""
    if '\n' in value or '\r' in value:
        raise BackendError('%s must not contain line breaks, got %r' % (name, value))
    if ';' in value:
        raise BackendError("%s must not contain ';' (it would end the server statement), got %r" % (name, value))
    if '{' in value or '}' in value:
        raise BackendError('%s must not contain braces, got %r' % (name, value))
    if '#' in value:
        raise BackendError("%s must not contain '#' (it would start a comment), got %r" % (name, value))
    if any((ord(c) < 32 and c != '\t') or ord(c) == 127 for c in value):
        raise BackendError('%s must not contain control characters, got %r' % (name, value))


def _check_port(backend: str, port: str) -> None:
    if not 1 <= int(port) <= 65535:
        raise BackendError('backend %s has port %s, outside 1-65535' % (backend, port))


def check_backend(backend: str) -> str:
    """``host:port``, ``ip:port``, ``[v6]:port`` or ``unix:/path``; returns it unchanged or raises :class:`BackendError`."""
    if not backend:
        raise BackendError('backend must not be empty; use host:port, ip:port, [v6]:port or unix:/path')
    _refuse_characters('backend', backend)
    if any(c.isspace() for c in backend):
        raise BackendError('backend must not contain spaces, got %r' % backend)
    if backend.startswith('unix:'):
        if not _UNIX_RE.fullmatch(backend):
            raise BackendError('backend %r: a unix: backend must be an absolute path to a socket, e.g. unix:/run/app.sock' % backend)
        return backend
    match = _V6_PORT_RE.fullmatch(backend)
    if match:
        try:
            ipaddress.IPv6Address(match.group('address'))
        except ValueError:
            raise BackendError('backend %r: %s is not an IPv6 address' % (backend, match.group('address'))) from None
        _check_port(backend, match.group('port'))
        return backend
    match = _HOST_PORT_RE.fullmatch(backend)
    if match:
        _check_port(backend, match.group('port'))
        return backend
    raise BackendError('backend %r is malformed; use host:port (app1.internal:8000), ip:port (10.0.0.5:8000), '
                       '[v6]:port ([fd00::5]:8000) or unix:/path (unix:/run/app.sock)' % backend)


def check_server_options(options: str) -> str:
    """Extra parameters of the server statement (``max_fails=3 fail_timeout=10s``, ``weight=2``, ``backup``); normalised spacing."""
    _refuse_characters('server_options', options)
    words = options.split()
    if 'down' in words:
        raise BackendError("server_options must not contain 'down': state (up or down) decides it")
    for word in words:
        if not _OPTION_RE.fullmatch(word):
            raise BackendError('server_options: %r is not an nginx server parameter (name or name=value)' % word)
    return ' '.join(words)


def file_name(backend: str) -> str:
    """The file of ``backend`` in the servers directory: readable, matching the ``*.conf`` include, never hidden."""
    return _FILE_NAME_UNSAFE_RE.sub('_', backend) + '.conf'


def render(backend: str, options: str, down: bool) -> str:
    """The whole content of a server file."""
    words = [backend] + options.split() + (['down'] if down else [])
    return HEADER + 'server %s;\n' % ' '.join(words)


def parse_servers(text: str) -> list:
    """Every ``server`` statement of a file (ours or hand-written) as :class:`Server` tuples; options without ``down``."""
    code = '\n'.join(line.split('#', 1)[0] for line in text.splitlines())
    servers = []
    for statement in code.split(';'):
        words = statement.split()
        if len(words) >= 2 and words[0] == 'server':
            options = tuple(word for word in words[2:] if word != 'down')
            servers.append(Server(words[1], options, 'down' in words[2:]))
    return servers


def state_of(server: Server) -> str:
    return 'down' if server.down else 'up'


def read_servers_dir(servers_dir: str) -> dict:
    """``{file name: text}`` of the files nginx's ``DIR/*.conf`` include reads (hidden names excluded, like glob(3))."""
    files = {}
    for name in sorted(os.listdir(servers_dir)):
        path = os.path.join(servers_dir, name)
        if name.endswith('.conf') and not name.startswith('.') and os.path.isfile(path):
            with open(path, encoding='utf-8', errors='replace') as handle:
                files[name] = handle.read()
    return files


class ServerChange:
    """What setting ``backend`` to ``state`` changes in a servers directory (computed, nothing written)."""

    def __init__(self, servers_dir: str, backend: str, state: str, previous_text: t.Optional[str], new_text: t.Optional[str],
                 previous_state: str, others: list):
        self.servers_dir = servers_dir
        self.backend = backend
        self.state = state
        self.path = os.path.join(servers_dir, file_name(backend))
        self.previous_text = previous_text
        self.new_text = new_text
        self.previous_state = previous_state
        self.others = others  # [(address, state, file name)] of every other server in the directory

    @property
    def changed(self) -> bool:
        return self.previous_text != self.new_text

    @property
    def takes_out(self) -> bool:
        """True when the change removes a server that was up from the rotation: the reload must be followed by a drain."""
        return self.changed and self.previous_state == 'up' and self.state != 'up'

    def describe_others(self) -> str:
        if not self.others:
            return 'no other server is listed there'
        return 'the others: ' + ', '.join('%s %s' % (address, state) for address, state, dummy in self.others)


def _own_server(backend: str, name: str, text: str) -> t.Optional[Server]:
    servers = parse_servers(text)
    if len(servers) != 1 or servers[0].address != backend:
        found = ', '.join(server.address for server in servers) or 'no server statement'
        raise BackendError('%s should hold the one server %s but holds %s; it was not written by this module. Move it away '
                           'or use another backend name.' % (name, backend, found))
    return servers[0]


def plan_change(servers_dir: str, files: dict, backend: str, state: str, server_options: t.Optional[str],
                allow_last_down: bool = False) -> ServerChange:
    """Decide the new content of ``backend``'s file from the directory's ``files`` (see :func:`read_servers_dir`).

    ``server_options`` None keeps the options of an existing file (so a
    drain and undrain never change them) and gives a new one
    :data:`DEFAULT_SERVER_OPTIONS`. Raises :class:`BackendError` when the
    backend is declared in another file too, when its file holds something
    else, and when the change would leave no server up (unless
    ``allow_last_down``).
    """
    name = file_name(backend)
    others = []
    for other_name, text in files.items():
        if other_name == name:
            continue
        for server in parse_servers(text):
            if server.address == backend:
                raise BackendError('backend %s is also declared in %s; remove it there first, or nginx keeps sending '
                                   'requests to it whatever this module does' % (backend, os.path.join(servers_dir, other_name)))
            others.append((server.address, state_of(server), other_name))
    previous_text = files.get(name)
    current = _own_server(backend, os.path.join(servers_dir, name), previous_text) if previous_text is not None else None
    previous_state = state_of(current) if current is not None else 'absent'
    if state == 'absent':
        new_text = None
    else:
        if server_options is None:
            server_options = ' '.join(current.options) if current is not None else DEFAULT_SERVER_OPTIONS
        new_text = render(backend, server_options, state == 'down')
    change = ServerChange(servers_dir, backend, state, previous_text, new_text, previous_state, others)
    if change.takes_out and not allow_last_down and not any(other_state == 'up' for dummy, other_state, dummy2 in others):
        raise BackendError('refusing to mark %s %s: it is the last server that is up in %s (%s), and nginx would answer '
                           '502 to every request of the upstream. Mark another server up first, or set allow_last_down: true '
                           'to take it out anyway.' % (backend, 'down' if state == 'down' else 'absent', servers_dir,
                                                       change.describe_others()))
    return change


# ---------------------------------------------------------------- the drain: nginx's worker processes

def read_master_pid(pid_file: str) -> int:
    """The PID of nginx's master process from its pid file; :class:`BackendError` when there is none."""
    try:
        with open(pid_file, encoding='ascii', errors='replace') as handle:
            text = handle.read().strip()
    except OSError as exc:
        raise BackendError('cannot read nginx\'s pid file %s (%s): is nginx running? Set pid_file to nginx.conf\'s "pid"'
                           % (pid_file, exc.strerror or exc)) from None
    if not text.isdigit() or int(text) < 1:
        raise BackendError('nginx\'s pid file %s does not hold a PID: %r' % (pid_file, text[:50]))
    return int(text)


ProcStat = collections.namedtuple('ProcStat', ['state', 'ppid', 'starttime'])


class ProcTable:
    """Reads processes from a ``/proc``-like directory: ``ROOT/PID/stat``."""

    def __init__(self, root: str = '/proc'):
        self.root = root

    def stat(self, pid: int) -> t.Optional[ProcStat]:
        """State, parent PID and start time (clock ticks after boot) of ``pid``; None when it does not exist."""
        try:
            with open(os.path.join(self.root, str(pid), 'stat'), encoding='utf-8', errors='replace') as handle:
                text = handle.read()
        except OSError:
            return None
        # "PID (COMM) STATE PPID ... STARTTIME(22nd field) ...": COMM may contain spaces and parentheses.
        fields = text[text.rfind(')') + 2:].split()
        try:
            return ProcStat(fields[0], int(fields[1]), int(fields[19]))
        except (IndexError, ValueError):
            return None

    def running(self, pid: int, starttime: int) -> bool:
        """True while the very process (same PID and start time, so no reused PID) exists and has not exited (zombie)."""
        stat = self.stat(pid)
        return stat is not None and stat.starttime == starttime and stat.state not in ('Z', 'X', 'x')

    def children(self, ppid: int) -> dict:
        """``{pid: starttime}`` of the running children of ``ppid``."""
        children = {}
        try:
            names = os.listdir(self.root)
        except OSError:
            return children
        for name in names:
            if name.isdigit():
                stat = self.stat(int(name))
                if stat is not None and stat.ppid == ppid and stat.state not in ('Z', 'X', 'x'):
                    children[int(name)] = stat.starttime
        return children


# How a reload's old workers went: all gone (done), after how long, which were left, which new ones run.
WorkerDrain = collections.namedtuple('WorkerDrain', ['done', 'seconds', 'remaining', 'new_workers'])


class DrainWatch:
    """Waits, bounded, until nginx runs new workers and (when draining) the workers from before a reload have exited.

    ``old`` is :meth:`ProcTable.children` of the master, read just before the
    reload. An old worker that keeps running after the master died still
    counts (it still serves its connections); the new workers are read from
    the pid file's current master on every poll.
    """

    def __init__(self, table: ProcTable, pid_file: str, master: int, old: dict, interval: float = 0.05,
                 clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep):
        self.table = table
        self.pid_file = pid_file
        self.master = master
        self.old = dict(old)
        self.interval = interval
        self.clock = clock
        self.sleep = sleep

    def _master(self) -> int:
        try:
            return read_master_pid(self.pid_file)
        except BackendError:
            return self.master

    def poll(self) -> tuple:
        """(old workers still running, new workers) right now, as sorted PID lists."""
        remaining = sorted(pid for pid, start in self.old.items() if self.table.running(pid, start))
        current = self.table.children(self._master())
        new = sorted(pid for pid, start in current.items() if self.old.get(pid) != start)
        return remaining, new

    def wait(self, timeout: float, old_must_exit: bool = True) -> WorkerDrain:
        started = self.clock()
        deadline = started + timeout
        while True:
            remaining, new = self.poll()
            if new and (not remaining or not old_must_exit):
                return WorkerDrain(True, self.clock() - started, remaining, new)
            now = self.clock()
            if now >= deadline:
                return WorkerDrain(False, now - started, remaining, new)
            self.sleep(min(self.interval, deadline - now))


# ---------------------------------------------------------------- the nginx_backend module


class BackendSettings:
    """The nginx_backend module's options, validated (ModuleError otherwise)."""

    def __init__(self, params: dict):
        try:
            self.backend = check_backend(params['backend'])
            options = params['server_options']
            self.server_options = None if options is None else check_server_options(options)
        except BackendError as exc:
            raise ModuleError(str(exc)) from None
        self.servers_dir = params['servers_dir'].rstrip('/') or '/'
        if not os.path.isabs(self.servers_dir):
            raise ModuleError('servers_dir must be an absolute path, got %r' % params['servers_dir'])
        self.state = params['state']
        self.allow_last_down = params['allow_last_down']
        self.reload = params['reload']
        self.drain_timeout = params['drain_timeout']
        if not 0 < self.drain_timeout <= MAX_DRAIN_TIMEOUT:
            raise ModuleError('drain_timeout must be > 0 and <= %d seconds, got %g' % (MAX_DRAIN_TIMEOUT, self.drain_timeout))
        self.nginx_binary = params['nginx_binary']
        self.service = params['service']
        self.pid_file = params['pid_file']


class Nginx:
    """``nginx -t`` and the reload of nginx's unit, through the collection's systemd client (its run_command, C locale)."""

    def __init__(self, binary: str, systemd: Systemd, service: str):
        self.binary = binary
        self.systemd = systemd
        self.service = service

    def test(self) -> t.Optional[str]:
        """None when the configuration passes nginx -t, else nginx's message."""
        return output_failure(*self.systemd.call([self.binary, '-t']), what='nginx -t')

    def reload(self) -> t.Optional[str]:
        """None when systemctl reloaded nginx, else its message."""
        return output_failure(*self.systemd.call([self.systemd.systemctl, 'reload', self.service]), what='systemctl reload')


def _write(path: str, text):
    """Put ``text`` in ``path`` atomically, or remove it when ``text`` is None."""
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    else:
        atomic_write(path, text, mode=0o644)


class BackendRun:
    """One run of the nginx_backend module over ``module`` (an AnsibleModule: params, check mode, diff, run_command, binaries)."""

    def __init__(self, module):
        self.module = module
        self.settings = BackendSettings(module.params)

    def nginx(self) -> Nginx:
        binary = self.settings.nginx_binary or self.module.get_bin_path('nginx', required=True, opt_dirs=['/usr/sbin', '/usr/local/sbin'])
        return Nginx(binary, Systemd.for_module(self.module), self.settings.service)

    def _result(self, change: ServerChange) -> dict:
        settings = self.settings
        result = {
            'changed': change.changed,
            'backend': settings.backend,
            'state': settings.state,
            'previous_state': change.previous_state,
            'path': change.path,
            'reloaded': False,
            'drained': False,
            'drain_seconds': 0.0,
            'old_workers': [],
        }
        if self.module._diff:  # pylint: disable=protected-access
            result['diff'] = {'before': change.previous_text or '', 'after': change.new_text or '',
                              'before_header': change.path, 'after_header': change.path}
        return result

    def _change(self, files: dict) -> ServerChange:
        settings = self.settings
        try:
            return plan_change(settings.servers_dir, files, settings.backend, settings.state, settings.server_options,
                               allow_last_down=settings.allow_last_down)
        except BackendError as exc:
            raise ModuleError(str(exc)) from None

    def run(self) -> dict:
        """The result; raises ModuleError (with the result when something was tried) on failure."""
        settings = self.settings
        if not os.path.isdir(settings.servers_dir):
            # In check mode it may be a directory the role has not created yet; absent has nothing to remove.
            if not (self.module.check_mode or settings.state == 'absent'):
                raise ModuleError('servers_dir %s does not exist; the nginx_upstream role creates it with '
                                  'nginx_upstream_servers_include: true' % settings.servers_dir)
            return self._result(self._change({}))
        if self.module.check_mode:
            return self._result(self._change(read_servers_dir(settings.servers_dir)))
        lock = FileLock(os.path.join(settings.servers_dir, LOCK_NAME), timeout=settings.drain_timeout + LOCK_EXTRA_SECONDS,
                        poll_interval=0.05, create_dirs=False)
        try:
            lock.acquire()
        except LockError as exc:
            raise ModuleError('another run is changing %s: %s' % (settings.servers_dir, exc)) from None
        try:
            # Read under the lock: the refusal of the last server up must see the other runs' changes.
            change = self._change(read_servers_dir(settings.servers_dir))
            result = self._result(change)
            if change.changed:
                self._apply_and_reload(change, result)
            return result
        finally:
            lock.release()

    def _apply_and_reload(self, change: ServerChange, result: dict) -> None:
        """Write the file, test, reload, wait; puts the previous content back when nginx rejects the change."""
        settings = self.settings
        nginx = self.nginx() if settings.reload else None
        if nginx is not None:
            try:
                master = read_master_pid(settings.pid_file)
            except BackendError as exc:
                raise ModuleError('%s. Nothing was changed.' % exc) from None
        _write(change.path, change.new_text)
        if nginx is None:
            return
        what = '%s %s in %s' % (settings.backend, settings.state, change.path)
        failure = nginx.test()
        if failure is None:
            table = ProcTable()
            old = table.children(master)
            result['old_workers'] = sorted(old)
            failure = nginx.reload()
            if failure is None:
                result['reloaded'] = True
                self._wait(change, result, DrainWatch(table, settings.pid_file, master, old))
                return
            failure = 'systemctl reload %s failed with %s: %s' % (settings.service, what, failure)
        else:
            failure = 'nginx -t rejected the configuration with %s: %s' % (what, failure)
        _write(change.path, change.previous_text)
        result.update(changed=False, state=change.previous_state)
        raise ModuleError('%s. The previous content of %s is back and nginx was not reloaded: nothing changed.' % (failure, change.path),
                          result)

    def _wait(self, change: ServerChange, result: dict, watch: DrainWatch) -> None:
        settings = self.settings
        outcome = watch.wait(settings.drain_timeout, old_must_exit=change.takes_out)
        result['drain_seconds'] = round(outcome.seconds, 3)
        if outcome.done:
            result['drained'] = change.takes_out
            return
        if not outcome.new_workers:
            msg = ('nginx was reloaded with %s %s, but no new worker process appeared within %g s, so the new configuration may '
                   'not be in use; see nginx\'s error log' % (settings.backend, settings.state, settings.drain_timeout))
        else:
            msg = ('%s is marked %s and nginx was reloaded, but %d worker process(es) from before the reload (PIDs %s) were still '
                   'running after %g s and can still send requests to it (long requests, or upgraded connections such as WebSockets: '
                   'see nginx\'s worker_shutdown_timeout). It stays %s in %s; stopping it now may fail those requests'
                   % (settings.backend, settings.state, len(outcome.remaining), ', '.join(str(p) for p in outcome.remaining),
                      settings.drain_timeout, settings.state, change.path))
        raise ModuleError(msg, result)
