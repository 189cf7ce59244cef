# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the unit tests of modules and module_utils."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import UnixStreamServer

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common import warnings as warnings_module

try:
    from ansible.module_utils import _internal as module_utils_internal
except ImportError:  # ansible-core < 2.19: modules and controller do not share a warnings switch
    module_utils_internal = None

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
        with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
            yield


@pytest.fixture
def sock_dir(tmp_path):
    """A directory for Unix sockets; pytest's tmp_path can exceed the 107-byte socket path limit."""
    if len(str(tmp_path)) < 80:
        yield str(tmp_path)
        return
    path = tempfile.mkdtemp(prefix='zd-test-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _clear_warnings():
    """Module warnings are collected in a process global; do not let one test's warnings leak into the next."""
    for name in ('_global_warnings', '_global_deprecations'):
        registry = getattr(warnings_module, name, None)
        if registry is not None:
            registry.clear()


@pytest.fixture
def module_runner(capsys, monkeypatch):
    """run(main, check=False, diff=False, **args): run a module's main() like Ansible would.

    Returns the parsed result, with ``failed`` set on failure and warnings
    reduced to their messages (ansible-core >= 2.19 returns structured ones).
    The module runs as on a target even after a test imported controller code
    (an action plugin): there, its warnings would go to the controller's display.
    """
    if module_utils_internal is not None and hasattr(module_utils_internal, 'is_controller'):
        monkeypatch.setattr(module_utils_internal, 'is_controller', False)

    def run(main, check=False, diff=False, **args):
        args = dict(args)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        _clear_warnings()
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                main()
        result = json.loads(capsys.readouterr().out)
        result['warnings'] = [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]
        assert (exc.value.code not in (0, None)) == bool(result.get('failed'))
        return result

    return run


# ------------------------------------------------------------------ proxy mode: two slots behind a fake systemd


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def handler(release, health_status):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status = health_status if self.path == '/health' else 200
            body = release.encode()
            self.send_response(status)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return Handler


class UnixHTTPServer(UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, dummy = super().get_request()
        return request, ('local', 0)

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self._serve, args=(request, client_address), daemon=True)
        thread.start()

    def _serve(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


class FakeSlotSystemd:
    """run_command for the switch: systemctl verbs start and stop real servers, like the units would."""

    def __init__(self, name, socket_dir, release='v2', health_status=200, crash=False):
        self.name = name
        self.socket_dir = socket_dir
        self.release = release
        self.health_status = health_status
        self.crash = crash
        self.units = {}
        self.servers = {}
        self.calls = []
        self.next_pid = 1000

    # -- helpers
    def unit(self, name):
        return self.units.setdefault(name, {'ActiveState': 'inactive', 'SubState': 'dead', 'MainPID': 0, 'enabled': False,
                                            'Result': 'success'})

    def _kind(self, unit):
        for kind in ('app', 'slot'):
            prefix = '%s-%s@' % (self.name, kind)
            if unit.startswith(prefix) and unit.split('@')[1].split('.')[0].isdigit():
                return kind, int(unit.split('@')[1].split('.')[0])
        return None, None

    def _serve(self, key, server):
        self.servers[key] = server
        threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()

    def _stop_server(self, key):
        server = self.servers.pop(key, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def start(self, unit):
        kind, port = self._kind(unit)
        state = self.unit(unit)
        if kind == 'app':
            self._stop_server(('app', port))
            if self.crash:
                state.update(ActiveState='activating', SubState='auto-restart', MainPID=0, Result='exit-code', ExecMainStatus='1')
                return
            self._serve(('app', port), ThreadingHTTPServer(('127.0.0.1', port), handler(self.release, self.health_status)))
            self.next_pid += 1
            state.update(ActiveState='active', SubState='running', MainPID=self.next_pid)
        elif unit.endswith('.socket'):
            path = os.path.join(self.socket_dir, 'slot-%d.sock' % port)
            if ('slot', port) not in self.servers:
                if os.path.exists(path):
                    os.unlink(path)
                self._serve(('slot', port), UnixHTTPServer(path, handler(self.release + '-via-slot', self.health_status)))
            state.update(ActiveState='active', SubState='listening')

    def stop(self, unit):
        kind, port = self._kind(unit)
        if kind == 'app':
            self._stop_server(('app', port))
        elif unit.endswith('.socket'):
            self._stop_server(('slot', port))
        self.unit(unit).update(ActiveState='inactive', SubState='dead', MainPID=0)

    # -- run_command
    def __call__(self, argv, environ_update=None):
        assert environ_update == {'LC_ALL': 'C'}
        if argv[0] == 'journalctl':
            self.calls.append(('journal',) + tuple(argv[1:]))
            return 0, 'release.json says crash_at_boot\nMain process exited, code=exited, status=1/FAILURE\n', ''
        args = [a for a in argv[1:] if a != '--no-ask-password']
        verb, units = args[0], [a for a in args[1:] if not a.startswith('--')]
        if verb == 'show':
            kind, dummy = self._kind(units[0])
            if kind is None:
                return 0, 'Id=%s\nLoadState=not-found\nActiveState=inactive\nMainPID=0\n' % units[0], ''
            state = self.unit(units[0])
            return 0, ''.join('%s=%s\n' % item for item in dict(state, Id=units[0], LoadState='loaded').items() if item[0] != 'enabled'), ''
        if verb == 'is-enabled':
            return 0, ''.join('enabled\n' if self.unit(u)['enabled'] else 'disabled\n' for u in units), ''
        self.calls.append((verb,) + tuple(units))
        for unit in units:
            if verb in ('restart', 'start'):
                self.start(unit)
            elif verb == 'stop':
                self.stop(unit)
            elif verb in ('enable', 'disable'):
                self.unit(unit)['enabled'] = verb == 'enable'
        return 0, '', ''

    def close(self):
        for key in list(self.servers):
            self._stop_server(key)


@pytest.fixture
def fake_slots(sock_dir):
    """fake_slots(release='v2', health_status=200, crash=False) -> (run_command, (port, port)) for the app "shop".

    run_command stands in for AnsibleModule.run_command: ``systemctl restart
    shop-app@PORT.service`` starts a real HTTP server on 127.0.0.1:PORT,
    ``systemctl start shop-slot@PORT.socket`` one on SOCK_DIR/slot-PORT.sock,
    ``stop`` stops them; ``show``, ``is-enabled``, ``enable``, ``disable`` keep
    the unit states; ``journalctl`` answers two canned lines. Ports are free
    loopback ports. Every server is stopped at the end of the test.
    """
    made = []

    def make(**kwargs):
        fake = FakeSlotSystemd('shop', sock_dir, **kwargs)
        made.append(fake)
        return fake, (free_port(), free_port())

    yield make
    for fake in made:
        fake.close()
