# Shared helpers for the scripts in this directory. Source it, do not run it.
# shellcheck shell=bash

ZD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZD_VENV="${ZD_VENV:-$ZD_ROOT/.venv}"
export ZD_ROOT ZD_VENV

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Run as root or through sudo; the harness installs packages and runs
# privileged containers (systemd as PID 1 needs it on these hosts).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are missing; no-op when all are present.
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Every program the harness runs, directly or through podman, and the Debian
# package that provides it. podman only *suggests* iptables, yet netavark
# execs it for every container network ("netavark: No such file or
# directory" without it), so each one is named here and checked up front.
HOST_TOOLS=(
    podman:podman
    conmon:conmon
    runc:runc
    /usr/lib/podman/netavark:netavark
    /usr/lib/podman/aardvark-dns:aardvark-dns
    iptables:iptables
    ip6tables:iptables
    debootstrap:debootstrap
    wget:wget
    newuidmap:uidmap
    rsync:rsync
    git:git
    shellcheck:shellcheck
    tar:tar
    sha256sum:coreutils
    renice:bsdutils
)

# The packages of HOST_TOOLS, each once, for ensure_apt_packages.
host_tool_packages() {
    local entry
    for entry in "${HOST_TOOLS[@]}"; do echo "${entry##*:}"; done | sort -u
}

# Fails naming every missing program and its package, so a fresh machine
# says what to install instead of failing deep inside podman.
check_host_tools() {
    local entry bin missing=()
    for entry in "${HOST_TOOLS[@]}"; do
        bin="${entry%:*}"
        if [ "${bin#/}" != "$bin" ]; then [ -x "$bin" ] && continue; else command -v "$bin" >/dev/null 2>&1 && continue; fi
        missing+=("$bin (Debian package ${entry##*:})")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    die "missing programs the harness runs: ${missing[*]}; install them with: apt-get install $(printf '%s\n' "${HOST_TOOLS[@]}" | cut -d: -f2 | sort -u | paste -sd' ')"
}

# Start a systemd container NAME from IMAGE, or reuse it. A container that an
# earlier, failed run left Created, Exited, or booted half-way (systemd not
# reaching running/degraded) is started, and re-created if that does not
# boot it, so running the command again is always a valid answer to a failure.
ensure_systemd_container() {
    local name="$1" image="$2" state
    state="$(as_root podman container inspect -f '{{.State.Status}}|{{.ImageName}}' "$name" 2>/dev/null || true)"
    if [ -n "$state" ] && [ "${state#*|}" != "$image" ]; then
        log "$name runs ${state#*|}, not $image: re-creating it"
        as_root podman rm -f "$name" >/dev/null
        state=""
    fi
    case "${state%%|*}" in
        running) ;;
        "") start_systemd_container "$name" "$image" ;;
        *)
            log "$name was left ${state%%|*} by an earlier run: starting it"
            as_root podman start "$name" >/dev/null 2>&1 || { as_root podman rm -f "$name" >/dev/null; start_systemd_container "$name" "$image"; } ;;
    esac
    wait_booted "$name" && return 0
    log "$name did not boot: re-creating it"
    as_root podman rm -f "$name" >/dev/null
    start_systemd_container "$name" "$image"
    wait_booted "$name" || die "container $name did not boot (podman logs $name)"
}

start_systemd_container() {
    log "starting $1 from $2"
    as_root podman run -d --name "$1" --hostname "$1" --privileged --systemd=always \
        --ulimit nofile=10000:10000 --ulimit nproc=10000:10000 "$2" /sbin/init >/dev/null
}

# True once systemd in the container is up (running, or degraded: a unit of
# the app may have failed, which the deploy itself reports). Right after
# `podman run` the bus is not there yet and systemctl answers "offline" or
# nothing, so ask again until the deadline (60 s).
wait_booted() {
    local state deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        state="$(as_root timeout 60 podman exec "$1" systemctl is-system-running --wait 2>/dev/null || true)"
        case "$state" in running|degraded) return 0 ;; esac
        sleep 1
    done
    log "$1: systemd says '${state:-nothing}' after 60 s"
    return 1
}

# The test image's tag is a hash of its recipe, so it is rebuilt only when
# the recipe (this script's build step or the package list) changes.
image_ref() {
    local release="${1:-bookworm}" hash
    hash="$(cat "$ZD_ROOT/scripts/build-image.sh" "$ZD_ROOT/tests/image/packages-$release.txt" | sha256sum | cut -c1-12)"
    printf 'localhost/zerodown-systemd:%s-%s\n' "$release" "$hash"
}

# The environment every tool runs in: the project's venv first on PATH and
# the collection as installed from its tarball by setup.sh.
activate_env() {
    export PATH="$ZD_VENV/bin:$PATH"
    export ANSIBLE_COLLECTIONS_PATH="$ZD_ROOT/.cache/collections"
    export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
    export MOLECULE_NO_LOG="${MOLECULE_NO_LOG:-false}"
}

# ansible-test --venv bootstraps pip with a get-pip script it downloads from a
# host that is not reachable here. It uses a cached copy when one exists, so
# seed the cache with a stand-in that installs pip from the interpreter's own
# ensurepip wheel, then lets that pip fetch the exact version from PyPI.
# $1: the Python of the venv whose ansible-test will run.
seed_ansible_test_pip() {
    local python="$1" version cache
    version="$("$python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)"
    cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
    cmp -s "$ZD_ROOT/tools/get_pip_from_ensurepip.py" "$cache" && return 0
    mkdir -p "$(dirname "$cache")"
    cp "$ZD_ROOT/tools/get_pip_from_ensurepip.py" "$cache"
    log "seeded ansible-test's pip bootstrap cache: $cache"
}
