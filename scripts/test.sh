#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs (scripts/setup.sh), builds or reuses the systemd test images, then
# runs every quality gate. Prints a table of stages (and of the Molecule
# scenarios) with their times, and exits non-zero if any failed.
#
#   scripts/test.sh                 all stages
#   scripts/test.sh lint units      only the named stages
#   ZD_SCENARIOS="app proxy" scripts/test.sh molecule   some scenarios
#
# Stages: lint sanity units oldest pytest changelog docs build galaxy molecule
# ZD_OVERLAP=1 starts Molecule right after build, in the background, with
# the other stages niced beside it (default: one stage after another).
# The Molecule scenarios run ZD_MOLECULE_JOBS (default 3) at a time: each
# has its own containers and network, and they mostly wait (on systemd, on
# boots, on measured load), so two cores carry three. The Debian 13
# (systemd 257) copies of socket_service and app are part of every run.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

ALL_STAGES=(lint sanity units oldest pytest changelog docs build galaxy molecule)
LOG_DIR="$ZD_ROOT/.cache/test-logs"

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

# A venv of the tool venv's Python with requirements file $2 installed, at $1;
# made again only when that file changed (its hash is kept in the venv).
requirements_venv() {
    local venv="$1" reqs="$2" want
    want="$(sha256sum "$reqs" | cut -d' ' -f1)"
    [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ] && return 0
    rm -rf "$venv"
    python -m venv "$venv" && "$venv/bin/python" -m pip install -q -r "$reqs" && echo "$want" > "$venv/.requirements.sha256"
}

# The oldest supported ansible-core (tools/requirements-oldest.txt, the lower
# bound of requires_ansible): its sanity and units, in a venv of its own.
stage_oldest() {
    local venv="$ZD_ROOT/.cache/oldest-venv" reqs="$ZD_ROOT/tools/requirements-oldest.txt" dir
    requirements_venv "$venv" "$reqs" || return 1
    seed_ansible_test_pip "$venv/bin/python"
    dir="$(collection_copy)"
    "$venv/bin/ansible" --version | head -1
    (cd "$dir" && PATH="$venv/bin:$PATH" ansible-test sanity --venv --python "$ANSIBLE_TEST_PYTHON" --color no &&
        PATH="$venv/bin:$PATH" ansible-test units --venv --python "$ANSIBLE_TEST_PYTHON" --color no)
}

# The same unit tests straight through pytest in the tool venv: the quick
# loop developers use, and it catches tests that only pass under ansible-test.
stage_pytest() {
    local rc
    (cd "$ZD_ROOT" && PYTHONPATH="$ZD_ROOT/.cache/collections" python -m pytest -q -p no:cacheprovider -n auto tests/unit)
    rc=$?
    # pytest exits 5 when it collected nothing: a gate that tested nothing failed.
    [ "$rc" -eq 5 ] && echo "pytest collected no tests" >&2
    return "$rc"
}

# The fragments lint, and a trial release of galaxy.yml's version in a
# temporary copy lists every module, filter, role and playbook as new
# (tools/changelog_objects.py adds the roles and playbooks, which
# antsibull-changelog does not find by itself).
stage_changelog() {
    (cd "$ZD_ROOT" && antsibull-changelog lint && python tools/changelog_objects.py check)
}

stage_docs() {
    (cd "$ZD_ROOT" && antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .)
}

# The tarball must install, and Molecule then runs against that installed
# copy (ANSIBLE_COLLECTIONS_PATH from setup.sh), not against the checkout.
stage_build() {
    "$ZD_ROOT/scripts/setup.sh" >/dev/null && ls "$ZD_ROOT"/.cache/collections/ansible_collections/zerodown/deploy/roles >/dev/null
}

# Galaxy's importer on the tarball setup.sh built, as Galaxy runs it on an
# upload: any ERROR line (a role without a README, bad docs) fails the stage.
stage_galaxy() {
    local venv="$ZD_ROOT/.cache/galaxy-importer-venv" rc
    local reqs="$ZD_ROOT/tools/galaxy-importer-requirements.txt" out="$LOG_DIR/galaxy-importer.log"
    requirements_venv "$venv" "$reqs" || return 1
    mkdir -p "$LOG_DIR"
    # It writes importer_result.json into the directory it runs in: the log directory.
    (cd "$LOG_DIR" && PATH="$venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$ZD_ROOT/tools/galaxy-importer.cfg" \
        "$venv/bin/python" -m galaxy_importer.main "$ZD_ROOT"/.cache/dist/zerodown-deploy-*.tar.gz) > "$out" 2>&1
    rc=$?
    grep -E "^(ERROR|WARNING)" "$out" >&2
    if [ "$rc" -ne 0 ] || grep -q "^ERROR" "$out"; then
        echo "galaxy-importer failed (rc $rc); its whole output: $out" >&2
        return 1
    fi
    echo "galaxy-importer: no errors ($(du -k "$ZD_ROOT"/.cache/dist/zerodown-deploy-*.tar.gz | cut -f1) KiB tarball)"
}

# Both images are built (or found) while the stages before Molecule run.
start_images() {
    mkdir -p "$LOG_DIR"
    "$ZD_ROOT/scripts/build-image.sh" bookworm > "$LOG_DIR/image-bookworm.ref" 2> "$LOG_DIR/image-bookworm.log" &
    IMAGE_PIDS=($!)
    "$ZD_ROOT/scripts/build-image.sh" trixie > "$LOG_DIR/image-trixie.ref" 2> "$LOG_DIR/image-trixie.log" &
    IMAGE_PIDS+=($!)
}

wait_images() {
    local pid rc=0
    for pid in "${IMAGE_PIDS[@]:-}"; do
        [ -n "$pid" ] && { wait "$pid" || rc=1; }
    done
    IMAGE_PIDS=()
    if [ "$rc" -ne 0 ]; then
        tail -n 20 "$LOG_DIR"/image-*.log >&2
        return 1
    fi
    ZD_TEST_IMAGE="$(cat "$LOG_DIR/image-bookworm.ref")"
    ZD_TEST_IMAGE_TRIXIE="$(cat "$LOG_DIR/image-trixie.ref")"
    export ZD_TEST_IMAGE ZD_TEST_IMAGE_TRIXIE
}

# Every scenario directory with a molecule.yml, the longest first so that the
# pool ends together: the last run's times, or those CI measured (.ci/scenario-times)
# in a clean clone.
scenarios() {
    local name
    if [ -n "${ZD_SCENARIOS:-}" ]; then
        local wanted
        read -r -a wanted <<< "$ZD_SCENARIOS"
        printf '%s\n' "${wanted[@]}"
        return
    fi
    for name in "$ZD_ROOT"/molecule/*/molecule.yml; do
        name="$(basename "$(dirname "$name")")"
        # A scenario this checkout has not timed yet takes the time CI measured.
        printf '%s %s\n' "$(awk -v n="$name" '$1 == n {print $2}' "$ZD_ROOT/.ci/scenario-times" "$LOG_DIR/scenario-times" \
            2>/dev/null | tail -1 || true)" "$name"
    done | sort -rn | awk '{print $NF}'
}

# One `molecule test` per scenario, ZD_MOLECULE_JOBS at a time, each into its
# own log; a table of results and times at the end, the log's tail for each
# failure.
stage_molecule() {
    local jobs="${ZD_MOLECULE_JOBS:-3}" name rc failed=0
    declare -A pids=() begun=()
    wait_images || return 1
    mkdir -p "$LOG_DIR"
    local results=()
    local queue
    mapfile -t queue < <(scenarios)
    reap() {
        local done_name
        for done_name in "${!pids[@]}"; do
            if ! kill -0 "${pids[$done_name]}" 2>/dev/null; then
                wait "${pids[$done_name]}"
                rc=$?
                results+=("$(printf '  %-24s %-6s %5ss' "$done_name" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" "$((SECONDS - begun[$done_name]))")")
                echo "$done_name $((SECONDS - begun[$done_name]))" >> "$LOG_DIR/scenario-times.new"
                if [ "$rc" -ne 0 ]; then
                    failed=1
                    # The tail is molecule's destroy: the failed step's lines (a task's
                    # "fatal:", a test's "E " lines and its summary) come first.
                    log "molecule $done_name FAILED; what failed in $LOG_DIR/molecule-$done_name.log:"
                    grep -E '^(E  |FAILED |ERROR |fatal: |failed: )|^_{5,} test_' "$LOG_DIR/molecule-$done_name.log" | cut -c1-600 | head -n 80 >&2
                    log "the end of that log:"
                    tail -n 40 "$LOG_DIR/molecule-$done_name.log" >&2
                else
                    log "molecule $done_name ok ($((SECONDS - begun[$done_name])) s)"
                fi
                unset "pids[$done_name]"
            fi
        done
    }
    : > "$LOG_DIR/scenario-times.new"
    for name in "${queue[@]}"; do
        while [ "${#pids[@]}" -ge "$jobs" ]; do reap; sleep 2; done
        log "molecule $name: started"
        (cd "$ZD_ROOT" && exec molecule test -s "$name") > "$LOG_DIR/molecule-$name.log" 2>&1 &
        pids[$name]=$!
        begun[$name]=$SECONDS
    done
    while [ "${#pids[@]}" -gt 0 ]; do reap; sleep 2; done
    mv "$LOG_DIR/scenario-times.new" "$LOG_DIR/scenario-times"
    printf '%s\n' "${results[@]}" > "$LOG_DIR/scenario-results"
    return "$failed"
}

main() {
    local stages=("$@") stage rc start failed=0 passed=0
    [ "${#stages[@]}" -eq 0 ] && stages=("${ALL_STAGES[@]}")
    "$ZD_ROOT/scripts/setup.sh" || die "setup failed"
    activate_env
    # ansible-test builds its venvs from pythonX.Y on PATH: the tool venv's own.
    ANSIBLE_TEST_PYTHON="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    local report=() begin=$SECONDS molecule_pid="" overlap=0
    # ZD_OVERLAP=1: Molecule starts first (after build, which reinstalls the
    # collection the scenarios run), in the background, and the other stages
    # run niced beside it. Off by default: on 2 cores the scenarios leave
    # little CPU idle (a clean run took 2,637 s, against 2,595 s in turn), and
    # the starved unit tests that measure time failed.
    if [[ " ${stages[*]} " == *" molecule "* ]] && [ "${#stages[@]}" -gt 1 ] && [ "${ZD_OVERLAP:-0}" = 1 ]; then
        overlap=1
        local ordered=() name
        for name in build molecule; do
            [[ " ${stages[*]} " == *" $name "* ]] && ordered+=("$name")
        done
        for name in "${stages[@]}"; do
            [ "$name" = build ] || [ "$name" = molecule ] || ordered+=("$name")
        done
        stages=("${ordered[@]}")
    fi
    IMAGE_PIDS=()
    [ "$overlap" -eq 0 ] && [[ " ${stages[*]} " == *" molecule "* ]] && start_images
    for stage in "${stages[@]}"; do
        declare -F "stage_$stage" >/dev/null || die "unknown stage '$stage' (known: ${ALL_STAGES[*]})"
        if [ "$stage" = molecule ] && [ "$overlap" -eq 1 ]; then
            log "stage molecule: in the background beside the other stages (its output follows theirs)"
            mkdir -p "$LOG_DIR"
            (
                start=$SECONDS
                start_images
                stage_molecule
                echo "$? $((SECONDS - start))" > "$LOG_DIR/molecule-stage.rc"
            ) > "$LOG_DIR/molecule-stage.out" 2>&1 &
            molecule_pid=$!
            # Everything this shell starts from now on yields the CPU to the scenarios.
            renice -n 10 -p $$ >/dev/null
            continue
        fi
        log "stage $stage"
        start=$SECONDS
        "stage_$stage"
        rc=$?
        if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        report+=("$(printf '%-10s %-6s %5ss' "$stage" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" "$((SECONDS - start))")")
    done
    if [ -n "$molecule_pid" ]; then
        log "waiting for the molecule stage"
        wait "$molecule_pid"
        cat "$LOG_DIR/molecule-stage.out"
        read -r rc start < "$LOG_DIR/molecule-stage.rc" 2>/dev/null || { rc=1; start=0; }
        if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        report+=("$(printf '%-10s %-6s %5ss' molecule "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" "$start")")
    fi
    wait_images >/dev/null 2>&1 || true
    printf '\n%-10s %-6s %6s\n' stage result time
    printf '%s\n' "${report[@]}"
    if [ -s "$LOG_DIR/scenario-results" ] && [[ " ${stages[*]} " == *" molecule "* ]]; then
        echo "molecule scenarios (${ZD_MOLECULE_JOBS:-3} at a time):"
        cat "$LOG_DIR/scenario-results"
    fi
    echo "stages: $passed passed, $failed failed; total $((SECONDS - begin)) s"
    [ "$failed" -eq 0 ]
}

main "$@"
