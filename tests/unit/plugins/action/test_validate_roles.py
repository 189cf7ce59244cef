# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every bad input the Molecule scenarios reject, refused in seconds by the roles' own validation, with no host at all.

The cases are read from the scenarios' tests (molecule/*/tests/test_*.py,
parsed, never imported): their tables of rejected input, and the fragment of
the error each expects. One ansible-playbook run checks each case the way the
role's entry point does - its argument spec, then its validate.yml - against
a host that cannot be reached (192.0.2.0/24 is reserved for documentation):
had anything tried to run on it, the run would report it unreachable.

The few cases whose rule reads the host's state (HOST_ONLY) stay with Molecule.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MOLECULE = os.path.join(ROOT, 'molecule')
PLAYBOOK = shutil.which('ansible-playbook')

pytestmark = pytest.mark.skipif(PLAYBOOK is None or not os.path.isdir(MOLECULE),
                                reason='needs ansible-playbook on PATH and the molecule/ scenarios of a checkout')

SOURCE = os.path.join(ROOT, 'tests')  # any directory on the controller: the local source every case names

# Rules that read the host: whether nginx may connect to a socket, whether anything is deployed.
HOST_ONLY = {
    ('nginx_upstream', 'socket nginx cannot reach'), ('nginx_upstream', 'socket open to everyone'),
    ('nginx_upstream', 'not a socket'), ('release', 'rollback of nothing'),
}
# The role variables each scenario merges its cases over, where its tests take them from a running container.
BASELINES = {
    'socket_service': {'socket_service_name': 'hello', 'socket_service_exec_start': '/usr/bin/python3 /srv/hello/hello_wsgi.py'},
    'nginx_upstream': {'nginx_upstream_name': 'hello', 'nginx_upstream_servers': ['unix:/run/hello.sock'],
                       'nginx_upstream_tls_certificate': '/etc/ssl/zerodown/hello.pem',
                       'nginx_upstream_tls_certificate_key': '/etc/ssl/zerodown/hello.key'},
    'release': {'release_base_path': '/srv/rejected', 'release_source_type': 'local', 'release_local_src': SOURCE,
                'release_env': {'SECRET_KEY': 'x'},
                'release_shared_dirs': ['storage/logs', 'media'], 'release_shared_files': ['config/local.ini']},
}
# The vars files of the app scenarios, as their tests load them.
APP_VARS = {'app': 'vars/app.yml', 'proxy': 'inventory/group_vars/all.yml', 'fleet': 'inventory/group_vars/all.yml'}
ENTRY_VARIABLE = {'app': '__app_entry', 'release': '__release_entry', 'socket_service': '__socket_service_entry'}
SPEC_ENTRY = {'deploy': 'main'}
MARKER = 'ZD-ERRORS'
SPEC_KEYS = ('type', 'elements', 'choices', 'required', 'no_log', 'aliases')
FLEET = ['web1', 'web2', 'web3']


def _tree(scenario):
    with open(os.path.join(MOLECULE, scenario, 'tests', 'test_%s.py' % scenario), encoding='utf-8') as handle:
        return ast.parse(handle.read())


def _assigned(body, name):
    for node in body:
        if isinstance(node, ast.Assign) and [getattr(target, 'id', None) for target in node.targets] == [name]:
            return node.value
    raise LookupError(name)


def _overrides(call):
    """dict(good, key=value, ...) -> (the base's name, {key: value})."""
    return call.args[0].id, dict((keyword.arg, ast.literal_eval(keyword.value)) for keyword in call.keywords)


def _fragment(test):
    """assert "fragment" in ...results["case"]... -> (case, fragment), else None."""
    if not (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.In) and isinstance(test.left, ast.Constant)):
        return None
    for node in ast.walk(test.comparators[0]):
        if isinstance(node, ast.Subscript) and getattr(node.value, 'id', None) == 'results' and isinstance(node.slice, ast.Constant):
            return node.slice.value, test.left.value
    return None


def _table_cases(scenario):
    """The module-level REJECTED table: {case: (overrides, fragment)} or {case: (overrides, entry, fragment)}."""
    for case, spec in ast.literal_eval(_assigned(_tree(scenario).body, 'REJECTED')).items():
        overrides, entry, fragment = spec if len(spec) == 3 else (spec[0], 'main', spec[1])
        # The release scenario's rollback cases name the base path only, as that entry point takes little else.
        base = BASELINES[scenario] if entry == 'main' else {'release_base_path': BASELINES[scenario]['release_base_path']}
        yield scenario, case, scenario, entry, dict(base, **overrides), fragment


def _app_cases(scenario, good):
    """test_bad_input...: each rejections(ROLE, {case: dict(good, ...)}) call, with its expected table or its asserts."""
    for function in _tree(scenario).body:
        if not (isinstance(function, ast.FunctionDef) and function.name.startswith('test_bad_input')):
            continue
        bases, cases, role = {'good': good}, {}, None
        for node in function.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                name = node.targets[0].id
                try:
                    bases[name] = ast.literal_eval(node.value)
                except ValueError:
                    cases = dict((key.value, _overrides(value)) for key, value in zip(node.value.keys, node.value.values))
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and getattr(node.value.func, 'id', '') == 'rejections':
                role = node.value.args[0].value.split('.')[-1]
                table = node.value.args[1]
                if isinstance(table, ast.Dict):
                    cases = dict((key.value, _overrides(value)) for key, value in zip(table.keys, table.values))
                for case, fragment in bases.pop('expected', {}).items():
                    yield scenario, case, role, 'deploy', _merged(bases, cases[case]), fragment
            elif isinstance(node, ast.Assert) and _fragment(node.test) and role:
                case, fragment = _fragment(node.test)
                yield scenario, case, role, 'main' if role != 'app' else 'deploy', _merged(bases, cases[case]), fragment


def _merged(bases, base_and_overrides):
    base, overrides = base_and_overrides
    return dict(bases[base], **overrides)


def _fleet_cases(good):
    """test_*_refused_*: deploy(..., extra={...}) and assert "fragment" in said(proc)."""
    for function in _tree('fleet').body:
        if isinstance(function, ast.FunctionDef) and '_refused_' in function.name:
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'deploy']
            extra = dict((k.arg, ast.literal_eval(k.value)) for call in calls for k in call.keywords if k.arg == 'extra')['extra']
            for node in ast.walk(function):
                if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.ops[0], ast.In):
                    yield 'fleet', function.name, 'app', 'deploy', dict(good, **extra), node.left.value


def _app_good(scenario, source):
    with open(os.path.join(MOLECULE, scenario, APP_VARS[scenario]), encoding='utf-8') as handle:
        role_vars = yaml.safe_load(handle)
    return dict(role_vars, app_name='rejected', app_base_path='/srv/rejected', app_source={'type': 'local', 'path': source})


def molecule_cases(source):
    """(scenario, case, role, entry, role variables, expected fragment) of every bad input the scenarios test."""
    cases = []
    for scenario in ('socket_service', 'nginx_upstream', 'release'):
        cases.extend(_table_cases(scenario))
    for scenario in ('app', 'proxy'):
        cases.extend(_app_cases(scenario, _app_good(scenario, source)))
    cases.extend(_fleet_cases(_app_good('fleet', source)))
    return [case for case in cases if case[:2] not in HOST_ONLY]


CASES = molecule_cases(SOURCE) if PLAYBOOK and os.path.isdir(MOLECULE) else []


def _spec(role, entry):
    """The types and choices of the role's entry point (descriptions and defaults are for people, some with templates)."""
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        options = yaml.safe_load(handle)['argument_specs'][SPEC_ENTRY.get(entry, entry)]['options']
    return dict((name, dict((key, value) for key, value in option.items() if key in SPEC_KEYS)) for name, option in options.items())


def _untemplated(value):
    """A value for the type check: a string with a template in it (which only the role can render) is still a string."""
    if isinstance(value, dict):
        return dict((key, _untemplated(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_untemplated(item) for item in value]
    return 'templated' if isinstance(value, str) and '{{' in value else value


def _case_tasks(index, role, entry, role_vars):
    include_vars = dict(role_vars)
    if role in ENTRY_VARIABLE:
        include_vars[ENTRY_VARIABLE[role]] = entry
    return [{
        'name': 'Case %d' % index,
        'block': [
            # What the role's entry point does first, then its validate.yml.
            {'name': 'Check the argument spec', 'ansible.builtin.validate_argument_spec': {
                'argument_spec': _spec(role, entry), 'provided_arguments': _untemplated(role_vars)}},
            {'name': 'Validate', 'ansible.builtin.include_role': {'name': 'zerodown.deploy.' + role, 'tasks_from': 'validate'},
             'vars': include_vars},
        ],
        'rescue': [{'name': 'Record the error', 'ansible.builtin.set_fact': {
            'zd_errors': '{{ zd_errors | default({}) | combine({%s: ansible_failed_result.msg}) }}' % json.dumps(str(index))}}],
    }]


REPORT = {'name': 'Report the errors', 'ansible.builtin.debug': {'msg': '%s {{ zd_errors | default({}) | to_json }}' % MARKER}}


def _collections(tmp_path):
    """A collections path where this checkout is zerodown.deploy: its own, or a link to it."""
    parts = ROOT.split(os.sep)
    if parts[-3:-1] == ['ansible_collections', 'zerodown'] and parts[-1] == 'deploy':
        return os.sep.join(parts[:-3])
    link = tmp_path / 'collections' / 'ansible_collections' / 'zerodown'
    link.mkdir(parents=True)
    (link / 'deploy').symlink_to(ROOT)
    return str(tmp_path / 'collections')


def run_cases(tmp_path):
    """One ansible-playbook run of every case: {index: error message}, and the run's output."""
    single = [task for index, case in enumerate(CASES) if case[0] != 'fleet' for task in _case_tasks(index, *case[2:5])]
    plays = [{'name': 'Bad input', 'hosts': 'target', 'gather_facts': False, 'tasks': single + [REPORT]}]
    for index, (scenario, case, role, entry, role_vars, fragment) in enumerate(CASES):
        if scenario == 'fleet':
            # The deploy playbook's waves are its play's serial:, not role variables.
            role_vars = dict(role_vars)
            waves = dict(serial=role_vars.pop('zerodown_waves')) if 'zerodown_waves' in role_vars else {}
            plays.append(dict(waves, name='Bad input of a fleet: %s' % case, hosts='web', gather_facts=False,
                              tasks=_case_tasks(index, role, entry, role_vars) + [REPORT]))
    (tmp_path / 'playbook.yml').write_text(json.dumps(plays))
    unreachable = "ansible_host=192.0.2.1 ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=1'"
    (tmp_path / 'inventory.ini').write_text('target %s\n[web]\n%s\n[zerodown_lb]\nlb1 %s\n' % (
        unreachable, '\n'.join('%s %s' % (name, unreachable) for name in FLEET), unreachable))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections(tmp_path), ANSIBLE_NOCOLOR='1', ANSIBLE_HOST_KEY_CHECKING='False',
               ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default', ANSIBLE_CALLBACK_RESULT_FORMAT='json',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_RETRY_FILES_ENABLED='False')
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run([PLAYBOOK, '-i', str(tmp_path / 'inventory.ini'), str(tmp_path / 'playbook.yml')], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    errors = {}
    for host, text in re.findall(r'^ok: \[(\S+)\] => \{\n\s+"msg": (".*")\n\}$', proc.stdout, re.MULTILINE):
        if host in ('target', FLEET[0]):
            report = json.loads(text)
            errors.update((int(index), message) for index, message in json.loads(report[len(MARKER):]).items())
    return errors, proc


def test_the_scenarios_list_their_bad_input_cases():
    assert len(CASES) >= 80, 'the cases were not found in molecule/*/tests: %s' % len(CASES)
    assert set(case[0] for case in CASES) == {'socket_service', 'nginx_upstream', 'release', 'app', 'proxy', 'fleet'}


def test_every_bad_input_is_refused_with_the_expected_message_and_nothing_runs_on_a_host(tmp_path):
    # One test, so that one ansible-playbook run serves every case (pytest-xdist would run a shared fixture once per worker).
    errors, proc = run_cases(tmp_path)
    recap = dict(re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.MULTILINE))
    assert set(recap) == {'target', 'web1', 'web2', 'web3'}, proc.stdout[-3000:]
    for host, counts in recap.items():
        assert re.search(r'changed=0 +unreachable=0 +failed=0 ', counts), (host, counts)
    assert proc.returncode == 0, proc.stdout[-3000:]
    wrong = []
    for index, (scenario, case, role, entry, role_vars, fragment) in enumerate(CASES):
        if index not in errors:
            wrong.append('%s: %s was accepted by %s (%s)' % (scenario, case, role, role_vars))
        elif fragment not in ' '.join(errors[index].split()):
            wrong.append('%s: %s said %r, not %r' % (scenario, case, errors[index], fragment))
    assert wrong == [], '\n'.join(wrong)
