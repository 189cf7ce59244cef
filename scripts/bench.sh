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

if [ "${1:-}" = "--fleet" ]; then
    shift
    fleet_bench "$@"
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
