# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one validator of the collection (internal): every regex, range and cross-field rule, once.

The argument specs (``meta/argument_specs.yml``, the modules' argument_spec)
check types and choices. Everything beyond that lives here:

* the primitives (a service name, an absolute path, a listen address, ...),
  which the modules use for their own options, so a rule means the same in
  a role and in a module;
* one ``check_ROLE(settings, entry, play)`` per role, which the
  ``zerodown.deploy.validate`` action runs on the controller before the role
  changes anything on a host. ``settings`` maps the role's variables (named
  as in its ``defaults/main.yml``, already templated) to their values;
  ``play`` holds what a rule needs from the play (``ansible_play_batch``,
  ``ansible_play_hosts_all``, ``groups``). A check returns every problem at
  once, a list of messages that each name the variable (empty: valid).

The messages are the roles' public interface: users and the Molecule
scenarios match them, so they read exactly as the roles' assert tasks
rendered them. A value in a message is shown the way Jinja renders it
(``show``). Numbers are read the way Jinja's ``int`` and ``float`` filters
read them (``to_int``, ``to_float``: anything else counts as 0), booleans the
way Ansible's ``bool`` filter does. A pattern that the roles anchored with
``^...$`` must match the whole value here (``re.fullmatch``), so a trailing
newline no longer slips through ``$``.

Checks that need the host's state are made on the host, where they are
needed: the socket access check of nginx_upstream in the nginx_site module,
the public proxy and socket opt-ins and the exposure score in the
service_units module, "nothing is deployed" of a rollback or a verify in the
roles' task files (release deployed.yml, app verify.yml).

The app role passes its values to the three roles it composes, whose task
files it calls without their validation, so ``check_app`` checks each app
variable against every rule of the role it reaches, in the app's words.
Which rule covers which app variable ("app" is the app's own rule, a role
name one of that role's rules; entries in brackets when not all three)::

    app_name                  app (name); covers socket_service_name, nginx_upstream_name, release_name
    app_base_path             app (absolute, no '..'); release (no '.', '..', empty component);
                              nginx_upstream (BASE/current/public without spaces, ';', braces) [app_nginx]
    app_user                  release (user name) [deploy]; app (not root without app_allow_root)
    app_allow_root            spec only (bool); opts into app_user: root
    app_group                 release (group name) [deploy]
    app_deploy_user           release (user name) [deploy]
    app_source                app (type, its keys, repo/src/path) [deploy];
                              release (depth, strip, src file or URL, path directory, exclude, method) [deploy]
    app_force                 spec only (bool)
    app_build_commands        release (command items) [deploy]
    app_build_environment     release (key names) [deploy]
    app_migrate_commands      release (command items) [deploy]
    app_shared_dirs           release (relative, once, not nested, not .env) [deploy]
    app_shared_files          release (relative, once, not nested) [deploy]
    app_environment           app (key names); covers socket_service_environment
    app_env_file_content      no rule (its path is BASE/shared/.env, absolute by app_base_path)
    app_keep_releases         app (1 or more); covers release_keep_releases
    app_lock_timeout          release (0 or more) [deploy, rollback]
    app_exec_start            app (absolute; allowed systemd specifiers); covers socket_service_exec_start
    app_exec_reload           socket_service (absolute); app (allowed systemd specifiers)
    app_service_type          spec only (choices)
    app_instances             app (1 to 64; 1 in proxy mode); covers socket_service_instances
    app_mode                  spec only (choices); selects the proxy rules
    app_surge                 spec only (bool); with app_nginx it selects the instances layout's rule on app_listen
    app_nginx_keepalive       app (0 or more) [app_nginx]
    app_proxy_ports           app (2, in range, different) [proxy]; covers socket_service_proxy_ports
    app_proxy_drain_timeout   app (more than 0) [proxy]; covers socket_service_proxy_drain_timeout
    app_listen                app (Unix path or host:port); socket_service (port range; not a slot port [proxy]);
                              nginx_upstream (upstream form) [app_nginx]; a Unix path or loopback HOST:PORT
                              (one socket per instance) [app_nginx, socket mode]
    app_socket_group          no rule
    app_allow_socket_restart  spec only (bool); with one shared socket, lets a changed socket restart
    app_health_path           app (starts with '/', no spaces); covers socket_service_health_path
    app_hardening_profile     spec only (choices); app (not isolated) [proxy]
    app_hardening_overrides   socket_service (directive names)
    app_read_write_paths      socket_service (absolute)
    app_ready_timeout         app (1 or more)
    app_nginx                 spec only (bool); selects the nginx rules
    app_server_name           app (one host name); covers nginx_upstream_server_names
    app_nginx_listen          app (not empty); nginx_upstream (each entry's form and port) [app_nginx]
    app_nginx_static_enabled  spec only (bool)
    app_preflight             spec only (bool); the pre-flight entry's mode rule cannot fail (never called in proxy mode)
    app_preflight_timeout     app (1 or more)
    app_health_gate_successes app (1 to 100)
    app_health_gate_timeout   app (1 or more)
    app_rollback_on_failure   spec only (bool)
    app_verify                spec only (bool)
    app_verify_workers        app (1 to 64)
    app_verify_rate           app (more than 0)
    app_verify_path           app (starts with '/', no spaces)
    app_verify_post_ratio     app (0 to 1)
    app_verify_post_path      app (empty, or starts with '/', no spaces); no POSTs unless set
    app_verify_baseline_seconds, app_verify_tail_seconds, app_verify_max_duration
                              app (the duration exceeds the other two)
    app_verify_max_requests   app (1 to the restart module's limit)
    app_verify_max_failed     app (0 or more)
    app_verify_max_latency_factor app (more than 0)
    app_verify_latency_allowance_ms app (0 or more)
    app_verify_timeline       spec only (bool)
    app_report_dir            spec only (path)
    app_deploy_time           app (UTC time); covers release_id_time
    app_lb_hosts              app (not empty, inventory hosts) [app_lb_drain]
    app_lb_backend            app (HOST:PORT)
    app_lb_drain              app (a wave must not hold every host of the play)
    app_lb_drain_timeout      app (1 or more)
    app_lb_servers_dir        spec only (path)
    app_rollback_to           release (release ID) [rollback]
    app_rollback_mark_bad     spec only (bool)
    app_rollback_reason       spec only (str)

Every app, release, socket_service and nginx_upstream variable except file contents and commands
(MULTILINE_OPTIONS) must be a single line: app (no CR, LF, NUL) and the same rule of each role. '%' is refused in
paths (app_base_path, app_listen, app_read_write_paths and socket_service's paths), where systemd would expand it.

Standard library only (and the data of _directives): the modules import the primitives on the target.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.zerodown.deploy.plugins.module_utils._directives import SERVICE_DIRECTIVES

# A base unit name as the roles write it: also the app's name, its user, its nginx file names.
NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,63}')  # fullmatch
NAME_RULE = '[A-Za-z0-9][A-Za-z0-9_.-]*'
UNIT_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(@[A-Za-z0-9_.:-]{0,64})?\.(service|socket)')  # fullmatch

# Patterns of the primitives below; "fullmatch" ones must match the whole value, the others its start.
EXEC_RE = re.compile(r'[-@:+!]*/')  # match: systemd's prefixes, then an absolute path
OCTAL_MODE_RE = re.compile(r'0?[0-7]{3}')  # fullmatch
ENV_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')  # fullmatch
USER_NAME_RE = re.compile(r'[a-z_][a-z0-9_-]{0,31}')  # fullmatch
DIRECTIVE_RE = re.compile(r'[A-Z][A-Za-z]+')  # fullmatch
UTC_STAMP_RE = re.compile(r'\d{8}T\d{6}Z', re.ASCII)  # fullmatch
RELEASE_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}')  # fullmatch
LOCK_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}')  # fullmatch
URL_RE = re.compile(r'(https?|ftp)://')  # match
# A listen address of systemd's ListenStream=: Unix path, IPv4:port, [IPv6]:port or a bare port.
UNIX_PATH_RE = re.compile(r'/\S+')  # fullmatch
IPV4_PORT_RE = re.compile(r'(\d{1,3}\.){3}\d{1,3}:(\d{1,5})', re.ASCII)  # fullmatch
IPV6_PORT_RE = re.compile(r'\[[0-9A-Fa-f:.]+\]:(\d{1,5})', re.ASCII)  # fullmatch
BARE_PORT_RE = re.compile(r'\d{1,5}', re.ASCII)  # fullmatch
# The app's own listen address: a Unix path, or IPv4/[IPv6] with a port (no bare port).
APP_LISTEN_TCP_RE = re.compile(r'((\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}', re.ASCII)  # fullmatch
HEALTH_PATH_RE = re.compile(r'/\S*')  # fullmatch
HOST_NAME_RE = re.compile(r'[A-Za-z0-9*_.:\[\]-]+')  # fullmatch: one nginx server_name
LB_BACKEND_RE = re.compile(r'([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}', re.ASCII)  # fullmatch
# nginx: an upstream server, a listen entry, a size, a time, a path inside a directive.
UPSTREAM_UNIX_RE = re.compile(r'unix:/[^\s;{}]+')  # fullmatch
UPSTREAM_HOST_RE = re.compile(r'[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*:[0-9]+')
UPSTREAM_IPV6_RE = re.compile(r'\[[0-9A-Fa-f:.]+\]:[0-9]+')  # fullmatch
NGINX_LISTEN_RE = re.compile(r'((([0-9]{1,3}\.){3}[0-9]{1,3}|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*|\*):)?[0-9]+'
                             r'( +(default_server|reuseport|deferred|proxy_protocol|http2|backlog=[0-9]+|ipv6only=(on|off)))*')
NGINX_SSL_RE = re.compile(r'(^| )ssl( |$)')  # search
NGINX_SERVER_NAME_RE = re.compile(r'[^\s;{}"\']+')  # fullmatch
NGINX_SIZE_RE = re.compile(r'[0-9]+[kKmMgG]?')  # fullmatch
NGINX_TIME_RE = re.compile(r'off|max|epoch|-?([0-9]+(ms|s|m|h|d|w|M|y)?)+')  # fullmatch
NGINX_PATH_RE = re.compile(r'/[^\s;{}]*')  # fullmatch
NGINX_FILE_RE = re.compile(r'/[^\s;{}"\'$]+')  # fullmatch
NGINX_LOCATION_RE = re.compile(r'/([^\s;{}]*/)?')  # fullmatch
NGINX_CIPHERS_RE = re.compile(r'!?[A-Za-z0-9_+@=.-]+')  # fullmatch: one OpenSSL cipher name or keyword
# A trusted proxy for set_real_ip_from: unix:, IPv4 or IPv6, optionally a CIDR range.
REAL_IP_FROM_RE = re.compile(r'unix:|([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?', re.ASCII)
REDIRECT_HOST_RE = re.compile(r'[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?', re.ASCII)  # fullmatch: a plain host[:port]
NGINX_HEADER_VALUE_RE = re.compile(r'[^"\'\r\n;{}$\\]*')  # fullmatch: '$' would make the header a variable clients set
# A shared path that is not relative, or has '.', '..' or empty components.
BAD_SHARED_PATH_RE = re.compile(r'^$|^/|(^|/)\.\.?(/|$)|//|/$')  # search

SOURCE_TYPES = ('git', 'archive', 'local')
# The keys app_source may have, by type.
SOURCE_KEYS = {
    'git': ['type', 'repo', 'version', 'depth', 'key_file', 'accept_newhostkey', 'revision'],
    'archive': ['type', 'src', 'strip', 'checksum', 'revision'],
    'local': ['type', 'path', 'exclude', 'method', 'revision'],
}
LOCAL_METHODS = ('auto', 'synchronize', 'archive')
# The release role's hooks by entry point, in the order they run.
HOOK_PHASES = {
    'main': ('before_fetch', 'after_fetch', 'before_build', 'after_build', 'before_switch', 'after_switch', 'before_cleanup',
             'after_cleanup'),
    'rollback': ('after_rollback',),
}
# The release role's environment file, linked from shared/ into every release.
ENV_FILE_NAME = '.env'
# The options whose values may span lines: file contents and shell commands, which no unit file or nginx config receives
# (and two with a rule of their own that says more). Any other value with CR, LF or NUL would start a new directive.
MULTILINE_OPTIONS = frozenset((
    'app_env_file_content', 'app_build_commands', 'app_migrate_commands', 'app_rollback_reason',
    'release_env', 'release_env_content', 'release_build_commands', 'release_migrate_commands', 'release_rollback_reason',
    'nginx_upstream_extra_directives',
))
LINE_BREAK_RE = re.compile('[\r\n\x00]')  # search
# The systemd specifiers a command may use (docs/socket_service.md): '%%' is a literal '%'; the others are the unit's
# own names and the runtime directory. Any other '%X' would be expanded, or refused, by systemd at run time.
COMMAND_SPECIFIERS = ('%%', '%i', '%I', '%n', '%N', '%p', '%t')
SPECIFIER_RE = re.compile('%.?', re.DOTALL)  # finditer

_TRUE = frozenset(('y', 'yes', 'on', '1', 'true', 't'))

# The bounds of a measured restart (the zero_downtime_restart module reads them from here) and of a Unix socket path: the
# kernel's sun_path holds 108 bytes with the final NUL.
MAX_SECONDS = 3600.0
MAX_REQUESTS = 1000000
MAX_RATE = 1000000.0
MAX_UNIX_PATH = 107


class ValidationError(ValueError):
    """One value breaks a rule; the message names the option and says what it must be."""


# --------------------------------------------------------------------------- values, the way the templates read them

def show(value) -> str:
    """A value as Jinja renders it in a message: None as nothing, containers as Python literals."""
    return '' if value is None else str(value)


def text(value) -> str:
    """A value as Ansible's regex tests see it: a string (None as empty)."""
    return '' if value is None else str(value)


def to_int(value) -> int:
    """Jinja's ``int`` filter: an integer, the integer part of a number, else 0."""
    try:
        return int(value, 10) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def to_float(value) -> float:
    """Jinja's ``float`` filter: a number, else 0.0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def to_bool(value) -> bool:
    """Ansible's ``bool`` filter for the usual spellings (yes/no, on/off, true/false, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int, float)):
        return str(value).lower() in _TRUE or value == 1
    return False


def is_int(value) -> bool:
    """An integer, or the text of one, as an argument spec of type int takes it."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r'\s*[-+]?\d+\s*', value, re.ASCII) is not None


def size(value) -> int:
    """Jinja's ``length``, with nothing (None) as 0."""
    try:
        return len(value)
    except TypeError:
        return 0


def items(value) -> list:
    """The elements of a list option; a single value counts as one element and nothing as none."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def keys(value) -> list:
    """The keys of a dict option, in order; anything else has none."""
    return list(value) if isinstance(value, dict) else []


def matches(pattern, value) -> bool:
    return pattern.fullmatch(text(value)) is not None


# --------------------------------------------------------------------------- primitives

def is_name(value) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def service_name(value, option: str = 'service') -> str:
    """The base name of a service as the socket_service role installs it: validated, without a ``.service`` suffix."""
    if not isinstance(value, str):
        raise ValidationError('%s must be a string, got %r' % (option, value))
    name = value[:-len('.service')] if value.endswith('.service') else value
    if '@' in name:
        raise ValidationError('%s must be the base name (like hello), not an instance or template (%r); choose instances with the '
                              'instances option' % (option, value))
    if name.endswith('.socket'):
        raise ValidationError('%s must name the service, not its socket (%r): restarting the socket would drop connections'
                              % (option, value))
    if not NAME_RE.fullmatch(name):
        raise ValidationError('%s must be a unit base name such as hello (matching %s, at most 64 characters, optionally ending in '
                              '.service), got %r' % (option, NAME_RULE, value))
    return name


def unit_name(value, option: str = 'units') -> str:
    """A unit name ending in .service or .socket (an instance such as hello@2.service is one)."""
    if not isinstance(value, str) or not UNIT_RE.fullmatch(value):
        raise ValidationError('%s: %r is not a unit name ending in .service or .socket' % (option, value))
    return value


def is_absolute(value) -> bool:
    """Starts with '/'."""
    return text(value).startswith('/')


def is_exec_line(value) -> bool:
    """A systemd command line: optional prefixes (-@:+!), then an absolute path."""
    return EXEC_RE.match(text(value)) is not None


def is_octal_mode(value) -> bool:
    """A file mode as octal digits: 660 or 0660."""
    return matches(OCTAL_MODE_RE, value)


def gives_others_access(mode) -> bool:
    """An octal mode whose last digit lets every other user in."""
    return is_octal_mode(mode) and text(mode)[-1] != '0'


def line_breaks(value, where: str) -> list:
    """Where in a value (a string, or lists and mappings of them) CR, LF or NUL occur: 'where', 'where[0]', 'where.KEY'."""
    if isinstance(value, str):
        return [where] if LINE_BREAK_RE.search(value) else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and LINE_BREAK_RE.search(key):
                found.append('a key of ' + where)
            found += line_breaks(item, '%s.%s' % (where, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += line_breaks(item, '%s[%d]' % (where, index))
    return found


def unknown_specifiers(command) -> list:
    """The systemd specifiers in a command line that COMMAND_SPECIFIERS does not allow (a lone trailing '%' included)."""
    return unique(match.group(0) for match in SPECIFIER_RE.finditer(text(command)) if match.group(0) not in COMMAND_SPECIFIERS)


def has_percent(value) -> bool:
    """A '%' anywhere: systemd would expand it as a specifier in a path."""
    return '%' in text(value)


def is_env_name(value) -> bool:
    """An environment variable name: APP_ENV."""
    return matches(ENV_NAME_RE, value)


def is_user_name(value) -> bool:
    """A portable user or group name: lower case, digits, '_' and '-', at most 32 characters."""
    return matches(USER_NAME_RE, value)


def is_directive_name(value) -> bool:
    """A systemd directive name: ReadWritePaths."""
    return matches(DIRECTIVE_RE, value)


def is_utc_stamp(value) -> bool:
    """A UTC time YYYYMMDDTHHMMSSZ, as release IDs start with."""
    return matches(UTC_STAMP_RE, value)


def is_url(value) -> bool:
    """An http(s) or ftp URL."""
    return URL_RE.match(text(value)) is not None


def in_port_range(value) -> bool:
    return 1 <= to_int(value) <= 65535


def octets_in_range(address) -> bool:
    """Every dotted-decimal number of an IPv4 HOST:PORT at most 255 (the regexes only count digits); other forms pass."""
    host = text(address).rsplit(':', 1)[0]
    parts = host.split('.')
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        return True
    return all(int(part) <= 255 for part in parts)


def longest_socket_path(listen, instances: int, per_instance: bool) -> int:
    """The longest Unix socket path, in bytes, the layout derives from ``listen``: with one socket per instance, the slot
    sockets NAME-K.sock (K up to 2 x instances) and the positions NAME-live-I.sock beside it (_names.instance_listen)."""
    path = text(listen)
    if not per_instance:
        return len(path.encode('utf-8'))
    stem = path[:-len('.sock')] if path.endswith('.sock') else path
    return len(stem.encode('utf-8')) + len('-live-%d.sock' % max(2 * instances, 1))


def is_listen_address(value) -> bool:
    """A socket of systemd's: an absolute Unix path, IPv4:port, [IPv6]:port or a bare port, ports 1-65535."""
    address = text(value)
    if UNIX_PATH_RE.fullmatch(address):
        return True
    tcp = IPV4_PORT_RE.fullmatch(address) or IPV6_PORT_RE.fullmatch(address)
    if tcp:
        return in_port_range(address.rsplit(':', 1)[-1]) and octets_in_range(address)
    return BARE_PORT_RE.fullmatch(address) is not None and in_port_range(address)


def is_slot_listen(value) -> bool:
    """What one socket per instance can be made of: an absolute Unix path, or a loopback IPv4 HOST:PORT (slot K gets
    127.0.0.K:PORT, see _names.instance_listen)."""
    address = text(value)
    if UNIX_PATH_RE.fullmatch(address):
        return True
    return (IPV4_PORT_RE.fullmatch(address) is not None and address.startswith('127.') and in_port_range(address.rsplit(':', 1)[-1])
            and octets_in_range(address))


def is_upstream_server(value) -> bool:
    """An nginx upstream server: unix:/absolute/path, host:port or [IPv6]:port (the port is checked apart)."""
    server = text(value)
    return any(pattern.fullmatch(server) for pattern in (UPSTREAM_UNIX_RE, UPSTREAM_HOST_RE, UPSTREAM_IPV6_RE))


def is_nginx_listen(value) -> bool:
    """An nginx listen entry: [address:]port, port 1-65535, then known parameters (ssl is added by the role)."""
    entry = text(value)
    return NGINX_LISTEN_RE.fullmatch(entry) is not None and in_port_range(entry.split()[0].split(':')[-1])


def is_nginx_time(value) -> bool:
    """An nginx time such as 7d or 1h30m, or off, max, epoch."""
    return matches(NGINX_TIME_RE, value)


def is_command(value) -> bool:
    """A command: a non-blank string (run with /bin/sh -c) or a non-empty list of strings (an argument vector)."""
    if isinstance(value, str):
        return value.strip() != ''
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(arg, str) for arg in value)


def base_path(value) -> str:
    """A base directory without its trailing slashes (/ stays /)."""
    return re.sub(r'(?<=.)/+$', '', text(value))


def is_clean_base(value) -> bool:
    """Not /, and no '.', '..' or empty component (after trailing slashes are dropped)."""
    base = base_path(value)
    return base != '/' and not {'.', '..'} & set(base.split('/')) and '//' not in base


def bad_shared_paths(paths) -> list:
    """The shared paths that are not relative paths inside the release."""
    return [path for path in paths if BAD_SHARED_PATH_RE.search(text(path))]


def nested_shared_paths(paths) -> list:
    """The shared paths that lie inside another one of them."""
    if not paths:
        return []
    inside = re.compile('(%s)/' % '|'.join(re.escape(text(path)) for path in paths))
    return [path for path in paths if inside.match(text(path))]


def unique(values) -> list:
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


# --------------------------------------------------------------------------- rules shared by several roles

class Messages(list):
    """The messages of one check, each with the role's prefix."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def rule(self, ok, message, *args):
        """Add the message (formatted with args) unless ok."""
        if not ok:
            self.append(self.prefix + (message % args if args else message))


def _single_lines(out, settings, prefix):
    """CR, LF and NUL in any of the role's values but file contents and commands: in a unit file or an nginx config, a line
    break starts a directive of its own (ExecStartPre=+... would run as root). The values are not shown: some are secrets."""
    names = getattr(settings, 'option_names', None)
    # The validate action passes every variable of the role; a rule only reads what it needs, templated on demand.
    read = getattr(settings, 'scan', settings.get)
    found = []
    for option in sorted(settings) if names is None else names:
        if option.startswith(prefix) and option not in MULTILINE_OPTIONS:
            found += line_breaks(read(option), option)
    out.rule(not found, 'these values must be single lines, without CR, LF or NUL, which would start a directive of their own in a '
             'unit file or an nginx config: %s (the values are not shown).', ', '.join(found))


def _command_specifiers(out, command, name):
    bad = unknown_specifiers(command)
    out.rule(not bad, "%s uses systemd specifiers that the collection does not allow: %s. systemd would expand them when the "
             "unit runs. Allowed: %s; write %%%% for a literal %%.", name, ', '.join(bad), ', '.join(COMMAND_SPECIFIERS))


def _no_percent(out, values, name):
    bad = [text(value) for value in items(values) if has_percent(value)]
    out.rule(not bad, "%s must not contain '%%': systemd expands %%X specifiers in the paths of a unit (got %s).", name, show(bad))


def _socket_mode(out, s, prefix):
    mode, allow = s[prefix + 'socket_mode'], s[prefix + 'socket_mode_allow_others']
    # A number is refused: YAML reads an unquoted 0660 as 432, and SocketMode=432 lets everyone connect.
    out.rule(isinstance(mode, str) and is_octal_mode(mode), "%ssocket_mode must be a quoted octal string such as '0660' (got %s %s; unquoted, YAML reads 0660 "
             "as the number 432).", prefix, type(mode).__name__, show(mode))
    out.rule(not gives_others_access(mode) or to_bool(allow),
             "%ssocket_mode '%s' lets every local user connect to the socket, past nginx; use '0660' (the socket group), or set "
             "%ssocket_mode_allow_others: true if that is meant.", prefix, show(mode), prefix)


def _not_root(out, user, allow, name, allow_name):
    out.rule(text(user) != 'root' or to_bool(allow),
             "%s is root: the app would run with every privilege, and a flaw in it would own the host. Use an unprivileged user "
             "(the default is the app's name), or set %s: true if it must run as root.", name, allow_name)


def _env_keys(out, mapping, name, example, only_bad=False):
    bad = [key for key in keys(mapping) if not is_env_name(key)]
    out.rule(not bad, '%s keys must be variable names like %s (got %s).', name, example, show(bad if only_bad else keys(mapping)))


def _proxy_ports(out, ports, name):
    ports = items(ports)
    numbers = [to_int(port) for port in ports]
    out.rule(len(ports) == 2, '%s must list exactly 2 TCP ports, one per slot (got %s).', name, show(ports))
    out.rule(all(1 <= port <= 65535 for port in numbers), '%s must be between 1 and 65535 (got %s).', name, show(ports))
    out.rule(len(unique(numbers)) == len(numbers), '%s must be 2 different ports (got %s).', name, show(ports))


def _more_than_zero_seconds(out, value, name):
    out.rule(to_float(value) > 0, '%s must be more than 0 seconds (got %s).', name, show(value))


def _absolute_paths(out, paths, name):
    out.rule(all(re.match(r'[-+]?/', text(path)) for path in items(paths)), '%s must be absolute paths (got %s).', name, show(paths))


def _directive_keys(out, overrides, what):
    out.rule(all(is_directive_name(key) for key in keys(overrides)),
             '%s must be systemd directive names such as ReadWritePaths (got %s).', what, show(keys(overrides)))
    unknown = [key for key in keys(overrides) if is_directive_name(key) and key not in SERVICE_DIRECTIVES]
    out.rule(not unknown, '%s must be directives of a [Service] section that systemd 252 to 257 knows; unknown: %s. systemd would '
             'ignore them with a warning, and the hardening they stand for would be missing.', what, show(unknown))


def _slot_ports_free(out, listen, ports, listen_name, ports_name, got):
    # The port of each TCP address (a Unix socket has none).
    used = [to_int(re.sub(r'^.*:', '', text(address))) for address in items(listen) if not is_absolute(address)]
    slots = [to_int(port) for port in items(ports)]
    out.rule(not set(used) & set(slots), '%s must not use a slot port of %s (%s): the app binds those on 127.0.0.1 (got %s).',
             listen_name, ports_name, show(ports), got)


def _nginx_listen(out, entries, name, ssl_hint):
    for entry in items(entries):
        out.rule(is_nginx_listen(entry),
                 "%s entry '%s' is malformed or its port is outside 1-65535. Use [address:]port (80, 127.0.0.1:8080, [::]:80) "
                 "optionally followed by default_server, reuseport, deferred, proxy_protocol, http2, backlog=N or "
                 "ipv6only=on|off%s.", name, show(entry), ssl_hint if NGINX_SSL_RE.search(text(entry)) else '')


def _user(out, value, name, what, hint=''):
    out.rule(is_user_name(value), "%s must be %s (got '%s')%s.", name, what, show(value), hint)


def _shared_paths(out, dirs, files, dirs_name, files_name, nested_subject, env_option):
    dirs = items(dirs)
    both = dirs + items(files)
    out.rule(not bad_shared_paths(both), "%s and %s must be relative paths inside the release, without '.' or '..' components "
             "(got %s).", dirs_name, files_name, show(bad_shared_paths(both)))
    out.rule(len(both) == len(unique(both)), 'a shared path may appear only once in %s and %s (got %s).',
             dirs_name, files_name, show(both))
    out.rule(not nested_shared_paths(both), '%s may not lie inside another shared path (got %s).', nested_subject,
             show(nested_shared_paths(both)))
    out.rule(ENV_FILE_NAME not in dirs, '%s must not contain %s: it is the environment file (%s).', dirs_name, ENV_FILE_NAME,
             env_option)


def _commands(out, commands, name):
    for command in items(commands):
        out.rule(is_command(command), '%s items must be a command string (run with /bin/sh -c) or a non-empty list of strings '
                 '(an argument vector), got %s.', name, json.dumps(command))


def _archive_src(out, src, name):
    path = text(src)
    out.rule(is_url(path) or (is_absolute(path) and os.path.isfile(path)),
             "%s '%s' is neither an http(s)/ftp URL nor an existing file (absolute path) on the controller.", name, show(src))


def _plain_download(out, src, checksum, name, checksum_name):
    """Over http:// or ftp:// anyone on the path can swap the archive, and the release would run their code."""
    out.rule(not re.match('(http|ftp)://', text(src)) or text(checksum) != '',
             "%s '%s' is fetched without TLS, so anyone on the way can change it: set %s (such as sha256:HEX) or use https://.",
             name, show(src), checksum_name)


def _local_src(out, src, name):
    path = text(src)
    out.rule(is_absolute(path) and os.path.isdir(path),
             "%s '%s' is not an existing directory (absolute path) on the controller.", name, show(src))


def _local_exclude(out, exclude, name):
    patterns = items(exclude)
    out.rule(all(isinstance(p, str) and '/' not in p for p in patterns) and '' not in patterns,
             "%s must be file names or patterns without '/' (got %s).", name, show(exclude))


def _local_method(out, method, name, play):
    """synchronize needs ansible.posix on the controller (the collection does not require it); the action says whether it is
    there (``controller_synchronize``; unknown when the rules run without it)."""
    out.rule(method != 'synchronize' or (play or {}).get('controller_synchronize') is not False,
             "%s synchronize needs the ansible.posix collection on the controller (ansible-galaxy collection install ansible.posix), "
             "and it is not installed; use archive (ansible.builtin only), or auto, which copies by rsync only where it can.", name)


def _rollback_to(out, target, name):
    out.rule(text(target) == '' or matches(RELEASE_ID_RE, target),
             "%s must be a release ID such as 20261121T101500Z-3f2a9c1 (letters, digits, '.', '_', '-'; no '/'), or empty for "
             "the previous good release (got '%s').", name, show(target))


# --------------------------------------------------------------------------- socket_service

def _instances_layout(out, s, listen_name: str, servers_name, what: str) -> None:
    """One socket per instance (layout instances): a listen address each slot can take, and nginx's server files."""
    listen = s[listen_name]
    addresses = items(listen) if isinstance(listen, (list, tuple)) else [listen]
    out.rule(len(addresses) == 1 and is_slot_listen(addresses[0]),
             '%s must be one absolute Unix socket path (each instance K gets its own, NAME-K.sock beside it) or one loopback '
             'address 127.x.x.x:PORT (instance K gets 127.0.0.K:PORT) with %s (got %s).', listen_name, what, show(listen))
    if servers_name is not None:
        servers = s[servers_name]
        out.rule(is_absolute(servers), "%s must be nginx's absolute directory of one server file per instance with %s (got '%s').",
                 servers_name, what, show(servers))


def check_socket_service(settings, entry='main', play=None):
    """The rules of the socket_service role (entry points main and preflight)."""
    s = settings
    out = Messages('socket_service: ')
    _single_lines(out, s, 'socket_service_')
    name = s['socket_service_name']
    out.rule(is_name(name), "socket_service_name must match %s (got '%s').", NAME_RULE, show(name))
    out.rule(is_exec_line(s['socket_service_exec_start']), "socket_service_exec_start must start with an absolute path (got '%s').",
             show(s['socket_service_exec_start']))
    reload_ = s['socket_service_exec_reload']
    out.rule(text(reload_) == '' or is_exec_line(reload_), "socket_service_exec_reload must start with an absolute path (got '%s').",
             show(reload_))
    for option in ('socket_service_exec_start', 'socket_service_exec_reload'):
        _command_specifiers(out, s[option], option)
    for option in ('socket_service_listen', 'socket_service_working_directory', 'socket_service_environment_files',
                   'socket_service_read_write_paths', 'socket_service_runtime_directory', 'socket_service_state_directory'):
        _no_percent(out, s[option], option)
    _socket_mode(out, s, 'socket_service_')
    if not to_bool(s['socket_service_dynamic_user']):
        _not_root(out, s['socket_service_user'], s['socket_service_allow_root'], 'socket_service_user', 'socket_service_allow_root')
    instances = s['socket_service_instances']
    out.rule(to_int(instances) >= 1, 'socket_service_instances must be 1 or more (got %s).', show(instances))
    backlog = s['socket_service_backlog']
    out.rule(to_int(backlog) >= 1, 'socket_service_backlog must be 1 or more (got %s).', show(backlog))
    workdir = s['socket_service_working_directory']
    out.rule(text(workdir) == '' or re.match(r'-?/', text(workdir)), "socket_service_working_directory must be absolute (got '%s').",
             show(workdir))
    env_files = s['socket_service_environment_files']
    out.rule(all(re.match(r'-?/', text(path)) for path in items(env_files)),
             'socket_service_environment_files must be absolute paths (got %s).', show(env_files))
    _absolute_paths(out, s['socket_service_read_write_paths'], 'socket_service_read_write_paths')
    _env_keys(out, s['socket_service_environment'], 'socket_service_environment', 'APP_ENV')
    health = s['socket_service_health_path']
    out.rule(text(health) == '' or is_absolute(health), "socket_service_health_path must start with '/' (got '%s').", show(health))
    exposure = s['socket_service_exposure_max']
    out.rule(exposure is None or 0 <= to_float(exposure) <= 10, 'socket_service_exposure_max must be between 0 and 10 (got %s).',
             show(exposure))
    restart_sec = s['socket_service_restart_sec']
    out.rule(to_float(restart_sec) > 0, 'socket_service_restart_sec must be greater than 0 (got %s).', show(restart_sec))

    listen = s['socket_service_listen']
    for address in items(listen):
        out.rule(is_listen_address(address),
                 "socket_service_listen address '%s' is malformed. Use an absolute Unix socket path (/run/app.sock), IPv4 'host:port' "
                 "(127.0.0.1:8000), IPv6 '[addr]:port' ([::]:8000) or a bare port.", show(address))
    runtime = text(s['socket_service_runtime_directory'])
    inside = re.compile('/run/%s(/|$)' % re.escape(runtime))
    out.rule(runtime == '' or not any(inside.match(text(address)) for address in items(listen)),
             'a socket path lies inside RuntimeDirectory=/run/%s, which systemd deletes whenever the service stops; the socket '
             'would vanish on the first restart. Put it elsewhere, e.g. /run/%s.sock.', runtime, show(name))
    interval, burst = s['socket_service_start_limit_interval_sec'], s['socket_service_start_limit_burst']
    out.rule(to_int(interval) == 0 or to_float(interval) < to_float(restart_sec) * to_int(burst),
             'socket_service_start_limit_interval_sec: StartLimitIntervalSec=%s with StartLimitBurst=%s and RestartSec=%s lets '
             'a crash loop reach the start limit; systemd then fails the socket too and every queued and new connection is '
             'refused. Use start_limit_interval_sec: 0 (the default) or keep it below restart_sec x start_limit_burst.',
             show(interval), show(burst), show(restart_sec))
    _directive_keys(out, s['socket_service_hardening_overrides'], 'socket_service_hardening_overrides keys')

    proxy = s['socket_service_mode'] == 'proxy'
    if proxy:
        ports = s['socket_service_proxy_ports']
        _proxy_ports(out, ports, 'socket_service_proxy_ports')
        _more_than_zero_seconds(out, s['socket_service_proxy_drain_timeout'], 'socket_service_proxy_drain_timeout')
        out.rule(to_int(instances) == 1, 'socket_service_instances must be 1 with socket_service_mode: proxy (got %s); the two slots '
                 'of the blue/green switch are what keeps one app serving while the other starts.', show(instances))
        out.rule(s['socket_service_hardening_profile'] != 'isolated',
                 "socket_service_hardening_profile: isolated gives the app a network of its own (PrivateNetwork=yes), where the "
                 "slot's proxy cannot reach 127.0.0.1:PORT; use 'default' with socket_service_mode: proxy.")
        out.rule(not to_bool(s['socket_service_dynamic_user']),
                 'socket_service_dynamic_user cannot be used with socket_service_mode: proxy: the slot sockets are owned by the '
                 'fixed socket_service_user that runs the proxies.')
        _slot_ports_free(out, listen, ports, 'socket_service_listen', 'socket_service_proxy_ports', show(listen))
    if s['socket_service_mode'] == 'instances':
        _instances_layout(out, s, 'socket_service_listen', 'socket_service_servers_dir', 'socket_service_mode: instances')
    if entry == 'preflight':
        out.rule(not proxy, 'the pre-flight entry point does not apply to socket_service_mode: proxy. There, the blue/green switch '
                 'starts the new release on the idle slot and probes its health path before the link points at it, which is the '
                 'pre-flight. Nothing was changed.')
    return list(out)


# --------------------------------------------------------------------------- nginx_upstream

def check_nginx_upstream(settings, entry='main', play=None):
    """The rules of the nginx_upstream role that need only its variables (the socket access check reads the host)."""
    s = settings
    out = Messages('nginx_upstream: ')
    _single_lines(out, s, 'nginx_upstream_')
    name = s['nginx_upstream_name']
    out.rule(is_name(name), "nginx_upstream_name must match %s (got '%s').", NAME_RULE, show(name))
    servers = items(s['nginx_upstream_servers'])
    out.rule(len(servers) > 0, 'nginx_upstream_servers must name at least one server.')
    max_fails = s['nginx_upstream_max_fails']
    out.rule(max_fails is None or to_int(max_fails) >= 0, 'nginx_upstream_max_fails must be 0 or more (got %s).', show(max_fails))
    for option, least, what in (('fail_timeout', 1, '1 or more seconds'), ('keepalive', 0, '0 (off) or more'),
                                ('keepalive_timeout', 1, '1 or more seconds'), ('keepalive_requests', 1, '1 or more'),
                                ('keepalive_time', 1, '1 or more seconds')):
        value = s['nginx_upstream_' + option]
        out.rule(to_int(value) >= least, 'nginx_upstream_%s must be %s (got %s).', option, what, show(value))
    retries = items(s['nginx_upstream_next_upstream'])
    out.rule('non_idempotent' not in retries,
             'nginx_upstream_next_upstream must not list non_idempotent: resending a POST that reached the app can apply it twice. '
             'If every POST/PATCH of the app is safe to repeat, set nginx_upstream_retry_non_idempotent: true instead.')
    out.rule('off' not in retries or retries == ['off'],
             "nginx_upstream_next_upstream: 'off' cannot be combined with other values (got %s).", show(retries))
    out.rule(len(retries) > 0, "nginx_upstream_next_upstream must not be empty; use ['off'] to never retry.")
    out.rule(not (to_bool(s['nginx_upstream_retry_non_idempotent']) and retries == ['off']),
             "nginx_upstream_retry_non_idempotent needs retries; nginx_upstream_next_upstream is ['off'].")
    tries = s['nginx_upstream_next_upstream_tries']
    out.rule(to_int(tries) >= 0, 'nginx_upstream_next_upstream_tries must be 0 (unlimited) or more (got %s).', show(tries))
    for option in ('connect_timeout', 'send_timeout', 'read_timeout'):
        value = s['nginx_upstream_' + option]
        out.rule(to_int(value) >= 1, 'nginx_upstream_%s must be 1 or more seconds (got %s).', option, show(value))
    names = s['nginx_upstream_server_names']
    out.rule(size(names) > 0 and all(matches(NGINX_SERVER_NAME_RE, n) for n in items(names)),
             "nginx_upstream_server_names must be a non-empty list of names without spaces, quotes, ';' or braces (got %s).",
             show(names))
    listen = items(s['nginx_upstream_listen'])
    out.rule(len(listen) > 0, 'nginx_upstream_listen must name at least one address (plain HTTP); TLS listens on '
             'nginx_upstream_tls_listen as well.')
    cert, key = text(s['nginx_upstream_tls_certificate']), text(s['nginx_upstream_tls_certificate_key'])
    tls = cert != ''
    out.rule(key == '' or cert != '', 'nginx_upstream_tls_certificate_key is set but nginx_upstream_tls_certificate is empty: TLS '
             'needs both.')
    out.rule(cert == '' or key != '', 'nginx_upstream_tls_certificate is set but nginx_upstream_tls_certificate_key is empty: TLS '
             'needs the private key too (nginx would refuse to start the site).')
    out.rule(cert == '' or is_absolute(cert), "nginx_upstream_tls_certificate must be an absolute path (got '%s').", cert)
    out.rule(key == '' or is_absolute(key), "nginx_upstream_tls_certificate_key must be an absolute path (got '%s').", key)
    for option, value in (('nginx_upstream_tls_certificate', cert), ('nginx_upstream_tls_certificate_key', key)):
        out.rule(not is_absolute(value) or matches(NGINX_FILE_RE, value),
                 "%s must not contain spaces, ';', braces, quotes or '$', which would end or extend the directive in nginx's config "
                 "(got '%s').", option, value)
    tls_listen = items(s['nginx_upstream_tls_listen']) if tls else []
    out.rule(not tls or (tls_listen and size(s['nginx_upstream_tls_protocols']) > 0),
             'with TLS on, nginx_upstream_tls_listen and nginx_upstream_tls_protocols must not be empty.')
    out.rule(tls or not to_bool(s['nginx_upstream_tls_redirect']),
             'nginx_upstream_tls_redirect needs TLS: set nginx_upstream_tls_certificate and nginx_upstream_tls_certificate_key.')
    ciphers = items(s['nginx_upstream_tls_ciphers'])
    out.rule(len(ciphers) > 0 and all(matches(NGINX_CIPHERS_RE, cipher) for cipher in ciphers),
             'nginx_upstream_tls_ciphers must be a non-empty list of OpenSSL cipher names such as ECDHE-RSA-AES128-GCM-SHA256 '
             '(got %s).', show(ciphers))
    redirect_host = text(s['nginx_upstream_tls_redirect_host']) or text((items(names) or [''])[0])
    out.rule(not (tls and to_bool(s['nginx_upstream_tls_redirect'])) or matches(REDIRECT_HOST_RE, redirect_host),
             "nginx_upstream_tls_redirect needs a host to redirect to, never the Host a client sent: '%s' is not a plain host "
             "name; set nginx_upstream_tls_redirect_host (such as shop.example.com).", redirect_host)
    hsts = s['nginx_upstream_hsts_max_age']
    out.rule(to_int(hsts) >= 0, 'nginx_upstream_hsts_max_age must be 0 (no HSTS) or more seconds (got %s).', show(hsts))
    bad_real_ip = [text(a) for a in items(s['nginx_upstream_real_ip_from']) if not matches(REAL_IP_FROM_RE, a)]
    out.rule(not bad_real_ip, 'nginx_upstream_real_ip_from must be addresses or CIDR ranges such as 10.0.0.0/8, or unix: (got %s).',
             show(bad_real_ip))
    body = s['nginx_upstream_client_max_body_size']
    out.rule(matches(NGINX_SIZE_RE, body), "nginx_upstream_client_max_body_size must be a size such as 10m, 512k or 0 (got '%s').",
             show(body))
    static_path = s['nginx_upstream_static_path']
    out.rule(matches(NGINX_PATH_RE, static_path), "nginx_upstream_static_path must be an absolute path without spaces (got '%s').",
             show(static_path))
    location = s['nginx_upstream_static_location']
    out.rule(matches(NGINX_LOCATION_RE, location),
             "nginx_upstream_static_location must start and end with '/', e.g. /static/ (got '%s').", show(location))
    expires = s['nginx_upstream_static_expires']
    out.rule(is_nginx_time(expires), "nginx_upstream_static_expires must be an nginx time such as 7d, 12h, max or off (got '%s').",
             show(expires))
    out.rule(matches(NGINX_HEADER_VALUE_RE, s['nginx_upstream_static_cache_control']),
             "nginx_upstream_static_cache_control must not contain quotes, ';', braces, '$', backslashes or newlines.")
    health = s['nginx_upstream_health_path']
    out.rule(text(health) == '' or matches(NGINX_PATH_RE, health),
             "nginx_upstream_health_path must start with '/' and contain no spaces (got '%s').", show(health))
    access_log = s['nginx_upstream_access_log']
    out.rule(access_log == 'off' or matches(NGINX_FILE_RE, access_log),
             "nginx_upstream_access_log must be an absolute path or 'off' (got '%s').", show(access_log))
    error_log = s['nginx_upstream_error_log']
    out.rule(matches(NGINX_FILE_RE, error_log), "nginx_upstream_error_log must be an absolute path (got '%s').", show(error_log))
    conf_dir, config_dir = text(s['nginx_upstream_conf_dir']), os.path.dirname(text(s['nginx_upstream_main_config']))
    out.rule(conf_dir.startswith(config_dir + '/'),
             'nginx_upstream_conf_dir (%s) must lie under %s, the directory of nginx_upstream_main_config, so that `nginx -t` can '
             'test the configuration with the new files in place.', conf_dir, config_dir)
    default_site = text(s['nginx_upstream_distro_default_site'])
    out.rule(default_site == '' or (is_absolute(default_site) and default_site.startswith(config_dir + '/')),
             "nginx_upstream_distro_default_site must be empty or an absolute path under %s (got '%s').", config_dir, default_site)
    out.rule(not any('\n' in text(d) for d in items(s['nginx_upstream_extra_directives'])),
             'nginx_upstream_extra_directives must be one directive per item, without newlines.')

    for server in servers:
        well_formed = is_upstream_server(server)
        out.rule(well_formed, "nginx_upstream_servers: upstream server '%s' is malformed. Use unix:/absolute/path.sock (the socket of socket_service), "
                 "host:port (app1.internal:8000, 10.0.0.5:8000) or [IPv6]:port ([fd00::5]:8000).", show(server))
        port = text(server).rsplit(':', 1)[-1]
        out.rule(not well_formed or text(server).startswith('unix:') or in_port_range(port),
                 "nginx_upstream_servers: upstream server '%s' has port %s, outside 1-65535.", show(server), port)
    ssl_hint = '; TLS addresses go in nginx_upstream_tls_listen, which adds ssl'
    _nginx_listen(out, listen, 'nginx_upstream_listen', ssl_hint)
    _nginx_listen(out, tls_listen, 'nginx_upstream_tls_listen', ssl_hint)
    return list(out)


# --------------------------------------------------------------------------- release

def check_release(settings, entry='main', play=None):
    """The rules of the release role (entry points main and rollback); the files named are looked up on the controller."""
    s = settings
    out = Messages('release: ')
    _single_lines(out, s, 'release_')
    base = s['release_base_path']
    out.rule(is_absolute(base), "release_base_path must be an absolute path (got '%s').", show(base))
    out.rule(is_clean_base(base), "release_base_path must not be / and must not contain '.', '..' or empty components (got '%s').",
             show(base))
    timeout, ttl, lock_id = s['release_lock_timeout'], s['release_lock_ttl'], s['release_lock_id']
    out.rule(to_int(timeout) >= 0, 'release_lock_timeout must be 0 or more seconds (got %s).', show(timeout))
    out.rule(to_int(ttl) >= 1, 'release_lock_ttl must be 1 or more seconds (got %s).', show(ttl))
    out.rule(text(lock_id) == '' or matches(LOCK_ID_RE, lock_id), "release_lock_id must be letters, digits and . _ : @ - (got '%s').",
             show(lock_id))
    stamp = s['release_id_time']
    out.rule(text(stamp) == '' or is_utc_stamp(stamp), "release_id_time must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ), "
             "or empty for now (got '%s').", show(stamp))
    if entry == 'rollback':
        _rollback_to(out, s['release_rollback_to'], 'release_rollback_to')
    if entry == 'main':
        _user(out, s['release_owner'], 'release_owner', 'a user name such as deploy')
        _user(out, s['release_app_user'], 'release_app_user', 'a user name such as shop', '; set it or release_name')
        _user(out, s['release_app_group'], 'release_app_group', 'a group name')
        _user(out, s['release_migrate_user'], 'release_migrate_user', 'a user name')
        dir_mode = s['release_dir_mode']
        out.rule(is_octal_mode(dir_mode), "release_dir_mode must be an octal string such as '0750' (got '%s').", show(dir_mode))
        keep = s['release_keep_releases']
        out.rule(to_int(keep) >= 1, 'release_keep_releases must be 1 or more (got %s): current is always kept.', show(keep))
        source = s['release_source_type']
        out.rule(source != 'git' or size(s['release_git_repo']) > 0, 'release_git_repo is required when release_source_type is git.')
        depth = s['release_git_depth']
        out.rule(to_int(depth) >= 0, 'release_git_depth must be 0 (full history) or more (got %s).', show(depth))
        for kind, option, where, exists in (('archive', 'release_archive_src', 'a URL or an absolute path on the controller', _archive_src),
                                            ('local', 'release_local_src', 'a directory on the controller', _local_src)):
            src = s[option] if source == kind else ''
            out.rule(source != kind or size(src) > 0, '%s is required when release_source_type is %s (%s).', option, kind, where)
            if size(src) > 0:
                exists(out, src, option)
        if source == 'archive':
            _plain_download(out, s['release_archive_src'], s['release_archive_checksum'], 'release_archive_src',
                            'release_archive_checksum')
        strip = s['release_archive_strip']
        out.rule(to_int(strip) >= 0, 'release_archive_strip must be 0 or more (got %s).', show(strip))
        _local_exclude(out, s['release_local_exclude'], 'release_local_exclude')
        if source == 'local':
            _local_method(out, s['release_local_method'], 'release_local_method', play)

        _shared_paths(out, s['release_shared_dirs'], s['release_shared_files'], 'release_shared_dirs', 'release_shared_files',
                      'a shared path', 'release_env')

        env = s['release_env']
        out.rule(size(env) == 0 or size(s['release_env_content']) == 0, 'set release_env or release_env_content, not both.')
        _env_keys(out, env, 'release_env', 'SECRET_KEY', only_bad=True)
        values = env.values() if isinstance(env, dict) else []
        out.rule(not any(re.search('[\r\n\x00]', show(value)) for value in values),
                 'release_env values must be single lines (the values are not shown here).')
        _env_keys(out, s['release_build_environment'], 'release_build_environment', 'NODE_ENV')
        _env_keys(out, s['release_migrate_environment'], 'release_migrate_environment', 'DJANGO_SETTINGS_MODULE')
        _commands(out, s['release_build_commands'], 'release_build_commands')
        _commands(out, s['release_migrate_commands'], 'release_migrate_commands')
    for phase in HOOK_PHASES.get(entry, ()):
        hook = text(s['release_hooks_' + phase])
        out.rule(hook == '' or (is_absolute(hook) and os.path.isfile(hook)),
                 "release_hooks_%s must be empty or the absolute path of an existing task file on the controller (got '%s').",
                 phase, hook)
    return list(out)


# --------------------------------------------------------------------------- app

def check_app(settings, entry='deploy', play=None):
    """The rules of the app role (entry points deploy, rollback, verify), including those of the roles its values reach."""
    s = settings
    play = play or {}
    out = Messages('app: ')
    _single_lines(out, s, 'app_')
    name = s['app_name']
    out.rule(is_name(name), "app_name must match %s (got '%s').", NAME_RULE, show(name))
    base = text(s['app_base_path'])
    base_ok = re.match('/.', base) is not None and '..' not in base.split('/')
    out.rule(base_ok, "app_base_path must be an absolute path other than / without '..' (got '%s').", base)
    out.rule(not base_ok or is_clean_base(base), "app_base_path must not contain '.', '..' or empty components (got '%s').", base)
    exec_start = s['app_exec_start']
    out.rule(is_exec_line(exec_start), "app_exec_start is required and must start with an absolute path (got '%s').", show(exec_start))
    exec_reload = s['app_exec_reload']
    out.rule(text(exec_reload) == '' or is_exec_line(exec_reload), "app_exec_reload must start with an absolute path (got '%s').",
             show(exec_reload))
    for option in ('app_exec_start', 'app_exec_reload'):
        _command_specifiers(out, s[option], option)
    for option in ('app_base_path', 'app_listen', 'app_read_write_paths'):
        _no_percent(out, s[option], option)
    _not_root(out, s['app_user'], s['app_allow_root'], 'app_user', 'app_allow_root')
    instances = s['app_instances']
    out.rule(1 <= to_int(instances) <= 64, 'app_instances must be between 1 and 64 (got %s).', show(instances))
    for option in ('app_health_path', 'app_verify_path'):
        out.rule(matches(HEALTH_PATH_RE, s[option]), "%s must start with '/' and contain no spaces (got '%s').", option, show(s[option]))
    listen = text(s['app_listen'])
    unix = UNIX_PATH_RE.fullmatch(listen) is not None
    listen_ok = unix or APP_LISTEN_TCP_RE.fullmatch(listen) is not None
    out.rule(listen_ok, "app_listen must be an absolute Unix socket path or 'host:port' such as 127.0.0.1:8000 (got '%s').", listen)
    out.rule(not listen_ok or unix or in_port_range(listen.rsplit(':', 1)[-1]),
             "app_listen address '%s' is malformed: its port is outside 1-65535.", listen)
    out.rule(not listen_ok or unix or octets_in_range(listen), "app_listen address '%s' is malformed: an IPv4 number is above 255.",
             listen)
    per_instance = s['app_mode'] != 'proxy' and to_bool(s['app_nginx']) and (to_bool(s['app_surge']) or to_int(instances) > 1)
    out.rule(not unix or longest_socket_path(listen, to_int(instances), per_instance) <= MAX_UNIX_PATH,
             "app_listen '%s' is too long for a Unix socket: the layout derives paths of up to %d bytes from it, and the kernel takes "
             "%d; use a shorter path such as /run/%s/%s.sock.", listen, longest_socket_path(listen, to_int(instances), per_instance),
             MAX_UNIX_PATH, show(name), show(name))
    server_name = s['app_server_name']
    out.rule(matches(HOST_NAME_RE, server_name), "app_server_name must be one host name such as shop.example.com (got '%s').",
             show(server_name))
    nginx_listen = items(s['app_nginx_listen'])
    out.rule(len(nginx_listen) > 0, 'app_nginx_listen needs at least one address.')
    if to_bool(s['app_nginx']):
        out.rule(not listen_ok or not unix or UPSTREAM_UNIX_RE.fullmatch('unix:' + listen),
                 "app_listen '%s' cannot be nginx's upstream server (unix:%s): a socket path must not contain ';' or braces.",
                 listen, listen)
        _nginx_listen(out, nginx_listen, 'app_nginx_listen', "; the app's site is plain HTTP, ssl is not available here")
        out.rule(not base_ok or NGINX_PATH_RE.fullmatch(base_path(base) + '/current/public'),
                 "app_base_path must not contain spaces, ';' or braces with app_nginx: true, nginx serves BASE/current/public "
                 "(got '%s').", base)
        listen_valid = listen_ok and (unix or (in_port_range(listen.rsplit(':', 1)[-1]) and octets_in_range(listen)))
        if listen_valid and s['app_mode'] != 'proxy' and (to_bool(s['app_surge']) or to_int(instances) > 1):
            # One socket per instance behind nginx (layout instances).
            _instances_layout(out, s, 'app_listen', None, 'app_nginx: true (one socket per instance; app_surge: false with one '
                              'instance keeps one shared socket)')
        keepalive = s['app_nginx_keepalive']
        out.rule(to_int(keepalive) >= 0, 'app_nginx_keepalive must be 0 (off) or more (got %s).', show(keepalive))
    for option, least, most in (('app_verify_workers', 1, 64), ('app_health_gate_successes', 1, 100)):
        out.rule(least <= to_int(s[option]) <= most, '%s must be between %d and %d (got %s).', option, least, most, show(s[option]))
    rate, ratio = s['app_verify_rate'], s['app_verify_post_ratio']
    out.rule(to_float(rate) > 0, 'app_verify_rate must be more than 0 requests per second (got %s).', show(rate))
    out.rule(to_float(rate) <= MAX_RATE, 'app_verify_rate must be at most %d requests per second (got %s).', MAX_RATE, show(rate))
    out.rule(0 <= to_float(ratio) <= 1, 'app_verify_post_ratio must be between 0 and 1 (got %s).', show(ratio))
    post_path = s['app_verify_post_path']
    out.rule(text(post_path) == '' or matches(HEALTH_PATH_RE, post_path),
             "app_verify_post_path must be empty (no POSTs) or start with '/' and contain no spaces (got '%s').", show(post_path))
    requests = s['app_verify_max_requests']
    out.rule(1 <= to_int(requests) <= MAX_REQUESTS, 'app_verify_max_requests must be between 1 and %d (got %s).', MAX_REQUESTS,
             show(requests))
    for option in ('app_verify_baseline_seconds', 'app_verify_tail_seconds', 'app_verify_max_duration'):
        out.rule(0 <= to_float(s[option]) <= MAX_SECONDS, '%s must be between 0 and %d seconds (got %s).', option, MAX_SECONDS,
                 show(s[option]))
    max_failed = s['app_verify_max_failed']
    out.rule(to_int(max_failed) >= 0, 'app_verify_max_failed must be 0 or more (got %s).', show(max_failed))
    factor, allowance = s['app_verify_max_latency_factor'], s['app_verify_latency_allowance_ms']
    out.rule(to_float(factor) > 0, 'app_verify_max_latency_factor must be more than 0 (got %s).', show(factor))
    out.rule(to_float(allowance) >= 0, 'app_verify_latency_allowance_ms must be 0 or more (got %s).', show(allowance))
    duration = s['app_verify_max_duration']
    out.rule(to_float(duration) > to_float(s['app_verify_baseline_seconds']) + to_float(s['app_verify_tail_seconds']),
             'app_verify_max_duration (%s s) must exceed app_verify_baseline_seconds + app_verify_tail_seconds, or the load would '
             'end before the restart.', show(duration))
    out.rule(all(to_int(s[option]) >= 1 for option in ('app_health_gate_timeout', 'app_preflight_timeout', 'app_ready_timeout')),
             'app_health_gate_timeout, app_preflight_timeout and app_ready_timeout must be 1 second or more.')
    keep = s['app_keep_releases']
    out.rule(to_int(keep) >= 1, 'app_keep_releases must be 1 or more (got %s).', show(keep))
    _env_keys(out, s['app_environment'], 'app_environment', 'APP_ENV')
    _absolute_paths(out, s['app_read_write_paths'], 'app_read_write_paths')
    _directive_keys(out, s['app_hardening_overrides'], 'app_hardening_overrides keys')
    if entry in ('deploy', 'rollback'):
        timeout = s['app_lock_timeout']
        out.rule(to_int(timeout) >= 0, 'app_lock_timeout must be 0 or more seconds (got %s).', show(timeout))

    if s['app_mode'] == 'proxy':
        out.rule(to_int(instances) == 1, 'app_instances must be 1 with app_mode: proxy (got %s): the app runs in one of two slots, and '
                 'the blue/green switch between them is what keeps it serving while a release starts.', show(instances))
        ports = s['app_proxy_ports']
        _proxy_ports(out, ports, 'app_proxy_ports')
        _more_than_zero_seconds(out, s['app_proxy_drain_timeout'], 'app_proxy_drain_timeout')
        out.rule(to_float(s['app_proxy_drain_timeout']) <= MAX_SECONDS, 'app_proxy_drain_timeout must be at most %d seconds (got %s).',
                 MAX_SECONDS, show(s['app_proxy_drain_timeout']))
        out.rule(s['app_hardening_profile'] != 'isolated',
                 "app_hardening_profile: isolated gives the app a network of its own, where the slot's proxy cannot reach "
                 "127.0.0.1:PORT; use 'default' with app_mode: proxy.")
        _slot_ports_free(out, [listen], ports, 'app_listen', 'app_proxy_ports', "'%s'" % listen)

    if entry == 'deploy':
        _check_app_source(out, s['app_source'], play)
        _user(out, s['app_deploy_user'], 'app_deploy_user', 'a user name such as deploy')
        # The user defaults to app_name and the group to the user: one message for one wrong name.
        app_user = s['app_user']
        if app_user != name or is_name(name):
            _user(out, app_user, 'app_user', 'a user name such as shop', '; set it or app_name')
        if s['app_group'] != app_user or is_user_name(app_user):
            _user(out, s['app_group'], 'app_group', 'a group name')
        _shared_paths(out, s['app_shared_dirs'], s['app_shared_files'], 'app_shared_dirs', 'app_shared_files',
                      'a path in app_shared_dirs and app_shared_files', 'app_env_file_content')
        _env_keys(out, s['app_build_environment'], 'app_build_environment', 'NODE_ENV')
        _commands(out, s['app_build_commands'], 'app_build_commands')
        _commands(out, s['app_migrate_commands'], 'app_migrate_commands')
    if entry == 'rollback':
        _rollback_to(out, s['app_rollback_to'], 'app_rollback_to')

    stamp = s['app_deploy_time']
    out.rule(text(stamp) == '' or is_utc_stamp(stamp), "app_deploy_time must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ), "
             "or empty for now (got '%s').", show(stamp))
    backend = s['app_lb_backend']
    out.rule(matches(LB_BACKEND_RE, backend), "app_lb_backend must be HOST:PORT as the load balancers reach this host, such as "
             "web1.internal:80 (got '%s').", show(backend))
    drain_timeout = s['app_lb_drain_timeout']
    out.rule(to_int(drain_timeout) >= 1, 'app_lb_drain_timeout must be 1 second or more (got %s).', show(drain_timeout))
    if to_bool(s['app_lb_drain']):
        lb_hosts = items(s['app_lb_hosts'])
        inventory = items((play.get('groups') or {}).get('all'))
        unknown = unique(host for host in lb_hosts if host not in inventory)
        batch, everyone = items(play.get('ansible_play_batch')), items(play.get('ansible_play_hosts_all'))
        out.rule(len(lb_hosts) > 0, 'app_lb_drain needs the load balancers: app_lb_hosts is empty (and there is no group zerodown_lb).')
        out.rule(not unknown, 'app_lb_hosts must be inventory hosts; unknown: %s.', show(unknown))
        out.rule(len(batch) < len(everyone), "app_lb_drain: this wave holds every host of the play (%d), and the hosts of a wave are "
                 "drained together, which would leave the load balancers no server. Deploy in smaller waves (zerodown_waves, such as "
                 "[1, '50%%']).", len(batch))
    return list(out)


def _check_app_source(out, source, play=None):
    """app_source: its type and keys (the app's rules), then what the release role would reject of it."""
    source = source if isinstance(source, dict) else {}
    kind = text(source.get('type', ''))
    out.rule(kind in SOURCE_TYPES, 'app_source must be {type: git, repo: URL, version: REF}, {type: archive, src: PATH_OR_URL} or '
             '{type: local, path: DIR} (got %s).', show(source))
    for needed, key in (('git', 'repo'), ('archive', 'src'), ('local', 'path')):
        out.rule(kind != needed or size(source.get(key, '')) > 0, 'app_source of type %s needs %s.', needed, key)
    known = SOURCE_KEYS.get(kind, [])
    unknown = [key for key in source if key not in known]
    out.rule(not unknown, 'app_source has keys that type %s does not know: %s (known: %s).', kind, show(unknown), show(known))
    for key, message in (('depth', '0 (full history) or more'), ('strip', '0 or more')):
        if key in source:
            out.rule(is_int(source[key]) and to_int(source[key]) >= 0, 'app_source.%s must be %s (got %s).', key, message,
                     show(source[key]))
    if kind == 'archive' and size(source.get('src', '')) > 0:
        _archive_src(out, source['src'], 'app_source.src')
        _plain_download(out, source['src'], source.get('checksum', ''), 'app_source.src', 'app_source.checksum')
    if kind == 'local' and size(source.get('path', '')) > 0:
        _local_src(out, source['path'], 'app_source.path')
    if 'exclude' in source:
        _local_exclude(out, source['exclude'], 'app_source.exclude')
    if 'method' in source:
        out.rule(source['method'] in LOCAL_METHODS, "app_source.method must be one of %s (got '%s').", ', '.join(LOCAL_METHODS),
                 show(source['method']))
        if kind == 'local':
            _local_method(out, source['method'], 'app_source.method', play)


# --------------------------------------------------------------------------- by role

# role: (check, its entry points, the first being the default)
CHECKS = {
    'app': (check_app, ('deploy', 'rollback', 'verify')),
    'nginx_upstream': (check_nginx_upstream, ('main',)),
    'release': (check_release, ('main', 'rollback')),
    'socket_service': (check_socket_service, ('main', 'preflight')),
}


def check(role, settings, entry=None, play=None):
    """Run the check of one role's entry point; raises ValidationError for an unknown role or entry point."""
    if role not in CHECKS:
        raise ValidationError('role must be one of %s, got %r' % (', '.join(sorted(CHECKS)), role))
    function, entries = CHECKS[role]
    entry = entries[0] if entry is None else entry
    if entry not in entries:
        raise ValidationError('entry of role %s must be one of %s, got %r' % (role, ', '.join(entries), entry))
    return function(settings, entry, play)
