#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_units
short_description: Verify, install and start the units of a socket-activated service in one call
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - The backend of the P(zerodown.deploy.socket_service#role) role, which renders the unit files on the controller and passes
    them as O(units). Error messages name that role's variables.
  - Files identical to the installed ones are not staged or verified again. Otherwise every file is staged in
    O(staging_dir)/O(name)/, checked together with C(systemd-analyze verify) (a warning such as C(Unknown key) fails too), and
    O(exposure_file) is scored with C(systemd-analyze security --offline=yes) against O(exposure_limit). Nothing is installed
    unless all of it passes.
  - A changed socket unit of a listening socket, or a change to the public proxy of proxy mode, is refused unless
    O(allow_socket_restart), since either restart drops connections.
  - The verified files are installed atomically, units of this app that run but are not in O(services) are stopped and
    disabled, the files in O(obsolete) are removed, and systemd is reloaded.
  - With O(state=started), C(net.core.somaxconn) is raised to O(backlog), the socket and O(services) are enabled and started,
    and services that were running with a changed unit file are restarted one at a time, each waiting until it is active with a
    new main PID and answers O(health_path) through O(health_endpoint), when O(restart_on_change). Proxy mode starts a slot with
    the blue/green switch of M(zerodown.deploy.blue_green), or switches slots when an app unit changed.
  - A service that does not become ready fails the task with its unit state and log lines, and says so when the failure looks
    caused by hardening.
extends_documentation_fragment:
  - zerodown.deploy._attributes
  - zerodown.deploy._attributes.FILES
attributes:
  check_mode:
    support: full
    details:
      - Reports which files would change and whether a guard would refuse; stages and verifies nothing.
  diff_mode:
    support: full
  safe_file_operations:
    support: full
    details:
      - Unit files are replaced atomically (temporary file, V(fsync), V(rename)).
  idempotent:
    support: full
options:
  name:
    description: Base name of the service (C(NAME.socket), C(NAME.service) or C(NAME@.service)).
    type: str
    required: true
  units:
    description: Unit file name to content, for every unit file of O(mode). Must contain O(socket).
    type: dict
    required: true
  mode:
    description:
      - V(socket), the app takes the one socket (all instances share it); V(proxy), systemd-socket-proxyd in front of two slots;
        V(instances), every instance is a slot C(NAME@K) with its own socket behind nginx (see O(slots)).
      - With V(instances), the slots that nginx sends requests to are the live ones, that is the ones nginx's N positions point at.
        On a Unix socket a position is a symbolic link to a slot's socket (a tmpfiles.d file puts the links back at boot). On TCP it
        is an address C(127.1.0.I:PORT) that nothing binds, and a NAT rule of the app's nftables table C(zerodown_NAME) sends its
        new connections to a slot; the rules file C(/etc/zerodown/NAME-positions.nft) is checked with C(nft -c) before it replaces
        the old one, and the unit C(zerodown-NAME-positions.service) loads it at boot and after a restart of C(nftables.service).
        The Debian package C(nftables) is installed when missing. A first start starts N slots and points the positions at them;
        the nginx_upstream role then points the site at the positions.
        A changed unit goes live with a surge (new slots beside the live ones, nginx moved to them, the old slots drained and stopped). While the one socket of
        the other layout still serves, it keeps serving; RV(legacy_units) names what to stop once nginx moved off it.
    type: str
    choices: [socket, proxy, instances]
    default: socket
  socket:
    description: The socket unit. Default C(NAME.socket).
    type: str
  services:
    description: The service units that must run, such as V([hello.service]) or V([hello@1.service, hello@2.service]).
    type: list
    elements: str
    required: true
  obsolete:
    description: Unit files of the other modes and shapes, removed when present.
    type: list
    elements: str
    default: []
  unit_dir:
    description: Where the units are installed.
    type: path
    default: /etc/systemd/system
  staging_dir:
    description: Where the candidate files are staged and verified.
    type: path
    default: /var/lib/zerodown/units
  state:
    description: V(installed) stops after installing; V(started) also starts and waits for readiness.
    type: str
    choices: [installed, started]
    default: started
  restart_on_change:
    description: Restart running services whose unit file changed (one at a time).
    type: bool
    default: true
  allow_socket_restart:
    description: Allow restarting a listening socket or the public proxy to apply a change.
    type: bool
    default: false
  exposure_file:
    description: The unit file in O(units) to score offline before installing.
    type: str
  exposure_unit:
    description: The running unit to score after starting (when the files changed or a drop-in exists).
    type: str
  exposure_limit:
    description: The highest exposure score allowed; no limit when not set.
    type: float
  hardening_profile:
    description: The name of the hardening profile, for messages.
    type: str
    default: default
  hardening_strict:
    description: Whether the strict tier is on, for messages.
    type: bool
    default: false
  health_endpoint:
    description: Where readiness is probed, such as V(unix:/run/hello.sock) or V(127.0.0.1:8000).
    type: str
  health_path:
    description: Path that must answer 2xx before a service counts as ready; empty for none.
    type: str
    default: ''
  ready_timeout:
    description: Seconds each readiness wait may take.
    type: float
    default: 60
  backlog:
    description: The socket's C(Backlog=); C(net.core.somaxconn) is raised to it when lower.
    type: int
  manage_somaxconn:
    description: Raise C(net.core.somaxconn) to O(backlog) (a file in C(/etc/sysctl.d) and C(sysctl --load)).
    type: bool
    default: true
  slots:
    description:
      - With O(mode=instances), the slots and nginx.
    type: dict
    suboptions:
      instances:
        description: N; the slots are 1 .. 2N.
        type: int
        required: true
      listen:
        description:
          - The app's address, from which slot K's own is made (V(/run/shop/shop.sock) gives V(/run/shop/shop-K.sock),
            V(127.0.0.1:8000) gives V(127.0.0.K:8000)).
        type: str
        required: true
      servers_dir:
        description: nginx's directory of one server file per position.
        type: path
        required: true
      server_options:
        description: Parameters of every server line.
        type: str
        default: ''
      nginx_service:
        description: nginx's unit.
        type: str
        default: nginx
      drain_timeout:
        description: Seconds to wait for a slot taken out to drain (its last connection closed).
        type: float
        default: 60
  proxy:
    description:
      - Proxy mode settings, as for M(zerodown.deploy.blue_green)
    type: dict
    suboptions:
      ports:
        description: The two slot ports.
        type: list
        elements: int
      drain_timeout:
        description: Seconds to wait for the old slot's connections after a switch.
        type: float
        default: 30
      health_path:
        description: Path a new slot must answer before it goes live.
        type: str
        default: /
seealso:
  - module: zerodown.deploy.blue_green
  - module: zerodown.deploy.preflight
"""

EXAMPLES = r"""
- name: Install and start the units of hello
  zerodown.deploy.service_units:
    name: hello
    units:
      hello.socket: "{{ lookup('ansible.builtin.template', 'socket.j2') }}"
      hello.service: "{{ lookup('ansible.builtin.template', 'service.j2') }}"
    services: [hello.service]
    obsolete: [hello@.service]
    exposure_file: hello.service
    exposure_unit: hello.service
    exposure_limit: 1.5
    health_endpoint: unix:/run/hello.sock
    health_path: /healthz
    backlog: 4096
"""

RETURN = r"""
installed_package:
  description: V(nftables) when it was installed (would be, in check mode) for an app on a TCP address, else V(null).
  returned: always
  type: str
changed_units:
  description: The unit files that differed from the installed ones (installed unless in check mode).
  returned: always
  type: list
  elements: str
removed_units:
  description: Files of O(obsolete) that were present (removed unless in check mode).
  returned: always
  type: list
  elements: str
verified:
  description: Whether the staged files were verified (false when nothing changed).
  returned: always
  type: bool
stopped:
  description: Units of this app that ran without being wanted and were stopped and disabled.
  returned: always
  type: list
  elements: str
started:
  description: Units that were not running and were started.
  returned: always
  type: list
  elements: str
restarted:
  description: Services restarted one at a time because their unit file changed.
  returned: always
  type: list
  elements: str
socket_restarted:
  description: Whether the socket was restarted (only with O(allow_socket_restart)).
  returned: always
  type: bool
somaxconn:
  description: The value C(net.core.somaxconn) was raised to, or null.
  returned: always
  type: int
staged_exposure:
  description: The offline exposure score of the staged O(exposure_file), or null when nothing was staged.
  returned: always
  type: float
exposure:
  description: The exposure score of the running O(exposure_unit), or null when it was not scored.
  returned: always
  type: float
slot:
  description: Proxy mode, what the blue/green start or switch returned; layout instances, what the start or surge did.
  returned: always
  type: dict
live:
  description: With O(mode=instances), the live slots after the run.
  returned: always
  type: list
  elements: int
legacy_units:
  description: With O(mode=instances), the units of the one shared socket that still serve; stop them once nginx moved off.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._bluegreen import Switch
from ansible_collections.zerodown.deploy.plugins.module_utils._flip import Flip, Slots
from ansible_collections.zerodown.deploy.plugins.module_utils._host import install_package, installed_packages
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import Nginx
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd
from ansible_collections.zerodown.deploy.plugins.module_utils._units import Rollout, Spec, UnitsError

NFTABLES_PACKAGE = 'nftables'


def slot_flip(module: AnsibleModule, spec: Spec, systemd: Systemd) -> Flip:
    """Layout instances: the slots of the app behind nginx, and nginx to route between them."""
    slots = module.params['slots']
    nginx = Nginx(module.get_bin_path('nginx', opt_dirs=['/usr/sbin']) or '/usr/sbin/nginx', systemd, slots['nginx_service'])
    return Flip(Slots(spec.name, slots['instances'], slots['listen'], slots['servers_dir'], slots['server_options']), systemd,
                nginx=nginx, health_path=spec.health_path or '/', ready_timeout=spec.ready_timeout,
                drain_timeout=slots['drain_timeout'], warn=module.warn)


def ensure_nftables(module: AnsibleModule) -> bool:
    """Layout instances on TCP: nftables' rules carry nginx's positions to the slots; installed when missing. True when it
    was (or, in check mode, would be)."""
    slots = module.params['slots'] or {}
    if module.params['mode'] != 'instances' or str(slots.get('listen', '/')).startswith('/'):
        return False
    if installed_packages(module.run_command, [NFTABLES_PACKAGE]):
        return False
    if not module.check_mode:
        failure = install_package(module.run_command, NFTABLES_PACKAGE)
        if failure is not None:
            raise ModuleError('socket_service: %s is needed for an app on a TCP address (nginx reaches its instances through '
                              'NAT rules), and installing it failed: %s' % (NFTABLES_PACKAGE, failure))
    return True


def run_module(module: AnsibleModule):
    """The rollout of module_utils/_units; a refusal or a service that did not come up fails with what was done so far."""
    params = module.params
    systemd = Systemd.for_module(module)
    proxy = params['proxy'] or {}
    rollout = None
    try:
        spec = Spec(params)

        def switch_factory():
            return Switch(spec.name, proxy.get('ports') or [8001, 8002], systemd, health_path=proxy.get('health_path') or '/',
                          ready_timeout=spec.ready_timeout, drain_timeout=proxy.get('drain_timeout') or 30, warn=module.warn)

        def flip_factory():
            return slot_flip(module, spec, systemd)

        installed = ensure_nftables(module)
        rollout = Rollout(spec, systemd, check_mode=module.check_mode, switch_factory=switch_factory, warn=module.warn,
                          flip_factory=flip_factory)
        result = rollout.run()
        result['installed_package'] = NFTABLES_PACKAGE if installed else None
        result['changed'] = result['changed'] or installed
    except UnitsError as exc:
        raise ModuleError(exc.msg, rollout.result if rollout else None)
    if module._diff:
        result['diff'] = rollout.diff()
    return result, None


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            units=dict(type='dict', required=True),
            mode=dict(type='str', choices=['socket', 'proxy', 'instances'], default='socket'),
            socket=dict(type='str'),
            services=dict(type='list', elements='str', required=True),
            obsolete=dict(type='list', elements='str', default=[]),
            unit_dir=dict(type='path', default='/etc/systemd/system'),
            staging_dir=dict(type='path', default='/var/lib/zerodown/units'),
            state=dict(type='str', choices=['installed', 'started'], default='started'),
            restart_on_change=dict(type='bool', default=True),
            allow_socket_restart=dict(type='bool', default=False),
            exposure_file=dict(type='str'),
            exposure_unit=dict(type='str'),
            exposure_limit=dict(type='float'),
            hardening_profile=dict(type='str', default='default'),
            hardening_strict=dict(type='bool', default=False),
            health_endpoint=dict(type='str'),
            health_path=dict(type='str', default=''),
            ready_timeout=dict(type='float', default=60),
            backlog=dict(type='int'),
            manage_somaxconn=dict(type='bool', default=True),
            slots=dict(type='dict', options=dict(
                instances=dict(type='int', required=True),
                listen=dict(type='str', required=True),
                servers_dir=dict(type='path', required=True),
                server_options=dict(type='str', default=''),
                nginx_service=dict(type='str', default='nginx'),
                drain_timeout=dict(type='float', default=60),
            )),
            proxy=dict(type='dict', options=dict(
                ports=dict(type='list', elements='int'),
                drain_timeout=dict(type='float', default=30),
                health_path=dict(type='str', default='/'),
            )),
        ),
        supports_check_mode=True,
    )
    finish(module, run_module, restarts=module.params['name'])


if __name__ == '__main__':
    main()
