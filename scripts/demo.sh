#!/usr/bin/env bash
# The main job on an embedded default: in a local systemd container, deploy
# version 1 of a sample app with the collection's deploy playbook, then
# version 2 while a bounded load runs through nginx, and print the
# zero-downtime report and a latency picture. Installs what it needs on
# Debian 12; a second run reuses the tools, the image and the container.
#
#   scripts/demo.sh            run the demo (container zerodown-demo is kept)
#   scripts/demo.sh --clean    remove the demo container and its files
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONTAINER=zerodown-demo
OUT="$ZD_ROOT/.cache/demo"
LOAD_DIR=/opt/zerodown-test
STOP_FILE=/tmp/zerodown-demo-load.stop

step() { printf '\033[1m[%s] %s\033[0m\n' "$1" "$2" >&2; }

if [ "${1:-}" = "--clean" ]; then
    as_root podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    rm -rf "$OUT"
    log "removed the container $CONTAINER and $OUT"
    exit 0
fi

# A directory per version of the sample app; the version is in release.json.
make_source() {
    local dir="$OUT/sources/$1"
    mkdir -p "$dir"
    cp "$ZD_ROOT/tests/apps/hello_wsgi.py" "$dir/"
    printf '{"release": "%s"}' "$1" > "$dir/release.json"
    echo "$dir"
}

# ansible-playbook's output goes to a log; on failure its end is shown.
deploy() {
    local version="$1" src log="$OUT/deploy-$1.log"
    src="$(make_source "$version")"
    if ! ansible-playbook -i "$ZD_ROOT/demo/inventory.yml" zerodown.deploy.deploy \
            -e "{\"app_source\": {\"type\": \"local\", \"path\": \"$src\"}}" > "$log" 2>&1; then
        tail -40 "$log" >&2
        die "the deploy of $version failed; the whole output is in $log"
    fi
}

# Load from inside the container through nginx, until the stop file appears
# (bounded anyway: 10 minutes, 200000 requests); nothing leaves the container.
start_load() {
    # A load left running by a killed earlier run would double this one.
    as_root podman exec "$CONTAINER" pkill -f restart_under_load.py >/dev/null 2>&1 || true
    as_root podman exec "$CONTAINER" mkdir -p "$LOAD_DIR"
    for f in plugins/module_utils/_http.py plugins/module_utils/_load.py tests/helpers/restart_under_load.py; do
        as_root podman cp "$ZD_ROOT/$f" "$CONTAINER:$LOAD_DIR/"
    done
    as_root podman exec "$CONTAINER" rm -f "$STOP_FILE"
    as_root podman exec "$CONTAINER" python3 "$LOAD_DIR/restart_under_load.py" --endpoint http://127.0.0.1:80 \
        --host-header demo.local --workers 4 --rate 200 --duration 600 --max-requests 200000 --settle 1 \
        --marker-header X-Served-By --command-timeout 600 \
        --command "sh -c 'while [ ! -e $STOP_FILE ]; do sleep 0.1; done'" > "$OUT/load.json" &
    LOAD_PID=$!
}

stop_load() {
    as_root podman exec "$CONTAINER" touch "$STOP_FILE"
    wait "$LOAD_PID" || true
}

mkdir -p "$OUT"
step 1/6 "tools: Debian packages, the Python venv, the collection"
"$ZD_ROOT/scripts/setup.sh" > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log" >&2; die "setup failed: $OUT/setup.log"; }
activate_env

step 2/6 "the systemd test image (built once, then reused)"
image="$("$ZD_ROOT/scripts/build-image.sh" 2> "$OUT/image.log")" || { tail -20 "$OUT/image.log" >&2; die "image build failed"; }

step 3/6 "the container $CONTAINER"
ensure_systemd_container "$CONTAINER" "$image"

# A second run deploys the other version under load and skips the first
# deploy. What counts is the release nginx serves, not where current points:
# a run killed in the middle of its first deploy leaves current without a
# site, and that run's first deploy is done again.
live="$(as_root podman exec "$CONTAINER" python3 -c '
import urllib.request
request = urllib.request.Request("http://127.0.0.1/", headers={"Host": "demo.local"})
print(urllib.request.urlopen(request, timeout=5).read().decode())' 2>/dev/null || true)"
case "$live" in
    *'"v1"'*) first="" current=v1 next=v2 ;;
    *'"v2"'*) first="" current=v2 next=v1 ;;
    *) first=v1 current=v1 next=v2 ;;
esac
if [ -n "$first" ]; then
    step 4/6 "deploy $first (zerodown.deploy.deploy: build, pre-flight, switch, start, health gate)"
    deploy "$first"
else
    step 4/6 "$current of the sample app is already live: this run deploys $next"
fi

step 5/6 "deploy $next while GET+POST load runs through nginx"
start_load
deploy "$next"
stop_load
report="$(as_root podman exec "$CONTAINER" sh -c 'ls -t /srv/hello/.zerodown/reports/*-deploy.json | head -1')"
as_root podman exec "$CONTAINER" cat "$report" > "$OUT/report.json"
timeline="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timeline_path"] or "")' "$OUT/report.json")"
[ -n "$timeline" ] && as_root podman exec "$CONTAINER" cat "$timeline" > "$OUT/restart-timeline.json"

step 6/6 "the report and the picture"
python3 "$ZD_ROOT/tools/plot_timeline.py" "$OUT/restart.png" --title "zerodown.deploy demo: $current -> $next, rolling restart of 2 instances" \
    "restart measured by the deploy (zero_downtime_restart, through nginx)=$OUT/restart-timeline.json" >/dev/null
python3 - "$OUT/report.json" "$OUT/load.json" "$OUT/restart.png" <<'PY'
import json, sys
report, load, png = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
phases = report["restart"]["phases"]
def ms(v):
    return "%.1f" % v if v is not None else "-"
print()
print("release %s -> %s, %s restart of %s instances" % (report["release_from"], report["release_to"], report["mode"], report["instances"]))
print()
print("%-34s %9s %7s %9s %9s %9s" % ("load", "requests", "failed", "p50 ms", "p99 ms", "max ms"))
rows = [("steady, before the restart", phases["before"]), ("during the restart", phases["during"]), ("after", phases["after"])]
for name, p in rows:
    lat = p["latency_ms"]
    print("%-34s %9d %7d %9s %9s %9s" % (name, p["requests"], p["failed"], ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"])))
lat = load["latency_ms"]
print("%-34s %9d %7d %9s %9s %9s" % ("whole deploy (separate load)", load["requests"], load["failed"], ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"])))
print()
failed = report["restart"]["failed_requests"] + load["failed"]
print("failed requests: %s" % ("none" if not failed else failed))
print("latency over time: %s" % png)
print("report on the host: %s" % report["report_path"])
sys.exit(1 if failed else 0)
PY

cat <<EOF

The app runs in container $CONTAINER: two gunicorn instances, each on its own systemd socket, behind nginx.
  podman exec $CONTAINER systemctl status 'hello@*.socket' 'hello@*.service'
  podman exec $CONTAINER ls -l /srv/hello /srv/hello/releases
Deploy again: scripts/demo.sh      Remove it: scripts/demo.sh --clean
EOF
