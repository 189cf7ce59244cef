# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the release role promises, checked in the running systemd container.

converge.yml deployed /srv/app from files/app_v1 on the controller (release
L1). The tests below run in file order and build on each other:

  a no-op re-run waiting for the lock, git v1 (G1, all hooks, a migration),
  git main (G2), a failing build kept (B1) and one removed (B2), an archive
  (A: prune removes L1 and B1), rollback to G2, to G1 with the rollback
  playbook (marking G2 bad), refused to G2, a no-op deploy pruning with
  keep 1 while current is the oldest, a deploy refused because someone else
  holds the lock.

In the background, from the start: a reader process in the container that
resolves /srv/app/current every few milliseconds; the bad-input cases (in
/srv/rejected, which must never appear); and a deploy killed with SIGKILL
mid-build and run again (in /srv/crash, with its own reader).

Peer failures reproduced here as tests (none may happen):

* Non-atomic ``ln -sfn`` leaving ``current`` missing for an instant
  (Capistrano #1188, Mina #16): test_current_never_missing_or_incomplete_while_everything_ran
  (a reader in the container found ``current`` resolving to a complete
  release at every one of its observations, across every switch, rollback,
  failed build and killed run), and assert_current_valid() after every step.
* ``current`` deleted by cleanup (Deployer #3111):
  test_prune_after_a_rollback_never_removes_current (``current`` on the
  oldest release, keep 1), test_archive_release_and_prune_where_failed_builds_hold_no_slot.
* Failed releases using up keep-N slots so that good ones are pruned
  (Capistrano #1907): test_archive_release_and_prune_where_failed_builds_hold_no_slot.
* Rollback choosing by mtime and landing on the wrong or a bad release
  (ansistrano/rollback #10): test_rollback_chooses_by_switch_order_never_by_mtime
  (mtimes are made to lie first), test_rollback_to_a_bad_release_is_refused.
* Stale or racy locks (Deployer #3335, #958): test_second_deploy_fails_naming_the_holder,
  test_same_deploy_again_waits_for_the_lock_then_changes_nothing_and_never_prints_the_env,
  test_killed_deploy_leaves_current_complete_and_rerun_takes_over_the_lock.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

from zd_scenario import ansible_env, ansible_playbook, ok, podman_exec, said, write_play  # pylint: disable=import-error
from zd_scenario import recap as recaps  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
ROLE = "zerodown.deploy.release"
BASE = "/srv/app"
REJECTED_BASE = "/srv/rejected"
CRASH_BASE = "/srv/crash"
REPO = "/srv/src/app.git"
SECRET = "zd-secret-value-3141"
HOOK_LOG = "/tmp/zd-hooks.log"
FACT_NAMES = ("release_id", "release_path", "release_previous", "release_switched")
HOOK_PHASES = ("before_fetch", "after_fetch", "before_build", "after_build", "before_switch", "after_switch",
               "before_cleanup", "after_cleanup")

# Deploys after the first link one shared directory and build one file, to
# keep the scenario quick; converge.yml's full set is checked on L1.
LIGHT = {
    "release_shared_dirs": ["storage/logs"],
    "release_shared_files": [],
    "release_env": {},
    "release_build_commands": ['echo "built $ZERODOWN_RELEASE_ID by $(id -un)" > BUILD_INFO'],
}
GIT = {"release_source_type": "git", "release_git_repo": REPO}

# Runs in the container for the whole test module: resolves current, and the
# two files every release built here has, as often as it can.
READER = r"""
import json, os, sys, time
base, stop, out = sys.argv[1:4]
seen = failures = 0
examples, targets = [], []
while not os.path.exists(stop):
    seen += 1
    try:
        target = os.readlink(os.path.join(base, "current"))
        if not target.startswith("releases/"):
            raise ValueError("unexpected target %r" % target)
        for name in ("app.txt", "BUILD_INFO"):
            os.stat(os.path.join(base, "current", name))
        if not targets or targets[-1] != target:
            targets.append(target)
    except Exception as exc:
        failures += 1
        if len(examples) < 5:
            examples.append(repr(exc))
    time.sleep(0.005)
with open(out + ".tmp", "w") as handle:
    json.dump({"seen": seen, "failures": failures, "examples": examples, "targets": targets}, handle)
os.rename(out + ".tmp", out)
"""

# One look at a base directory in one podman exec: current, release
# directories, the manifest, what the current release holds.
LOOK = r"""
import json, os, sys
base = sys.argv[1]
out = {"current": None, "dirs": [], "manifest": {"releases": {}}, "app": None, "built": False,
       "lock": os.path.exists(os.path.join(base, ".zerodown", "deploy.lock"))}
try:
    out["current"] = os.readlink(os.path.join(base, "current"))
except OSError:
    pass
try:
    out["dirs"] = sorted(name for name in os.listdir(os.path.join(base, "releases")) if not name.startswith("."))
except OSError:
    pass
try:
    with open(os.path.join(base, ".zerodown", "manifest.json")) as handle:
        out["manifest"] = json.load(handle)
except (OSError, ValueError):
    pass
try:
    with open(os.path.join(base, "current", "app.txt")) as handle:
        out["app"] = handle.read().strip()
    out["built"] = os.path.isfile(os.path.join(base, "current", "BUILD_INFO"))
except OSError:
    pass
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- helpers

def converge_vars():
    """The role variables converge.yml used, so every run starts from the same input."""
    with open(os.path.join(SCENARIO, "converge.yml"), encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    role_vars = play["tasks"][0]["vars"]
    text = yaml.safe_dump(role_vars).replace("{{ playbook_dir }}", SCENARIO)
    return yaml.safe_load(text)


class Run:
    """One ansible-playbook run of the role against the container; saves the role's facts."""

    def __init__(self, container, role_vars, tasks_from="main", extra=(), env=None):
        self.env = env
        self.directory = tempfile.mkdtemp(prefix="zd-run-")
        self.facts_file = os.path.join(self.directory, "facts.json")
        include = {"name": ROLE}
        if tasks_from != "main":
            include["tasks_from"] = tasks_from
        save = "{{ {%s} | to_json }}" % ", ".join("'%s': %s | default(none)" % (name, name) for name in FACT_NAMES)
        self.container = container
        self.extra = extra
        self.playbook = write_play(self.directory, name="Release test", tasks=[
            {"name": "Run the role", "ansible.builtin.include_role": include, "vars": role_vars},
            {"name": "Save the facts", "ansible.builtin.copy": {"content": save, "dest": self.facts_file, "mode": "0600"},
             "delegate_to": "localhost", "become": False, "changed_when": False},
        ])

    def run(self):
        proc = ansible_playbook(self.playbook, [self.container], args=self.extra, env=self.env)
        proc.elapsed = proc.seconds
        try:
            with open(self.facts_file, encoding="utf-8") as handle:
                proc.facts = json.load(handle)
        except (OSError, ValueError):
            proc.facts = None
        self.cleanup()
        return proc

    def start(self):
        """Start in a new session, so the whole process group can be killed like a crashed controller."""
        return ansible_playbook(self.playbook, [self.container], args=self.extra, start=True)

    def cleanup(self):
        shutil.rmtree(self.directory, ignore_errors=True)


def deploy(container, **overrides):
    return Run(container, dict(converge_vars(), **dict(LIGHT, **overrides))).run()


def rollback(container, **role_vars):
    return Run(container, dict({"release_base_path": BASE}, **role_vars), tasks_from="rollback").run()


def module(container, args):
    """The release module run directly (ad hoc), as an operator or another tool would."""
    argv = ["ansible", "all", "-i", container + ",", "-c", "containers.podman.podman", "-m", "zerodown.deploy.release", "-a", args]
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(), check=False)


def recap(proc):
    """The one host's counts from the PLAY RECAP."""
    found = recaps(proc)
    assert len(found) == 1, proc.stdout[-3000:]
    return next(iter(found.values()))


def look(host, base=BASE):
    return json.loads(host.check_output("python3 -c %s %s", LOOK, base))


def start_reader(container, base, tag):
    """A reader of BASE/current in the container; returns its (stop file, report file)."""
    stop, out = "/tmp/zd-reader-%s.stop" % tag, "/tmp/zd-reader-%s.json" % tag
    podman_exec(container, "rm", "-f", stop, out)
    subprocess.run(["podman", "exec", "-d", container, "python3", "-c", READER, base, stop, out], check=True)
    return stop, out


def stop_reader(container, reader):
    stop, out = reader
    podman_exec(container, "touch", stop)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = podman_exec(container, "cat", out)
        if result.returncode == 0:
            return json.loads(result.stdout)
        time.sleep(0.2)
    raise AssertionError("the reader of current wrote no report")


def complete(state, text):
    """current resolves to a complete, good release saying TEXT."""
    rid = (state["current"] or "")[len("releases/"):]
    return (bool(state["current"]) and state["current"].startswith("releases/") and rid in state["dirs"] and state["built"]
            and statuses(state).get(rid) == "good" and state["app"] == text)


def statuses(state):
    return {rid: entry["status"] for rid, entry in state["manifest"]["releases"].items()}


def assert_current_valid(host, text=None):
    """current resolves to a complete, good release (saying TEXT); returns (its ID, the look)."""
    state = look(host)
    assert state["current"] and state["current"].startswith("releases/"), state["current"]
    rid = state["current"][len("releases/"):]
    assert rid in state["dirs"]
    assert state["built"] and state["app"] is not None
    assert statuses(state)[rid] == "good"
    if text is not None:
        assert state["app"] == text
    return rid, state


def snapshot(host, base=BASE):
    """Everything a rejected run must leave alone."""
    return host.check_output(
        "cd %s && readlink current && ls -A releases shared && sha256sum .zerodown/manifest.json shared/.env && ls -A .zerodown", base)


def source_tree(tmp_path_factory, text, name):
    """A copy of files/app_v1 whose app.txt says TEXT."""
    path = tmp_path_factory.mktemp(name) / "app"
    shutil.copytree(os.path.join(SCENARIO, "files", "app_v1"), path)
    (path / "app.txt").write_text(text + "\n")
    return str(path)


def git_sha(host, ref):
    return host.check_output("git -C %s rev-parse %s^{commit}", REPO, ref)


# --------------------------------------------------------------------------- bad input (runs alongside)

# Each rejected input: (variables merged over converge.yml's, entry point, text the error must contain).
REJECTED = {
    "relative base path": ({"release_base_path": "srv/app"}, "main", "release_base_path must be an absolute path"),
    "base path with ..": ({"release_base_path": "/srv/../etc"}, "main", "must not contain '.', '..' or empty components"),
    "base path is /": ({"release_base_path": "/"}, "main", "release_base_path must not be /"),
    "keep zero releases": ({"release_keep_releases": 0}, "main", "release_keep_releases must be 1 or more"),
    "keep not a number": ({"release_keep_releases": "five"}, "main", "release_keep_releases"),
    "unknown source type": ({"release_source_type": "svn"}, "main", "value of release_source_type must be one of: git, archive, local"),
    "git without repo": ({"release_source_type": "git"}, "main", "release_git_repo is required when release_source_type is git"),
    "archive without src": ({"release_source_type": "archive"}, "main", "release_archive_src is required"),
    "archive missing": ({"release_source_type": "archive", "release_archive_src": "/nonexistent/app.tar.gz"}, "main",
                        "release_archive_src '/nonexistent/app.tar.gz' is neither"),
    "local without src": ({"release_local_src": ""}, "main", "release_local_src is required when release_source_type is local"),
    "local missing": ({"release_local_src": "/nonexistent/app"}, "main", "release_local_src '/nonexistent/app' is not an existing directory"),
    "unknown local method": ({"release_local_method": "scp"}, "main", "value of release_local_method must be one of"),
    "absolute shared dir": ({"release_shared_dirs": ["/var/log"]}, "main", "must be relative paths inside the release"),
    "shared file with ..": ({"release_shared_files": ["../../etc/passwd"]}, "main", "must be relative paths inside the release"),
    "nested shared paths": ({"release_shared_dirs": ["storage", "storage/logs"]}, "main", "may not lie inside another shared path"),
    "relative hook": ({"release_hooks_before_build": "hooks/build.yml"}, "main", "release_hooks_before_build must be empty or the absolute path"),
    "missing hook": ({"release_hooks_after_switch": "/nonexistent/hook.yml"}, "main", "release_hooks_after_switch must be empty"),
    "bad env name": ({"release_env": {"BAD-NAME": "x"}}, "main", "release_env keys must be variable names"),
    "env twice": ({"release_env_content": "A=1\n"}, "main", "set release_env or release_env_content, not both"),
    "bad build command": ({"release_build_commands": [{"cmd": "make"}]}, "main", "release_build_commands items must be a command string"),
    "bad dir mode": ({"release_dir_mode": "rwxr-x---"}, "main", "release_dir_mode must be an octal string"),
    "bad owner": ({"release_owner": "Deploy User"}, "main", "release_owner must be a user name"),
    "rollback target with slash": ({"release_rollback_to": "../../etc"}, "rollback", "release_rollback_to must be a release ID"),
    "rollback of nothing": ({"release_base_path": "/srv/nothing-here"}, "rollback", "nothing is deployed in /srv/nothing-here"),
}


class Rejections(threading.Thread):
    """Every REJECTED case in one ansible-playbook run (a block per case, the error recorded in rescue:).

    Its base directory (/srv/rejected) was never deployed to: any change at
    all would create it. It runs in the background while the deploys below
    run, and the bad-input tests wait for it.
    """

    def __init__(self, container):
        super().__init__(daemon=True)
        self.container = container
        self.errors = self.output = None

    def run(self):
        directory = tempfile.mkdtemp(prefix="zd-rejected-")
        facts_file = os.path.join(directory, "errors.json")
        tasks = []
        for case, (overrides, entry, dummy) in sorted(REJECTED.items()):
            base = {"release_base_path": REJECTED_BASE}
            role_vars = dict(converge_vars(), **dict(base, **overrides)) if entry == "main" else dict(base, **overrides)
            include = {"name": ROLE} if entry == "main" else {"name": ROLE, "tasks_from": entry}
            tasks.append({
                "name": case,
                "block": [{"name": "Run the role (%s)" % case, "ansible.builtin.include_role": include, "vars": role_vars}],
                "rescue": [{"name": "Record the error", "ansible.builtin.set_fact": {
                    "zd_errors": "{{ zd_errors | default({}) | combine({%s: ansible_failed_result | to_json}) }}" % json.dumps(case)}}],
            })
        tasks.append({"name": "Save the errors", "ansible.builtin.copy": {
            "content": "{{ zd_errors | default({}) | to_json }}", "dest": facts_file, "mode": "0600"}, "delegate_to": "localhost"})
        playbook = write_play(directory, tasks, name="Release test")
        try:
            proc = ansible_playbook(playbook, [self.container])
            self.output = proc.stdout
            with open(facts_file, encoding="utf-8") as handle:
                self.errors = json.load(handle)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class Crash(threading.Thread):
    """A deploy killed mid-build, then run again, in its own base directory (/srv/crash), in the background.

    First a normal deploy (so there is a current release), then a deploy whose
    build is 'touch STARTED; sleep 30' started in its own session and killed
    with SIGKILL (ansible-playbook, its workers and podman exec: a controller
    that dies) once the build runs, then the same deploy again at once. A
    reader resolves current all along. Observations are kept for the test.
    """

    def __init__(self, container):
        super().__init__(daemon=True)
        self.container = container
        self.error = None
        self.seen = {}
        self.trees = []

    def run(self):
        try:
            self.steps()
        except BaseException as exc:  # reported by the test
            self.error = repr(exc)
        finally:
            for tree in self.trees:
                shutil.rmtree(tree, ignore_errors=True)

    def look(self):
        return json.loads(podman_exec(self.container, "python3", "-c", LOOK, CRASH_BASE).stdout)

    def tree(self, text):
        self.trees.append(tempfile.mkdtemp(prefix="zd-crash-"))
        path = os.path.join(self.trees[-1], "app")
        shutil.copytree(os.path.join(SCENARIO, "files", "app_v1"), path)
        with open(os.path.join(path, "app.txt"), "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        return path

    def steps(self):
        role_vars = dict(converge_vars(), **dict(LIGHT, release_base_path=CRASH_BASE))
        self.seen["first"] = Run(self.container, dict(role_vars, release_local_src=self.tree("crash version 1"))).run()
        reader = start_reader(self.container, CRASH_BASE, "crash")
        self.seen["before"] = self.look()
        source = self.tree("crash version 2")
        slow = Run(self.container, dict(role_vars, release_local_src=source, release_build_commands=["touch STARTED", "sleep 30"]))
        proc = slow.start()
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                if podman_exec(self.container, "sh", "-c", "ls %s/releases/*/STARTED" % CRASH_BASE).returncode == 0:
                    break
                time.sleep(0.3)
            self.seen["alive_at_kill"] = proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            slow.cleanup()
        self.seen["pid"] = proc.pid
        self.seen["killed"] = self.look()
        self.seen["lease"] = json.loads(podman_exec(self.container, "cat", CRASH_BASE + "/.zerodown/deploy.lock").stdout or "null")
        self.seen["rerun"] = Run(self.container, dict(role_vars, release_local_src=source, release_lock_timeout=5,
                                                      release_local_method="archive")).run()
        self.seen["after"] = self.look()
        self.seen["reader"] = stop_reader(self.container, reader)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def background(container):
    """Start, once: the reader of /srv/app/current, the bad-input run and the killed-deploy run."""
    jobs = {"reader": start_reader(container, BASE, "app"), "rejections": Rejections(container), "crash": Crash(container)}
    jobs["rejections"].start()
    jobs["crash"].start()
    return jobs


@pytest.fixture(scope="module")
def hook_files(tmp_path_factory):
    """One task file per hook phase; each appends 'PHASE RELEASE_ID' to HOOK_LOG on the target."""
    directory = tmp_path_factory.mktemp("hooks")
    paths = {}
    for phase in HOOK_PHASES:
        path = directory / (phase + ".yml")
        path.write_text(yaml.safe_dump([{
            "name": "Hook " + phase,
            "ansible.builtin.lineinfile": {"path": HOOK_LOG, "line": "%s {{ release_id }}" % phase, "create": True, "mode": "0644"},
        }]))
        paths["release_hooks_" + phase] = str(path)
    return paths


# --------------------------------------------------------------------------- the first deploy (converge.yml)

def test_first_deploy_created_the_layout_with_sane_owners_and_modes(host, background):
    rid, dummy = assert_current_valid(host, "local version 1")
    expect = {
        # root holds what releases hang off; the deploy user owns each release.
        BASE: ("root", "app", 0o750),
        BASE + "/releases": ("root", "app", 0o750),
        BASE + "/shared": ("root", "app", 0o750),
        BASE + "/.zerodown": ("root", "app", 0o750),
        BASE + "/releases/" + rid: ("deploy", "app", 0o2750),
        BASE + "/current/app.txt": ("deploy", "app", 0o644),
        # The app owns what it writes; their parents are root's.
        BASE + "/shared/storage": ("root", "app", 0o750),
        BASE + "/shared/storage/logs": ("app", "app", 0o750),
        BASE + "/shared/media": ("app", "app", 0o750),
        BASE + "/shared/config/local.ini": ("app", "app", 0o640),
        BASE + "/shared/.env": ("app", "app", 0o600),
    }
    out = host.check_output("stat -c '%n %U %G %a' " + " ".join(expect)).splitlines()
    assert {line.split()[0]: tuple(line.split()[1:]) for line in out} == {
        path: (user, group, "%o" % mode) for path, (user, group, mode) in expect.items()}


def test_shared_paths_replace_what_the_code_had(host):
    links = ("storage/logs", "media", "config/local.ini", ".env")
    out = host.check_output("cd %s/current && readlink %s" % (BASE, " ".join(links))).splitlines()
    assert out == ["%s/shared/%s" % (BASE, path) for path in links]
    # The source tree had storage/logs/.keep: it is gone, the shared directory took its place.
    assert host.run("test -e %s/shared/storage/logs/.keep", BASE).rc == 1
    assert host.run("test -f %s/current/config/settings.ini", BASE).rc == 0


def test_build_ran_in_the_release_as_the_deploy_user(host):
    rid, dummy = assert_current_valid(host)
    assert host.file(BASE + "/current/BUILD_INFO").content_string.strip() == "built %s by deploy" % rid


def test_env_file_holds_the_variables_and_only_the_app_can_read_it(host):
    text = host.file(BASE + "/shared/.env").content_string
    assert "SECRET_KEY=%s\n" % SECRET in text
    assert 'GREETING="hello world"\n' in text
    assert "DATABASE_URL=postgres://app:pw@db/app\n" in text
    assert host.run("runuser -u deploy -- cat %s/shared/.env", BASE).rc != 0
    assert host.run("runuser -u app -- cat %s/shared/.env", BASE).rc == 0


def test_same_deploy_again_waits_for_the_lock_then_changes_nothing_and_never_prints_the_env(host, container):
    rid, before = assert_current_valid(host)
    # Another deploy holds the lock for 4 s: this one waits for it (release_lock_timeout).
    ok(module(container, "path=%s state=lock lock_id=other-deploy lock_timeout=0" % BASE))
    releaser = threading.Timer(4, module, args=(container, "path=%s state=unlock lock_id=other-deploy" % BASE))
    releaser.start()
    try:
        proc = ok(Run(container, converge_vars(), extra=["-vv", "--diff"]).run())
    finally:
        releaser.join()
    assert proc.elapsed > 4
    assert recap(proc)["changed"] == 0, proc.stdout[-3000:]
    assert "is already live in release %s; nothing to deploy" % rid in said(proc)
    after = look(host)
    assert (after["manifest"], after["dirs"], after["current"], after["lock"]) == (before["manifest"], before["dirs"], before["current"], False)
    assert SECRET not in proc.stdout
    assert proc.facts == {"release_id": rid, "release_path": "%s/releases/%s" % (BASE, rid), "release_previous": rid,
                          "release_switched": False}


# --------------------------------------------------------------------------- releases from git

def test_release_from_the_git_repository_runs_every_hook_in_order(host, container, hook_files):
    first, dummy = assert_current_valid(host)
    host.run("rm -f %s", HOOK_LOG)
    migrate = ["id -un > $ZERODOWN_SHARED_PATH/storage/logs/migrated-$ZERODOWN_RELEASE_ID"]
    proc = ok(deploy(container, release_git_version="v1", release_migrate_commands=migrate, **GIT, **hook_files))
    rid, state = assert_current_valid(host, "git version 1")
    # The migration ran (as the app user, who may read .env) in the new release before it went live.
    assert host.file("%s/shared/storage/logs/migrated-%s" % (BASE, rid)).content_string == "app\n"
    assert proc.facts == {"release_id": rid, "release_path": "%s/releases/%s" % (BASE, rid), "release_previous": first,
                          "release_switched": True}
    # The ID is the UTC time and the commit's first 7 characters; the manifest has the whole commit.
    sha = git_sha(host, "v1")
    assert re.fullmatch(r"\d{8}T\d{6}Z-" + sha[:7], rid)
    assert state["manifest"]["releases"][rid]["revision"] == sha
    hooks = [line.split() for line in host.file(HOOK_LOG).content_string.splitlines() if line]
    assert hooks == [[phase, rid] for phase in HOOK_PHASES]
    # No .git in a release; the repository's storage/logs/.keep gave way to the shared directory;
    # what the deploy user made in the release belongs to the app's group.
    out = host.check_output("cd %s/current && ls -A && readlink storage/logs && stat -c '%%U %%G' app.txt storage", BASE)
    assert ".git" not in out.split()
    assert out.splitlines()[-3:] == [BASE + "/shared/storage/logs", "deploy app", "deploy app"]


def test_second_release_from_git_with_a_shallow_clone(host, container):
    previous, dummy = assert_current_valid(host)
    proc = ok(deploy(container, release_git_version="main", release_git_depth=1, **GIT))
    rid, state = assert_current_valid(host, "git version 2")
    assert rid.endswith("-" + git_sha(host, "main")[:7])
    assert proc.facts["release_previous"] == previous
    assert list(statuses(state).values()) == ["good", "good", "good"]


# --------------------------------------------------------------------------- ansible-core alone

PLAIN_BASE = "/srv/plain"


def core_only_env(tmp_path):
    """ansible-playbook as on a controller with ansible-core and this collection only: the ansible package's collections
    (ansible.posix among them) are not searched. containers.podman stays, for the tests' connection to the container."""
    import importlib.util  # pylint: disable=import-outside-toplevel
    bundled = [os.path.join(path, "containers", "podman")
               for path in importlib.util.find_spec("ansible_collections").submodule_search_locations]
    podman = next(path for path in bundled if os.path.isdir(path))
    ours = next(os.path.join(path, "ansible_collections", "zerodown", "deploy")
                for path in os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)
                if os.path.isdir(os.path.join(path, "ansible_collections", "zerodown", "deploy")))
    root = tmp_path / "collections" / "ansible_collections"
    for namespace, name, target in (("zerodown", "deploy", ours), ("containers", "podman", podman)):
        (root / namespace).mkdir(parents=True, exist_ok=True)
        (root / namespace / name).symlink_to(target)
    return {"ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}


def test_a_local_source_deploys_with_ansible_core_alone(host, container, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("core-only")
    env = core_only_env(tmp_path)
    seen = subprocess.run(["ansible-doc", "-t", "module", "ansible.posix.synchronize"], capture_output=True, text=True,
                          env=ansible_env(**env), check=False)
    assert "ansible.posix.synchronize was not found" in seen.stdout + seen.stderr, "the emulated controller still finds ansible.posix"
    source = source_tree(tmp_path_factory, "core only", "core")
    os.makedirs(os.path.join(source, ".git"))
    with open(os.path.join(source, ".git", "HEAD"), "w", encoding="utf-8") as handle:
        handle.write("ref: refs/heads/main\n")
    role_vars = dict(converge_vars(), **dict(LIGHT, release_base_path=PLAIN_BASE, release_local_src=source))
    # rsync asked for by name: refused before the host changes, naming what is missing.
    refused = Run(container, dict(role_vars, release_local_method="synchronize"), env=env).run()
    assert refused.returncode != 0
    assert "release_local_method synchronize needs the ansible.posix collection on the controller" in said(refused), said(refused)[-2000:]
    assert podman_exec(container, "test", "-e", PLAIN_BASE).returncode == 1
    # auto: packed with tar on the controller (ansible.builtin only), .git left out.
    proc = ok(Run(container, dict(role_vars, release_local_method="auto"), env=env).run())
    assert "Copy the directory (archive)" in said(proc), said(proc)[-2000:]
    assert host.file(PLAIN_BASE + "/current/app.txt").content_string == "core only\n"
    assert not host.file(PLAIN_BASE + "/current/.git").exists
    podman_exec(container, "rm", "-rf", PLAIN_BASE)


def test_a_host_without_sudo_deploys_as_root_through_su(host, container, tmp_path_factory):
    """Root can become the deploy user without sudo: the lock finds su, and the steps that run as the owner use it."""
    source = source_tree(tmp_path_factory, "no sudo", "nosudo")
    role_vars = dict(converge_vars(), **dict(LIGHT, release_base_path=PLAIN_BASE, release_local_src=source, release_local_method="archive",
                                             release_build_commands=["id -un > BUILT_BY"]))
    sudo = podman_exec(container, "sh", "-c", "command -v sudo").stdout.strip()
    assert sudo, "the test image has sudo"
    podman_exec(container, "mv", sudo, sudo + ".hidden")
    try:
        assert podman_exec(container, "sh", "-c", "command -v sudo").returncode != 0
        proc = ok(Run(container, role_vars).run())
    finally:
        podman_exec(container, "mv", sudo + ".hidden", sudo)
    assert host.file(PLAIN_BASE + "/current/app.txt").content_string == "no sudo\n"
    # Unpacked by the owner (become_method su), built as the owner.
    assert host.file(PLAIN_BASE + "/current/app.txt").user == "deploy"
    assert host.file(PLAIN_BASE + "/current/BUILT_BY").content_string == "deploy\n"
    assert "sudo: command not found" not in said(proc) and "sudo: not found" not in said(proc)
    podman_exec(container, "rm", "-rf", PLAIN_BASE)


# --------------------------------------------------------------------------- failing builds

def test_failing_build_marks_the_release_bad_and_leaves_current_alone(host, container, tmp_path_factory):
    before, dummy = assert_current_valid(host, "git version 2")
    proc = deploy(container, release_local_src=source_tree(tmp_path_factory, "broken version", "broken"), release_keep_failed=True,
                  release_build_commands=["echo compiling", "echo 'syntax error in app.py' >&2; exit 3"])
    assert proc.returncode != 0
    assert "syntax error in app.py" in said(proc) and "(rc 3)" in said(proc)
    assert "The release is marked bad and kept in" in said(proc)
    assert "current still points at %s" % before in said(proc)
    rid, state = assert_current_valid(host, "git version 2")
    assert rid == before
    bad = [release for release, status in statuses(state).items() if status == "bad"]
    assert len(bad) == 1 and bad[0] in state["dirs"]
    assert "syntax error in app.py" in state["manifest"]["releases"][bad[0]]["reason"]
    assert not state["lock"]


def test_failing_build_removes_the_release_by_default(host, container, tmp_path_factory):
    before, state = assert_current_valid(host)
    proc = deploy(container, release_local_src=source_tree(tmp_path_factory, "broken again", "broken2"),
                  release_build_commands=[["/bin/false"]])
    assert proc.returncode != 0
    assert "The release is marked bad and was removed" in said(proc)
    rid, after = assert_current_valid(host, "git version 2")
    assert rid == before and after["dirs"] == state["dirs"]
    assert len([status for status in statuses(after).values() if status == "bad"]) == 2


# --------------------------------------------------------------------------- archive and prune

def test_archive_release_and_prune_where_failed_builds_hold_no_slot(host, container, tmp_path_factory):
    dummy, state = assert_current_valid(host)
    good = sorted(rid for rid, status in statuses(state).items() if status == "good")
    source = source_tree(tmp_path_factory, "archive version 3", "a3")
    archive = str(tmp_path_factory.mktemp("archive") / "app-3.tar.gz")
    subprocess.run(["tar", "-czf", archive, "-C", os.path.dirname(source), "--transform", "s,^app,app-3,", "app"], check=True)
    archive_vars = dict(converge_vars(), **dict(LIGHT, release_source_type="archive", release_archive_src=archive, release_archive_strip=1))
    # Check mode first (the archive's first run: nothing is in the cache yet): it predicts a new release and changes nothing.
    untouched = snapshot(host)
    check = ok(Run(container, archive_vars, extra=("--check",)).run())
    assert "is already live in release" not in said(check) and snapshot(host) == untouched, said(check)[-2000:]
    proc = ok(deploy(container, release_source_type="archive", release_archive_src=archive, release_archive_strip=1))
    rid, state = assert_current_valid(host, "archive version 3")
    # Now the same archive in check mode is nothing to deploy, and another one is not, although the cache holds this one.
    assert "is already live in release" in said(ok(Run(container, archive_vars, extra=("--check",)).run()))
    other = str(tmp_path_factory.mktemp("archive") / "app-4.tar.gz")
    subprocess.run(["tar", "-czf", other, "-C", os.path.dirname(source_tree(tmp_path_factory, "archive version 4", "a4")),
                    "--transform", "s,^app,app-4,", "app"], check=True)
    other_check = ok(Run(container, dict(archive_vars, release_archive_src=other), extra=("--check",)).run())
    assert "is already live in release" not in said(other_check)
    sha1 = subprocess.run(["sha1sum", archive], capture_output=True, text=True, check=True).stdout.split()[0]
    assert rid.endswith("-" + sha1[:7]) and state["manifest"]["releases"][rid]["revision"] == sha1
    assert proc.facts["release_switched"] is True
    # keep 3: the two newest good releases and the new one stay, the oldest good one (L1) goes.
    # The bad releases never held a slot (else a good one would have gone) and are gone too.
    assert sorted(state["manifest"]["releases"]) == state["dirs"] == sorted(good[1:] + [rid])
    assert list(statuses(state).values()) == ["good", "good", "good"]


# --------------------------------------------------------------------------- rollback

def test_rollback_chooses_by_switch_order_never_by_mtime(host, container):
    dummy, state = assert_current_valid(host)
    order = sorted(state["manifest"]["releases"])  # G1, G2, A (current)
    assert state["current"] == "releases/" + order[-1]
    # Make mtimes lie: the oldest release looks newest.
    host.run("touch -d '+1 hour' %s/releases/%s %s/releases/%s/app.txt", BASE, order[0], BASE, order[0])
    proc = ok(rollback(container))
    assert assert_current_valid(host, "git version 2")[0] == order[1]
    assert proc.facts == {"release_id": order[1], "release_path": "%s/releases/%s" % (BASE, order[1]),
                          "release_previous": order[2], "release_switched": True}
    assert "current points at %s (was %s)" % (order[1], order[2]) in said(proc)


def test_rollback_playbook_to_a_named_release_marks_the_abandoned_one_bad(host, container):
    left, state = assert_current_valid(host)
    order = sorted(state["manifest"]["releases"])
    # The collection's playbook, as an operator runs it.
    extra = {"app_base_path": BASE, "release_rollback_to": order[0], "release_rollback_mark_bad": True,
             "release_rollback_reason": "500 on /checkout"}
    ok(ansible_playbook("zerodown.deploy.rollback", [container], extra=extra))
    rid, state = assert_current_valid(host, "git version 1")
    assert rid == order[0]
    entry = state["manifest"]["releases"][left]
    assert entry["status"] == "bad" and entry["reason"] == "500 on /checkout"


def test_rollback_to_a_bad_release_is_refused(host, container):
    before, state = assert_current_valid(host)
    bad = [rid for rid, status in statuses(state).items() if status == "bad"][0]
    proc = rollback(container, release_rollback_to=bad)
    assert proc.returncode != 0
    assert "release %s is marked bad (500 on /checkout); rollback never chooses a bad release" % bad in said(proc)
    rid, state = assert_current_valid(host)
    assert rid == before and not state["lock"]


def test_prune_after_a_rollback_never_removes_current(host, container):
    current, state = assert_current_valid(host, "git version 1")
    order = sorted(state["manifest"]["releases"])  # G1 (current), G2 (bad), A
    assert current == order[0]
    # Deploying what is live does nothing but prune; with keep 1 a "newest N" rule would delete current.
    proc = ok(deploy(container, release_git_version="v1", release_keep_releases=1, **GIT))
    assert "nothing to deploy" in said(proc)
    rid, state = assert_current_valid(host, "git version 1")
    assert rid == current and state["dirs"] == [order[0], order[2]]
    assert statuses(state) == {order[0]: "good", order[2]: "good"}


# --------------------------------------------------------------------------- the deploy lock

def test_second_deploy_fails_naming_the_holder(host, container, tmp_path_factory):
    before = snapshot(host)
    ok(module(container, "path=%s state=lock lock_id=other-deploy lock_play='Deploy by hand' lock_timeout=0" % BASE))
    try:
        proc = deploy(container, release_local_src=source_tree(tmp_path_factory, "local version 4", "v4"), release_lock_timeout=2)
    finally:
        ok(module(container, "path=%s state=unlock lock_id=other-deploy" % BASE))
    assert proc.returncode != 0
    assert "Timed out after 2s waiting for the deploy lock of %s held by lock_id=other-deploy" % BASE in said(proc)
    assert 'play="Deploy by hand"' in said(proc)
    assert snapshot(host) == before


def test_killed_deploy_leaves_current_complete_and_rerun_takes_over_the_lock(background):
    crash = background["crash"]
    crash.join(timeout=600)
    assert crash.error is None, crash.error
    seen = crash.seen
    ok(seen["first"])
    assert complete(seen["before"], "crash version 1")
    before = seen["before"]["current"]
    # Killed while its build ran: current is the complete release it was, the new one is unfinished.
    assert seen["alive_at_kill"], "the deploy ended before it could be killed"
    assert complete(seen["killed"], "crash version 1") and seen["killed"]["current"] == before
    killed = [rid for rid in seen["killed"]["dirs"] if rid not in seen["before"]["dirs"]]
    assert len(killed) == 1 and statuses(seen["killed"])[killed[0]] == "unfinished"
    assert seen["lease"]["pid"] == seen["pid"]
    # Run again at once: the lease of the dead run (its process is gone) does not block it.
    # (This time the tree went over as an archive packed on the controller, the fallback without rsync.)
    rerun = ok(seen["rerun"])
    assert "took over the deploy lock of %s left by a run that no longer exists" % CRASH_BASE in said(rerun), said(rerun)[-3000:]
    assert "pid %s" % seen["pid"] in said(rerun)
    assert complete(seen["after"], "crash version 2") and not seen["after"]["lock"]
    assert seen["after"]["current"] == "releases/" + rerun.facts["release_id"]
    # The killed, unfinished release is older than the newest: pruned, never counted.
    assert killed[0] not in seen["after"]["dirs"] and killed[0] not in seen["after"]["manifest"]["releases"]
    # And current resolved to a complete release all along.
    assert seen["reader"]["failures"] == 0 and seen["reader"]["seen"] > 100, seen["reader"]


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("case", sorted(REJECTED))
def test_bad_input_gets_a_clear_error_and_changes_nothing(host, background, case):
    rejections = background["rejections"]
    rejections.join(timeout=600)
    assert rejections.errors is not None, rejections.output
    assert SECRET not in rejections.output
    assert case in rejections.errors, "accepted: %s" % case
    assert REJECTED[case][2] in rejections.errors[case], rejections.errors[case][-2000:]
    assert host.run("test -e %s || test -e /srv/nothing-here", REJECTED_BASE).rc == 1


# --------------------------------------------------------------------------- the reader

def test_current_never_missing_or_incomplete_while_everything_ran(container, background):
    report = stop_reader(container, background["reader"])
    print("reader:", {k: report[k] for k in ("seen", "failures")}, "targets:", len(report["targets"]))
    assert report["failures"] == 0, report["examples"]
    assert report["seen"] > 1000
    # It watched every switch and rollback above: L1, G1, G2, A, G2, G1.
    assert len(report["targets"]) >= 6
