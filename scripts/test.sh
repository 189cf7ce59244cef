#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs (scripts/setup.sh), builds or reuses the systemd test image, then runs
# every quality gate. Prints a table of stages and exits non-zero if any failed.
#
#   scripts/test.sh                 all stages
#   scripts/test.sh lint units      only the named stages
#
# Stages: lint sanity units pytest changelog docs build molecule
# Extra stage, not in the default run (CI time): trixie, the socket_service
# scenario on Debian 13 (systemd 257).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

ALL_STAGES=(lint sanity units pytest changelog docs build molecule)

# ansible-test insists on running inside ansible_collections/NS/NAME; a copy
# (not a symlink: it resolves real paths) keeps the checkout's layout free.
collection_copy() {
    local dest="$ZD_ROOT/.cache/ansible-test/ansible_collections/zerodown/deploy"
    mkdir -p "$dest"
    rsync -a --delete --exclude .git --exclude .venv --exclude .cache --exclude tests/output "$ZD_ROOT"/ "$dest"/
    # ansible-test lists files through git when it finds a repository.
    (cd "$dest" && git init -q . 2>/dev/null && git add -A >/dev/null 2>&1)
    echo "$dest"
}

stage_lint() {
    (cd "$ZD_ROOT" && ansible-lint --profile production --offline)
}

stage_sanity() {
    local dir; dir="$(collection_copy)"
    (cd "$dir" && ansible-test sanity --venv --python "$ANSIBLE_TEST_PYTHON" --color no)
}

# Modules run on the target's Python: 3.11 on Debian 12 hosts, so test with
# that as well as the controller's.
stage_units() {
    local dir py rc=0; dir="$(collection_copy)"
    for py in 3.11 "$ANSIBLE_TEST_PYTHON"; do
        command -v "python$py" >/dev/null || { echo "python$py not found: skipping units for it" >&2; continue; }
        (cd "$dir" && ansible-test units --venv --python "$py" --color no) || rc=1
    done
    return "$rc"
}

# The same unit tests straight through pytest in the tool venv: the quick
# loop developers use, and it catches tests that only pass under ansible-test.
stage_pytest() {
    local rc
    (cd "$ZD_ROOT" && PYTHONPATH="$ZD_ROOT/.cache/collections" python -m pytest -q -p no:cacheprovider tests/unit)
    rc=$?
    # pytest exits 5 when it collected nothing: a gate that tested nothing failed.
    [ "$rc" -eq 5 ] && echo "pytest collected no tests" >&2
    return "$rc"
}

stage_changelog() {
    (cd "$ZD_ROOT" && antsibull-changelog lint)
}

stage_docs() {
    (cd "$ZD_ROOT" && antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .)
}

# The tarball must install, and Molecule then runs against that installed
# copy (ANSIBLE_COLLECTIONS_PATH from setup.sh), not against the checkout.
stage_build() {
    "$ZD_ROOT/scripts/setup.sh" >/dev/null && ls "$ZD_ROOT"/.cache/collections/ansible_collections/zerodown/deploy/roles >/dev/null
}

stage_molecule() {
    ZD_TEST_IMAGE="$("$ZD_ROOT/scripts/build-image.sh")" || return 1
    export ZD_TEST_IMAGE
    (cd "$ZD_ROOT" && molecule test --all)
}

stage_trixie() {
    ZD_TEST_IMAGE="$("$ZD_ROOT/scripts/build-image.sh" trixie)" || return 1
    export ZD_TEST_IMAGE
    (cd "$ZD_ROOT" && molecule test -s socket_service)
}

main() {
    local stages=("$@") stage rc start failed=0 passed=0
    [ "${#stages[@]}" -eq 0 ] && stages=("${ALL_STAGES[@]}")
    "$ZD_ROOT/scripts/setup.sh" || die "setup failed"
    activate_env
    # ansible-test builds its venvs from pythonX.Y on PATH: the tool venv's own.
    ANSIBLE_TEST_PYTHON="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    local report=()
    for stage in "${stages[@]}"; do
        declare -F "stage_$stage" >/dev/null || die "unknown stage '$stage' (known: ${ALL_STAGES[*]})"
        log "stage $stage"
        start=$SECONDS
        "stage_$stage"
        rc=$?
        if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        report+=("$(printf '%-10s %-6s %5ss' "$stage" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" "$((SECONDS - start))")")
    done
    printf '\n%-10s %-6s %6s\n' stage result time
    printf '%s\n' "${report[@]}"
    echo "stages: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

main "$@"
