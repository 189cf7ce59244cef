#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: Read the releases of a zero-downtime layout, where current points and who holds the deploy lock
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - Reads the release layout C(BASE/releases/ID), C(BASE/current) and the release manifest C(BASE/.zerodown/manifest.json) that
    M(zerodown.deploy.release) manages, and returns every release with its status, the release C(current) points at, the one a
    rollback would choose, and the deploy lease.
  - It never writes, not even a manifest that would need rebuilding (RV(manifest_rebuilt) says so, and the next change by
    M(zerodown.deploy.release) rebuilds it).
  - A base directory that does not exist yet reads as no release at all.
extends_documentation_fragment:
  - zerodown.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - It only reads, in check mode as outside it.
  diff_mode:
    support: none
    details:
      - It changes nothing, so there is nothing to show.
  idempotent:
    support: full
options:
  path:
    description: The base directory of the application, C(BASE) (for example C(/srv/shop)).
    type: path
    required: true
seealso:
  - module: zerodown.deploy.release
  - name: Release layout and rules
    description: The collection's documentation of the release layout.
    link: https://github.com/zerodown/deploy/blob/main/docs/release.md
"""

EXAMPLES = r"""
- name: Read the releases of shop
  zerodown.deploy.release_info:
    path: /srv/shop
  register: shop_releases

- name: Show where current points and what a rollback would choose
  ansible.builtin.debug:
    msg: "current {{ shop_releases.current }}, rollback target {{ shop_releases.previous_good }}"

# From a shell: ansible web1.example.com -b -m zerodown.deploy.release_info -a path=/srv/shop
"""

RETURN = r"""
current:
  description: The release C(current) points at, or V(null) when nothing is deployed.
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
release:
  description: The same as RV(current) (the name M(zerodown.deploy.release) returns it under).
  returned: success
  type: str
  sample: 20261121T101500Z-3f2a9c1
release_path:
  description: Absolute path of RV(current), or V(null).
  returned: success
  type: str
  sample: /srv/shop/releases/20261121T101500Z-3f2a9c1
previous_good:
  description: The release a rollback without a named release would choose now, or V(null).
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
manifest_rebuilt:
  description: Whether the manifest is missing (while releases exist), corrupt or wrongly shaped, so that RV(releases) was read from the disk.
  returned: success
  type: bool
lock:
  description: The deploy lease, or V(null) when none is held.
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._module import finish
from ansible_collections.zerodown.deploy.plugins.module_utils._release import module_errors, read_info


def run_module(module: AnsibleModule):
    """module_utils/_release's read of the layout; its domain errors fail the task with their details."""
    warnings = []
    try:
        with module_errors():
            result = read_info(module.params['path'], warnings)
    finally:
        for warning in warnings:
            module.warn(warning)
    return result, None


def main() -> None:
    module = AnsibleModule(argument_spec=dict(path=dict(type='path', required=True)), supports_check_mode=True)
    finish(module, run_module)


if __name__ == '__main__':
    main()
