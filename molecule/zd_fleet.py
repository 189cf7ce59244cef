# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet scenario's hosts and how to drive them (the shared harness, beside zd_scenario.py): used by
molecule/fleet/tests/test_fleet.py and by the fleet benchmark (tools/bench_fleet.py), which imports no test file.

zd-fleet-lb runs nginx with one TCP upstream server per app host;
zd-fleet-1..3 run the app behind their own nginx. Every play is the
collection's own deploy or rollback playbook, run from the controller.
"""
import json
import os

from zd_scenario import BackgroundLoad, during, load_vars, podman_exec, podman_inventory  # pylint: disable=import-error
from zd_scenario import release_state, run_playbook, source_tree  # pylint: disable=import-error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "molecule", "fleet")
APP_SOURCE = os.path.join(ROOT, "tests", "apps", "hello_wsgi.py")
SOURCES = "/tmp/zd-fleet-sources"
LB = "zd-fleet-lb"
WEB = ["zd-fleet-1", "zd-fleet-2", "zd-fleet-3"]
BASE = "/srv/shop"
SERVER_NAME = "shop.test"
SERVERS_DIR = "/etc/nginx/conf.d/shop.servers"
WAVE_PLAYS = ("Deploy with zero downtime, wave by wave", "Roll back to a good release")
# The load through the load balancer: a steady rate, so its bounds (20 minutes, 200000 requests) never end it
# before the playbook run it spans.
LOAD_RATE = "150"
LOAD_SECONDS = 1200


def playbook(name, extra=None, limit=None, check=False, inventory_vars=None):
    """Run zerodown.deploy.NAME against the fleet (inventory_vars added to group_vars/all); the CompletedProcess has
    .seconds (wall time)."""
    inventory = podman_inventory(dict(load_vars(os.path.join(SCENARIO, "inventory", "group_vars", "all.yml")), **(inventory_vars or {})),
                                 children={"zerodown_lb": [LB], "web": WEB})
    return run_playbook(name, inventory, extra, check=check, limit=limit)


def deploy(name, extra=None, limit=None, check=False, **settings):
    source = {"app_source": {"type": "local", "path": source_tree(SOURCES, APP_SOURCE, name, **settings)}}
    return playbook("deploy", dict(source, **(extra or {})), limit, check)


def waves(proc):
    """The batches the deploy or rollback play ran (one play header per wave)."""
    return sum(proc.stdout.count("PLAY [%s]" % name) for name in WAVE_PLAYS)


def state(container):
    """current and the status of every release, from the release module's manifest."""
    found = release_state(container, BASE)
    return {"current": found["current"], "statuses": found["statuses"]}


ASK = r"""
import http.client, json, sys
answers = []
for _ in range(int(sys.argv[1])):
    conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    conn.request("GET", "/", headers={"Host": "shop.test"})
    response = conn.getresponse()
    body = response.read()
    answers.append({"status": response.status, **(json.loads(body) if response.status == 200 else {})})
    conn.close()
print(json.dumps(answers))
"""


def through_lb(count=30):
    """count GETs through the load balancer: [{status, release, host, ...}]."""
    result = podman_exec(LB, "python3", "-c", ASK, str(count))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hostnames():
    return dict((podman_exec(name, "hostname").stdout.strip(), name) for name in WEB)


def lb_servers():
    """{file name: its server line} of the load balancer's upstream."""
    listing = podman_exec(LB, "sh", "-c", "grep -H '^server' %s/*.conf" % SERVERS_DIR).stdout
    return dict(line.split(":", 1) for line in listing.strip().splitlines())


def lb_load(tag="fleet", start=BackgroundLoad):
    """GET and POST through the load balancer's nginx, from inside its container."""
    return start(LB, "http://127.0.0.1:80", tag, duration=LOAD_SECONDS, workers=4, max_requests=200000,
                 extra=("--host-header", SERVER_NAME, "--rate", LOAD_RATE))


def loaded(action, start=BackgroundLoad):
    """Run action() while a load runs through the load balancer; returns (its result, the load's report)."""
    result, reports = during({LB: lb_load(start=start)}, action)
    return result, reports[LB]
