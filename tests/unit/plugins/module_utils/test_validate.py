# Copyright (c) 2026, zerodown.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one validator: every rule rejects what it should with the message the roles print, and the defaults pass.

The settings are each role's defaults/main.yml, rendered here (a few
expressions, listed in EXPRESSIONS), with the case's values on top: what the
zerodown.deploy.validate action reads inside the role. The messages were
compared with what the roles' assert tasks printed before the validator
replaced them, and must not change: users and the Molecule scenarios match
them.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.zerodown.deploy.plugins.module_utils import _validate
from ansible_collections.zerodown.deploy.plugins.module_utils._validate import ValidationError, check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
# A directory and a file that exist on the controller (the local source, an archive, a hook).
HERE = os.path.dirname(os.path.abspath(__file__))
HERE_FILE = os.path.abspath(__file__)

# What each role needs beyond its defaults.
REQUIRED = {
    'app': {'app_name': 'shop', 'app_exec_start': '/usr/bin/gunicorn app', 'app_source': {'type': 'local', 'path': HERE}},
    'socket_service': {'socket_service_name': 'hello', 'socket_service_exec_start': '/usr/bin/python3 /srv/hello/app.py'},
    'nginx_upstream': {'nginx_upstream_name': 'hello', 'nginx_upstream_tls_certificate': '/etc/ssl/hello.pem',
                       'nginx_upstream_tls_certificate_key': '/etc/ssl/hello.key'},
    'release': {'release_base_path': '/srv/app', 'release_source_type': 'local', 'release_local_src': HERE,
                'release_env': {'SECRET_KEY': 'x'}, 'release_shared_dirs': ['storage/logs', 'media'],
                'release_shared_files': ['config/local.ini'], 'release_build_commands': ['echo hi', ['test', '-L', '.env']]},
}
# A play of one host, which is its own wave.
PLAY = {'ansible_play_batch': ['web1'], 'ansible_play_hosts_all': ['web1'], 'groups': {'all': ['web1'], 'ungrouped': ['web1']}}
# The expressions of the defaults besides plain variable references that a rule reads.
EXPRESSIONS = {
    "groups['zerodown_lb'] | default([])": lambda variables: PLAY['groups'].get('zerodown_lb', []),
    'inventory_hostname': lambda variables: 'web1',
    "release_base_path | regex_replace('/+$', '') | basename":
        lambda variables: os.path.basename(re.sub('/+$', '', render(variables['release_base_path'], variables))),
}
TEMPLATE = re.compile(r'\{\{ ([^{}]+?) \}\}')
ENTRIES = [(role, entry) for role, (dummy, entries) in sorted(_validate.CHECKS.items()) for entry in entries]


def render(value, variables):
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if isinstance(value, dict):
        return dict((key, render(item, variables)) for key, item in value.items())
    if not isinstance(value, str) or '{{' not in value:
        return value

    def resolve(expression):
        if expression in EXPRESSIONS:
            return EXPRESSIONS[expression](variables)
        if expression in variables:
            return render(variables[expression], variables)
        return '{{ %s }}' % expression  # no rule reads it (or that rule's test fails and says so)

    whole = TEMPLATE.fullmatch(value)
    if whole:
        return resolve(whole.group(1))
    return TEMPLATE.sub(lambda match: str(resolve(match.group(1))), value)


def settings(role, **overrides):
    """The role's variables as the action reads them inside the role: its defaults, the required values, the overrides."""
    with open(os.path.join(ROOT, 'roles', role, 'defaults', 'main.yml'), encoding='utf-8') as handle:
        variables = yaml.safe_load(handle)
    variables.update(REQUIRED[role])
    variables.update(overrides)
    return dict((name, render(value, variables)) for name, value in variables.items())


def case(role, entry, overrides, *messages):
    label = '%s-%s-%s' % (role, entry, '-'.join('%s=%s' % item for item in sorted(overrides.items())))
    return pytest.param(role, entry, overrides, list(messages), id=label[:120])


@pytest.mark.parametrize('role, entry', ENTRIES)
def test_the_defaults_with_the_required_values_are_valid(role, entry):
    assert check(role, settings(role), entry, PLAY) == []


@pytest.mark.parametrize('role, entry, overrides', [
    ('release', 'main', {'release_source_type': 'archive', 'release_archive_src': HERE_FILE}),
    ('release', 'main', {'release_source_type': 'archive', 'release_archive_src': 'https://example.com/app.tar.gz'}),
    ('release', 'main', {'release_hooks_before_fetch': HERE_FILE, 'release_id_time': '20261121T101500Z'}),
    ('release', 'rollback', {'release_rollback_to': '20261121T101500Z-3f2a9c1', 'release_hooks_after_rollback': HERE_FILE}),
    ('release', 'main', {'release_base_path': '/srv/app/', 'release_dir_mode': 750, 'release_local_exclude': ['*.pyc', '.git']}),
    ('socket_service', 'main', {'socket_service_listen': ['/run/hello.sock', '127.0.0.1:8000', '[::]:8000', '8000']}),
    ('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_listen': ['127.0.0.1:9000']}),
    ('socket_service', 'main', {'socket_service_mode': 'instances', 'socket_service_listen': ['/run/hello/hello.sock'],
                                'socket_service_servers_dir': '/etc/nginx/conf.d/hello.servers'}),
    ('socket_service', 'main', {'socket_service_mode': 'instances', 'socket_service_listen': ['127.0.0.1:9000'],
                                'socket_service_servers_dir': '/etc/nginx/conf.d/hello.servers'}),
    ('app', 'deploy', {'app_listen': '10.0.0.5:8000', 'app_surge': False}),
    ('app', 'deploy', {'app_listen': '127.0.0.1:8000', 'app_instances': 2, 'app_nginx_keepalive': 0}),
    ('socket_service', 'main', {'socket_service_exposure_max': None, 'socket_service_start_limit_interval_sec': 4}),
    ('nginx_upstream', 'main', {'nginx_upstream_servers': ['unix:/run/a.sock', 'app1.internal:8000', '10.0.0.5:80', '[fd00::5]:8000'],
                                'nginx_upstream_listen': ['80', '127.0.0.1:8080 default_server', '[::]:80 ipv6only=on']}),
    ('nginx_upstream', 'main', {'nginx_upstream_tls_certificate': '', 'nginx_upstream_tls_certificate_key': '',
                                'nginx_upstream_tls_listen': [], 'nginx_upstream_next_upstream': ['off'], 'nginx_upstream_max_fails': 0}),
    ('app', 'deploy', {'app_listen': '127.0.0.1:8000', 'app_nginx_listen': ['127.0.0.1:8080', '[::]:80 default_server']}),
    ('app', 'deploy', {'app_mode': 'proxy', 'app_source': {'type': 'git', 'repo': 'https://git.example.com/shop.git', 'depth': 1}}),
    ('app', 'deploy', {'app_source': {'type': 'archive', 'src': HERE_FILE, 'strip': 1, 'revision': 'v1'}}),
    ('app', 'deploy', {'app_source': {'type': 'local', 'path': HERE, 'exclude': ['.git', '*.pyc'], 'method': 'archive'},
                       'app_shared_dirs': ['storage/logs', 'media'], 'app_shared_files': ['.env', 'config/local.ini']}),
    ('app', 'rollback', {'app_source': {}, 'app_rollback_to': '20261121T101500Z-3f2a9c1'}),
    ('app', 'verify', {'app_source': {}, 'app_deploy_time': '20261121T101500Z'}),
    ('app', 'deploy', {'app_nginx': False, 'app_base_path': '/srv/my shop', 'app_listen': '/run/a;b.sock'}),
])
def test_valid_values_pass(role, entry, overrides):
    assert check(role, settings(role, **overrides), entry, PLAY) == []


def test_a_wave_smaller_than_the_play_may_drain_inventory_load_balancers():
    play = {'ansible_play_batch': ['web1'], 'ansible_play_hosts_all': ['web1', 'web2'],
            'groups': {'all': ['web1', 'web2', 'lb1'], 'zerodown_lb': ['lb1']}}
    assert check('app', settings('app', app_lb_drain=True, app_lb_hosts=['lb1']), 'deploy', play) == []


# One case per rule at least: (role, entry, values over the defaults, every message the check returns).
REJECTED = [
    case('socket_service', 'main', {'socket_service_name': ''},
         "socket_service: socket_service_name must match [A-Za-z0-9][A-Za-z0-9_.-]* (got '')."),
    case('socket_service', 'main', {'socket_service_exec_start': 'gunicorn app'},
         "socket_service: socket_service_exec_start must start with an absolute path (got 'gunicorn app')."),
    case('socket_service', 'main', {'socket_service_exec_reload': 'kill -HUP $MAINPID'},
         "socket_service: socket_service_exec_reload must start with an absolute path (got 'kill -HUP $MAINPID')."),
    case('socket_service', 'main', {'socket_service_instances': 0},
         'socket_service: socket_service_instances must be 1 or more (got 0).'),
    case('socket_service', 'main', {'socket_service_backlog': 0},
         'socket_service: socket_service_backlog must be 1 or more (got 0).'),
    case('socket_service', 'main', {'socket_service_socket_mode': '0699'},
         "socket_service: socket_service_socket_mode must be a quoted octal string such as '0660' (got str 0699; unquoted, YAML "
         "reads 0660 as the number 432)."),
    case('socket_service', 'main', {'socket_service_working_directory': 'srv/hello'},
         "socket_service: socket_service_working_directory must be absolute (got 'srv/hello')."),
    case('socket_service', 'main', {'socket_service_environment_files': ['/etc/a', 'relative']},
         "socket_service: socket_service_environment_files must be absolute paths (got ['/etc/a', 'relative'])."),
    case('socket_service', 'main', {'socket_service_read_write_paths': ['var/lib']},
         "socket_service: socket_service_read_write_paths must be absolute paths (got ['var/lib'])."),
    case('socket_service', 'main', {'socket_service_environment': {'BAD-NAME': 'x', 'GOOD': 'y'}},
         "socket_service: socket_service_environment keys must be variable names like APP_ENV (got ['BAD-NAME', 'GOOD'])."),
    case('socket_service', 'main', {'socket_service_health_path': 'healthz'},
         "socket_service: socket_service_health_path must start with '/' (got 'healthz')."),
    case('socket_service', 'main', {'socket_service_exposure_max': 11},
         'socket_service: socket_service_exposure_max must be between 0 and 10 (got 11).'),
    case('socket_service', 'main', {'socket_service_restart_sec': 0},
         'socket_service: socket_service_restart_sec must be greater than 0 (got 0).'),
    case('socket_service', 'main', {'socket_service_listen': ['localhost:http', '127.0.0.1:70000', '/run/ok.sock', '8000', '[::]:0']},
         "socket_service: socket_service_listen address 'localhost:http' is malformed. Use an absolute Unix socket path (/run/app.sock), "
         "IPv4 'host:port' (127.0.0.1:8000), IPv6 '[addr]:port' ([::]:8000) or a bare port.",
         "socket_service: socket_service_listen address '127.0.0.1:70000' is malformed. Use an absolute Unix socket path (/run/app.sock),"
         " IPv4 'host:port' (127.0.0.1:8000), IPv6 '[addr]:port' ([::]:8000) or a bare port.",
         "socket_service: socket_service_listen address '[::]:0' is malformed. Use an absolute Unix socket path (/run/app.sock), IPv4 "
         "'host:port' (127.0.0.1:8000), IPv6 '[addr]:port' ([::]:8000) or a bare port."),
    case('socket_service', 'main', {'socket_service_runtime_directory': 'hello', 'socket_service_listen': ['/run/hello/app.sock']},
         'socket_service: a socket path lies inside RuntimeDirectory=/run/hello, which systemd deletes whenever the '
         'service stops; the socket would vanish on the first restart. Put it elsewhere, e.g. /run/hello.sock.'),
    case('socket_service', 'main', {'socket_service_start_limit_interval_sec': 60},
         'socket_service: socket_service_start_limit_interval_sec: StartLimitIntervalSec=60 with StartLimitBurst=5 and RestartSec=1 '
         'lets a crash loop reach the start limit; systemd then fails the socket too and every queued and new connection is refused. Use '
         'start_limit_interval_sec: 0 (the default) or keep it below restart_sec x start_limit_burst.'),
    case('socket_service', 'main', {'socket_service_hardening_overrides': {'privateNetwork': 'yes'}},
         'socket_service: socket_service_hardening_overrides keys must be systemd directive names such as ReadWritePaths (got '
         "['privateNetwork'])."),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_proxy_ports': [8001]},
         'socket_service: socket_service_proxy_ports must list exactly 2 TCP ports, one per slot (got [8001]).'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_proxy_ports': [0, 70000]},
         'socket_service: socket_service_proxy_ports must be between 1 and 65535 (got [0, 70000]).'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_proxy_ports': [9000, 9000]},
         'socket_service: socket_service_proxy_ports must be 2 different ports (got [9000, 9000]).'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_proxy_drain_timeout': 0},
         'socket_service: socket_service_proxy_drain_timeout must be more than 0 seconds (got 0).'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_instances': 3},
         'socket_service: socket_service_instances must be 1 with socket_service_mode: proxy (got 3); the two slots of the'
         ' blue/green switch are what keeps one app serving while the other starts.'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_hardening_profile': 'isolated'},
         'socket_service: socket_service_hardening_profile: isolated gives the app a network of its own '
         "(PrivateNetwork=yes), where the slot's proxy cannot reach 127.0.0.1:PORT; use 'default' with "
         'socket_service_mode: proxy.'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_dynamic_user': True},
         'socket_service: socket_service_dynamic_user cannot be used with socket_service_mode: proxy: the slot sockets are'
         ' owned by the fixed socket_service_user that runs the proxies.'),
    case('socket_service', 'main', {'socket_service_mode': 'proxy', 'socket_service_listen': ['127.0.0.1:8001']},
         'socket_service: socket_service_listen must not use a slot port of socket_service_proxy_ports ([8001, 8002]): the'
         " app binds those on 127.0.0.1 (got ['127.0.0.1:8001'])."),
    case('nginx_upstream', 'main', {'nginx_upstream_name': ''},
         "nginx_upstream: nginx_upstream_name must match [A-Za-z0-9][A-Za-z0-9_.-]* (got '').",
         "nginx_upstream: nginx_upstream_server_names must be a non-empty list of names without spaces, quotes, ';' or "
         "braces (got [''])."),
    case('nginx_upstream', 'main', {'nginx_upstream_servers': []},
         'nginx_upstream: nginx_upstream_servers must name at least one server.'),
    case('nginx_upstream', 'main', {'nginx_upstream_max_fails': -1},
         'nginx_upstream: nginx_upstream_max_fails must be 0 or more (got -1).'),
    case('nginx_upstream', 'main', {'nginx_upstream_fail_timeout': 0},
         'nginx_upstream: nginx_upstream_fail_timeout must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_keepalive': -1},
         'nginx_upstream: nginx_upstream_keepalive must be 0 (off) or more (got -1).'),
    case('nginx_upstream', 'main', {'nginx_upstream_keepalive_timeout': 0},
         'nginx_upstream: nginx_upstream_keepalive_timeout must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_keepalive_requests': 0},
         'nginx_upstream: nginx_upstream_keepalive_requests must be 1 or more (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_keepalive_time': 0},
         'nginx_upstream: nginx_upstream_keepalive_time must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_next_upstream': ['error', 'non_idempotent']},
         'nginx_upstream: nginx_upstream_next_upstream must not list non_idempotent: resending a POST that reached the app'
         ' can apply it twice. If every POST/PATCH of the app is safe to repeat, set nginx_upstream_retry_non_idempotent: '
         'true instead.'),
    case('nginx_upstream', 'main', {'nginx_upstream_next_upstream': ['off', 'error']},
         "nginx_upstream: nginx_upstream_next_upstream: 'off' cannot be combined with other values (got ['off', 'error'])."),
    case('nginx_upstream', 'main', {'nginx_upstream_next_upstream': []},
         "nginx_upstream: nginx_upstream_next_upstream must not be empty; use ['off'] to never retry."),
    case('nginx_upstream', 'main', {'nginx_upstream_next_upstream': ['off'], 'nginx_upstream_retry_non_idempotent': True},
         "nginx_upstream: nginx_upstream_retry_non_idempotent needs retries; nginx_upstream_next_upstream is ['off']."),
    case('nginx_upstream', 'main', {'nginx_upstream_next_upstream_tries': -1},
         'nginx_upstream: nginx_upstream_next_upstream_tries must be 0 (unlimited) or more (got -1).'),
    case('nginx_upstream', 'main', {'nginx_upstream_connect_timeout': 0},
         'nginx_upstream: nginx_upstream_connect_timeout must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_send_timeout': 0},
         'nginx_upstream: nginx_upstream_send_timeout must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_read_timeout': 0},
         'nginx_upstream: nginx_upstream_read_timeout must be 1 or more seconds (got 0).'),
    case('nginx_upstream', 'main', {'nginx_upstream_server_names': ['hello test']},
         "nginx_upstream: nginx_upstream_server_names must be a non-empty list of names without spaces, quotes, ';' or "
         "braces (got ['hello test'])."),
    case('nginx_upstream', 'main', {'nginx_upstream_listen': []},
         'nginx_upstream: nginx_upstream_listen must name at least one address (plain HTTP); TLS listens on '
         'nginx_upstream_tls_listen as well.'),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_certificate': ''},
         'nginx_upstream: nginx_upstream_tls_certificate_key is set but nginx_upstream_tls_certificate is empty: TLS needs'
         ' both.'),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_certificate_key': ''},
         'nginx_upstream: nginx_upstream_tls_certificate is set but nginx_upstream_tls_certificate_key is empty: TLS needs'
         ' the private key too (nginx would refuse to start the site).'),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_certificate': 'certs/hello.pem'},
         "nginx_upstream: nginx_upstream_tls_certificate must be an absolute path (got 'certs/hello.pem')."),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_certificate_key': 'hello.key'},
         "nginx_upstream: nginx_upstream_tls_certificate_key must be an absolute path (got 'hello.key')."),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_listen': []},
         'nginx_upstream: with TLS on, nginx_upstream_tls_listen and nginx_upstream_tls_protocols must not be empty.'),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_certificate': '',
                                    'nginx_upstream_tls_certificate_key': '',
                                    'nginx_upstream_tls_redirect': True},
         'nginx_upstream: nginx_upstream_tls_redirect needs TLS: set nginx_upstream_tls_certificate and '
         'nginx_upstream_tls_certificate_key.'),
    case('nginx_upstream', 'main', {'nginx_upstream_client_max_body_size': '10 MB'},
         "nginx_upstream: nginx_upstream_client_max_body_size must be a size such as 10m, 512k or 0 (got '10 MB')."),
    case('nginx_upstream', 'main', {'nginx_upstream_static_path': 'current/public'},
         "nginx_upstream: nginx_upstream_static_path must be an absolute path without spaces (got 'current/public')."),
    case('nginx_upstream', 'main', {'nginx_upstream_static_location': '/static'},
         "nginx_upstream: nginx_upstream_static_location must start and end with '/', e.g. /static/ (got '/static')."),
    case('nginx_upstream', 'main', {'nginx_upstream_static_expires': 'one week'},
         "nginx_upstream: nginx_upstream_static_expires must be an nginx time such as 7d, 12h, max or off (got 'one "
         "week')."),
    case('nginx_upstream', 'main', {'nginx_upstream_static_cache_control': 'public; evil'},
         "nginx_upstream: nginx_upstream_static_cache_control must not contain quotes, ';', braces, '$', backslashes or newlines."),
    case('nginx_upstream', 'main', {'nginx_upstream_health_path': 'healthz'},
         "nginx_upstream: nginx_upstream_health_path must start with '/' and contain no spaces (got 'healthz')."),
    case('nginx_upstream', 'main', {'nginx_upstream_access_log': 'logs/a.log'},
         "nginx_upstream: nginx_upstream_access_log must be an absolute path or 'off' (got 'logs/a.log')."),
    case('nginx_upstream', 'main', {'nginx_upstream_error_log': 'off'},
         "nginx_upstream: nginx_upstream_error_log must be an absolute path (got 'off')."),
    case('nginx_upstream', 'main', {'nginx_upstream_conf_dir': '/srv/nginx'},
         'nginx_upstream: nginx_upstream_conf_dir (/srv/nginx) must lie under /etc/nginx, the directory of '
         'nginx_upstream_main_config, so that `nginx -t` can test the configuration with the new files in place.'),
    case('nginx_upstream', 'main', {'nginx_upstream_distro_default_site': 'sites-enabled/default'},
         "nginx_upstream: nginx_upstream_distro_default_site must be empty or an absolute path under /etc/nginx "
         "(got 'sites-enabled/default')."),
    case('nginx_upstream', 'main', {'nginx_upstream_extra_directives': ['gzip on;\nevil on;']},
         'nginx_upstream: nginx_upstream_extra_directives must be one directive per item, without newlines.'),
    case('nginx_upstream', 'main', {'nginx_upstream_servers': ['unix:run/hello.sock', 'app1.internal']},
         "nginx_upstream: nginx_upstream_servers: upstream server 'unix:run/hello.sock' is malformed. Use unix:/absolute/path.sock (the socket of "
         'socket_service), host:port (app1.internal:8000, 10.0.0.5:8000) or [IPv6]:port ([fd00::5]:8000).',
         "nginx_upstream: nginx_upstream_servers: upstream server 'app1.internal' is malformed. Use unix:/absolute/path.sock (the socket of "
         'socket_service), host:port (app1.internal:8000, 10.0.0.5:8000) or [IPv6]:port ([fd00::5]:8000).'),
    case('nginx_upstream', 'main', {'nginx_upstream_servers': ['app1.internal:70000', 'unix:/run/ok.sock', '[fd00::5]:0']},
         "nginx_upstream: nginx_upstream_servers: upstream server 'app1.internal:70000' has port 70000, outside 1-65535.",
         "nginx_upstream: nginx_upstream_servers: upstream server '[fd00::5]:0' has port 0, outside 1-65535."),
    case('nginx_upstream', 'main', {'nginx_upstream_listen': ['80000', '443 ssl', '127.0.0.1:8080 default_server']},
         "nginx_upstream: nginx_upstream_listen entry '80000' is malformed or its port is outside 1-65535. Use "
         '[address:]port (80, 127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, '
         'proxy_protocol, http2, backlog=N or ipv6only=on|off.',
         "nginx_upstream: nginx_upstream_listen entry '443 ssl' is malformed or its port is outside 1-65535. Use "
         '[address:]port (80, 127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, '
         'proxy_protocol, http2, backlog=N or ipv6only=on|off; TLS addresses go in nginx_upstream_tls_listen, which adds '
         'ssl.'),
    case('nginx_upstream', 'main', {'nginx_upstream_tls_listen': ['443 ssl', '0']},
         "nginx_upstream: nginx_upstream_tls_listen entry '443 ssl' is malformed or its port is outside 1-65535. Use "
         '[address:]port (80, 127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, '
         'proxy_protocol, http2, backlog=N or ipv6only=on|off; TLS addresses go in nginx_upstream_tls_listen, which adds '
         'ssl.',
         "nginx_upstream: nginx_upstream_tls_listen entry '0' is malformed or its port is outside 1-65535. Use "
         '[address:]port (80, 127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, '
         'proxy_protocol, http2, backlog=N or ipv6only=on|off.'),
    case('release', 'main', {'release_base_path': 'srv/app'},
         "release: release_base_path must be an absolute path (got 'srv/app')."),
    case('release', 'main', {'release_base_path': '/srv/../etc'},
         "release: release_base_path must not be / and must not contain '.', '..' or empty components (got '/srv/../etc')."),
    case('release', 'main', {'release_base_path': '/'},
         "release: release_base_path must not be / and must not contain '.', '..' or empty components (got '/').",
         "release: release_app_user must be a user name such as shop (got ''); set it or release_name.",
         "release: release_app_group must be a group name (got '').",
         "release: release_migrate_user must be a user name (got '')."),
    case('release', 'main', {'release_base_path': '/srv//app/'},
         "release: release_base_path must not be / and must not contain '.', '..' or empty components (got '/srv//app/')."),
    case('release', 'main', {'release_lock_timeout': -1},
         'release: release_lock_timeout must be 0 or more seconds (got -1).'),
    case('release', 'main', {'release_lock_ttl': 0},
         'release: release_lock_ttl must be 1 or more seconds (got 0).'),
    case('release', 'main', {'release_lock_id': 'a b'},
         "release: release_lock_id must be letters, digits and . _ : @ - (got 'a b')."),
    case('release', 'main', {'release_id_time': '2026-11-21'},
         'release: release_id_time must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ), or empty for now (got '
         "'2026-11-21')."),
    case('release', 'rollback', {'release_rollback_to': '../../etc'},
         "release: release_rollback_to must be a release ID such as 20261121T101500Z-3f2a9c1 (letters, digits, '.', '_', "
         "'-'; no '/'), or empty for the previous good release (got '../../etc')."),
    case('release', 'main', {'release_owner': 'Deploy User'},
         "release: release_owner must be a user name such as deploy (got 'Deploy User')."),
    case('release', 'main', {'release_app_user': 'Shop'},
         "release: release_app_user must be a user name such as shop (got 'Shop'); set it or release_name.",
         "release: release_app_group must be a group name (got 'Shop').",
         "release: release_migrate_user must be a user name (got 'Shop')."),
    case('release', 'main', {'release_app_group': 'Shop'},
         "release: release_app_group must be a group name (got 'Shop')."),
    case('release', 'main', {'release_migrate_user': '1x y'},
         "release: release_migrate_user must be a user name (got '1x y')."),
    case('release', 'main', {'release_dir_mode': 'rwxr-x---'},
         "release: release_dir_mode must be an octal string such as '0750' (got 'rwxr-x---')."),
    case('release', 'main', {'release_keep_releases': 0},
         'release: release_keep_releases must be 1 or more (got 0): current is always kept.'),
    case('release', 'main', {'release_source_type': 'git'},
         'release: release_git_repo is required when release_source_type is git.'),
    case('release', 'main', {'release_git_depth': -1},
         'release: release_git_depth must be 0 (full history) or more (got -1).'),
    case('release', 'main', {'release_source_type': 'archive'},
         'release: release_archive_src is required when release_source_type is archive (a URL or an absolute path on the '
         'controller).'),
    case('release', 'main', {'release_source_type': 'archive', 'release_archive_src': '/nonexistent/app.tar.gz'},
         "release: release_archive_src '/nonexistent/app.tar.gz' is neither an http(s)/ftp URL nor an existing file "
         '(absolute path) on the controller.'),
    case('release', 'main', {'release_archive_strip': -1},
         'release: release_archive_strip must be 0 or more (got -1).'),
    case('release', 'main', {'release_local_src': ''},
         'release: release_local_src is required when release_source_type is local (a directory on the controller).'),
    case('release', 'main', {'release_local_src': '/nonexistent/app'},
         "release: release_local_src '/nonexistent/app' is not an existing directory (absolute path) on the controller."),
    case('release', 'main', {'release_local_exclude': ['a/b', '']},
         "release: release_local_exclude must be file names or patterns without '/' (got ['a/b', ''])."),
    case('release', 'main', {'release_shared_dirs': ['/var/log'], 'release_shared_files': ['../../etc/passwd', 'ok']},
         "release: release_shared_dirs and release_shared_files must be relative paths inside the release, without '.' or "
         "'..' components (got ['/var/log', '../../etc/passwd'])."),
    case('release', 'main', {'release_shared_dirs': ['media', 'media']},
         "release: a shared path may appear only once in release_shared_dirs and release_shared_files (got ['media', "
         "'media', 'config/local.ini'])."),
    case('release', 'main', {'release_shared_dirs': ['storage', 'storage/logs']},
         "release: a shared path may not lie inside another shared path (got ['storage/logs'])."),
    case('release', 'main', {'release_shared_dirs': ['.env']},
         'release: release_shared_dirs must not contain .env: it is the environment file (release_env).'),
    case('release', 'main', {'release_env_content': 'A=1\n'},
         'release: set release_env or release_env_content, not both.'),
    case('release', 'main', {'release_env': {'BAD-NAME': 'x', 'GOOD': 'y'}},
         "release: release_env keys must be variable names like SECRET_KEY (got ['BAD-NAME'])."),
    case('release', 'main', {'release_env': {'A': 'one\ntwo'}},
         'release: release_env values must be single lines (the values are not shown here).'),
    case('release', 'main', {'release_build_environment': {'node-env': 'x'}},
         "release: release_build_environment keys must be variable names like NODE_ENV (got ['node-env'])."),
    case('release', 'main', {'release_migrate_environment': {'settings module': 'x'}},
         "release: release_migrate_environment keys must be variable names like DJANGO_SETTINGS_MODULE (got ['settings module'])."),
    case('release', 'main', {'release_build_commands': [{'cmd': 'make'}, '  ', [], ['ok']]},
         'release: release_build_commands items must be a command string (run with /bin/sh -c) or a non-empty list of '
         'strings (an argument vector), got {"cmd": "make"}.',
         'release: release_build_commands items must be a command string (run with /bin/sh -c) or a non-empty list of '
         'strings (an argument vector), got "  ".',
         'release: release_build_commands items must be a command string (run with /bin/sh -c) or a non-empty list of '
         'strings (an argument vector), got [].'),
    case('release', 'main', {'release_migrate_commands': [['a', 1]]},
         'release: release_migrate_commands items must be a command string (run with /bin/sh -c) or a non-empty list of '
         'strings (an argument vector), got ["a", 1].'),
    case('release', 'main', {'release_hooks_before_build': 'hooks/build.yml',
                             'release_hooks_after_switch': '/nonexistent/hook.yml',
                             'release_hooks_before_fetch': HERE_FILE},
         'release: release_hooks_before_build must be empty or the absolute path of an existing task file on the '
         "controller (got 'hooks/build.yml').",
         'release: release_hooks_after_switch must be empty or the absolute path of an existing task file on the '
         "controller (got '/nonexistent/hook.yml')."),
    case('release', 'rollback', {'release_hooks_after_rollback': '/nonexistent/hook.yml'},
         'release: release_hooks_after_rollback must be empty or the absolute path of an existing task file on the '
         "controller (got '/nonexistent/hook.yml')."),
    case('app', 'deploy', {'app_name': 'shop/../x'},
         "app: app_name must match [A-Za-z0-9][A-Za-z0-9_.-]* (got 'shop/../x').",
         "app: app_base_path must be an absolute path other than / without '..' (got '/srv/shop/../x').",
         "app: app_server_name must be one host name such as shop.example.com (got 'shop/../x')."),
    case('app', 'deploy', {'app_base_path': 'srv/shop'},
         "app: app_base_path must be an absolute path other than / without '..' (got 'srv/shop')."),
    case('app', 'deploy', {'app_base_path': '/srv/./shop'},
         "app: app_base_path must not contain '.', '..' or empty components (got '/srv/./shop')."),
    case('app', 'deploy', {'app_base_path': '/srv/my shop'},
         "app: app_base_path must not contain spaces, ';' or braces with app_nginx: true, nginx serves BASE/current/public"
         " (got '/srv/my shop')."),
    case('app', 'deploy', {'app_exec_start': ''},
         "app: app_exec_start is required and must start with an absolute path (got '')."),
    case('app', 'deploy', {'app_exec_reload': 'kill -HUP'},
         "app: app_exec_reload must start with an absolute path (got 'kill -HUP')."),
    case('app', 'deploy', {'app_instances': 0},
         'app: app_instances must be between 1 and 64 (got 0).'),
    case('app', 'deploy', {'app_health_path': 'health'},
         "app: app_health_path must start with '/' and contain no spaces (got 'health')."),
    case('app', 'deploy', {'app_verify_path': '/a b'},
         "app: app_verify_path must start with '/' and contain no spaces (got '/a b')."),
    case('app', 'deploy', {'app_listen': 'localhost'},
         "app: app_listen must be an absolute Unix socket path or 'host:port' such as 127.0.0.1:8000 (got 'localhost')."),
    # Python's int() and re's \\d take other scripts' digits; systemd and nginx do not.
    case('app', 'deploy', {'app_listen': '127.0.0.1:\u0668\u0660\u0660\u0660'},
         "app: app_listen must be an absolute Unix socket path or 'host:port' such as 127.0.0.1:8000 (got '127.0.0.1:\u0668\u0660\u0660\u0660')."),
    case('app', 'deploy', {'app_listen': '127.0.0.1:70000'},
         "app: app_listen address '127.0.0.1:70000' is malformed: its port is outside 1-65535."),
    case('app', 'deploy', {'app_listen': '/run/a;b.sock'},
         "app: app_listen '/run/a;b.sock' cannot be nginx's upstream server (unix:/run/a;b.sock): a socket path must not "
         "contain ';' or braces."),
    case('app', 'deploy', {'app_server_name': 'shop test'},
         "app: app_server_name must be one host name such as shop.example.com (got 'shop test')."),
    case('app', 'deploy', {'app_nginx_listen': []},
         'app: app_nginx_listen needs at least one address.'),
    case('app', 'deploy', {'app_nginx_listen': ['80000', '443 ssl']},
         "app: app_nginx_listen entry '80000' is malformed or its port is outside 1-65535. Use [address:]port (80, "
         '127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, proxy_protocol, http2, '
         'backlog=N or ipv6only=on|off.',
         "app: app_nginx_listen entry '443 ssl' is malformed or its port is outside 1-65535. Use [address:]port (80, "
         '127.0.0.1:8080, [::]:80) optionally followed by default_server, reuseport, deferred, proxy_protocol, http2, '
         "backlog=N or ipv6only=on|off; the app's site is plain HTTP, ssl is not available here."),
    case('app', 'deploy', {'app_verify_workers': 65},
         'app: app_verify_workers must be between 1 and 64 (got 65).'),
    case('app', 'deploy', {'app_verify_rate': 0},
         'app: app_verify_rate must be more than 0 requests per second (got 0).'),
    case('app', 'deploy', {'app_verify_post_ratio': 1.5},
         'app: app_verify_post_ratio must be between 0 and 1 (got 1.5).'),
    case('app', 'deploy', {'app_verify_max_failed': -1},
         'app: app_verify_max_failed must be 0 or more (got -1).'),
    case('app', 'deploy', {'app_listen': '10.0.0.5:8000'},
         'app: app_listen must be one absolute Unix socket path (each instance K gets its own, NAME-K.sock beside it) or one '
         'loopback address 127.x.x.x:PORT (instance K gets 127.0.0.K:PORT) with app_nginx: true (one socket per instance; '
         'app_surge: false with one instance keeps one shared socket) (got 10.0.0.5:8000).'),
    case('app', 'deploy', {'app_nginx_keepalive': -1},
         'app: app_nginx_keepalive must be 0 (off) or more (got -1).'),
    case('app', 'deploy', {'app_verify_max_latency_factor': 0},
         'app: app_verify_max_latency_factor must be more than 0 (got 0).'),
    case('app', 'deploy', {'app_verify_latency_allowance_ms': -5},
         'app: app_verify_latency_allowance_ms must be 0 or more (got -5).'),
    case('socket_service', 'main', {'socket_service_mode': 'instances', 'socket_service_listen': ['/run/hello/hello.sock']},
         "socket_service: socket_service_servers_dir must be nginx's absolute directory of one server file per instance with "
         "socket_service_mode: instances (got '')."),
    case('socket_service', 'main', {'socket_service_mode': 'instances', 'socket_service_listen': ['/run/a.sock', '/run/b.sock'],
                                    'socket_service_servers_dir': '/etc/nginx/conf.d/hello.servers'},
         'socket_service: socket_service_listen must be one absolute Unix socket path (each instance K gets its own, NAME-K.sock '
         'beside it) or one loopback address 127.x.x.x:PORT (instance K gets 127.0.0.K:PORT) with socket_service_mode: instances '
         "(got ['/run/a.sock', '/run/b.sock'])."),
    case('app', 'deploy', {'app_verify_max_duration': 3, 'app_verify_baseline_seconds': 2, 'app_verify_tail_seconds': 2},
         'app: app_verify_max_duration (3 s) must exceed app_verify_baseline_seconds + app_verify_tail_seconds, or the '
         'load would end before the restart.'),
    case('app', 'deploy', {'app_health_gate_successes': 0},
         'app: app_health_gate_successes must be between 1 and 100 (got 0).'),
    case('app', 'deploy', {'app_ready_timeout': 0},
         'app: app_health_gate_timeout, app_preflight_timeout and app_ready_timeout must be 1 second or more.'),
    case('app', 'deploy', {'app_keep_releases': 0},
         'app: app_keep_releases must be 1 or more (got 0).'),
    case('app', 'deploy', {'app_environment': {'BAD-KEY': '1'}},
         "app: app_environment keys must be variable names like APP_ENV (got ['BAD-KEY'])."),
    case('app', 'deploy', {'app_read_write_paths': ['var/lib']},
         "app: app_read_write_paths must be absolute paths (got ['var/lib'])."),
    case('app', 'deploy', {'app_hardening_overrides': {'privateNetwork': 'yes'}},
         'app: app_hardening_overrides keys must be systemd directive names such as ReadWritePaths (got '
         "['privateNetwork'])."),
    case('app', 'deploy', {'app_lock_timeout': -1},
         'app: app_lock_timeout must be 0 or more seconds (got -1).'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_instances': 2},
         'app: app_instances must be 1 with app_mode: proxy (got 2): the app runs in one of two slots, and the blue/green '
         'switch between them is what keeps it serving while a release starts.'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_proxy_ports': [8001]},
         'app: app_proxy_ports must list exactly 2 TCP ports, one per slot (got [8001]).'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_proxy_ports': [8001, 70000]},
         'app: app_proxy_ports must be between 1 and 65535 (got [8001, 70000]).'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_proxy_ports': [8001, 8001]},
         'app: app_proxy_ports must be 2 different ports (got [8001, 8001]).'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_proxy_drain_timeout': 0},
         'app: app_proxy_drain_timeout must be more than 0 seconds (got 0).'),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_hardening_profile': 'isolated'},
         "app: app_hardening_profile: isolated gives the app a network of its own, where the slot's proxy cannot reach "
         "127.0.0.1:PORT; use 'default' with app_mode: proxy."),
    case('app', 'deploy', {'app_mode': 'proxy', 'app_listen': '127.0.0.1:8001'},
         'app: app_listen must not use a slot port of app_proxy_ports ([8001, 8002]): the app binds those on 127.0.0.1 '
         "(got '127.0.0.1:8001')."),
    case('app', 'deploy', {'app_source': {}},
         'app: app_source must be {type: git, repo: URL, version: REF}, {type: archive, src: PATH_OR_URL} or {type: local,'
         ' path: DIR} (got {}).'),
    case('app', 'deploy', {'app_source': {'type': 'svn', 'repo': 'x'}},
         'app: app_source must be {type: git, repo: URL, version: REF}, {type: archive, src: PATH_OR_URL} or {type: local,'
         " path: DIR} (got {'type': 'svn', 'repo': 'x'}).",
         "app: app_source has keys that type svn does not know: ['type', 'repo'] (known: [])."),
    case('app', 'deploy', {'app_source': {'type': 'git'}},
         'app: app_source of type git needs repo.'),
    case('app', 'deploy', {'app_source': {'type': 'archive'}},
         'app: app_source of type archive needs src.'),
    case('app', 'deploy', {'app_source': {'type': 'local'}},
         'app: app_source of type local needs path.'),
    case('app', 'deploy', {'app_source': {'type': 'local', 'path': '/tmp', 'branch': 'main'}},
         "app: app_source has keys that type local does not know: ['branch'] (known: ['type', 'path', 'exclude', 'method',"
         " 'revision'])."),
    case('app', 'deploy', {'app_source': {'type': 'git', 'repo': 'x', 'depth': -1}},
         'app: app_source.depth must be 0 (full history) or more (got -1).'),
    case('app', 'deploy', {'app_source': {'type': 'archive', 'src': '/nonexistent.tgz', 'strip': 'x'}},
         'app: app_source.strip must be 0 or more (got x).',
         "app: app_source.src '/nonexistent.tgz' is neither an http(s)/ftp URL nor an existing file (absolute path) on the"
         ' controller.'),
    case('app', 'deploy', {'app_source': {'type': 'local', 'path': '/nonexistent', 'exclude': ['a/b'], 'method': 'scp'}},
         "app: app_source.path '/nonexistent' is not an existing directory (absolute path) on the controller.",
         "app: app_source.exclude must be file names or patterns without '/' (got ['a/b']).",
         "app: app_source.method must be one of auto, synchronize, archive (got 'scp')."),
    case('app', 'deploy', {'app_deploy_user': 'Deploy User'},
         "app: app_deploy_user must be a user name such as deploy (got 'Deploy User')."),
    case('app', 'deploy', {'app_name': 'Shop'},
         "app: app_user must be a user name such as shop (got 'Shop'); set it or app_name."),
    case('app', 'deploy', {'app_group': 'Shop'},
         "app: app_group must be a group name (got 'Shop')."),
    case('app', 'deploy', {'app_shared_dirs': ['/var/log', 'media', 'media/x'], 'app_shared_files': ['media']},
         "app: app_shared_dirs and app_shared_files must be relative paths inside the release, without '.' or '..' "
         "components (got ['/var/log']).",
         "app: a shared path may appear only once in app_shared_dirs and app_shared_files (got ['/var/log', 'media', "
         "'media/x', 'media']).",
         "app: a path in app_shared_dirs and app_shared_files may not lie inside another shared path (got ['media/x'])."),
    case('app', 'deploy', {'app_shared_dirs': ['.env']},
         'app: app_shared_dirs must not contain .env: it is the environment file (app_env_file_content).'),
    case('app', 'deploy', {'app_build_environment': {'node-env': 'x'}},
         "app: app_build_environment keys must be variable names like NODE_ENV (got ['node-env'])."),
    case('app', 'deploy', {'app_build_commands': [{'cmd': 'make'}], 'app_migrate_commands': [[]]},
         'app: app_build_commands items must be a command string (run with /bin/sh -c) or a non-empty list of strings (an '
         'argument vector), got {"cmd": "make"}.',
         'app: app_migrate_commands items must be a command string (run with /bin/sh -c) or a non-empty list of strings '
         '(an argument vector), got [].'),
    case('app', 'rollback', {'app_rollback_to': '../x'},
         "app: app_rollback_to must be a release ID such as 20261121T101500Z-3f2a9c1 (letters, digits, '.', '_', '-'; no "
         "'/'), or empty for the previous good release (got '../x')."),
    case('app', 'verify', {'app_source': {}, 'app_deploy_time': '2026-11-21 10:15'},
         'app: app_deploy_time must be a UTC time like 20261121T101500Z (YYYYMMDDTHHMMSSZ), or empty for now (got '
         "'2026-11-21 10:15')."),
    case('app', 'deploy', {'app_lb_backend': 'web1'},
         'app: app_lb_backend must be HOST:PORT as the load balancers reach this host, such as web1.internal:80 (got '
         "'web1')."),
    case('app', 'deploy', {'app_lb_drain_timeout': 0},
         'app: app_lb_drain_timeout must be 1 second or more (got 0).'),
    case('app', 'deploy', {'app_lb_drain': True},
         'app: app_lb_drain needs the load balancers: app_lb_hosts is empty (and there is no group zerodown_lb).',
         'app: app_lb_drain: this wave holds every host of the play (1), and the hosts of a wave are drained together, '
         "which would leave the load balancers no server. Deploy in smaller waves (zerodown_waves, such as [1, '50%'])."),
    case('app', 'deploy', {'app_lb_drain': True, 'app_lb_hosts': ['nowhere']},
         "app: app_lb_hosts must be inventory hosts; unknown: ['nowhere'].",
         'app: app_lb_drain: this wave holds every host of the play (1), and the hosts of a wave are drained together, '
         "which would leave the load balancers no server. Deploy in smaller waves (zerodown_waves, such as [1, '50%'])."),
    case('socket_service', 'preflight', {'socket_service_mode': 'proxy'},
         'socket_service: the pre-flight entry point does not apply to socket_service_mode: proxy. There, the blue/green '
         'switch starts the new release on the idle slot and probes its health path before the link points at it, which is'
         ' the pre-flight. Nothing was changed.'),
]


@pytest.mark.parametrize('role, entry, overrides, messages', REJECTED)
def test_bad_values_are_rejected_with_the_roles_messages(role, entry, overrides, messages):
    assert check(role, settings(role, **overrides), entry, PLAY) == messages


@pytest.mark.parametrize('role, overrides, name', [
    ('app', {'app_source': {'type': 'local', 'path': HERE, 'method': 'synchronize'}}, 'app_source.method'),
    ('release', {'release_source_type': 'local', 'release_local_src': HERE, 'release_local_method': 'synchronize'},
     'release_local_method'),
])
def test_synchronize_without_ansible_posix_on_the_controller_is_refused(role, overrides, name):
    entry = 'deploy' if role == 'app' else 'main'
    without = dict(PLAY, controller_synchronize=False)
    assert check(role, settings(role, **overrides), entry, without) == [
        '%s: %s synchronize needs the ansible.posix collection on the controller (ansible-galaxy collection install ansible.posix), '
        'and it is not installed; use archive (ansible.builtin only), or auto, which copies by rsync only where it can.' % (role, name)]
    # With the collection, or with auto or archive (which fall back to tar), nothing to say.
    assert check(role, settings(role, **overrides), entry, dict(PLAY, controller_synchronize=True)) == []
    method = dict(overrides)
    if role == 'app':
        method['app_source'] = dict(overrides['app_source'], method='auto')
    else:
        method['release_local_method'] = 'auto'
    assert check(role, settings(role, **method), entry, without) == []


def test_every_problem_is_reported_at_once():
    messages = check('app', settings('app', app_instances=0, app_keep_releases=0, app_verify_rate=0), 'deploy', PLAY)
    assert messages == ['app: app_instances must be between 1 and 64 (got 0).',
                        'app: app_verify_rate must be more than 0 requests per second (got 0).',
                        'app: app_keep_releases must be 1 or more (got 0).']


def test_a_trailing_newline_does_not_slip_through_an_anchored_pattern():
    messages = check('app', settings('app', app_name='shop\n'), 'verify', PLAY)
    assert "app: app_name must match [A-Za-z0-9][A-Za-z0-9_.-]* (got 'shop\n')." in messages
    assert messages[0].startswith('app: these values must be single lines, without CR, LF or NUL') and 'app_name' in messages[0]


def test_unknown_roles_and_entry_points_are_refused():
    with pytest.raises(ValidationError, match='role must be one of app, nginx_upstream, release, socket_service'):
        check('nginx', {})
    with pytest.raises(ValidationError, match="entry of role release must be one of main, rollback, got 'deploy'"):
        check('release', settings('release'), 'deploy')


def test_a_missing_variable_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match='socket_service_backlog'):
        check('socket_service', dict((k, v) for k, v in settings('socket_service').items() if k != 'socket_service_backlog'))


def test_the_coverage_table_names_every_app_variable():
    with open(os.path.join(ROOT, 'roles', 'app', 'defaults', 'main.yml'), encoding='utf-8') as handle:
        names = sorted(yaml.safe_load(handle))
    assert [name for name in names if not re.search(r'\b%s\b' % name, _validate.__doc__)] == []


# --------------------------------------------------------------------------- primitives

@pytest.mark.parametrize('value, expected', [
    ('/run/app.sock', True), ('127.0.0.1:8000', True), ('[::]:8000', True), ('8000', True), (8000, True),
    ('127.0.0.1:70000', False), ('localhost:8000', False), ('[::]:0', False), ('0', False), ('/run/a b.sock', False), ('', False),
])
def test_listen_address(value, expected):
    assert _validate.is_listen_address(value) is expected


@pytest.mark.parametrize('value, expected', [
    ('80', True), ('127.0.0.1:8080', True), ('[::]:80 ipv6only=on', True), ('*:80 default_server reuseport', True),
    ('web.internal:8080 backlog=511', True), ('80000', False), ('443 ssl', False), ('80 http3', False), ('', False), ('0', False),
])
def test_nginx_listen(value, expected):
    assert _validate.is_nginx_listen(value) is expected


@pytest.mark.parametrize('value, expected', [
    ('unix:/run/a.sock', True), ('app1.internal:8000', True), ('10.0.0.5:80', True), ('[fd00::5]:8000', True),
    ('unix:run/a.sock', False), ('app1.internal', False), ('-app:80', False), ('unix:/run/a;b', False),
])
def test_upstream_server(value, expected):
    assert _validate.is_upstream_server(value) is expected


@pytest.mark.parametrize('value, expected', [('7d', True), ('1h30m', True), ('-1', True), ('max', True), ('off', True),
                                             ('epoch', True), ('one week', False), ('7x', False), ('', False)])
def test_nginx_time(value, expected):
    assert _validate.is_nginx_time(value) is expected


@pytest.mark.parametrize('value, expected', [('0660', True), ('660', True), (660, True), ('0699', False), ('rw-rw----', False),
                                             ('00660', False)])
def test_octal_mode(value, expected):
    assert _validate.is_octal_mode(value) is expected


@pytest.mark.parametrize('value, expected', [('deploy', True), ('_app-1', True), ('Deploy', False), ('1app', False),
                                             ('a' * 33, False), ('', False)])
def test_user_name(value, expected):
    assert _validate.is_user_name(value) is expected


@pytest.mark.parametrize('value, expected', [('/usr/bin/true', True), ('-!/usr/bin/true', True), ('true', False), ('', False)])
def test_exec_line(value, expected):
    assert _validate.is_exec_line(value) is expected


@pytest.mark.parametrize('value, expected', [('make', True), (['make', 'all'], True), ('  ', False), ([], False), (['a', 1], False),
                                             ({'cmd': 'make'}, False), (None, False)])
def test_command(value, expected):
    assert _validate.is_command(value) is expected


def test_shared_paths():
    assert _validate.bad_shared_paths(['ok/dir', '/abs', 'a/../b', './a', 'a//b', 'a/', '', '.hidden']) == [
        '/abs', 'a/../b', './a', 'a//b', 'a/', '']
    assert _validate.nested_shared_paths(['storage', 'storage/logs', 'storage2']) == ['storage/logs']
    assert _validate.nested_shared_paths([]) == []


@pytest.mark.parametrize('value, expected', [('/srv/app', True), ('/srv/app/', True), ('/', False), ('//', False),
                                             ('/srv/./app', False), ('/srv//app', False), ('/srv/../etc', False)])
def test_clean_base(value, expected):
    assert _validate.is_clean_base(value) is expected


def test_values_read_like_jinja_filters_and_shown_like_jinja():
    assert [_validate.to_int(v) for v in ('5', '5.7', 'five', None, True, 3.9)] == [5, 5, 0, 0, 1, 3]
    assert [_validate.to_float(v) for v in ('0.5', 'x', None, 2)] == [0.5, 0.0, 0.0, 2.0]
    assert [_validate.to_bool(v) for v in ('yes', 'On', 'true', 1, '1', True, 'no', 0, 'x', None)] == [True] * 6 + [False] * 4
    assert [_validate.show(v) for v in (None, 0.0, ['a', 1], {'a': True})] == ['', '0.0', "['a', 1]", "{'a': True}"]


def test_service_and_unit_names():
    assert _validate.service_name('hello.service') == 'hello'
    for bad in ('hello@1', 'hello.socket', 'a b', 3):
        with pytest.raises(ValidationError):
            _validate.service_name(bad)
    assert _validate.unit_name('hello@2.service') == 'hello@2.service'
    with pytest.raises(ValidationError, match='is not a unit name'):
        _validate.unit_name('hello.timer')


# --------------------------------------------------------------------------- the bad-input table

# tests/bad_input/cases.yml: every case is refused by what runs before the role's first change, the role's argument spec
# (types and choices) and the validator, with a message that names the variable. The Molecule runner
# (molecule/socket_service/tests/test_bad_input.py) plays the same table against a real host.
with open(os.path.join(ROOT, 'tests', 'bad_input', 'cases.yml'), encoding='utf-8') as _handle:
    BAD_INPUT = yaml.safe_load(_handle)
# The validator's entry points that the argument specs call main.
SPEC_ENTRY = {'deploy': 'main'}


def controller_paths(value):
    """The table's placeholders: @DIR@ and @FILE@ exist on the controller."""
    if isinstance(value, dict):
        return dict((key, controller_paths(item)) for key, item in value.items())
    if isinstance(value, list):
        return [controller_paths(item) for item in value]
    return {'@DIR@': HERE, '@FILE@': HERE_FILE}.get(value, value) if isinstance(value, str) else value


def spec_errors(role, entry, values):
    """What the role's argument spec refuses of the values (ansible-core validates it before the role's first task)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # pylint: disable=import-outside-toplevel
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        options = yaml.safe_load(handle)['argument_specs'][SPEC_ENTRY.get(entry, entry)]['options']
    return ArgumentSpecValidator(options).validate(values).error_messages


def refusals(case):
    role = case['role']
    entry = case.get('entry', _validate.CHECKS[role][1][0])
    values = dict(controller_paths(BAD_INPUT['baselines'][role]), **controller_paths(case['vars']))
    return spec_errors(role, entry, values) + check(role, settings(role, **values), entry, PLAY)


def test_the_bad_input_table_covers_every_role_with_80_cases_or_more():
    cases = BAD_INPUT['cases']
    ids = [case['id'] for case in cases]
    assert len(cases) >= 80 and len(ids) == len(set(ids))
    assert set(case['role'] for case in cases) == set(_validate.CHECKS)


@pytest.mark.parametrize('role', sorted(_validate.CHECKS))
def test_the_bad_input_baselines_are_valid(role):
    """A case fails because of what it changes, not because of the baseline it starts from."""
    values = controller_paths(BAD_INPUT['baselines'][role])
    entry = _validate.CHECKS[role][1][0]
    assert spec_errors(role, entry, values) + check(role, settings(role, **values), entry, PLAY) == []


@pytest.mark.parametrize('case', BAD_INPUT['cases'], ids=[case['id'] for case in BAD_INPUT['cases']])
def test_bad_input_is_refused_naming_the_variable(case):
    messages = refusals(case)
    assert any(case['error'] in message for message in messages), messages
    assert any(name in case['error'] for name in case['vars']) or any(name in message for message in messages for name in case['vars'])
