# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restart of an app of the instances layout, run inside the benchmark container by tools/bench.py.

It is the action of the app role's measured restart, the collection's own
code (module_utils/_flip.py, copied next to this file under
ansible_collections/): a surge (N new instances beside the live ones, nginx
moved to them: its links renamed on a Unix socket, one reload on TCP; the old
ones stopped once drained) or one slot at a time out of nginx (drain_rolling). Without the module's own load:
the benchmark's load runs around this command and measures it.

    python3 flip.py NAME INSTANCES LISTEN surge|drain_rolling [--host HOST] [--health-path /health]

Prints what the flip did as JSON; exits 1 when it failed (the old instances
still serve then).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position,import-error
from ansible_collections.zerodown.deploy.plugins.module_utils._flip import Flip, FlipError, Slots  # noqa: E402
from ansible_collections.zerodown.deploy.plugins.module_utils._health import NotHealthy  # noqa: E402
from ansible_collections.zerodown.deploy.plugins.module_utils._names import app_names  # noqa: E402
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendError, Nginx  # noqa: E402
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd, SystemdError  # noqa: E402

# What the app role passes (roles/app/vars/main.yml: __app_slots).
SERVER_OPTIONS = 'max_fails=0 fail_timeout=10s'


def run_command(argv, environ_update=None):
    """AnsibleModule.run_command's contract: (rc, stdout, stderr)."""
    env = dict(os.environ, **(environ_update or {}))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('name')
    parser.add_argument('instances', type=int)
    parser.add_argument('listen')
    parser.add_argument('mode', choices=('surge', 'drain_rolling'))
    parser.add_argument('--host', help='the Host of the probes of the new instances (the app role: app_server_name)')
    parser.add_argument('--health-path', default='/health')
    args = parser.parse_args(argv)
    systemd = Systemd(run_command)
    names = app_names(args.name, args.instances, mode='instances', listen=args.listen)
    flip = Flip(Slots(args.name, args.instances, args.listen, names['nginx_servers_dir'], SERVER_OPTIONS), systemd,
                nginx=Nginx('/usr/sbin/nginx', systemd, 'nginx'), health_path=args.health_path, host_header=args.host)
    try:
        if args.mode == 'surge':
            flip.surge()
        else:
            flip.rolling()
    except (FlipError, BackendError, NotHealthy, SystemdError) as exc:
        print(json.dumps({'failed': True, 'msg': str(exc), 'result': flip.result}))
        return 1
    print(json.dumps(dict((key, value) for key, value in flip.result.items() if key != 'changed')))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
