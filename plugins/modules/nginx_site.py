#!/usr/bin/python
# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_site
short_description: Install nginx, test a site against the whole configuration, replace it and reload, in one call
version_added: 0.1.0
author: zerodown.deploy developers (@zerodown)
description:
  - The backend of the P(zerodown.deploy.nginx_upstream#role) role, which renders the site on the controller and passes it as
    O(files). Error messages name that role's variables.
  - Installs O(package) with apt when none of O(package) and O(alternatives) is installed (C(dpkg-query) answers without a package
    index, so a host whose nginx is installed never needs the network).
  - Checks every existing Unix socket of O(sockets). nginx's O(user) must be able to connect, and other local users must not.
  - When the files (and in include mode the server files) equal the live ones, nothing else happens. Otherwise the complete
    configuration is tested with C(nginx -t) in a throw-away mirror of the configuration directory where the candidates replace
    the live files, so a change nginx rejects never reaches the live configuration; then the files are replaced atomically, the
    live configuration is tested once more, and nginx is reloaded (started when it is not running; never restarted).
extends_documentation_fragment:
  - zerodown.deploy._attributes
  - zerodown.deploy._attributes.FILES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  safe_file_operations:
    support: full
    details:
      - Site and server files are replaced atomically (temporary file, V(fsync), V(rename)).
  idempotent:
    support: full
  platform:
    platforms: debian
options:
  name:
    description: The site's name, for the staging directory and messages.
    type: str
    required: true
  files:
    description:
      - Absolute path of each live file (inside the directory of O(main_config)) to its wanted content.
      - A value of V(null) means the file must not exist (the distribution's default site, say). It is left out of the tested
        configuration and removed with the install.
    type: dict
    required: true
  servers_dir:
    description: Include mode, the directory of one file per upstream server (see M(zerodown.deploy.nginx_backend)).
    type: path
  servers:
    description: Include mode, file name to content of every server file; files not listed are removed.
    type: dict
  sockets:
    description: Unix sockets of the upstream to check, where they exist.
    type: list
    elements: path
    default: []
  user:
    description: nginx's user (the C(user) of nginx.conf).
    type: str
    default: www-data
  main_config:
    description: nginx's main configuration file.
    type: path
    default: /etc/nginx/nginx.conf
  staging_dir:
    description: Where candidates are staged.
    type: path
    default: /var/lib/zerodown/nginx
  package:
    description: The package installed when no nginx is.
    type: str
    default: nginx
  alternatives:
    description: Other packages that provide nginx.
    type: list
    elements: str
    default: [nginx-light, nginx-core, nginx-full, nginx-extras]
  service:
    description: nginx's systemd unit.
    type: str
    default: nginx
  keep_server_states:
    description:
      - Include mode, keep an existing server file up or down as it is (only its address and parameters come from O(servers)).
        Once the directory has server files, a new one is written down, and one that is up stays even when O(servers) no
        longer names it. The instances of the P(zerodown.deploy.app#role) role are routed by their surge, not by the site.
    type: bool
    default: false
  retire_units:
    description:
      - Units to stop and disable once the reload's old workers, the only ones that could still send them a request, have
        exited. The app role moves off one shared socket this way.
    type: list
    elements: str
    default: []
  pid_file:
    description: nginx's pid file (to know its workers from before a reload).
    type: path
    default: /run/nginx.pid
  drain_timeout:
    description: Seconds to wait for the old workers before O(retire_units) stop anyway (with a warning).
    type: float
    default: 60
seealso:
  - module: zerodown.deploy.nginx_backend
"""

EXAMPLES = r"""
- name: Put nginx in front of the socket
  zerodown.deploy.nginx_site:
    name: hello
    files:
      /etc/nginx/conf.d/00-zerodown.conf: "{{ lookup('ansible.builtin.template', 'common.conf.j2') }}"
      /etc/nginx/conf.d/zerodown-hello.conf: "{{ lookup('ansible.builtin.template', 'site.conf.j2') }}"
    sockets: [/run/hello/hello.sock]
"""

RETURN = r"""
changed_files:
  description: Live files that differed (replaced unless in check mode).
  returned: always
  type: list
  elements: str
changed_servers:
  description: Include mode, server files that differed or were removed.
  returned: always
  type: list
  elements: str
installed_package:
  description: The package that was installed, or null.
  returned: always
  type: str
reloaded:
  description: Whether nginx was reloaded (or started).
  returned: always
  type: bool
retired:
  description: The O(retire_units) that ran and were stopped.
  returned: when any was
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.deploy.plugins.module_utils._host import install_package, installed_packages
from ansible_collections.zerodown.deploy.plugins.module_utils._module import ModuleError, finish
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx import SiteError, Site, socket_problems, mirror_test
from ansible_collections.zerodown.deploy.plugins.module_utils._nginx_backend import BackendError, DrainWatch, ProcTable, parse_servers, read_master_pid
from ansible_collections.zerodown.deploy.plugins.module_utils._systemd import Systemd, SystemdError


def serving_sockets(sockets: list, site: Site) -> list:
    """The sockets nginx will send requests to: with server files, not those of a server that stays down (an instance that
    does not run has no socket)."""
    down = set()
    for text in (site.servers or {}).values():
        down.update(server.address for server in parse_servers(text) if server.down)
    return [path for path in sockets if 'unix:' + path not in down]


def apply_site(module) -> dict:
    params = module.params
    result = {'changed': False, 'changed_files': [], 'changed_servers': [], 'installed_package': None, 'reloaded': False}
    if not installed_packages(module.run_command, [params['package']] + params['alternatives']):
        result['installed_package'] = params['package']
        result['changed'] = True
        if module.check_mode:
            return result
        failure = install_package(module.run_command, params['package'])
        if failure is not None:
            raise SiteError('nginx_upstream: ' + failure)
    site = Site(params['name'], params['files'], params['main_config'], params['staging_dir'], params['servers_dir'], params['servers'],
                keep_states=params['keep_server_states'])
    problems = socket_problems(serving_sockets(params['sockets'], site), params['user'])
    if problems:
        raise SiteError(' | '.join(problems))
    result['changed_files'] = site.changed_files
    result['changed_servers'] = site.changed_servers
    if module._diff:
        result['diff'] = site.diff()
    systemd = Systemd.for_module(module)
    running = systemd.is_active(params['service'])
    if not site.changed and running:
        retire(module, systemd, params['retire_units'], None, result)
        return result
    result['changed'] = True
    if module.check_mode:
        return result
    nginx = module.get_bin_path('nginx', required=True, opt_dirs=['/usr/sbin'])
    if site.changed:
        rc, said = mirror_test(module.run_command, nginx, params['main_config'], site.write_stage())
        if rc != 0:
            raise SiteError('nginx_upstream: the new configuration of %s failed `nginx -t` (%s); the live configuration and the served '
                            'traffic are unchanged. nginx said: %s' % (params['name'], site.describe_test(), said))
        site.install()
        rc, out, err = module.run_command([nginx, '-t', '-q'])
        if rc != 0:
            raise SiteError('nginx_upstream: the live configuration failed `nginx -t` after the tested files were installed: %s'
                            % (err or out).strip())
    if not systemd.is_enabled([params['service']]):
        systemd.run('enable', [params['service']])
    watch = None
    if running and params['retire_units']:
        master = read_master_pid(params['pid_file'])
        watch = DrainWatch(ProcTable(), params['pid_file'], master, ProcTable().children(master))
    # Starting a stopped nginx is not a restart: nothing was being served. A running one only ever reloads.
    systemd.run('reload' if running else 'start', [params['service']])
    result['reloaded'] = True
    retire(module, systemd, params['retire_units'], watch, result)
    return result


def retire(module, systemd: Systemd, units: list, watch, result: dict) -> None:
    """Stop what only the configuration of before the reload sent requests to, once the workers that had it exited."""
    running = [unit for unit in units if systemd.is_active(unit)]
    if not running:
        return
    if watch is not None:
        outcome = watch.wait(module.params['drain_timeout'])
        result['drain_seconds'] = round(outcome.seconds, 3)
        if not outcome.done:
            module.warn('%d nginx worker(s) from before the reload were still running after %g s; stopping %s anyway'
                        % (len(outcome.remaining), module.params['drain_timeout'], ', '.join(running)))
    systemd.run('disable', running, extra=('--now',))
    result['retired'] = running
    result['changed'] = True


def run_module(module: AnsibleModule):
    """The site of module_utils/_nginx; anything refused or rejected by nginx fails with the live configuration unchanged."""
    for path in module.params['files']:
        if not os.path.isabs(path):
            raise ModuleError('files: %r is not an absolute path' % path)
    try:
        return apply_site(module), None
    except SiteError as exc:
        raise ModuleError(str(exc))
    except (SystemdError, BackendError) as exc:
        raise ModuleError('nginx_upstream: %s' % exc)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            files=dict(type='dict', required=True),
            servers_dir=dict(type='path'),
            servers=dict(type='dict'),
            sockets=dict(type='list', elements='path', default=[]),
            user=dict(type='str', default='www-data'),
            main_config=dict(type='path', default='/etc/nginx/nginx.conf'),
            staging_dir=dict(type='path', default='/var/lib/zerodown/nginx'),
            package=dict(type='str', default='nginx'),
            alternatives=dict(type='list', elements='str', default=['nginx-light', 'nginx-core', 'nginx-full', 'nginx-extras']),
            service=dict(type='str', default='nginx'),
            keep_server_states=dict(type='bool', default=False),
            retire_units=dict(type='list', elements='str', default=[]),
            pid_file=dict(type='path', default='/run/nginx.pid'),
            drain_timeout=dict(type='float', default=60),
        ),
        required_together=[('servers_dir', 'servers')],
        supports_check_mode=True,
    )
    finish(module, run_module)


if __name__ == '__main__':
    main()
