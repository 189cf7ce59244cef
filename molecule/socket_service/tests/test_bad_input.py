# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bad-input table (tests/bad_input/cases.yml) against a real host: every case is refused with an error that names
the variable, and nothing on the host changed.

Each role's cases run in one play (the rejections fixture), as include_role with the case's variables, exactly as a
user's play would. Before and after, the host's state is summed up: every path, type, link target, mode, owner and
size under /etc/systemd/system, /run/systemd/system, /etc/nginx and /srv, the content of their files, and
/etc/passwd, /etc/group and /etc/shadow. The unit test tests/unit/plugins/module_utils/test_validate.py runs the same
table through the validator without a host.
"""
import os

import pytest
import yaml

from zd_scenario import podman_exec  # pylint: disable=import-error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
with open(os.path.join(ROOT, "tests", "bad_input", "cases.yml"), encoding="utf-8") as _handle:
    TABLE = yaml.safe_load(_handle)
# What exists on the controller for the table's placeholders.
PLACEHOLDERS = {"@DIR@": os.path.join(ROOT, "tests", "apps"), "@FILE@": os.path.join(ROOT, "tests", "bad_input", "cases.yml")}
ROLES = sorted(set(case["role"] for case in TABLE["cases"]))
STATE = r"""
for d in /etc/systemd/system /run/systemd/system /etc/nginx /srv; do
  [ -e "$d" ] && find "$d" -printf '%p %y %l %m %U %G %s\n'
done | LC_ALL=C sort
for d in /etc/systemd/system /etc/nginx /srv; do
  [ -e "$d" ] && find "$d" -type f -exec sha256sum {} +
done | LC_ALL=C sort
sha256sum /etc/passwd /etc/group /etc/shadow
"""

# socket_service-trixie runs these tests too; the table does not depend on the distribution, so once is enough.
pytestmark = pytest.mark.skipif(os.environ.get("MOLECULE_SCENARIO_NAME", "socket_service") != "socket_service",
                                reason="the bad-input table runs in the socket_service scenario only")


def controller_paths(value):
    if isinstance(value, dict):
        return dict((key, controller_paths(item)) for key, item in value.items())
    if isinstance(value, list):
        return [controller_paths(item) for item in value]
    return PLACEHOLDERS.get(value, value) if isinstance(value, str) else value


def host_state(container):
    result = podman_exec(container, "sh", "-c", STATE)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("role", ROLES)
def test_every_bad_input_is_refused_naming_the_variable_and_the_host_is_unchanged(rejections, container, role):
    cases = [case for case in TABLE["cases"] if case["role"] == role]
    baseline = controller_paths(TABLE["baselines"][role])
    before = host_state(container)
    results = rejections("zerodown.deploy." + role, dict((case["id"], dict(baseline, **controller_paths(case["vars"])))
                                                         for case in cases),
                         tasks_from=dict((case["id"], case["entry"]) for case in cases if case.get("entry")))
    after = host_state(container)
    problems = []
    for case in cases:
        message = " ".join((results.get(case["id"]) or "").split())
        if results.get(case["id"]) is None:
            problems.append("%s: not refused" % case["id"])
        elif " ".join(case["error"].split()) not in message:
            problems.append("%s: %s" % (case["id"], message[:600]))
    assert problems == [], "\n".join(problems)
    assert before == after, "the host changed"
    print("%s: %d bad inputs refused, host unchanged" % (role, len(cases)))
