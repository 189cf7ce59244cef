# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a deploy needs from the host, checked in the deploy's first call on it, before anything changes (internal).

systemd as PID 1 (the units and the socket), a Debian-family OS (the paths and packages the roles use), a
Python the modules run on, and a way to become the users the release steps run as: sudo, or, for root, su.
Standard library only; the paths are parameters so the unit tests give a fake /proc and os-release.
"""

from __future__ import annotations

import os
import re
import sys
import typing as t

MIN_SYSTEMD = 247  # socket units with FileDescriptorName= and the properties the restart reads (Debian 11's)
MIN_PYTHON = (3, 9)
FAMILIES = ('debian',)


def os_release(path: str = '/etc/os-release') -> dict:
    """KEY=value pairs of os-release(5), quotes removed; {} when it cannot be read."""
    values = {}
    try:
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                match = re.match(r'^([A-Z0-9_]+)=(.*)$', line.strip())
                if match:
                    values[match.group(1)] = match.group(2).strip().strip('"\'')
    except OSError:
        return {}
    return values


def pid1_name(proc: str = '/proc') -> t.Optional[str]:
    try:
        with open(os.path.join(proc, '1', 'comm'), encoding='utf-8') as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def systemd_version(run_command) -> t.Optional[int]:
    """The number of ``systemctl --version``'s first line ("systemd 252 (252.36-1~deb12u1)"), or None."""
    try:
        rc, out, dummy_err = run_command(['systemctl', '--version'])
    except OSError:
        return None
    match = re.match(r'systemd (\d+)', out or '')
    return int(match.group(1)) if rc == 0 and match else None


def check_host(run_command, which, user: str, proc: str = '/proc', os_release_path: str = '/etc/os-release',
               python: tuple = tuple(sys.version_info[:3])) -> tuple:
    """(facts, problems) of this host. ``which(name)`` finds a program (None if absent); ``user`` runs the module."""
    info = os_release(os_release_path)
    family = ' '.join([info.get('ID', '')] + info.get('ID_LIKE', '').split()).split()
    facts = {
        'pid1': pid1_name(proc),
        'systemd_version': None,
        'os': ('%s %s' % (info.get('ID', 'unknown'), info.get('VERSION_ID', ''))).strip(),
        'os_family': next((name for name in FAMILIES if name in family), None),
        'python': '.'.join(str(part) for part in python),
        'sudo': which('sudo') is not None,
        'su': which('su') is not None,
        'become_method': None,
    }
    problems = []
    if facts['pid1'] != 'systemd':
        problems.append('PID 1 is %s, not systemd: the app runs as systemd units behind a systemd socket'
                        % (facts['pid1'] or 'unreadable'))
    else:
        version = facts['systemd_version'] = systemd_version(run_command)
        if version is None:
            problems.append('systemctl --version did not answer: systemd is PID 1 but cannot be driven')
        elif version < MIN_SYSTEMD:
            problems.append('systemd %d is older than %d, the oldest the units are written for' % (version, MIN_SYSTEMD))
    if facts['os_family'] is None:
        problems.append('the OS is %s (os-release ID %r, ID_LIKE %r): supported are Debian 12 and 13 and their derivatives'
                        % (facts['os'], info.get('ID'), info.get('ID_LIKE', '')))
    if tuple(python[:2]) < MIN_PYTHON:
        problems.append('the modules run on Python %s here; they need %d.%d or newer' % ((facts['python'],) + MIN_PYTHON))
    # The release steps that run as the app's owner or migration user become it; root can without sudo.
    if facts['sudo']:
        facts['become_method'] = 'sudo'
    elif user == 'root' and facts['su']:
        facts['become_method'] = 'su'
    else:
        problems.append('there is no sudo, and this connection runs as %s, not root, so it cannot become the app user: '
                        'install sudo (Debian package sudo) or connect as root' % user)
    return facts, problems


def problems_message(problems: list) -> str:
    return 'this host cannot be deployed to, and nothing on it was changed: %s.' % '; '.join(problems)


APT_ENV = {'DEBIAN_FRONTEND': 'noninteractive', 'LC_ALL': 'C'}


def installed_packages(run_command, names: list) -> list:
    """The Debian packages of ``names`` that are installed."""
    dummy, out, dummy = run_command(['dpkg-query', '--show', '--showformat=${Package} ${db:Status-Status}\\n'] + list(names))
    return [line.split()[0] for line in out.splitlines() if line.strip().endswith(' installed')]


def install_package(run_command, package: str) -> t.Optional[str]:
    """``apt-get update`` and ``apt-get install PACKAGE``: None when both passed, else what failed and its last output."""
    for argv in (['apt-get', 'update', '-q'], ['apt-get', 'install', '-y', '-q', package]):
        rc, out, err = run_command(argv, environ_update=APT_ENV)
        if rc != 0:
            return '%s failed with rc %d: %s' % (' '.join(argv), rc, (err or out).strip()[-1500:])
    return None
