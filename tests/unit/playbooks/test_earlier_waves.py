# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A failed host stops the rollout at the next wave, and never cuts its own wave short.

The serial plays of deploy, verify and rollback run playbooks/tasks/earlier_waves.yml
first, not max_fail_percentage: 0, which failed a failing host's wave-mates where they
stood (their rollback, lock release and report never ran). Real ansible-playbook runs
on local-connection hosts: nothing leaves this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GATE = os.path.join(ROOT, 'playbooks', 'tasks', 'earlier_waves.yml')
PLAYBOOK = shutil.which('ansible-playbook')
HOSTS = ['a', 'b', 'c', 'd']

needs_playbook = pytest.mark.skipif(PLAYBOOK is None, reason='needs ansible-playbook on PATH')


def run(tmp_path, failing, waves):
    """Hosts a-d in waves; the failing hosts fail in the middle of their work. The recap and output."""
    play = {
        'name': 'Waves', 'hosts': 'all', 'gather_facts': False, 'serial': waves,
        'pre_tasks': [{'name': 'Gate', 'ansible.builtin.import_tasks': GATE}],
        'tasks': [
            {'name': 'Start', 'ansible.builtin.debug': {'msg': 'started {{ inventory_hostname }}'}},
            {'name': 'Fail in the middle', 'ansible.builtin.fail': {'msg': 'broken'}, 'when': 'inventory_hostname in %s' % json.dumps(failing)},
            {'name': 'Finish', 'ansible.builtin.debug': {'msg': 'finished {{ inventory_hostname }}'}},
        ],
    }
    (tmp_path / 'playbook.yml').write_text(json.dumps([play]))
    (tmp_path / 'inventory.ini').write_text(''.join(
        '%s ansible_connection=local ansible_python_interpreter=%s\n' % (name, sys.executable) for name in HOSTS))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default', ANSIBLE_RETRY_FILES_ENABLED='False',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_FORKS='4')
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run([PLAYBOOK, '-i', str(tmp_path / 'inventory.ini'), str(tmp_path / 'playbook.yml')], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    recap = dict((host, dict((key, int(value)) for key, value in re.findall(r'(\w+)=(\d+)', counts)))
                 for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.MULTILINE))
    return proc, recap


def finished(proc):
    return set(re.findall(r'"msg": "finished (\w+)"', proc.stdout))


@needs_playbook
def test_a_failure_lets_its_wave_finish_and_stops_the_next_wave_before_it_starts(tmp_path):
    proc, recap = run(tmp_path, ['a'], [2, '100%'])
    assert proc.returncode != 0, proc.stdout[-3000:]
    # b shares a's wave: it finished its own work.
    assert finished(proc) == {'b'}, proc.stdout[-3000:]
    assert recap['a']['failed'] == 1 and recap['b']['failed'] == 0, recap
    # The next wave stopped at the gate: it never started.
    assert 'started c' not in proc.stdout and 'started d' not in proc.stdout, proc.stdout[-3000:]
    for host in ('c', 'd'):
        assert recap[host]['failed'] == 1 and recap[host]['ok'] == 0, recap
    assert 'not run here: a failed in an earlier wave, so the rollout stopped before this wave; nothing on this host changed.' \
        in ' '.join(proc.stdout.split()), proc.stdout[-3000:]


@needs_playbook
def test_a_wave_in_which_every_host_failed_ends_the_play(tmp_path):
    proc, recap = run(tmp_path, ['a'], [1, '100%'])
    assert proc.returncode != 0
    # Ansible itself stops a play whose whole batch failed: the later hosts do not even reach the gate.
    assert set(recap) == {'a'}, recap


@needs_playbook
def test_without_a_failure_every_wave_runs(tmp_path):
    proc, recap = run(tmp_path, [], [1, 2, '100%'])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert finished(proc) == set(HOSTS)
    assert all(counts['failed'] == 0 for counts in recap.values()), recap


def test_every_serial_play_starts_with_the_gate_and_none_uses_max_fail_percentage():
    for name in ('deploy', 'verify', 'rollback'):
        with open(os.path.join(ROOT, 'playbooks', name + '.yml'), encoding='utf-8') as handle:
            plays = yaml.safe_load(handle)
        serial = [play for play in plays if 'serial' in play]
        assert len(serial) == 1, name
        play = serial[0]
        assert 'max_fail_percentage' not in play, name
        first = (play.get('pre_tasks') or play['tasks'])[:2]
        assert any(task.get('ansible.builtin.import_tasks') == 'tasks/earlier_waves.yml' for task in first), (name, first)
