#!/usr/bin/env bash
# Install everything the demo and the test suite need on a fresh Debian 12
# machine: system packages, a Python >= 3.12 virtualenv with the pinned tools
# (tools/requirements.txt) and the collection itself, built and installed from
# its tarball so tests exercise what users install. Safe to run repeatedly.
#
#   scripts/setup.sh      (scripts/demo.sh and scripts/test.sh run it first)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The packages of every program the harness runs (HOST_TOOLS in lib.sh),
# plus the CA certificates pip and git need.
mapfile -t HOST_PACKAGES < <(host_tool_packages)
HOST_PACKAGES+=(ca-certificates)

# ansible-core 2.20+ refuses older interpreters; look where such a Python
# usually is, in order: $ZD_PYTHON, PATH, pyenv.
find_python() {
    local candidate
    for candidate in "${ZD_PYTHON:-}" python3.13 python3.12 \
                     "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
                     /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

setup_venv() {
    local stamp="$ZD_VENV/.requirements.sha256" want python
    want="$(sha256sum "$ZD_ROOT/tools/requirements.txt" | cut -d' ' -f1)"
    if [ -x "$ZD_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    python="$(find_python)" || die "Python >= 3.12 with venv and ensurepip is required (ansible-core 2.21 needs it) and none was found.
Install one (e.g. 'pyenv install 3.12', or Debian 13's python3) or point ZD_PYTHON at it."
    log "creating $ZD_VENV with $python ($("$python" --version))"
    rm -rf "$ZD_VENV"
    "$python" -m venv "$ZD_VENV"
    "$ZD_VENV/bin/python" -m pip install -q --upgrade pip
    "$ZD_VENV/bin/python" -m pip install -q -r "$ZD_ROOT/tools/requirements.txt"
    echo "$want" > "$stamp"
}

# Build the collection tarball and install it, so Molecule and the demo use
# the collection exactly as a user gets it.
install_collection() {
    local dist="$ZD_ROOT/.cache/dist" dest="$ZD_ROOT/.cache/collections"
    rm -rf "$dist" && mkdir -p "$dist" "$dest"
    (cd "$ZD_ROOT" && "$ZD_VENV/bin/ansible-galaxy" collection build --force --output-path "$dist" >/dev/null)
    ANSIBLE_COLLECTIONS_PATH="$dest" "$ZD_VENV/bin/ansible-galaxy" collection install --force -p "$dest" "$dist"/zerodown-deploy-*.tar.gz >/dev/null
    log "installed $(basename "$dist"/zerodown-deploy-*.tar.gz) into $dest"
}

main() {
    ensure_apt_packages "${HOST_PACKAGES[@]}"
    check_host_tools
    setup_venv
    seed_ansible_test_pip "$ZD_VENV/bin/python"
    install_collection
}

main "$@"

