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
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONTAINER=zerodown-bench
OUT="$ZD_ROOT/.cache/bench"

if [ "${1:-}" = "--clean" ]; then
    as_root podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    log "removed the container $CONTAINER"
    exit 0
fi

mkdir -p "$OUT"
log "tools and the test image"
"$ZD_ROOT/scripts/setup.sh" > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log" >&2; die "setup failed: $OUT/setup.log"; }
activate_env
image="$("$ZD_ROOT/scripts/build-image.sh" 2> "$OUT/image.log")" || { tail -20 "$OUT/image.log" >&2; die "image build failed"; }

if ! as_root podman container exists "$CONTAINER"; then
    log "starting $CONTAINER"
    as_root podman run -d --name "$CONTAINER" --hostname "$CONTAINER" --privileged --systemd=always \
        --ulimit nofile=10000:10000 --ulimit nproc=10000:10000 "$image" /sbin/init >/dev/null
fi

log "setting up the modes (bench/site.yml)"
if ! ansible-playbook -i "$CONTAINER," -c containers.podman.podman -e ansible_python_interpreter=/usr/bin/python3 \
        "$ZD_ROOT/bench/site.yml" > "$OUT/site.log" 2>&1; then
    tail -30 "$OUT/site.log" >&2
    die "the setup play failed: $OUT/site.log"
fi

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "running the benchmark (each run: settle, restart, settle)"
python3 "$ZD_ROOT/tools/bench.py" "$CONTAINER" "$OUT" "$@" | tee "$OUT/table.md"
log "results: $OUT/results.json, picture: $OUT/timelines.png, table: $OUT/table.md"
