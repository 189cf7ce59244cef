#!/usr/bin/env bash
# The restart benchmark (docs/benchmarks.md): one systemd container with the
# same sample app in six modes (bench/site.yml), each restarted in the
# middle of a bounded GET+POST load through nginx, several times; prints a
# markdown table of medians [min-max] and writes results.json and
# timelines.png. Load goes only to the container's own loopback.
#
#   scripts/bench.sh                      3 runs of every mode
#   scripts/bench.sh --repeat 5 --modes default,rolling
#   scripts/bench.sh --clean              remove the container
#
# The fleet benchmark (docs/fleet.md): deploy wall time of 1 host vs 3
# behind a load balancer, each deploy under GET+POST load through it, on the
# containers of molecule/fleet (created, converged, destroyed afterwards).
#
#   scripts/bench.sh --fleet              3 runs of 1 host and of 3 hosts
#   scripts/bench.sh --fleet --repeat 2 --cases one,three,waves [--keep]
#
# The deploy-time benchmark (docs/benchmarks.md): wall time and Ansible task
# count of one new-release deploy with zerodown.deploy.deploy (the demo's
# settings) against an ansistrano-style baseline (bench/baseline_deploy.yml),
# alternating, on one systemd container (removed afterwards unless --keep).
#
#   scripts/bench.sh --deploy-time        3 runs of each, and of a no-op deploy
#   scripts/bench.sh --deploy-time --repeat 5 [--keep] [--ref HEAD]
#   scripts/bench.sh --deploy-time --clean   remove its container
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Installs the tools and builds (or reuses) the test image, logging into $1;
# sets BENCH_IMAGE and leaves the tool venv active.
tools_and_image() {
    local out="$1"
    log "tools and the test image"
    "$ZD_ROOT/scripts/setup.sh" > "$out/setup.log" 2>&1 || { tail -20 "$out/setup.log" >&2; die "setup failed: $out/setup.log"; }
    activate_env
    BENCH_IMAGE="$("$ZD_ROOT/scripts/build-image.sh" 2> "$out/image.log")" || { tail -20 "$out/image.log" >&2; die "image build failed"; }
}

# The numbers depend on the machine: every table is printed under this line.
log_machine() {
    log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# The fleet benchmark runs on Molecule's fleet scenario: its containers, its
# inventory, and converge.yml's first deploy.
fleet_bench() {
    local out="$ZD_ROOT/.cache/bench-fleet" keep=0 args=() rc=0
    for arg in "$@"; do
        if [ "$arg" = "--keep" ]; then keep=1; else args+=("$arg"); fi
    done
    mkdir -p "$out"
    tools_and_image "$out"
    export ZD_TEST_IMAGE="$BENCH_IMAGE"
    cd "$ZD_ROOT"
    log "creating the fleet (molecule/fleet: a load balancer and 3 app hosts) and deploying v1"
    if ! { molecule create -s fleet && molecule converge -s fleet; } > "$out/molecule.log" 2>&1; then
        tail -30 "$out/molecule.log" >&2
        die "the fleet did not come up: $out/molecule.log"
    fi
    log_machine
    log "deploying under load (each run: a new release)"
    python3 "$ZD_ROOT/tools/bench_fleet.py" "$out" "${args[@]}" | tee "$out/table.md" || rc=$?
    if [ "$keep" -eq 0 ]; then
        molecule destroy -s fleet >> "$out/molecule.log" 2>&1 || log "molecule destroy -s fleet failed: $out/molecule.log"
    fi
    log "results: $out/results.json, table: $out/table.md"
    return "$rc"
}

# --ref REV of the deploy-time benchmark: the collection as committed at REV
# (git archive, built and installed into OUT/collections) instead of the
# working tree's, so that a tree being edited meanwhile (scripts/setup.sh
# reinstalls .cache/collections) cannot change the code under measurement.
collection_at_ref() {
    local ref="$1" out="$2" commit
    commit="$(git -C "$ZD_ROOT" rev-parse --verify --quiet "$ref^{commit}")" || die "--ref $ref is not a commit of $ZD_ROOT"
    rm -rf "$out/ref" "$out/collections"
    mkdir -p "$out/ref/src"
    git -C "$ZD_ROOT" archive "$commit" | tar -x -C "$out/ref/src"
    (cd "$out/ref/src" && ansible-galaxy collection build --force --output-path "$out/ref" >/dev/null)
    export ANSIBLE_COLLECTIONS_PATH="$out/collections"
    ansible-galaxy collection install --force -p "$out/collections" "$out/ref"/zerodown-deploy-*.tar.gz >/dev/null
    export ZD_BENCH_COLLECTION="commit ${commit:0:12} (--ref $ref)"
    log "zerodown.deploy as committed at ${commit:0:12} ($ref), in $out/collections"
}

# The deploy-time benchmark: ours and the baseline side by side in one
# container; the first deploy of each (and the baseline's units and nginx
# site) is set up untimed, then tools/bench_deploy.py times the runs.
deploy_time_bench() {
    local container=zerodown-deploytime out="$ZD_ROOT/.cache/bench-deploy" keep=0 ref="" args=() rc=0
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --clean)
                as_root podman rm -f "$container" >/dev/null 2>&1 || true
                rm -rf "$out"
                log "removed the container $container and $out"
                return 0 ;;
            --keep) keep=1 ;;
            --ref) [ "$#" -ge 2 ] || die "--ref needs a git revision"; ref="$2"; shift ;;
            --ref=*) ref="${1#--ref=}" ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    mkdir -p "$out"
    tools_and_image "$out"
    export ZD_BENCH_COLLECTION="the working tree (scripts/setup.sh)"
    [ -z "$ref" ] || collection_at_ref "$ref" "$out"
    ensure_systemd_container "$container" "$BENCH_IMAGE"
    cd "$ZD_ROOT"
    log "untimed setup: a first deploy of ours, the baseline's units, nginx site and first deploy"
    if ! python3 "$ZD_ROOT/tools/bench_deploy.py" "$container" "$out" --setup 2> "$out/setup-deploys.log"; then
        tail -40 "$out/setup-deploys.log" >&2
        die "the untimed setup failed: $out/setup-deploys.log and $out/logs/"
    fi
    log_machine
    log "timing new-release deploys, ours and the baseline alternating, and no-op deploys of ours"
    python3 "$ZD_ROOT/tools/bench_deploy.py" "$container" "$out" "${args[@]}" | tee "$out/table.md" || rc=$?
    if [ "$keep" -eq 0 ]; then
        as_root podman rm -f "$container" >/dev/null 2>&1 || log "could not remove the container $container"
    fi
    log "results: $out/results.json, table: $out/table.md, every run's output: $out/logs/"
    return "$rc"
}

if [ "${1:-}" = "--fleet" ]; then
    shift
    fleet_bench "$@"
    exit $?
fi

if [ "${1:-}" = "--deploy-time" ]; then
    shift
    deploy_time_bench "$@"
    exit $?
fi

CONTAINER=zerodown-bench
OUT="$ZD_ROOT/.cache/bench"

if [ "${1:-}" = "--clean" ]; then
    as_root podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    log "removed the container $CONTAINER"
    exit 0
fi

mkdir -p "$OUT"
tools_and_image "$OUT"

ensure_systemd_container "$CONTAINER" "$BENCH_IMAGE"

log "setting up the modes (bench/site.yml)"
if ! ansible-playbook -i "$CONTAINER," -c containers.podman.podman -e ansible_python_interpreter=/usr/bin/python3 \
        "$ZD_ROOT/bench/site.yml" > "$OUT/site.log" 2>&1; then
    tail -30 "$OUT/site.log" >&2
    die "the setup play failed: $OUT/site.log"
fi

log_machine
log "running the benchmark (each run: settle, restart, settle)"
python3 "$ZD_ROOT/tools/bench.py" "$CONTAINER" "$OUT" "$@" | tee "$OUT/table.md"
log "results: $OUT/results.json, picture: $OUT/timelines.png, table: $OUT/table.md"
