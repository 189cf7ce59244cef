# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of module_utils/_restart, the backend of zero_downtime_restart, without AnsibleModule or a load.

systemctl is an in-process fake ``run_command`` with a fake clock; the
module's end-to-end tests (a real server, a fake systemctl on PATH) are in
tests/unit/plugins/modules/test_zero_downtime_restart.py.
"""

from __future__ import annotations

import pytest

from ansible_collections.zerodown.deploy.plugins.module_utils import _restart as restart
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd, SystemdError

# The module's defaults (its argument_spec), as AnsibleModule hands them over.
DEFAULTS = dict(service='hello', instances=1, mode='auto', command=None, target=None, path='/', host_header=None, health_path='/',
                health_target=None, workers=4, rate=None, post_ratio=0.5, post_body='zerodown=probe', keep_alive=False, timeout=10.0,
                before_seconds=2.0, after_seconds=2.0, max_duration=120.0, max_requests=50000, ready_timeout=60.0, max_failed=0,
                max_latency_ratio=None, timeline_path=None, marker_header='X-Served-By', ports=None, drain_timeout=None,
                max_latency_factor=None, latency_allowance_ms=0.0, boot_allowance=False, slots=None, gate_successes=0,
                gate_timeout=30.0)


def settings(**changes):
    return restart.RestartSettings(dict(DEFAULTS, **changes))


class Units:
    """run_command of a fake systemctl: ``show`` answers the next state of each unit (the last one repeats)."""

    def __init__(self, **timelines):
        self.timelines = timelines
        self.calls = []
        self.now = 0.0

    def __call__(self, argv, environ_update=None):
        self.calls.append(list(argv))
        self.now += 0.01
        unit = argv[-1]
        if argv[1] == 'show':
            states = self.timelines.get(unit) or [{'LoadState': 'not-found', 'ActiveState': 'inactive', 'MainPID': '0'}]
            shown = sum(1 for call in self.calls if call[1] == 'show' and call[-1] == unit)
            state = dict(states[min(shown, len(states)) - 1], Id=unit)
            return 0, ''.join('%s=%s\n' % item for item in state.items()), ''
        return 0, '', ''

    def systemd(self):
        return Systemd(self, clock=lambda: self.now, sleep=self.sleep)

    def sleep(self, seconds):
        self.now += seconds


def active(pid):
    return {'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running', 'Result': 'success', 'MainPID': str(pid), 'Type': 'exec'}


# -- settings -------------------------------------------------------------------------------


def test_settings_resolve_the_mode_and_name_the_units_like_the_roles():
    one = settings(service='hello.service')
    assert (one.service, one.mode, one.units) == ('hello', 'restart', ['hello.service'])
    two = settings(instances=2)
    assert (two.mode, two.units) == ('rolling', ['hello@1.service', 'hello@2.service'])
    assert two.describe() == 'rolling restart of 2 instances'
    assert settings(instances=2, mode='restart').describe() == 'restart of 2 instances at once'
    assert str(one.target) == 'unix:/run/hello.sock' and one.health_target is one.target


def test_bounds_name_the_phases_like_the_load_library():
    assert settings(before_seconds=1.5, after_seconds=0.5).bounds() == {
        'max_duration': 120.0, 'max_requests': 50000, 'before_seconds': 1.5, 'after_seconds': 0.5, 'ready_timeout': 60.0, 'workers': 4,
        'rate': None}


@pytest.mark.parametrize('changes, message', [
    (dict(service='x' * 65), 'service must be a unit base name such as hello'),
    (dict(service='a:b'), 'service must be a unit base name such as hello'),
    (dict(service='hello@1.service'), 'not an instance or template'),
    (dict(service='hello.socket'), 'not its socket'),
    (dict(before_seconds=3601), 'before_seconds must be >= 0 and <= 3600 seconds, got 3601'),
    (dict(after_seconds=-1.0), 'after_seconds must be >= 0 and <= 3600 seconds, got -1'),
    (dict(before_seconds=60.0, after_seconds=60.0), 'max_duration (120 s) must exceed before_seconds + after_seconds (120 s)'),
    (dict(max_latency_ratio=2.0, before_seconds=0.0), 'max_latency_ratio needs a baseline: before_seconds must be > 0'),
    (dict(ports=[8001, 8002]), 'ports is only used with mode=blue_green (mode is auto)'),
    (dict(max_latency_factor=0.0), 'max_latency_factor must be > 0'),
    (dict(max_latency_factor=3.0, before_seconds=0.0), 'max_latency_factor needs a baseline: before_seconds must be > 0'),
    (dict(mode='surge'), 'mode=surge needs slots (the instances behind nginx)'),
    (dict(slots={'listen': '/run/x/x.sock', 'servers_dir': '/x'}), 'slots is only used with mode=surge or mode=drain_rolling (mode is auto)'),
    (dict(mode='drain_rolling', slots={'listen': '/run/x/x.sock', 'servers_dir': '/x'}), 'instances must be 2 or more, got 1'),
    (dict(mode='surge', slots={'listen': '/run/x/x.sock', 'servers_dir': '/x'}, health_target='unix:/run/x.sock'), 'health_target is not used'),
])
def test_settings_refuse(changes, message):
    with pytest.raises(ModuleError) as exc:
        settings(**changes)
    assert message in str(exc.value)


def test_a_64_character_name_is_the_longest():
    assert settings(service='x' * 64).units == ['x' * 64 + '.service']


# -- the units must exist -------------------------------------------------------------------


def test_check_units_loaded_names_the_first_missing_unit():
    fake = Units(**{'hello@1.service': [active(1)]})
    with pytest.raises(ModuleError) as exc:
        restart.check_units_loaded(settings(instances=2), fake.systemd())
    assert str(exc.value).startswith('unit hello@2.service does not exist or cannot be loaded (hello@2.service: LoadState=not-found')
    assert str(exc.value).endswith('; nothing was restarted')
    restart.check_units_loaded(settings(), Units(**{'hello.service': [active(1)]}).systemd())


def test_check_units_loaded_of_blue_green_asks_for_both_slots(tmp_path, monkeypatch):
    from ansible_collections.zerodown.deploy.plugins.module_utils import _names
    monkeypatch.setattr(_names, 'LINK_DIR', str(tmp_path))
    fake = Units(**dict((unit, [active(0)]) for unit in ('shop-app@8001.service', 'shop-slot@8001.socket', 'shop-app@8002.service')))
    with pytest.raises(ModuleError, match='unit shop-slot@8002.socket does not exist'):
        restart.check_units_loaded(settings(service='shop', mode='blue_green'), fake.systemd())
    assert [call[-1] for call in fake.calls] == ['shop-app@8001.service', 'shop-slot@8001.socket', 'shop-app@8002.service',
                                                 'shop-slot@8002.socket']


def test_check_units_loaded_when_systemctl_fails():
    def broken(argv, environ_update=None):
        return 1, '', 'Failed to connect to bus\n'
    with pytest.raises(ModuleError, match='failed with rc 1: Failed to connect to bus'):
        restart.check_units_loaded(settings(), Systemd(broken))


# -- readiness of a restarted unit ----------------------------------------------------------


def test_wait_unit_waits_for_a_new_main_pid_and_records_it():
    fake = Units(**{'hello.service': [active(100), active(100), dict(active(0), ActiveState='activating'), active(101)]})
    action = restart.Action(settings(), fake.systemd(), origin=0.0)
    action._old_pids(['hello.service'])
    action.wait_unit('hello.service', deadline=10.0, new_pid=True)
    assert action.pids == {'hello.service': {'old': 100, 'new': 101}}


def test_wait_unit_that_failed_did_not_come_back():
    failed = dict(active(0), ActiveState='failed', Result='exit-code')
    fake = Units(**{'hello.service': [active(100), failed]})
    action = restart.Action(settings(), fake.systemd(), origin=0.0)
    action._old_pids(['hello.service'])
    with pytest.raises(SystemdError) as exc:
        action.wait_unit('hello.service', deadline=10.0, new_pid=True)
    assert str(exc.value) == ('hello.service did not come back: hello.service: LoadState=loaded ActiveState=failed SubState=running '
                              'Result=exit-code MainPID=0 Type=exec')
    assert action.pids['hello.service'] == {'old': 100, 'new': 0}


def test_wait_unit_gives_up_at_the_ready_timeout():
    fake = Units(**{'hello.service': [active(100)]})
    action = restart.Action(settings(ready_timeout=0.2), fake.systemd(), origin=0.0)
    action._old_pids(['hello.service'])
    with pytest.raises(SystemdError) as exc:
        action.wait_unit('hello.service', deadline=0.2, new_pid=True)
    assert str(exc.value).startswith('hello.service was not active with a main PID other than 100 within ready_timeout (0.2 s): '
                                     'hello.service: LoadState=loaded ActiveState=active')
    assert action.pids['hello.service'] == {'old': 100, 'new': 100}


def test_the_steps_are_the_clients_in_milliseconds_after_the_load_started():
    fake = Units(**{'hello.service': [active(100)]})
    systemd = fake.systemd()
    action = restart.Action(settings(), systemd, origin=-0.5)
    step = systemd.run('restart', ['hello.service'])
    step['ready'] = 1.0
    assert action.steps == [{'units': ['hello.service'], 'argv': ['systemctl', '--no-ask-password', 'restart', 'hello.service'], 'rc': 0,
                             'started_ms': 500.0, 'returned_ms': 510.0, 'ready_ms': 1500.0}]


def test_command_mode_without_systemctl_reads_no_unit():
    action = restart.Action(settings(mode='command', command=['true']), Systemd(lambda argv, environ_update=None: (0, '', ''), systemctl=None),
                            origin=0.0)
    action._old_pids(['hello.service'])
    assert action.pids == {'hello.service': {'old': None, 'new': None}} and action.known == set()


# -- results and verdicts -------------------------------------------------------------------


def phases(before_p99, during_p99):
    def phase(p99):
        latency = {'count': 10, 'p50': p99, 'p90': p99, 'p99': p99, 'max': p99}
        return {'requests': 10, 'ok': 10, 'failed': 0, 'failures_by_kind': {}, 'latency_ms': latency}
    return {'before': phase(before_p99), 'during': phase(during_p99), 'after': phase(before_p99)}


def test_phases_result_keeps_the_load_librarys_phase_names():
    report = {'phases': phases(1.0, 2.0), 'elapsed_s': 3.0, 'marks': [{'name': 'restart_begin', 'at_ms': 1000.0},
                                                                      {'name': 'restart_end', 'at_ms': 2000.0}]}
    result = restart.phases_result(report)
    assert set(result) == {'before', 'during', 'after'}
    assert result['during']['duration_s'] == 1.0 and result['during']['requests_per_s'] == 10.0


def test_latency_ratio_and_verdict():
    assert restart.latency_ratio(phases(2.0, 5.0)) == 2.5
    assert restart.latency_ratio(phases(None, 5.0)) is None and restart.latency_ratio(phases(2.0, None)) is None
    result = {'failed_requests': 0, 'requests': 30, 'failures_by_kind': {}, 'phases': phases(2.0, 5.0), 'latency_ratio': 2.5,
              'report': 'hello: ...'}
    warnings = []
    assert restart.verdict(settings(max_latency_ratio=3.0), result, warnings) is None
    assert restart.verdict(settings(max_latency_ratio=2.0), result, warnings) == (
        'p99 latency during the action is 2.5 times the baseline (5.0 ms vs 2.0 ms), above max_latency_ratio 2. hello: ...')
    failing = dict(result, failed_requests=3, failures_by_kind={'reset': 3, 'eof': 0})
    assert restart.verdict(settings(), failing, warnings) == '3 of 30 requests failed (max_failed 0): reset=3. hello: ...'
    assert restart.verdict(settings(max_latency_ratio=2.0), dict(result, phases=phases(None, 5.0), latency_ratio=None), warnings) == (
        'max_latency_ratio cannot be checked: no successful request in the baseline. hello: ...')
    assert restart.verdict(settings(max_latency_ratio=2.0), dict(result, phases=phases(2.0, None), latency_ratio=None), warnings) is None
    assert warnings == ['max_latency_ratio was not checked: no successful request overlapped the action']


def test_check_mode_builds_no_client_and_runs_nothing():
    made = []
    result, failure = restart.run_restart(settings(instances=2), made.append, check_mode=True)
    assert failure is None and made == [] and result['changed'] is True
    assert result['report'] == ('hello: would run a rolling restart of 2 instances under load on unix:/run/hello.sock '
                                '(at most 120 s and 50000 requests)')


# -- the latency bound ------------------------------------------------------------------------


class Record:
    def __init__(self, start, latency):
        self.start, self.end, self.latency = start, start + latency, latency


def test_slowest_request_names_the_step_that_ran_then():
    from types import SimpleNamespace
    run = SimpleNamespace(started_at=100.0, marks=[(restart.BEGIN_MARK, 102.0), (restart.END_MARK, 104.0)],
                          results=[Record(100.5, 0.010), Record(102.2, 0.020), Record(103.0, 0.900), Record(105.0, 2.0)])
    steps = [{'argv': ['systemctl', 'restart', 'hello@2.service'], 'units': ['hello@2.service'], 'started': 102.1,
              'returned': 102.2, 'ready': 102.5},
             {'argv': ['nginx', 'route', '2'], 'units': ['hello@2.service'], 'started': 102.9, 'returned': 103.5, 'ready': 103.6}]
    slowest = restart.slowest_request(run, SimpleNamespace(systemd=SimpleNamespace(steps=steps)))
    # The 2 s request after the end mark is not the restart's; the 900 ms one overlapped the route step.
    assert slowest == {'latency_ms': 900.0, 'at_s': 3.0, 'step': 'nginx route 2', 'units': ['hello@2.service']}
    assert restart.slowest_request(SimpleNamespace(started_at=0.0, marks=[], results=[]), None) is None


def test_latency_bound_and_its_verdict():
    result = {'failed_requests': 0, 'requests': 30, 'failures_by_kind': {}, 'phases': phases(10.0, 12.0), 'latency_ratio': 1.2,
              'report': 'hello: ...', 'action_duration_s': 1.5,
              'slowest': {'latency_ms': 400.0, 'at_s': 3.0, 'step': 'systemctl restart hello@1.service', 'units': []}}
    assert restart.latency_bound(settings(), result) is None
    assert restart.latency_bound(settings(max_latency_factor=3.0, latency_allowance_ms=250.0), result) == 280.0
    assert restart.latency_bound(settings(max_latency_factor=3.0, latency_allowance_ms=250.0, boot_allowance=True), result) == 1780.0
    assert restart.verdict(settings(max_latency_factor=3.0, latency_allowance_ms=250.0, boot_allowance=True), dict(result), []) is None
    message = restart.verdict(settings(max_latency_factor=3.0, latency_allowance_ms=250.0), dict(result), [])
    assert message == ('a request during the restart took 400.0 ms (at 3 s, while systemctl restart hello@1.service ran), above the '
                       'bound of 280.0 ms (3 x the steady p99 of 10.0 ms + 250.0 ms); raise app_verify_max_latency_factor or '
                       'app_verify_latency_allowance_ms if that is what this app does. hello: ...')
