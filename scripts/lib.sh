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
