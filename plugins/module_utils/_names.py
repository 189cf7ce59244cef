# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every name the collection derives from an app's name (internal): units, sockets, links, nginx files.

The roles (through the ``zerodown.deploy.names`` filter), the templates and
the modules all build unit names, the proxy-mode link, the pre-flight's
private socket and nginx's file names here, and nowhere else, so the unit a
role installs is the unit a module restarts.

Standard library only.
"""

from __future__ import annotations

import os
import re

# Where proxy mode keeps the link the public proxy forwards to (persistent: a
# reboot comes back on the live slot) and the slots' sockets (runtime).
LINK_DIR = '/var/lib/zerodown'
SOCKET_DIR = '/run/zerodown'
LINK_NAME = 'live.sock'
PREFLIGHT_SOCKET_DIR = '/run/zerodown/preflight'
PREFLIGHT_SUFFIX = '-preflight'
UNIT_STAGING_DIR = '/var/lib/zerodown/units'
# /lib/systemd is /usr/lib/systemd on merged-/usr systems and the real place on
# older ones, so this path works on both (proxy mode's units run it).
SOCKET_PROXYD = '/lib/systemd/systemd-socket-proxyd'
NGINX_STAGING_DIR = '/var/lib/zerodown/nginx'
# Layout instances on TCP: position i of an app on PORT is POSITION_NET + i:PORT, which no process binds (127/8 is all
# loopback); the app's NAT rules, kept in POSITION_RULES_DIR, send its connections to a slot.
POSITION_NET = '127.1.0.'
POSITION_RULES_DIR = '/etc/zerodown'


def service_units(name: str, instances: int) -> list:
    """The service units that run: NAME.service, or NAME@1..N.service sharing NAME.socket."""
    if int(instances) <= 1:
        return ['%s.service' % name]
    return ['%s@%d.service' % (name, index) for index in range(1, int(instances) + 1)]


def service_unit_file(name: str, instances: int) -> str:
    """The unit file behind service_units: NAME.service, or the template NAME@.service."""
    return '%s@.service' % name if int(instances) > 1 else '%s.service' % name


def socket_unit(name: str) -> str:
    return '%s.socket' % name


def instance_socket_file(name: str) -> str:
    """Layout ``instances``: the socket template every slot's NAME@K.socket comes from."""
    return '%s@.socket' % name


def link_path(name: str) -> str:
    """Proxy mode: the fixed path the public proxy forwards to; it points at the live slot's socket."""
    return os.path.join(LINK_DIR, name, LINK_NAME)


def slot_dir(name: str) -> str:
    return os.path.join(SOCKET_DIR, name)


def slot_socket_path(name: str, port: int) -> str:
    """Proxy mode: the Unix socket of one slot (ListenStream= of NAME-slot@PORT.socket)."""
    return os.path.join(SOCKET_DIR, name, 'slot-%d.sock' % int(port))


class SlotUnits:
    """Proxy mode: the three units of one slot."""

    def __init__(self, name: str, port: int):
        self.port = int(port)
        self.app = '%s-app@%d.service' % (name, self.port)
        self.socket = '%s-slot@%d.socket' % (name, self.port)
        self.proxy = '%s-slot@%d.service' % (name, self.port)

    @property
    def all(self) -> list:
        """Stop order does not matter in one systemctl call: systemd orders the stop jobs by After=."""
        return [self.proxy, self.socket, self.app]

    @property
    def persistent(self) -> list:
        """What a reboot must start: the slot socket (it starts the slot proxy on demand) and the app."""
        return [self.socket, self.app]


class InstanceUnits:
    """Layout ``instances``: the socket and the service of one slot."""

    def __init__(self, name: str, k: int):
        self.k = int(k)
        self.socket = '%s@%d.socket' % (name, self.k)
        self.service = '%s@%d.service' % (name, self.k)


def instance_units(name: str, k: int) -> InstanceUnits:
    return InstanceUnits(name, k)


def instance_slots(instances: int) -> list:
    """Layout ``instances``: slots 1 .. 2N, so that a new set of N can start beside the live one."""
    return list(range(1, 2 * int(instances) + 1))


def instance_listen(listen: str, name: str, k) -> str:
    """Slot k's own address, also as a systemd template with k = "%i".

    /run/NAME/NAME.sock gives /run/NAME/NAME-k.sock. A loopback HOST:PORT gives 127.0.0.k:PORT: every 127/8
    address is the loopback interface, and only an address with k in it can be written once for all slots
    (systemd's %i cannot add to a port).
    """
    if listen.startswith('/'):
        directory, base = os.path.split(listen)
        stem = base[:-len('.sock')] if base.endswith('.sock') else base
        return os.path.join(directory, '%s-%s.sock' % (stem, k))
    dummy, dummy, port = listen.rpartition(':')
    return '127.0.0.%s:%s' % (k, port)


def instance_backend(listen: str, name: str, k: int) -> str:
    """Slot k as an nginx upstream server (unix:PATH or HOST:PORT)."""
    address = instance_listen(listen, name, k)
    return ('unix:' + address) if address.startswith('/') else address


def instance_position(listen: str, name: str, i: int) -> str:
    """Layout ``instances``: where nginx connects for position i (1 .. N) of the upstream.

    On a Unix socket, /run/NAME/NAME.sock gives /run/NAME/NAME-live-i.sock, a symbolic link to the socket of the slot
    that serves position i. On TCP, 127.0.0.1:PORT gives 127.1.0.i:PORT, an address nothing binds: the kernel
    translates each new connection to it to the serving slot's address (a NAT rule of the app's nftables table).
    Moving a link (a rename) or the rule (one nft transaction) takes a slot out of rotation without an nginx reload:
    every new connection goes to the new slot, the connections already open finish on the old one.
    """
    if not listen.startswith('/'):
        dummy, dummy, port = listen.rpartition(':')
        return '%s%d:%s' % (POSITION_NET, int(i), port)
    directory, base = os.path.split(listen)
    stem = base[:-len('.sock')] if base.endswith('.sock') else base
    return os.path.join(directory, '%s-live-%d.sock' % (stem, int(i)))


def instance_servers(listen: str, name: str, instances: int) -> list:
    """Layout ``instances``: nginx's upstream servers, the N positions (never reloaded for a restart)."""
    positions = [instance_position(listen, name, i) for i in range(1, int(instances) + 1)]
    return ['unix:' + path for path in positions] if listen.startswith('/') else positions


def links_tmpfiles(name: str) -> str:
    """Layout ``instances`` on a Unix socket: the tmpfiles.d file that puts the position links back after a reboot (/run is
    a tmpfs)."""
    return '/etc/tmpfiles.d/zerodown-%s-links.conf' % name


class PositionRules:
    """Layout ``instances`` on TCP: the nftables table that maps the positions to slots, the file it is kept in, and the
    unit that loads that file at boot and after a restart of nftables.service (whose ``flush ruleset`` removes it)."""

    def __init__(self, name: str):
        self.table = 'zerodown_%s' % nginx_id(name)
        self.file = os.path.join(POSITION_RULES_DIR, '%s-positions.nft' % name)
        self.unit = 'zerodown-%s-positions.service' % name
        self.unit_file = os.path.join('/etc/systemd/system', self.unit)


def position_rules(name: str) -> PositionRules:
    return PositionRules(name)


def proxy_unit_files(name: str) -> list:
    """Proxy mode's unit files besides NAME.socket and NAME.service (the public proxy)."""
    return ['%s-app@.service' % name, '%s-slot@.socket' % name, '%s-slot@.service' % name]


def journal_units(name: str) -> list:
    """Every unit of the app, as journalctl --unit patterns: NAME.* and NAME@*.* (instances, slots), proxy mode's
    NAME-app@* and NAME-slot@*. Not NAME*, which would take in another app called NAME-admin."""
    return ['%s.service' % name, '%s.socket' % name, '%s@*.service' % name, '%s@*.socket' % name,
            '%s-app@*.service' % name, '%s-slot@*.service' % name, '%s-slot@*.socket' % name]


def preflight_name(name: str) -> str:
    """The pre-flight's units are NAME-preflight.socket and NAME-preflight.service (runtime units)."""
    return name + PREFLIGHT_SUFFIX


def preflight_socket_path(name: str) -> str:
    return os.path.join(PREFLIGHT_SOCKET_DIR, '%s.sock' % name)


def nginx_id(name: str) -> str:
    """nginx identifiers allow letters, digits and underscores only."""
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def nginx_upstream(name: str) -> str:
    return 'zerodown_%s' % nginx_id(name)


def nginx_site_file(name: str) -> str:
    return 'zerodown-%s.conf' % name


# Shared by every site: the `zerodown` log format; "00-" sorts it before the sites.
NGINX_COMMON_FILE = '00-zerodown.conf'


def nginx_servers_dir(conf_dir: str, name: str) -> str:
    """One file per upstream server (include mode); ".servers" keeps it out of conf.d/*.conf."""
    return os.path.join(conf_dir, '%s.servers' % name)


def app_names(name: str, instances: int = 1, mode: str = 'socket', ports=(8001, 8002), conf_dir: str = '/etc/nginx/conf.d',
              listen: str = '') -> dict:
    """Everything the roles need to know by name for one app, in one dict (the ``names`` filter returns it).

    ``mode`` ``instances`` is the layout of one socket per instance behind nginx (module_utils/_flip.py).
    """
    proxy = mode == 'proxy'
    slotted = mode == 'instances'
    multi = int(instances) > 1 and not proxy
    # With one socket per instance the units are always templates, and which slots run is the host's to say
    # (the server files' up ones); these are the slots of a first start.
    running = [instance_units(name, k).service for k in range(1, int(instances) + 1)] if slotted else \
        service_units(name, instances if multi else 1)
    unit_file = '%s@.service' % name if slotted else service_unit_file(name, instances if multi else 1)
    app_unit_file = ('%s-app@.service' % name) if proxy else unit_file
    return {
        'socket_unit': socket_unit(name),
        'service_unit_file': unit_file,
        'app_unit_file': app_unit_file,
        'running_units': running,
        'exposure_unit': SlotUnits(name, list(ports)[0]).app if proxy else running[0],
        'link': link_path(name),
        'socket_proxyd': SOCKET_PROXYD,
        'slot_dir': slot_dir(name),
        'proxy_unit_files': proxy_unit_files(name),
        'preflight_name': preflight_name(name),
        'preflight_socket': preflight_socket_path(name),
        'nginx_upstream': nginx_upstream(name),
        'nginx_site': os.path.join(conf_dir, nginx_site_file(name)),
        'nginx_common': os.path.join(conf_dir, NGINX_COMMON_FILE),
        'nginx_servers_dir': nginx_servers_dir(conf_dir, name),
        'instance_slots': instance_slots(instances) if slotted else [],
        'instance_backends': dict((k, instance_backend(listen, name, k)) for k in instance_slots(instances)) if slotted and listen else {},
        'instance_servers': instance_servers(listen, name, instances) if slotted and listen else [],
        'links_tmpfiles': links_tmpfiles(name),
        'instance_sockets': [instance_units(name, k).socket for k in instance_slots(instances)] if slotted else [],
        'instance_socket_file': instance_socket_file(name),
        'instance_listen': instance_listen(listen, name, '%i') if listen else '',
    }
