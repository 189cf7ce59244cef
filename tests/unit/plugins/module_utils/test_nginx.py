# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_nginx: the site's change detection, the mirror test and the socket check.

nginx is a fake script that reads the mirrored configuration the way nginx
would (it follows the include) and fails on a line it is told to reject;
the configuration directory is a temporary one.
"""

from __future__ import annotations

import getpass
import os
import socket
import stat

import subprocess

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils._nginx import Site, SiteError, keep_state, kept_states, socket_problems, mirror_test
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import file_name, parse_servers, render

FAKE_NGINX = r"""#!/usr/bin/env python3
import glob, os, sys
main = sys.argv[sys.argv.index('-c') + 1]
root = os.path.dirname(main)
def read(path, seen):
    text = open(path).read()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('include '):
            pattern = line[len('include '):].rstrip(';')
            if not os.path.isabs(pattern):
                pattern = os.path.join(root, pattern)
            for name in sorted(glob.glob(pattern)):
                read(name, seen)
        elif line == 'bad;':
            print('2026/11/21 07:17:10 [emerg] 1#1: unknown directive "bad" in %s:1' % path)
            sys.exit(1)
        seen.append(line)
read(main, [])
print('nginx: configuration file %s test is successful' % main)
"""


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def conf(tmp_path):
    etc = tmp_path / 'etc'
    (etc / 'conf.d').mkdir(parents=True)
    (etc / 'nginx.conf').write_text('include %s/conf.d/*.conf;\n' % etc)
    (etc / 'conf.d' / 'other.conf').write_text('other;\n')
    nginx = tmp_path / 'nginx'
    nginx.write_text(FAKE_NGINX)
    nginx.chmod(0o755)
    return etc, str(nginx)


def test_test_with_reads_the_candidate_in_place_of_the_live_file(conf, tmp_path):
    etc, nginx = conf
    live = str(etc / 'conf.d' / 'zerodown-hello.conf')
    (etc / 'conf.d' / 'zerodown-hello.conf').write_text('fine;\n')
    candidate = tmp_path / 'candidate.conf'
    candidate.write_text('bad;\n')
    rc, said = mirror_test(run, nginx, str(etc / 'nginx.conf'), {live: str(candidate)})
    assert rc == 1
    # The mirror's paths read as the live ones, and nginx's time stamp reads as "nginx:".
    assert said == 'nginx: [emerg] unknown directive "bad" in %s:1' % live
    assert (etc / 'conf.d' / 'zerodown-hello.conf').read_text() == 'fine;\n'


def test_test_with_passes_a_good_candidate(conf, tmp_path):
    etc, nginx = conf
    candidate = tmp_path / 'candidate.conf'
    candidate.write_text('fine;\n')
    rc, said = mirror_test(run, nginx, str(etc / 'nginx.conf'), {str(etc / 'conf.d' / 'zerodown-hello.conf'): str(candidate)})
    assert rc == 0 and 'test is successful' in said


def test_test_with_refuses_a_file_outside_the_configuration(conf, tmp_path):
    etc, nginx = conf
    with pytest.raises(SiteError, match='outside the configuration directory'):
        mirror_test(run, nginx, str(etc / 'nginx.conf'), {'/elsewhere/x.conf': str(tmp_path / 'x')})


def test_site_changes_only_what_differs(conf, tmp_path):
    etc, dummy = conf
    site_path = str(etc / 'conf.d' / 'zerodown-hello.conf')
    common = str(etc / 'conf.d' / '00-zerodown.conf')
    (etc / 'conf.d' / '00-zerodown.conf').write_text('log_format zerodown x;\n')
    site = Site('hello', {common: 'log_format zerodown x;\n', site_path: 'server {}\n'}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'))
    assert site.changed_files == [site_path] and site.changed
    replacements = site.write_stage()
    assert sorted(replacements) == sorted([common, site_path])
    site.install()
    assert open(site_path).read() == 'server {}\n'
    again = Site('hello', {common: 'log_format zerodown x;\n', site_path: 'server {}\n'}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'))
    assert not again.changed and again.diff() == []


def test_a_file_wanted_absent_is_left_out_of_the_test_and_removed(conf, tmp_path):
    etc, nginx = conf
    # The distribution's default site: a link into sites-available, whose content nginx -t would reject here.
    (etc / 'sites-available').mkdir()
    (etc / 'sites-enabled').mkdir()
    (etc / 'sites-available' / 'default').write_text('bad;\n')
    (etc / 'sites-enabled' / 'default').symlink_to('../sites-available/default')
    (etc / 'sites-enabled' / 'kept').write_text('kept;\n')
    (etc / 'nginx.conf').write_text('include %s/conf.d/*.conf;\ninclude %s/sites-enabled/*;\n' % (etc, etc))
    default = str(etc / 'sites-enabled' / 'default')
    site_path = str(etc / 'conf.d' / 'zerodown-hello.conf')
    site = Site('hello', {site_path: 'server {}\n', default: None}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'))
    assert site.changed_files == sorted([default, site_path])
    rc, said = mirror_test(run, nginx, str(etc / 'nginx.conf'), site.write_stage())
    assert rc == 0, said
    # With the default site in place, the same test fails: the mirror really left it out.
    assert mirror_test(run, nginx, str(etc / 'nginx.conf'), {site_path: site.staged_path(site_path)})[0] == 1
    site.install()
    assert not os.path.lexists(default) and (etc / 'sites-available' / 'default').exists()
    assert (etc / 'sites-enabled' / 'kept').read_text() == 'kept;\n'
    again = Site('hello', {site_path: 'server {}\n', default: None}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'))
    assert not again.changed


def test_server_files_are_written_and_stale_ones_removed(conf, tmp_path):
    etc, dummy = conf
    servers_dir = etc / 'conf.d' / 'hello.servers'
    servers_dir.mkdir()
    (servers_dir / 'gone_80.conf').write_text('server gone:80;\n')
    (servers_dir / 'web1_80.conf').write_text('server web1:80 down;\n')
    site = Site('hello', {}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'), servers_dir=str(servers_dir),
                servers={'web1_80.conf': 'server web1:80;\n', 'web2_80.conf': 'server web2:80;\n'})
    assert site.changed_servers == ['gone_80.conf', 'web1_80.conf', 'web2_80.conf']
    site.install()
    assert sorted(os.listdir(servers_dir)) == ['web1_80.conf', 'web2_80.conf']
    assert (servers_dir / 'web1_80.conf').read_text() == 'server web1:80;\n'


def _socket(path, mode):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    os.chmod(path, mode)
    return sock


def test_socket_problems_accepts_the_owner_and_refuses_others(sock_dir):
    user = getpass.getuser()
    good = os.path.join(sock_dir, 'good.sock')
    open_to_all = os.path.join(sock_dir, 'open.sock')
    closed = os.path.join(sock_dir, 'closed.sock')
    socks = [_socket(good, 0o660), _socket(open_to_all, 0o666), _socket(closed, 0o400)]
    try:
        assert socket_problems([good, os.path.join(sock_dir, 'missing.sock')], user) == []
        problems = socket_problems([open_to_all], user)
        assert len(problems) == 1 and 'every local user can connect to the app and bypass nginx' in problems[0]
        problems = socket_problems([closed], user)
        assert len(problems) == 1 and 'nginx cannot connect (502)' in problems[0]
    finally:
        for sock in socks:
            sock.close()


def test_socket_problems_names_a_missing_nginx_user_and_a_file_that_is_no_socket(sock_dir):
    path = os.path.join(sock_dir, 'plain')
    with open(path, 'w', encoding='utf-8'):
        pass
    problems = socket_problems([path], 'no-such-user-zd')
    assert problems == ["nginx_upstream: nginx's user 'no-such-user-zd' (nginx_upstream_user) does not exist, so the access to %s "
                        "cannot be checked. Set nginx_upstream_user to the `user` of nginx.conf." % path]
    assert socket_problems([path], getpass.getuser()) == ['nginx_upstream: %s exists but is not a Unix socket; nginx cannot proxy to it.'
                                                          % path]
    assert stat.S_ISREG(os.stat(path).st_mode)


def test_keep_state_keeps_a_live_server_up_or_down_and_takes_the_rest_from_the_wanted_file():
    wanted = render('unix:/run/shop/shop-2.sock', 'max_fails=0', down=False)
    live_down = render('unix:/run/shop/shop-2.sock', 'max_fails=3', down=True)
    kept = keep_state(wanted, live_down)
    assert parse_servers(kept)[0].down and parse_servers(kept)[0].options == ('max_fails=0',)
    assert keep_state(wanted, None) == wanted  # a new file is written as wanted
    other = render('unix:/run/shop/shop-9.sock', '', down=True)
    assert keep_state(wanted, other) == wanted  # another server: not the same file's state


def test_site_keeps_the_server_states_the_surge_left(conf, tmp_path):
    etc, dummy = conf
    servers_dir = etc / 'conf.d' / 'shop.servers'
    servers_dir.mkdir()
    one, two = 'unix:/run/shop/shop-1.sock', 'unix:/run/shop/shop-2.sock'
    (servers_dir / file_name(one)).write_text(render(one, 'max_fails=0', down=True))
    (servers_dir / file_name(two)).write_text(render(two, 'max_fails=0', down=False))
    wanted = {file_name(one): render(one, 'max_fails=0', down=False), file_name(two): render(two, 'max_fails=0', down=False)}
    site = Site('shop', {}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'), servers_dir=str(servers_dir), servers=wanted,
                keep_states=True)
    assert site.changed_servers == []
    plain = Site('shop', {}, str(etc / 'nginx.conf'), str(tmp_path / 'stage'), servers_dir=str(servers_dir), servers=wanted)
    assert plain.changed_servers == [file_name(one)]


def test_more_instances_start_down_and_a_live_slot_above_the_wanted_ones_stays_up():
    def up(k):
        return render('unix:/run/shop/shop-%d.sock' % k, 'max_fails=0', down=False)

    def down(k):
        return render('unix:/run/shop/shop-%d.sock' % k, 'max_fails=0', down=True)

    name = dict((k, file_name('unix:/run/shop/shop-%d.sock' % k)) for k in range(1, 7))
    # From 1 instance (slots 1..2, 2 live) to 2 (slots 1..4): 3 and 4 have no process yet, so no request may go there.
    files = kept_states(dict((name[k], up(k)) for k in (1, 2, 3, 4)), {name[1]: down(1), name[2]: up(2)})
    assert files == {name[1]: down(1), name[2]: up(2), name[3]: down(3), name[4]: down(4)}
    # After a shrink slot 5 is live but not wanted: it serves until the next restart drains it; down 6 goes.
    files = kept_states(dict((name[k], up(k)) for k in (1, 2)), {name[1]: up(1), name[2]: down(2), name[5]: up(5), name[6]: down(6)})
    assert files == {name[1]: up(1), name[2]: down(2), name[5]: up(5)}
    # A site without server files yet: written as wanted.
    assert kept_states({name[1]: up(1)}, {}) == {name[1]: up(1)}
