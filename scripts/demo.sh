#!/usr/bin/env bash
# The main job on an embedded default: bring up a local systemd container,
# install a socket-activated sample app with zerodown.deploy.socket_service,
# restart it under load (plain, then rolling over two instances), print the
# numbers, and say how to reach it. Installs what it needs on Debian 12.
#
#   scripts/demo.sh            run the demo (container zerodown-demo is kept)
#   scripts/demo.sh --clean    remove the demo container
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONTAINER="${ZD_DEMO_CONTAINER:-zerodown-demo}"

if [ "${1:-}" = "--clean" ]; then
    as_root podman rm -f "$CONTAINER" >/dev/null && log "removed $CONTAINER"
    exit 0
fi

"$ZD_ROOT/scripts/setup.sh"
activate_env
image="$("$ZD_ROOT/scripts/build-image.sh")"

if ! as_root podman container exists "$CONTAINER"; then
    log "starting systemd container $CONTAINER from $image"
    as_root podman run -d --name "$CONTAINER" --hostname "$CONTAINER" --privileged --systemd=always \
        --ulimit nofile=10000:10000 --ulimit nproc=10000:10000 "$image" /sbin/init >/dev/null
fi

log "deploying the sample app with zerodown.deploy.socket_service"
ansible-playbook -i "$CONTAINER," -c containers.podman.podman -e ansible_python_interpreter=/usr/bin/python3 \
    "$ZD_ROOT/demo/site.yml"

# Load runs inside the container against its own socket: bounded in time
# and count, nothing leaves the container.
as_root podman exec "$CONTAINER" mkdir -p /opt/zerodown-test
for f in plugins/module_utils/_http.py plugins/module_utils/_load.py tests/helpers/restart_under_load.py; do
    as_root podman cp "$ZD_ROOT/$f" "$CONTAINER:/opt/zerodown-test/"
done

restart_under_load() {
    as_root podman exec "$CONTAINER" python3 /opt/zerodown-test/restart_under_load.py --endpoint unix:/run/hello.sock \
        --duration 20 --max-requests 50000 --workers 4 --settle 1 --marker-header X-Served-By "$@"
}

log "restart under load: one instance at a time (rolling), then both at once"
rolling="$(restart_under_load --command 'systemctl restart hello@1.service' --command 'systemctl restart hello@2.service')"
together="$(restart_under_load --command 'systemctl restart hello@1.service hello@2.service')"

python3 - "$rolling" "$together" <<'PY'
import json, sys
rows = [("rolling (1 then 2)", json.loads(sys.argv[1])), ("both at once", json.loads(sys.argv[2]))]
print()
print("%-20s %9s %7s %9s %9s %9s %9s" % ("restart", "requests", "failed", "p50 ms", "p99 ms", "max ms", "gap ms"))
for name, r in rows:
    lat = r["latency_ms"]
    print("%-20s %9d %7d %9.1f %9.1f %9.1f %9.1f" % (name, r["requests"], r["failed"], lat["p50"], lat["p99"], lat["max"], r["gap_ms"] or 0))
bad = [name for name, r in rows if r["failed"] or not r["commands_ok"]]
print()
print("failed requests: %s" % ("none" if not bad else ", ".join(bad)))
sys.exit(1 if bad else 0)
PY

cat <<EOF

The app is running in container $CONTAINER, socket-activated with two instances:
  podman exec $CONTAINER systemctl status hello.socket 'hello@*.service'
  podman exec $CONTAINER python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())"
  podman exec $CONTAINER systemd-analyze security hello@1.service
Remove it with: scripts/demo.sh --clean
EOF
