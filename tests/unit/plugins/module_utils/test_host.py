# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a deploy needs from the host, on a fake /proc and os-release."""

from __future__ import annotations

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._host import check_host, os_release, problems_message

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
ALPINE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n'


def host(tmp_path, pid1='systemd', release=DEBIAN_12, version='systemd 252 (252.36-1~deb12u1)\n+PAM +AUDIT', programs=('sudo', 'su'),
         user='root', python=(3, 11, 2)):
    (tmp_path / 'proc' / '1').mkdir(parents=True)
    if pid1 is not None:
        (tmp_path / 'proc' / '1' / 'comm').write_text(pid1 + '\n')
    (tmp_path / 'os-release').write_text(release)
    calls = []

    def run_command(argv):
        calls.append(argv)
        return (0, version, '') if version is not None else (1, '', 'Failed to connect to bus')

    facts, problems = check_host(run_command, lambda name: '/usr/bin/' + name if name in programs else None, user,
                                 proc=str(tmp_path / 'proc'), os_release_path=str(tmp_path / 'os-release'), python=python)
    return facts, problems, calls


def test_a_debian_12_host_with_systemd_and_sudo_has_no_problem(tmp_path):
    facts, problems, calls = host(tmp_path)
    assert problems == []
    assert facts == {'pid1': 'systemd', 'systemd_version': 252, 'os': 'debian 12', 'os_family': 'debian', 'python': '3.11.2',
                     'sudo': True, 'su': True, 'become_method': 'sudo'}
    assert calls == [['systemctl', '--version']]


def test_root_without_sudo_becomes_the_app_user_with_su(tmp_path):
    facts, problems, dummy = host(tmp_path, programs=('su',))
    assert problems == [] and facts['become_method'] == 'su' and facts['sudo'] is False


def test_a_user_without_sudo_cannot_become_anyone_and_is_told_what_to_install(tmp_path):
    facts, problems, dummy = host(tmp_path, programs=('su',), user='deploy')
    assert problems == ['there is no sudo, and this connection runs as deploy, not root, so it cannot become the app user: '
                        'install sudo (Debian package sudo) or connect as root']
    assert facts['become_method'] is None


def test_a_derivative_of_debian_is_supported(tmp_path):
    facts, problems, dummy = host(tmp_path, release=UBUNTU)
    assert problems == [] and facts['os'] == 'ubuntu 24.04' and facts['os_family'] == 'debian'


@pytest.mark.parametrize('pid1, expected', [('init', 'PID 1 is init, not systemd'), (None, 'PID 1 is unreadable, not systemd')])
def test_pid1_other_than_systemd_is_a_problem_and_systemctl_is_not_asked(tmp_path, pid1, expected):
    facts, problems, calls = host(tmp_path, pid1=pid1)
    assert len(problems) == 1 and problems[0].startswith(expected) and calls == []
    assert facts['systemd_version'] is None


def test_every_problem_is_named_at_once(tmp_path):
    facts, problems, dummy = host(tmp_path, release=ALPINE, version='systemd 241 (241-7)', programs=(), user='app', python=(3, 7, 3))
    assert problems == [
        'systemd 241 is older than 247, the oldest the units are written for',
        "the OS is alpine 3.20.0 (os-release ID 'alpine', ID_LIKE ''): supported are Debian 12 and 13 and their derivatives",
        'the modules run on Python 3.7.3 here; they need 3.9 or newer',
        'there is no sudo, and this connection runs as app, not root, so it cannot become the app user: '
        'install sudo (Debian package sudo) or connect as root',
    ]
    assert problems_message(problems[:2]) == (
        'this host cannot be deployed to, and nothing on it was changed: systemd 241 is older than 247, the oldest the units are '
        "written for; the OS is alpine 3.20.0 (os-release ID 'alpine', ID_LIKE ''): supported are Debian 12 and 13 and their "
        'derivatives.')


def test_systemctl_that_does_not_answer_is_a_problem(tmp_path):
    dummy, problems, dummy_calls = host(tmp_path, version=None)
    assert problems == ['systemctl --version did not answer: systemd is PID 1 but cannot be driven']


def test_an_unreadable_os_release_reads_as_unknown(tmp_path):
    assert os_release(str(tmp_path / 'missing')) == {}
    facts, problems, dummy = host(tmp_path, release='garbage without equals\n')
    assert facts['os'] == 'unknown' and facts['os_family'] is None and len(problems) == 1
