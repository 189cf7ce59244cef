# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""examples/ as a user copies it, on a host that had no nginx.

Each test copies examples/ into a temporary directory and makes the one edit
a user must make, the hosts of the inventory (web1 is this scenario's
container, over podman; web2 goes). It then runs the command the example's
inventory gives, `ansible-playbook -i inventory.yml deploy.yml`, from the
copy, so that the copy's ansible.cfg, group_vars/web/main.yml and vault.yml
(whose placeholder secrets are used as shipped) are what the deploy reads.
The only value given on the command line is the app's source, the git
repository converge.yml made on the host (the example's git.example.com does
not exist here). The tests run in file order: the first deploy, a second run
that changes nothing, then app_server_name _ (nginx's catch-all) on the nginx
the first deploy installed, whose Debian default site would shadow it; last,
the same example on a host that has neither sudo nor nginx and is reached as
root (its inventory entry sets ansible_become_method: su; ansible_become:
false is refused before any change), with app_server_name _.
"""
import json
import os
import shutil
import subprocess
import tempfile

import yaml

from zd_scenario import ANSI, GET, podman_exec, said  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
EXAMPLES = os.path.join(ROOT, "examples")
CONTAINER = "zd-%s" % os.environ.get("MOLECULE_SCENARIO_NAME", "examples")
# A host without sudo, reached as root: its inventory entry becomes root through su.
PLAIN = CONTAINER + "-plain"
PODMAN = {"ansible_connection": "containers.podman.podman"}
SOURCE = {"app_source": {"type": "git", "repo": "file:///srv/git/shop.git", "version": "main"}}


def copy_of_examples(directory, hosts):
    """examples/ copied into directory, its inventory's hosts replaced by ``hosts``; returns the copy's path."""
    copy = os.path.join(directory, "examples")
    shutil.copytree(EXAMPLES, copy)
    path = os.path.join(copy, "inventory.yml")
    with open(path, encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    inventory["web"]["hosts"] = hosts
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle)
    return copy


def run_example(extra=None, hosts=None):
    """`ansible-playbook -i inventory.yml deploy.yml` in a fresh copy of examples/, with the copy's ansible.cfg; the
    inventory's hosts are ``hosts`` (default: web1 is CONTAINER)."""
    directory = tempfile.mkdtemp(prefix="zd-examples-")
    try:
        copy = copy_of_examples(directory, hosts or {CONTAINER: PODMAN})
        env = dict(os.environ, ANSIBLE_NOCOLOR="1")
        # Molecule's own configuration must not stand in for the example's.
        for name in ("ANSIBLE_CONFIG", "ANSIBLE_FORCE_COLOR", "ANSIBLE_INVENTORY"):
            env.pop(name, None)
        proc = subprocess.run(["ansible-playbook", "-i", "inventory.yml", "deploy.yml", "-e", json.dumps(dict(SOURCE, **(extra or {})))],
                              cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        proc.stdout = ANSI.sub("", proc.stdout)
        return proc
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def answer(host_header, container=CONTAINER):
    """What the host's nginx answers on port 80 for that Host: {"status", "body"} (the body parsed when it is JSON)."""
    result = json.loads(podman_exec(container, "python3", "-c", GET, host_header).stdout)
    try:
        result["body"] = json.loads(result["body"])
    except ValueError:
        pass
    return result


def recap(proc):
    """The PLAY RECAP counts of the container: {"ok": N, "changed": N, ...}."""
    line = [text for text in proc.stdout.splitlines() if text.startswith(CONTAINER + " ") and "changed=" in text][-1]
    return dict((key, int(value)) for key, value in (item.split("=") for item in line.split(":", 1)[1].split()))


def test_the_example_deploys_as_copied_and_installs_nginx_itself():
    assert podman_exec(CONTAINER, "sh", "-c", "command -v nginx").returncode != 0, "prepare.yml should have removed nginx"
    proc = run_example()
    assert proc.returncode == 0, proc.stdout[-6000:]
    print(proc.stdout[-2500:])
    # A first release has no restart to measure; it passes the pre-flight and the health gate.
    assert "shop on %s: deployed" % CONTAINER in said(proc) and "health gate: HTTP 200 x5" in said(proc), said(proc)[-3000:]
    served = answer("shop.example.com")
    # The example's gunicorn command, settings module and secret (shared/.env) reached the app.
    assert served["status"] == 200 and served["body"]["app"] == "shop", served
    assert served["body"]["settings"] == "shop.settings.production" and served["body"]["secret_set"] is True, served
    assert podman_exec(CONTAINER, "dpkg-query", "-W", "-f", "${db:Status-Status}", "nginx").stdout == "installed"
    # The migrations ran once, as the deploy user, in the release (media/ is shared).
    log = podman_exec(CONTAINER, "cat", "/srv/shop/shared/media/migrations.log").stdout.splitlines()
    # ... with the settings module of app_environment.
    assert len(log) == 1 and log[0].endswith(" shop.settings.production"), log


def test_a_second_run_of_the_example_changes_nothing():
    proc = run_example()
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert recap(proc)["changed"] == 0 and recap(proc)["failed"] == 0, recap(proc)
    assert len(podman_exec(CONTAINER, "cat", "/srv/shop/shared/media/migrations.log").stdout.splitlines()) == 1


def test_server_name_underscore_serves_the_app_for_every_host_name_on_the_nginx_the_role_installed():
    # Before: Debian's default site of the nginx the first deploy installed answers other names.
    before = answer("anything.invalid")
    assert "Welcome to nginx" in str(before["body"]), before
    proc = run_example({"app_server_name": "_"})
    assert proc.returncode == 0, proc.stdout[-6000:]
    for name in ("anything.invalid", "127.0.0.1", "shop.example.com"):
        served = answer(name)
        assert served["status"] == 200 and isinstance(served["body"], dict) and served["body"]["app"] == "shop", (name, served)
    assert podman_exec(CONTAINER, "test", "-e", "/etc/nginx/sites-enabled/default").returncode != 0


def test_a_host_reached_as_root_whose_inventory_turns_become_off_is_refused_before_any_change():
    # ansible_become: false wins over every task's become, also the deploy user's build: refused by the lock step.
    proc = run_example({"app_server_name": "_"}, hosts={PLAIN: dict(PODMAN, ansible_become=False)})
    assert proc.returncode != 0 and "ansible_become is false for this host" in said(proc), said(proc)[-3000:]
    assert podman_exec(PLAIN, "test", "-e", "/srv/shop").returncode != 0, "the refused deploy changed the host"


def test_a_plain_debian_host_without_sudo_or_nginx_reached_as_root_deploys_and_answers_every_host_name():
    # The edit for a host reached as root without sudo: become through su. Nothing else differs from the example.
    assert podman_exec(PLAIN, "sh", "-c", "command -v sudo || command -v nginx").returncode != 0, "prepare.yml left sudo or nginx"
    proc = run_example({"app_server_name": "_"}, hosts={PLAIN: dict(PODMAN, ansible_become_method="su")})
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "sudo: not found" not in said(proc) and "sudo: command not found" not in said(proc)
    assert "shop on %s: deployed" % PLAIN in said(proc) and "health gate: HTTP 200 x5" in said(proc), said(proc)[-3000:]
    for name in ("anything.invalid", "127.0.0.1"):
        served = answer(name, PLAIN)
        assert served["status"] == 200 and isinstance(served["body"], dict) and served["body"]["secret_set"] is True, (name, served)
