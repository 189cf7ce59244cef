# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test nginx's complete configuration as it would be with some files replaced.

    python3 zerodown_nginx_test.py [--nginx /usr/sbin/nginx] [--config /etc/nginx/nginx.conf] LIVE=CANDIDATE...

Builds a throw-away mirror of the configuration directory (symlinks to every
live file, except LIVE, which points at CANDIDATE; an empty CANDIDATE leaves
LIVE out; CANDIDATE may be a directory, e.g. an upstream's server files),
copies the main file and every candidate file into the mirror with their
absolute paths of the configuration directory pointed into the mirror (so an
include in a candidate reads the other candidates), and runs
`nginx -t -c MIRROR/nginx.conf`. Nothing live is written, so a failing test
leaves the running configuration and the served traffic alone. nginx's output
is printed on stderr with the mirror's paths shown as the live ones; the exit
status is nginx's. Managed by zerodown.deploy (role nginx_upstream).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nginx', default='/usr/sbin/nginx', help='nginx binary (default: /usr/sbin/nginx)')
    parser.add_argument('--config', default='/etc/nginx/nginx.conf', help='main configuration file (default: /etc/nginx/nginx.conf)')
    parser.add_argument('replace', nargs='*', metavar='LIVE=CANDIDATE', help='live file and the candidate to test in its place')
    args = parser.parse_args(argv)
    args.config = os.path.abspath(args.config)
    args.config_dir = os.path.dirname(args.config)
    args.replacements = {}
    for item in args.replace:
        live, sep, candidate = item.partition('=')
        live = os.path.normpath(live)
        if not sep or not os.path.isabs(live) or (candidate and not os.path.isabs(candidate)):
            parser.error('expected absolute LIVE=CANDIDATE, got %r' % item)
        if not live.startswith(args.config_dir + os.sep):
            parser.error('%s is outside the configuration directory %s' % (live, args.config_dir))
        if candidate and not (os.path.isfile(candidate) or os.path.isdir(candidate)):
            parser.error('candidate %s does not exist' % candidate)
        args.replacements[live] = candidate
    return args


def mirror(live_dir, mirror_dir, replacements):
    """Recreate live_dir in mirror_dir as symlinks; directories holding a replaced file are recreated."""
    os.mkdir(mirror_dir)
    names = set(os.listdir(live_dir)) if os.path.isdir(live_dir) else set()
    names |= {os.path.relpath(path, live_dir).split(os.sep, maxsplit=1)[0] for path in replacements if path.startswith(live_dir + os.sep)}
    for name in sorted(names):
        live = os.path.join(live_dir, name)
        target = os.path.join(mirror_dir, name)
        if live in replacements:
            if replacements[live]:
                os.symlink(replacements[live], target)
        elif any(path.startswith(live + os.sep) for path in replacements):
            mirror(live, target, replacements)
        else:
            os.symlink(live, target)


def copy_into_mirror(source, target, live_dir, mirror_dir):
    """Write source's text at target (replacing the symlink there) with live_dir's absolute paths pointed into mirror_dir."""
    with open(source, encoding='utf-8') as handle:
        text = handle.read()
    # Relative includes already read the mirror (nginx resolves them against
    # the -c file's directory); absolute ones of the live directory now do too.
    text = text.replace(live_dir + '/', mirror_dir + '/')
    if os.path.lexists(target):
        os.unlink(target)
    with open(target, 'w', encoding='utf-8') as handle:
        handle.write(text)


def main(argv=None):
    args = parse_args(argv)
    work = tempfile.mkdtemp(prefix='zerodown-nginx-test.')
    try:
        root = os.path.join(work, 'conf')
        main_file = args.replacements.get(args.config) or args.config
        replacements = dict(args.replacements)
        replacements.pop(args.config, None)
        mirror(args.config_dir, root, replacements)
        mirrored_main = os.path.join(root, os.path.basename(args.config))
        copy_into_mirror(main_file, mirrored_main, args.config_dir, root)
        for live, candidate in sorted(replacements.items()):
            if candidate and os.path.isfile(candidate):
                copy_into_mirror(candidate, root + live[len(args.config_dir):], args.config_dir, root)
        result = subprocess.run([args.nginx, '-t', '-c', mirrored_main], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, check=False)
        output = result.stdout.replace(root + '/', args.config_dir + '/')
        # "2026/11/21 07:17:10 [emerg] 6242#6242: ..." (error_log to stderr) reads as "nginx: [emerg] ...".
        output = re.sub(r'(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: ', r'nginx: [\1] ', output)
        sys.stderr.write(output)
        return result.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
