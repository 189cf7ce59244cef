#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Release state machine for zero-downtime deploys (prepare, atomic switch, mark bad, rollback, prune, lock)
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Manages the release layout C(BASE/releases/ID), C(BASE/shared), C(BASE/current) and the release manifest
    C(BASE/.zerodown/manifest.json) on the target.
  - C(BASE/current) is always a relative symbolic link C(releases/ID). It is switched atomically (a new link is created under
    a temporary name in C(BASE) and renamed over C(current) with V(rename(2\)); it is never removed first), so a reader resolving
    it at any instant sees either the old or the new release, never nothing.
  - The manifest records, for every release, its status (V(good), V(bad), V(unfinished), or V(unknown) for releases found on disk
    without a record), creation order, switch order, revision, and the reason it was marked bad. Ordering decisions (rollback target,
    prune) use this recorded order, never file modification times.
  - Rules enforced by every state. C(current) never dangles and never points at a release marked bad. C(current) and the
    previous good release (the one O(state=rollback) would choose) are never pruned, nor any release that C(current) resolves into
    or through (a link such as C(releases/ID/public), or a chain of links). Bad and unfinished releases never count towards
    O(keep_releases) and are never chosen by rollback.
  - While C(current) is a link the module does not understand (one that resolves outside C(BASE/releases), dangles, or leads into
    a release without being C(releases/ID)), O(state=switch), O(state=rollback) and O(state=prune) refuse and say why. A
    C(current) left dangling because its release directory was removed is repaired by O(state=switch) and O(state=rollback); only
    O(state=prune) refuses then.
  - Every manifest write also writes the copy C(BASE/.zerodown/manifest.json.bak). A missing, corrupt or wrongly shaped manifest
    is restored from that copy, and RV(manifest_rebuilt) is V(true). Only when the copy is unusable too is the manifest rebuilt
    from the directory listing of C(BASE/releases) and the real target of C(BASE/current) (the current release becomes V(good),
    all others V(unknown)); then O(state=prune), and O(state=switch) or O(state=rollback) to an V(unknown) release, refuse until
    a run with O(force_rebuilt=true). A mutating state moves an unusable manifest aside to
    C(BASE/.zerodown/manifest.json.corrupt-TIME) before writing a good one. Records of release directories that have vanished
    are dropped; directories without a record are adopted as V(unknown).
  - A failure to write the manifest after C(current) moved is reported with where C(current) points (RV(current) and
    C(current_target) in the failure result). O(state=switch) first switches C(current) back to the release that was live;
    O(state=rollback) leaves it on the release it rolled back to.
  - Mutating states (V(prepare), V(switch), V(mark_bad), V(rollback), V(prune)) hold a short exclusive V(flock(2\)) on
    C(BASE/.zerodown/lock) while they run, so two module runs never interleave. The kernel releases it if the process dies.
  - A play spans many tasks, so a deploy-wide lock cannot be a V(flock) of one process. It is a I(lease) instead, the JSON file
    C(BASE/.zerodown/deploy.lock), taken with O(state=lock) and given back with O(state=unlock). While an unexpired lease exists,
    mutating states refuse to run unless they pass the same O(lock_id) (or O(force=true)). A lease older than its O(lock_ttl) is
    taken over by the next O(state=lock).
extends_documentation_fragment:
  - zerodown.deploy._attributes
  - zerodown.deploy._attributes.FILES
  - zerodown.deploy._attributes.ACTION
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the target of C(BASE/current) before and after.
  safe_file_operations:
    support: full
    details:
      - The manifest and the lease are replaced atomically (temporary file, V(fsync), V(rename), directory V(fsync)).
  idempotent:
    support: partial
    details:
      - O(state=prepare) without O(release) generates a new release ID on every run.
  action:
    details:
      - Every task goes through the action plugin of the same name. For O(state=lock) it fills O(lock_host), O(lock_pid),
        O(lock_owner) and O(lock_holder) from the controller (its host name, the C(ansible-playbook) process and who it is, the
        user) when they are not given, tries the lock at once, takes over the lease of a holder proven dead on this controller
        (see O(lock_holder) and RV(took_over)), and then waits up to O(lock_timeout). The other states only run the module.
options:
  path:
    description:
      - The base directory C(BASE) of the application, for example C(/srv/shop). Must be an absolute path.
    type: path
    required: true
  state:
    description:
      - V(layout) creates C(BASE), C(BASE/releases), C(BASE/shared) and C(BASE/.zerodown), owned by root with group O(group) and
        mode O(mode) (a symbolic link in their place is refused), the repository cache C(BASE/.zerodown/repo) owned by O(owner)
        (mode 0700) with O(git_cache=true), and C(BASE/shared/.env) with O(env_content), owned by O(env_owner) (mode 0600).
        RV(env_changed) says whether the environment file's content changed.
      - V(prepare) creates C(BASE/releases/ID) (and C(releases), C(shared), C(.zerodown) when missing) and records it as V(unfinished).
        With a named O(release) that already exists and is still V(unfinished), nothing changes. A named release that exists with
        another status is an error. With O(reuse_live=true) and a O(revision) that the current release already has (and it is not
        bad), nothing is prepared and RV(new) is V(false); when that release is V(switched) (a deploy stopped before its health
        gate), RV(resume) is V(true), and the caller restarts onto it and holds it to the gate.
      - V(build) does what V(link) does, then runs O(commands) in the release, one after the other, as O(owner) (through
        C(runuser) when the module runs as root), with O(environment); the first command that fails fails the task with its
        exit status and output (RV(rc), RV(stderr)).
      - V(link) links the shared paths O(shared_dirs) and O(shared_files) (and with O(env_file=true) the environment file) from
        C(BASE/shared) into the V(unfinished) O(release). What the release holds at those paths is removed first; a symbolic link
        that came with the code where a parent directory must be is replaced by a directory, and nothing is ever followed. In
        C(BASE/shared), the parents of shared paths belong to root (group O(group), 0750), shared directories and new shared files
        to O(env_owner) (0750 and 0640). Existing shared files keep their content.
      - V(switch) atomically points C(BASE/current) at O(release) and records it as V(good), or as V(switched) with
        O(pending_verification=true) until an O(state=unlock) with O(verified) names it. The release must exist and must not be V(bad).
        With O(lock_id), the deploy lease is renewed first, so a long build never lets it expire before the switch.
      - V(mark_bad) records O(release) as V(bad) (with O(reason)), and removes its directory with O(remove=true). The release
        C(current) points at cannot be marked bad; roll back first (O(state=rollback) with O(mark_current_bad=true) does both).
      - V(rollback) points C(current) at O(release) (which must be V(good) or V(unknown); never V(switched)), or, without O(release), at the previous good
        release, that is among the V(good) releases created before the current one, the one that was switched to most recently.
      - V(prune) removes old releases, see O(keep_releases).
      - V(query) only reads and returns the state, and never writes. It is deprecated and will be removed in 1.0.0; use
        M(zerodown.deploy.release_info), which returns the same.
      - V(lock) first checks what a deploy needs from the host (RV(host_facts)), and fails naming every problem before it changes
        anything. It then takes the deploy lease for O(lock_id), waiting up to O(lock_timeout) seconds; taking it again with the same
        O(lock_id) renews it and reports no change. With O(group), it then makes the layout as V(layout) does, after creating
        the O(users), so a deploy takes its lock and prepares its base directory in one call.
      - V(unlock) gives the lease back. Only the same O(lock_id) may, unless O(force=true). With O(prune=true) it first prunes
        as V(prune) does, and with O(report) it writes the run's report as JSON to O(report_path) (mode 0640; its directory is
        created, 0750).
    type: str
    choices: [layout, prepare, link, build, switch, mark_bad, rollback, prune, query, lock, unlock]
    required: true
  release:
    description:
      - Release ID. Required for O(state=switch) and O(state=mark_bad); optional for O(state=prepare) (default generated) and
        O(state=rollback) (default the previous good release).
      - Must match C(^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$), so it can never be C(.), C(..), contain C(/) or start with C(-).
    type: str
  revision:
    description:
      - VCS revision of the release. Stored in the manifest by O(state=prepare).
      - A generated ID is C(YYYYMMDDTHHMMSSZ-REV) in UTC, where C(REV) is the first 7 letters and digits of the revision, or just
        the timestamp when no revision is given. If that ID is taken, C(-2), C(-3), ... is appended.
    type: str
  id_time:
    description:
      - With O(state=prepare) and no O(release), the UTC time C(YYYYMMDDTHHMMSSZ) the generated ID starts with, instead of now.
      - A deploy to several hosts passes one value to all of them (and to every wave), so a revision gets the same release ID
        everywhere and a rollback can name one ID for the whole fleet.
    type: str
  reason:
    description:
      - Why a release is marked bad (O(state=mark_bad), or O(state=rollback) with O(mark_current_bad=true)). Stored in the manifest.
    type: str
  mark_current_bad:
    description:
      - With O(state=rollback), mark the release being left as V(bad).
    type: bool
    default: false
  keep_releases:
    description:
      - With O(state=prune), the number of V(good) (and V(unknown)) releases to keep, newest by creation order. Must be at least 1.
      - The current release and the previous good release are always kept, even beyond this number. The newest release is always
        kept whatever its status (an V(unfinished) one may be a deploy in progress). Other V(bad) and V(unfinished) releases are
        removed and never count towards this number.
    type: int
    default: 5
  owner:
    description:
      - Owner of the release directory created by O(state=prepare), and of the repository cache of O(state=layout).
    type: str
  group:
    description:
      - Group of the release directory created by O(state=prepare), and of the layout's directories (O(state=layout), required
        there) and shared paths (O(state=link)).
    type: str
  mode:
    description:
      - Permissions of the release directory created by O(state=prepare), as an octal string such as V('0755') or a symbolic mode.
      - With O(state=layout), the mode of C(BASE) and its directories, an octal string (default V('0750')).
    type: raw
  reuse_live:
    description:
      - With O(state=prepare), prepare nothing when the current release already has O(revision) (RV(new) is V(false)).
    type: bool
    default: false
  remove:
    description:
      - With O(state=mark_bad), remove the release's directory as well (its record stays, marked bad).
    type: bool
    default: false
  git_cache:
    description:
      - With O(state=layout), create the repository cache C(BASE/.zerodown/repo) owned by O(owner).
    type: bool
    default: false
  env_content:
    description:
      - With O(state=layout), the content of C(BASE/shared/.env). Never logged. Without it the file is not touched.
    type: str
  env_owner:
    description:
      - With O(state=layout), the owner of C(BASE/shared/.env); with O(state=link), the owner of the shared directories and files
        (the app's user).
    type: str
  env_file:
    description:
      - With O(state=link), also link C(BASE/shared/.env) into the release.
    type: bool
    default: false
  shared_dirs:
    description:
      - With O(state=link), directories under C(BASE/shared) to link into the release, relative paths.
    type: list
    elements: str
    default: []
  shared_files:
    description:
      - With O(state=link), files under C(BASE/shared) to link into the release, relative paths; created empty when missing.
    type: list
    elements: str
    default: []
  users:
    description:
      - With O(state=lock) and O(group), system accounts to create first (no login shell), each a dict with C(name), and optionally
        C(group) (its primary group, created when missing), C(groups) (supplementary groups; an existing user gains the missing
        ones), C(home) and C(create_home).
    type: list
    elements: dict
    default: []
  commands:
    description:
      - With O(state=build), the build commands. A string runs with C(/bin/sh -c); a list is an argument vector.
    type: list
    elements: raw
    default: []
  environment:
    description:
      - With O(state=build), variables added to the commands' environment.
    type: dict
    default: {}
  report:
    description:
      - With O(state=unlock), the report of the run, written to O(report_path) before the lease is given back.
    type: dict
  report_path:
    description:
      - With O(state=unlock) and O(report), where the report is written.
    type: path
  pending_verification:
    description:
      - With O(state=switch), record the release as V(switched), not V(good), until its health gate passed (O(verified)). A
        V(switched) release is never a rollback target, and a deploy of its revision again finishes its activation instead of
        reporting nothing to deploy (RV(resume)).
    type: bool
    default: false
    version_added: 0.1.0
  verified:
    description:
      - With O(state=unlock), the release that passed its health gate in this run; a V(switched) release becomes V(good). It is
        recorded before the prune, under the same lease.
    type: str
    version_added: 0.1.0
  prune:
    description:
      - With O(state=unlock), prune as O(state=prune) does (O(keep_releases)) under the lease before giving it back, so a deploy
        pays one call for both.
    type: bool
    default: false
  lock_id:
    description:
      - Identifier of the deploy run holding the deploy lease, for example a UUID generated once per play.
      - Required for O(state=unlock) (unless O(force=true)). For O(state=lock) the action plugin makes a random one when none is
        given, and returns it as RV(lock_id).
      - When given to a mutating state, the lease must be held by this O(lock_id), otherwise the state fails. This stops a deploy whose
        lease expired and was taken over by another run.
    type: str
  lock_timeout:
    description:
      - With O(state=lock), how many seconds to wait while another run holds an unexpired lease before failing with a message naming
        the holder. V(0) means do not wait.
      - All mutating states also wait for the short internal lock; they wait for the larger of 60 seconds and this value.
    type: int
    default: 0
  lock_ttl:
    description:
      - With O(state=lock), the lifetime of the lease in seconds. After it, another run's O(state=lock) takes the lease over.
        Renew a lease in long deploys by running O(state=lock) again with the same O(lock_id).
    type: int
    default: 3600
  lock_play:
    description:
      - Name of the play or job holding the lease; shown to runs waiting for it.
    type: str
  lock_owner:
    description:
      - Who holds the lease, shown to waiting runs.
      - With O(state=lock) the action plugin fills in the user running C(ansible-playbook) on the controller. Without a value
        (the module run without its action plugin), the remote user running the module.
    type: str
  lock_host:
    description:
      - Host the deploy runs from, shown to waiting runs.
      - With O(state=lock) the action plugin fills in the controller's host name. Without a value (the module run without its
        action plugin), the target's host name.
    type: str
  lock_pid:
    description:
      - Process ID of the deploy run, shown to waiting runs.
      - With O(state=lock) the action plugin fills in the PID of the controller's C(ansible-playbook) process.
    type: int
  lock_holder:
    description:
      - Who the process O(lock_pid) is, recorded in the lease so that it can be proven dead before the lease expires. Its keys
        are C(machine_id), C(boot_id), C(pid_namespace) (where the PID was read) and C(pid_start) (the start time in clock ticks
        since boot, field 22 of C(/proc/PID/stat)).
      - With O(state=lock) the action plugin fills it in on the controller together with O(lock_pid).
      - A lease is taken over before it expires only when these prove its holder dead, on the holder's machine (the
        controller, see RV(took_over); or the target when it is that machine, see RV(lock_taken_over)). That needs the same
        machine ID, and either another boot ID or, in the same boot and PID namespace, a PID that no longer runs or has another
        start time. A host name and a PID alone never do.
    type: dict
  force:
    description:
      - Ignore a deploy lease held by someone else in mutating states, and allow O(state=unlock) to remove another run's lease.
      - It does not relax any release rule.
    type: bool
    default: false
  force_rebuilt:
    description:
      - Accept a manifest that had to be rebuilt from the release directories (its file and its backup were both unusable; see
        RV(manifest_rebuilt) and the warnings). Without it, O(state=prune) refuses to remove releases, and O(state=switch) and
        O(state=rollback) refuse a release whose status is V(unknown), because a release recorded V(unknown) may be one that failed
        and the previous good release is no longer known.
      - The mutating state that runs with it removes the mark of the rebuild from the manifest, so later runs no longer refuse.
    type: bool
    default: false
    version_added: 0.1.0
notes:
  - The manifest is C(BASE/.zerodown/manifest.json), the short lock is C(BASE/.zerodown/lock) with holder record C(lock.json),
    the lease is C(BASE/.zerodown/deploy.lock).
  - Prune renames a release to a hidden C(releases/.prune-*) name before deleting it, so a half-deleted release is never visible
    under its ID. Leftovers of an interrupted prune are removed by the next prune. Deleting never follows a symbolic link.
  - Temporary files that a run killed mid-write left (C(BASE/.current.new-*), C(BASE/.zerodown/.manifest.json.tmp-*) and
    C(.manifest.json.bak.tmp-*)) are removed by the next mutating state outside check mode, once older than a minute.
seealso:
  - module: zerodown.deploy.release_info
  - name: Release layout and rules
    description: The collection's documentation of the release module.
    link: https://github.com/zerodown/deploy/blob/main/docs/release.md
"""

EXAMPLES = r"""
- name: Take the deploy lock for this run
  zerodown.deploy.release:
    path: /srv/shop
    state: lock
    lock_id: "{{ deploy_run_id }}"
    lock_timeout: 600
    lock_play: "{{ ansible_play_name }}"

- name: Create a new release directory
  zerodown.deploy.release:
    path: /srv/shop
    state: prepare
    revision: "{{ git_result.after }}"
    owner: shop
    group: shop
    mode: "0755"
    lock_id: "{{ deploy_run_id }}"
  register: new_release

- name: Point current at it
  zerodown.deploy.release:
    path: /srv/shop
    state: switch
    release: "{{ new_release.release }}"
    lock_id: "{{ deploy_run_id }}"

- name: Health gate failed - go back and never use this release again
  zerodown.deploy.release:
    path: /srv/shop
    state: rollback
    mark_current_bad: true
    reason: health check /healthz returned 502
    lock_id: "{{ deploy_run_id }}"

- name: Keep three good releases
  zerodown.deploy.release:
    path: /srv/shop
    state: prune
    keep_releases: 3
    lock_id: "{{ deploy_run_id }}"

- name: Give the deploy lock back
  zerodown.deploy.release:
    path: /srv/shop
    state: unlock
    lock_id: "{{ deploy_run_id }}"

- name: Roll back to a named release (manual)
  zerodown.deploy.release:
    path: /srv/shop
    state: rollback
    release: 20261121T101500Z-3f2a9c1

- name: Show releases (zerodown.deploy.release_info reads them)
  zerodown.deploy.release_info:
    path: /srv/shop
  register: releases
"""

RETURN = r"""
release:
  description: The release ID acted on (prepared, switched to, marked bad, rolled back to); for O(state=query) and O(state=lock) the current one.
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
release_path:
  description: Absolute path of RV(release).
  returned: success
  type: str
  sample: /srv/shop/releases/20261121T101500Z-3f2a9c1
previous:
  description: The release C(current) pointed at before this task, or V(null).
  returned: success
  type: str
  sample: 20261120T083000Z-91bc0de
current:
  description: The release C(current) points at after this task (in check mode, would point at), or V(null).
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
previous_good:
  description: The release O(state=rollback) without O(release) would choose now, or V(null). Never pruned.
  returned: success
  type: str
  sample: 20261120T083000Z-91bc0de
releases:
  description: All releases, oldest first by creation order.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Release ID.
      type: str
    status:
      description:
        - V(good) (switched to, and its health gate passed where one was asked for), V(switched) (switched to, health gate not
          passed yet), V(bad), V(unfinished) (prepared, never switched to) or V(unknown) (found on disk without a record).
      type: str
    created:
      description: UTC time the release was prepared (ISO 8601), if known.
      type: str
    switched_at:
      description: UTC time C(current) was last switched to it, if known.
      type: str
    revision:
      description: VCS revision, if known.
      type: str
    reason:
      description: Why it was marked bad.
      type: str
    current:
      description: Whether C(current) points at it.
      type: bool
  sample:
    - {id: 20261120T083000Z-91bc0de, status: good, created: "2026-11-20T08:30:00Z", switched_at: "2026-11-20T08:31:02Z",
       revision: 91bc0de, reason: null, current: false}
lock_id:
  description: With O(state=lock), the lock id of this run's lease (the one given, or the one the action plugin made).
  returned: when O(state=lock)
  type: str
commands:
  description: With O(state=build), each command run, with C(item) (the command), C(rc), C(stdout) and C(stderr) (their ends).
  returned: when O(state=build)
  type: list
  elements: dict
rc:
  description: With O(state=build), the exit status of the command that failed.
  returned: when a build command failed
  type: int
stderr:
  description: With O(state=build), the end of the failed command's standard error.
  returned: when a build command failed
  type: str
report_path:
  description: With O(state=unlock), where the report was written, or V(null).
  returned: when O(state=unlock)
  type: str
user:
  description: With O(state=lock), the user the module ran as on the target.
  returned: when O(state=lock)
  type: str
rsync:
  description: With O(state=lock), the path of rsync on the target, or V(null).
  returned: when O(state=lock)
  type: str
host_facts:
  description:
    - With O(state=lock), what the deploy needs from the host, checked before the lease is taken or anything is made. Any
      problem (PID 1 not systemd, systemd older than 247, an OS outside the Debian family, Python older than 3.9, no way to become
      the app user) fails the task with every problem named, and nothing is changed.
  returned: when O(state=lock)
  type: dict
  contains:
    pid1:
      description: The name of PID 1.
      type: str
    systemd_version:
      description: The version C(systemctl --version) reports.
      type: int
    os:
      description: The os-release ID and VERSION_ID.
      type: str
    os_family:
      description: V(debian), or V(null) outside the supported family.
      type: str
    python:
      description: The Python the module ran on.
      type: str
    sudo:
      description: Whether sudo is installed.
      type: bool
    su:
      description: Whether su is installed.
      type: bool
    become_method:
      description: How the release steps become the app's users, V(sudo), or V(su) for root on a host without sudo.
      type: str
  sample: {pid1: systemd, systemd_version: 252, os: debian 12, os_family: debian, python: 3.11.2, sudo: false, su: true,
           become_method: su}
new:
  description: With O(state=prepare), whether a new release was prepared (V(false) when O(reuse_live) found the revision live).
  returned: when O(state=prepare)
  type: bool
resume:
  description:
    - With O(state=prepare) and O(reuse_live), V(true) when the live release of that revision is V(switched), that is, an earlier deploy
      moved C(current) and stopped before the health gate. RV(previous) is then the previous good release.
  returned: when O(state=prepare) found the revision live
  type: bool
env_changed:
  description: With O(state=layout), whether the content of C(BASE/shared/.env) changed.
  returned: when O(state=layout)
  type: bool
changed_paths:
  description: With O(state=layout) and O(state=link), the paths created or changed (or that would be, in check mode).
  returned: when O(state=layout) or O(state=link)
  type: list
  elements: str
removed:
  description: Release IDs removed by O(state=prune) (in check mode, that would be removed). Empty for other states.
  returned: success
  type: list
  elements: str
  sample: [20261101T090000Z-0aa1b2c]
manifest_rebuilt:
  description:
    - Whether the manifest was missing (while releases existed), corrupt or wrongly shaped, and was rebuilt, from its backup
      C(manifest.json.bak) when that was usable, otherwise from the disk (the warnings say which; see O(force_rebuilt)).
  returned: success
  type: bool
lock:
  description: The deploy lease after this task, or V(null) when none is held.
  returned: success
  type: dict
  contains:
    lock_id:
      description: Identifier of the run holding the lease.
      type: str
    owner:
      description: Who holds it.
      type: str
    host:
      description: Host the holder runs on.
      type: str
    pid:
      description: Process ID given by the holder.
      type: int
    play:
      description: Play name given by the holder.
      type: str
    started:
      description: When the lease was first taken (UTC).
      type: str
    expires:
      description: When the lease expires (UTC) unless renewed.
      type: str
    ttl:
      description: Lifetime in seconds.
      type: int
    machine_id:
      description: The holder's machine ID (O(lock_holder)); absent when not recorded.
      type: str
    boot_id:
      description: The boot ID of the holder's machine when it took the lease; absent when not recorded.
      type: str
    pid_namespace:
      description: The PID namespace its PID was read in; absent when not recorded.
      type: str
    pid_start:
      description: Start time of the holder process, clock ticks since boot; absent when not recorded.
      type: int
lock_taken_over:
  description:
    - With O(state=lock), whether an expired (or unreadable) lease of another run was taken over, or one whose holder the module
      proved dead (see O(lock_holder)).
  returned: when O(state=lock)
  type: bool
took_over:
  description:
    - With O(state=lock), the lease of a run on this controller whose C(ansible-playbook) process provably no longer runs
      (see O(lock_holder)), which was given back (O(state=unlock) with its O(lock_id)) before the lock was taken, or V(null) when nothing was taken over.
    - Set by the action plugin. An expired lease taken over by the module itself is RV(lock_taken_over).
  returned: when O(state=lock)
  type: dict
  contains:
    lock_id:
      description: Identifier of the run that held the lease.
      type: str
    pid:
      description: Its C(ansible-playbook) process, gone now.
      type: int
    host:
      description: The controller it ran on (this one).
      type: str
    started:
      description: When it took the lease (UTC).
      type: str
    play:
      description: Its play.
      type: str
  sample: {lock_id: k2x9w0q4m1d8s7a6b5c3, pid: 41210, host: ctl.example.com, started: "2026-11-21T10:15:00Z", play: Deploy shop}
previous_holder:
  description: With O(state=lock) and O(state=unlock), the lease that was taken over or removed.
  returned: when O(state=lock) or O(state=unlock)
  type: dict
diff:
  description: Target of C(BASE/current) before and after.
  returned: diff mode
  type: dict
  sample: {before: "releases/20261120T083000Z-91bc0de\n", after: "releases/20261121T101500Z-3f2a9c1\n"}
"""

import os
import pwd
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._host import check_host, problems_message
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish
from ansible_collections.zerodown.deploy.plugins.module_utils._release import current_diff, manager_for, module_errors, run_state


def _fs_attributes_callback(module: AnsibleModule) -> t.Optional[t.Callable[[str, bool], bool]]:
    params = module.params
    if params['owner'] is None and params['group'] is None and params['mode'] is None:
        return None

    def apply(path: str, changed: bool) -> bool:
        changed = module.set_owner_if_different(path, params['owner'], changed)
        changed = module.set_group_if_different(path, params['group'], changed)
        return module.set_mode_if_different(path, params['mode'], changed)

    return apply


def run_module(module: AnsibleModule):
    """The state of module_utils/_release; its domain errors fail the task with their details."""
    facts = None
    if module.params['state'] == 'lock':
        # A deploy's first call on the host: what it needs is checked before the lease or the layout.
        facts, problems = check_host(module.run_command, module.get_bin_path, pwd.getpwuid(os.geteuid()).pw_name)
        if problems:
            raise ModuleError(problems_message(problems), {'host_facts': facts})
    with module_errors():
        manager = manager_for(module.params, check_mode=module.check_mode, fs_attributes=_fs_attributes_callback(module))
        try:
            result = run_state(manager, module.params, run_command=module.run_command)
        finally:
            for warning in manager.warnings:
                module.warn(warning)
    if module.params['state'] == 'lock':
        # What the steps after the lock decide on: who the tasks run as (become or not), how a directory is copied.
        result['user'] = pwd.getpwuid(os.geteuid()).pw_name
        result['rsync'] = module.get_bin_path('rsync')
        result['host_facts'] = facts
    if module._diff:
        result['diff'] = current_diff(manager, result)
    return result, None


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', required=True,
                       choices=['layout', 'prepare', 'link', 'build', 'switch', 'mark_bad', 'rollback', 'prune', 'query', 'lock', 'unlock']),
            release=dict(type='str'),
            revision=dict(type='str'),
            id_time=dict(type='str'),
            reason=dict(type='str'),
            mark_current_bad=dict(type='bool', default=False),
            keep_releases=dict(type='int', default=5),
            owner=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='raw'),
            lock_id=dict(type='str'),
            lock_timeout=dict(type='int', default=0),
            lock_ttl=dict(type='int', default=3600),
            lock_play=dict(type='str'),
            lock_owner=dict(type='str'),
            lock_host=dict(type='str'),
            lock_pid=dict(type='int'),
            lock_holder=dict(type='dict'),
            force=dict(type='bool', default=False),
            force_rebuilt=dict(type='bool', default=False),
            reuse_live=dict(type='bool', default=False),
            pending_verification=dict(type='bool', default=False),
            verified=dict(type='str'),
            remove=dict(type='bool', default=False),
            git_cache=dict(type='bool', default=False),
            env_content=dict(type='str', no_log=True),
            env_owner=dict(type='str'),
            env_file=dict(type='bool', default=False),
            shared_dirs=dict(type='list', elements='str', default=[]),
            shared_files=dict(type='list', elements='str', default=[]),
            users=dict(type='list', elements='dict', default=[]),
            commands=dict(type='list', elements='raw', default=[]),
            environment=dict(type='dict', default={}),
            report=dict(type='dict'),
            report_path=dict(type='path'),
            prune=dict(type='bool', default=False),
        ),
        required_if=[
            ('state', 'switch', ['release']),
            ('state', 'mark_bad', ['release']),
            ('state', 'link', ['release']),
            ('state', 'build', ['release']),
            ('state', 'layout', ['group']),
            ('state', 'lock', ['lock_id']),
        ],
        supports_check_mode=True,
    )
    if module.params['state'] == 'query':
        module.deprecate('state=query is deprecated: zerodown.deploy.release_info returns the same', version='1.0.0',
                         collection_name='zerodown.deploy')
    finish(module, run_module)


if __name__ == '__main__':
    main()
