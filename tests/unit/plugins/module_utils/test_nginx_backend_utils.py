# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The server file format, the validation of what goes into it, the change plan and the drain wait of _nginx_backend."""

from __future__ import annotations

import os

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _nginx_backend as nb


# ------------------------------------------------------------------ backend and server_options

@pytest.mark.parametrize('backend', [
    'app1.internal:8000',
    'app-1.example.com:80',
    'app_1:8000',
    '10.0.0.5:8000',
    '127.0.0.1:65535',
    '[fd00::5]:8000',
    '[::1]:1',
    '[::ffff:10.0.0.5]:8000',
    'unix:/run/shop.sock',
    'unix:/run/shop/app.sock',
])
def test_accepted_backends(backend):
    assert nb.check_backend(backend) == backend


@pytest.mark.parametrize('backend, message', [
    ('', 'backend must not be empty'),
    ('app1:8000 app2:8000', 'backend must not contain spaces'),
    ('app1:8000\t', 'backend must not contain spaces'),
    ('app1:8000;', "backend must not contain ';'"),
    ('app1:8000;\nserver evil:80', 'backend must not contain line breaks'),
    ('app1:8000\n', 'backend must not contain line breaks'),
    ('app1:8000\r', 'backend must not contain line breaks'),
    ('app1:80{', 'backend must not contain braces'),
    ('app1:80}', 'backend must not contain braces'),
    ('app1:80#x', "backend must not contain '#'"),
    ('app1:80\x00', 'backend must not contain control characters'),
    ('app1.internal', "backend 'app1.internal' is malformed"),
    ('http://app1:8000', "backend 'http://app1:8000' is malformed"),
    ('app1:http', "backend 'app1:http' is malformed"),
    ('-app1:8000', "backend '-app1:8000' is malformed"),
    ('app1:0', 'backend app1:0 has port 0, outside 1-65535'),
    ('app1:70000', 'backend app1:70000 has port 70000, outside 1-65535'),
    ('[fd00::5]:99999', 'backend [fd00::5]:99999 has port 99999, outside 1-65535'),
    ('[fd00::zz]:80', "backend '[fd00::zz]:80' is malformed"),
    ('[fd00:::5]:80', 'fd00:::5 is not an IPv6 address'),
    ('[fd00::5]', "backend '[fd00::5]' is malformed"),
    ('fd00::5:80', "backend 'fd00::5:80' is malformed"),
    ('unix:run/shop.sock', 'a unix: backend must be an absolute path'),
    ('unix:/run/', 'a unix: backend must be an absolute path'),
    ('unix:/', 'a unix: backend must be an absolute path'),
    ('unix:/run/"x".sock', 'a unix: backend must be an absolute path'),
])
def test_rejected_backends(backend, message):
    with pytest.raises(nb.BackendError) as exc:
        nb.check_backend(backend)
    assert message in str(exc.value)


@pytest.mark.parametrize('options, expected', [
    ('max_fails=3 fail_timeout=10s', 'max_fails=3 fail_timeout=10s'),
    ('  weight=2   max_conns=100 ', 'weight=2 max_conns=100'),
    ('backup', 'backup'),
    ('', ''),
])
def test_accepted_server_options_are_normalised(options, expected):
    assert nb.check_server_options(options) == expected


@pytest.mark.parametrize('options, message', [
    ('max_fails=3; server evil:80', "server_options must not contain ';'"),
    ('max_fails=3\nserver evil:80', 'server_options must not contain line breaks'),
    ('weight=2 }', 'server_options must not contain braces'),
    ('weight=2 {', 'server_options must not contain braces'),
    ('weight=2 # heavy', "server_options must not contain '#'"),
    ('weight=2\x07', 'server_options must not contain control characters'),
    ('max_fails=3 down', "server_options must not contain 'down': state (up or down) decides it"),
    ('weight 2', "server_options: '2' is not an nginx server parameter"),
    ('max-fails=3', "server_options: 'max-fails=3' is not an nginx server parameter"),
    ('weight="2"', "server_options: 'weight=\"2\"' is not an nginx server parameter"),
])
def test_rejected_server_options(options, message):
    with pytest.raises(nb.BackendError) as exc:
        nb.check_server_options(options)
    assert message in str(exc.value)


# ------------------------------------------------------------------ the file: name, render, parse

@pytest.mark.parametrize('backend, name', [
    ('app1.internal:8000', 'app1.internal_8000.conf'),
    ('10.0.0.5:8000', '10.0.0.5_8000.conf'),
    ('[fd00::5]:8000', '_fd00__5__8000.conf'),
    ('unix:/run/shop.sock', 'unix__run_shop.sock.conf'),
])
def test_file_name_is_readable_and_matched_by_the_include(backend, name):
    assert nb.file_name(backend) == name
    assert name.endswith('.conf') and not name.startswith('.') and '/' not in name


def test_render_is_one_server_statement_with_down_last():
    up = nb.render('app1:8000', 'max_fails=3 fail_timeout=10s', down=False)
    down = nb.render('app1:8000', 'max_fails=3 fail_timeout=10s', down=True)
    assert up == nb.HEADER + 'server app1:8000 max_fails=3 fail_timeout=10s;\n'
    assert down == nb.HEADER + 'server app1:8000 max_fails=3 fail_timeout=10s down;\n'
    assert all(line.startswith('#') for line in nb.HEADER.splitlines())
    assert nb.render('unix:/run/a.sock', '', down=False).endswith('\nserver unix:/run/a.sock;\n')


@pytest.mark.parametrize('down', [False, True])
def test_parse_reads_back_what_render_wrote(down):
    text = nb.render('[fd00::5]:8000', 'weight=2 max_fails=1', down=down)
    assert nb.parse_servers(text) == [nb.Server('[fd00::5]:8000', ('weight=2', 'max_fails=1'), down)]


def test_parse_reads_hand_written_files_and_ignores_comments():
    text = ('# server commented:1;\n'
            'server a:1 max_fails=3; server b:2 down backup;  # trailing comment; server c:3;\n'
            '  server\n    unix:/run/d.sock\n    weight=5;\n'
            'keepalive 4;\n')
    assert nb.parse_servers(text) == [
        nb.Server('a:1', ('max_fails=3',), False),
        nb.Server('b:2', ('backup',), True),
        nb.Server('unix:/run/d.sock', ('weight=5',), False),
    ]


def test_read_servers_dir_reads_what_the_include_glob_reads(tmp_path):
    (tmp_path / 'a_1.conf').write_text('server a:1;\n')
    (tmp_path / '.a_1.conf.tmp-1-abc').write_text('server half:1;\n')
    (tmp_path / '.hidden.conf').write_text('server hidden:1;\n')
    (tmp_path / 'notes.txt').write_text('server notes:1;\n')
    (tmp_path / 'dir.conf').mkdir()
    assert nb.read_servers_dir(str(tmp_path)) == {'a_1.conf': 'server a:1;\n'}


# ------------------------------------------------------------------ the plan

def files_of(**states):
    """{file name: text} of servers NAME_PORT given as keyword arguments name='up'|'down' (port 80)."""
    return dict((nb.file_name('%s:80' % name), nb.render('%s:80' % name, nb.DEFAULT_SERVER_OPTIONS, state == 'down'))
                for name, state in states.items())


def test_a_new_backend_gets_the_default_options():
    plan = nb.plan_change('/d', {}, 'a:80', 'up', None)
    assert plan.changed and plan.previous_state == 'absent' and plan.previous_text is None
    assert plan.path == '/d/a_80.conf'
    assert plan.new_text.endswith('server a:80 max_fails=3 fail_timeout=10s;\n')
    assert not plan.takes_out


def test_down_and_up_keep_the_options_the_role_wrote():
    files = {'a_80.conf': nb.render('a:80', 'max_fails=0 fail_timeout=30s', False), 'b_80.conf': nb.render('b:80', '', False)}
    down = nb.plan_change('/d', files, 'a:80', 'down', None)
    assert down.new_text.endswith('server a:80 max_fails=0 fail_timeout=30s down;\n')
    assert down.previous_state == 'up' and down.takes_out
    up = nb.plan_change('/d', dict(files, **{'a_80.conf': down.new_text}), 'a:80', 'up', None)
    assert up.new_text == files['a_80.conf'] and up.previous_state == 'down' and not up.takes_out


def test_explicit_options_replace_the_existing_ones():
    plan = nb.plan_change('/d', files_of(a='up'), 'a:80', 'up', 'weight=3')
    assert plan.changed and plan.new_text.endswith('server a:80 weight=3;\n')


@pytest.mark.parametrize('state', ['up', 'down', 'absent'])
def test_the_same_state_again_changes_nothing(state):
    files = files_of(a=state, b='up') if state != 'absent' else files_of(b='up')
    plan = nb.plan_change('/d', files, 'a:80', state, None)
    assert not plan.changed and not plan.takes_out and plan.previous_state == state


def test_taking_out_the_last_server_up_is_refused_with_the_others_states():
    with pytest.raises(nb.BackendError) as exc:
        nb.plan_change('/lb/shop.servers', files_of(a='up', b='down', c='down'), 'a:80', 'down', None)
    assert str(exc.value) == (
        'refusing to mark a:80 down: it is the last server that is up in /lb/shop.servers (the others: b:80 down, c:80 down), '
        'and nginx would answer 502 to every request of the upstream. Mark another server up first, or set allow_last_down: true '
        'to take it out anyway.')


def test_removing_the_last_server_up_is_refused_too():
    with pytest.raises(nb.BackendError, match=r'refusing to mark a:80 absent: .*\(no other server is listed there\)'):
        nb.plan_change('/d', files_of(a='up'), 'a:80', 'absent', None)


def test_allow_last_down_takes_the_last_server_out():
    plan = nb.plan_change('/d', files_of(a='up', b='down'), 'a:80', 'down', None, allow_last_down=True)
    assert plan.changed and plan.takes_out


def test_another_server_up_allows_the_drain():
    plan = nb.plan_change('/d', files_of(a='up', b='down', c='up'), 'a:80', 'down', None)
    assert plan.takes_out and [o[:2] for o in plan.others] == [('b:80', 'down'), ('c:80', 'up')]


def test_servers_that_are_not_up_need_no_refusal():
    assert nb.plan_change('/d', files_of(a='down'), 'a:80', 'absent', None).changed
    assert nb.plan_change('/d', {}, 'a:80', 'down', None).changed


def test_a_backend_declared_in_another_file_is_refused():
    files = dict(files_of(b='up'), **{'legacy.conf': 'server a:80;\n'})
    with pytest.raises(nb.BackendError, match=r'backend a:80 is also declared in /d/legacy.conf; remove it there first'):
        nb.plan_change('/d', files, 'a:80', 'down', None)


@pytest.mark.parametrize('text, found', [
    ('server other:80;\n', 'other:80'),
    ('server a:80; server b:80;\n', 'a:80, b:80'),
    ('# empty\n', 'no server statement'),
])
def test_a_file_holding_something_else_is_not_overwritten(text, found):
    with pytest.raises(nb.BackendError) as exc:
        nb.plan_change('/d', {'a_80.conf': text}, 'a:80', 'up', None)
    assert str(exc.value).startswith('/d/a_80.conf should hold the one server a:80 but holds %s' % found)


# ------------------------------------------------------------------ /proc and the drain wait

def write_stat(root, pid, ppid, starttime, state='S', comm='nginx'):
    os.makedirs(os.path.join(root, str(pid)), exist_ok=True)
    fields = [state, str(ppid)] + ['0'] * 17 + [str(starttime)] + ['0'] * 30
    with open(os.path.join(root, str(pid), 'stat'), 'w') as handle:
        handle.write('%d (%s) %s\n' % (pid, comm, ' '.join(fields)))


def remove_proc(root, pid):
    os.unlink(os.path.join(root, str(pid), 'stat'))
    os.rmdir(os.path.join(root, str(pid)))


def test_proc_table_reads_state_parent_and_start_time(tmp_path):
    root = str(tmp_path)
    write_stat(root, 10, 1, 500, comm='nginx: worker (x) process')
    assert nb.ProcTable(root).stat(10) == nb.ProcStat('S', 1, 500)
    assert nb.ProcTable(root).stat(11) is None


def test_proc_table_reads_the_real_proc():
    stat = nb.ProcTable().stat(os.getpid())
    assert stat.ppid == os.getppid() and stat.starttime > 0
    assert os.getpid() in nb.ProcTable().children(os.getppid())


def test_children_leave_out_zombies_and_other_parents(tmp_path):
    root = str(tmp_path)
    write_stat(root, 10, 1, 100)
    write_stat(root, 11, 10, 200)
    write_stat(root, 12, 10, 201, state='Z')
    write_stat(root, 13, 99, 202)
    os.makedirs(os.path.join(root, 'self'))
    assert nb.ProcTable(root).children(10) == {11: 200}


def test_a_reused_pid_is_not_the_old_worker(tmp_path):
    root = str(tmp_path)
    write_stat(root, 11, 10, 200)
    table = nb.ProcTable(root)
    assert table.running(11, 200)
    write_stat(root, 11, 10, 900)
    assert not table.running(11, 200)
    write_stat(root, 11, 10, 200, state='Z')
    assert not table.running(11, 200)


@pytest.mark.parametrize('text, message', [
    (None, "cannot read nginx's pid file"),
    ('', "does not hold a PID: ''"),
    ('abc\n', "does not hold a PID: 'abc'"),
    ('0\n', "does not hold a PID: '0'"),
])
def test_read_master_pid_errors(tmp_path, text, message):
    path = tmp_path / 'nginx.pid'
    if text is not None:
        path.write_text(text)
    with pytest.raises(nb.BackendError, match=message):
        nb.read_master_pid(str(path))


def test_read_master_pid(tmp_path):
    (tmp_path / 'nginx.pid').write_text('1234\n')
    assert nb.read_master_pid(str(tmp_path / 'nginx.pid')) == 1234


class FakeClock:
    """A clock that a scripted world advances: sleep() moves time and runs the events that are due."""

    def __init__(self, events):
        self.now = 0.0
        self.events = sorted(events, key=lambda e: e[0])
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        while self.events and self.events[0][0] <= self.now:
            self.events.pop(0)[1]()


@pytest.fixture
def world(tmp_path):
    """A /proc with master 10 and workers 11, 12; the pid file names 10."""
    root = str(tmp_path / 'proc')
    write_stat(root, 10, 1, 100)
    write_stat(root, 11, 10, 200)
    write_stat(root, 12, 10, 201)
    pid_file = tmp_path / 'nginx.pid'
    pid_file.write_text('10\n')
    return root, str(pid_file)


def watch_of(world, clock):
    root, pid_file = world
    table = nb.ProcTable(root)
    return nb.DrainWatch(table, pid_file, 10, table.children(10), interval=0.05, clock=clock, sleep=clock.sleep)


def test_the_drain_ends_when_every_old_worker_exited_and_a_new_one_runs(world):
    root = world[0]
    clock = FakeClock([
        (0.1, lambda: write_stat(root, 13, 10, 300)),  # the reload's new worker
        (0.3, lambda: remove_proc(root, 11)),
        (0.6, lambda: write_stat(root, 12, 10, 201, state='Z')),  # exited, not reaped yet
    ])
    result = watch_of(world, clock).wait(5)
    assert result.done and result.remaining == [] and result.new_workers == [13]
    assert result.seconds == pytest.approx(0.6, abs=0.051)
    assert max(clock.sleeps) <= 0.05


def test_the_wait_for_old_workers_is_bounded(world):
    root = world[0]
    clock = FakeClock([(0.1, lambda: write_stat(root, 13, 10, 300)), (0.2, lambda: remove_proc(root, 11))])
    result = watch_of(world, clock).wait(2)
    assert not result.done and result.remaining == [12] and result.new_workers == [13]
    assert result.seconds == pytest.approx(2, abs=1e-6)


def test_a_reload_without_a_new_worker_is_not_done(world):
    root = world[0]
    clock = FakeClock([(0.1, lambda: remove_proc(root, 11)), (0.1, lambda: remove_proc(root, 12))])
    result = watch_of(world, clock).wait(1)
    assert not result.done and result.remaining == [] and result.new_workers == []


def test_without_a_drain_only_a_new_worker_is_waited_for(world):
    root = world[0]
    clock = FakeClock([(0.25, lambda: write_stat(root, 13, 10, 300))])
    result = watch_of(world, clock).wait(5, old_must_exit=False)
    assert result.done and result.remaining == [11, 12] and result.new_workers == [13]
    assert result.seconds == pytest.approx(0.25, abs=0.051)


def test_new_workers_are_read_from_the_current_master(world):
    """nginx restarted by someone else: the old workers are gone, the new master's workers count as new."""
    root, pid_file = world

    def restart():
        for pid in (10, 11, 12):
            remove_proc(root, pid)
        write_stat(root, 20, 1, 400)
        write_stat(root, 21, 20, 401)
        with open(pid_file, 'w') as handle:
            handle.write('20\n')

    clock = FakeClock([(0.2, restart)])
    result = watch_of(world, clock).wait(5)
    assert result.done and result.new_workers == [21]
