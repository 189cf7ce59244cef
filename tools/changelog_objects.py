# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles and playbooks of a release in changelogs/changelog.yaml, and a trial first release.

antsibull-changelog finds new modules and plugins by their ``version_added``,
but it does not look at roles or playbooks: they go into a release's
``objects`` by hand. This tool does that from the tree, so that no role or
playbook is missed:

  python tools/changelog_objects.py add VERSION        # after antsibull-changelog release --version VERSION
  python tools/changelog_objects.py check               # the trial release the test command runs

``add`` lists every role (its ``main`` entry point's short_description) and
playbook (the first sentence of its leading comment) that no earlier release
lists. ``check`` copies the collection's metadata to a temporary directory,
releases galaxy.yml's version there with a release summary, adds the
objects, generates CHANGELOG.rst and fails unless every module, filter,
role and playbook is listed under "New" in it. The checkout is not changed.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPIED = ('changelogs', 'galaxy.yml', 'meta', 'plugins', 'roles', 'playbooks', 'README.md', 'LICENSE')


def read(path: str) -> str:
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def roles(root: str) -> dict:
    """{role: short_description of its main entry point}."""
    found = {}
    for path in sorted(glob.glob(os.path.join(root, 'roles', '*', 'meta', 'argument_specs.yml'))):
        with open(path, encoding='utf-8') as handle:
            specs = yaml.safe_load(handle)['argument_specs']
        found[path.split(os.sep)[-3]] = specs['main']['short_description']
    return found


def playbooks(root: str) -> dict:
    """{playbook: the first sentence of its leading comment}."""
    found = {}
    for path in sorted(glob.glob(os.path.join(root, 'playbooks', '*.yml'))):
        paragraph = []
        with open(path, encoding='utf-8') as handle:
            for line in handle.read().splitlines()[1:]:
                text = line[1:].strip() if line.startswith('#') else None
                if not text:
                    break
                paragraph.append(text)
        sentence = re.split(r'(?<=[.:])\s', ' '.join(paragraph))[0]
        found[os.path.basename(path)[:-len('.yml')]] = sentence.rstrip('.:')
    return found


def add(root: str, version: str) -> list:
    """Add the roles and playbooks that no earlier release lists to release ``version``; returns what was added."""
    path = os.path.join(root, 'changelogs', 'changelog.yaml')
    with open(path, encoding='utf-8') as handle:
        changelog = yaml.safe_load(handle)
    release = changelog['releases'][version]
    known = set()
    for other, entry in changelog['releases'].items():
        if other != version:
            for kind, objects in (entry.get('objects') or {}).items():
                known.update((kind, item['name']) for item in objects)
    added = []
    for kind, found in (('role', roles(root)), ('playbook', playbooks(root))):
        objects = release.setdefault('objects', {}).setdefault(kind, [])
        for name, description in found.items():
            if (kind, name) not in known and name not in [item['name'] for item in objects]:
                objects.append({'name': name, 'description': description, 'namespace': ''})
                added.append('%s %s' % (kind, name))
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(changelog, handle, sort_keys=True, allow_unicode=True)
    return added


def expected(root: str) -> list:
    """zerodown.deploy.NAME of every module, filter, role and playbook."""
    names = [os.path.basename(path)[:-3] for kind in ('modules', 'filter') for path in glob.glob(os.path.join(root, 'plugins', kind, '*.py'))
             if not os.path.basename(path).startswith('_')]
    return sorted(set('zerodown.deploy.' + name for name in names + list(roles(root)) + list(playbooks(root))))


def changelog_command(tree: str, *args) -> bool:
    """antsibull-changelog ARGS in ``tree``; False (and its output on stderr) when it failed."""
    proc = subprocess.run(['antsibull-changelog'] + list(args), cwd=tree, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print('antsibull-changelog %s failed (rc %d): %s' % (' '.join(args), proc.returncode, (proc.stderr or proc.stdout)[-2000:]),
              file=sys.stderr)
    return proc.returncode == 0


def check(root: str) -> int:
    with open(os.path.join(root, 'galaxy.yml'), encoding='utf-8') as handle:
        version = yaml.safe_load(handle)['version']
    work = tempfile.mkdtemp(prefix='zd-changelog-')
    try:
        tree = os.path.join(work, 'ansible_collections', 'zerodown', 'deploy')
        for name in COPIED:
            source, target = os.path.join(root, name), os.path.join(tree, name)
            if os.path.isdir(source):
                shutil.copytree(source, target)
            elif os.path.exists(source):
                os.makedirs(tree, exist_ok=True)
                shutil.copy(source, target)
        fragments = os.path.join(tree, 'changelogs', 'fragments')
        if not any('release_summary' in read(path) for path in glob.glob(os.path.join(fragments, '*.yml'))):
            with open(os.path.join(fragments, 'zz-trial-summary.yml'), 'w', encoding='utf-8') as handle:
                handle.write('---\nrelease_summary: Trial release of the test command.\n')
        if not changelog_command(tree, 'release', '--version', version):
            return 1
        add(tree, version)
        if not changelog_command(tree, 'generate'):
            return 1
        text = read(os.path.join(tree, 'CHANGELOG.rst'))
        new = text[text.find('\nNew '):] if '\nNew ' in text else ''
        missing = [name for name in expected(root) if not re.search(r'^- %s - ' % re.escape(name), new, re.M)]
        if missing:
            print('the trial release %s lists these as new nowhere: %s' % (version, ', '.join(missing)), file=sys.stderr)
            return 1
        print('trial release %s: CHANGELOG.rst lists all %d modules, filters, roles and playbooks as new' % (version, len(expected(root))))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list) -> int:
    if argv[:1] == ['add'] and len(argv) == 2:
        print('\n'.join(add(ROOT, argv[1])) or 'nothing to add')
        return 0
    if argv == ['check']:
        return check(ROOT)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
