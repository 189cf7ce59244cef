#!/bin/sh
# An experiment, not the collection's code (docs/benchmarks.md, "A surge
# without an nginx reload"): the surge of the benchmark's app bsurge (one
# instance, slots 1 and 2) with nginx's upstream server a link,
# /run/bsurge/live.sock, instead of one server file per slot. The new slot
# starts beside the old one and answers its health path on its own socket;
# the link moves (a rename, atomic); nginx's pooled connections to the old
# process retire by the upstream's keepalive_time (2 s) and keepalive_timeout
# (3 s); once the old slot's socket has no connection left, it stops.
# Nothing reloads nginx, so no client connection to nginx is closed.
#
#   tools/bench.py's container, after scripts/bench.sh set it up:
#   podman cp bench/no_reload_surge.sh zerodown-bench:/opt/zerodown-bench/
#   (and the site of docs/benchmarks.md, then ln -sfn bsurge-K.sock /run/bsurge/live.sock)
set -eu
dir=/run/bsurge
old=$(readlink "$dir/live.sock" | sed 's/bsurge-\([0-9]\).sock/\1/')
new=$((3 - old))
systemctl start "bsurge@$new.socket"
systemctl restart "bsurge@$new.service"
for i in $(seq 1 200); do
    python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect('$dir/bsurge-$new.sock')
s.sendall(b'GET /health HTTP/1.0\r\nHost: linktest.bench\r\n\r\n')
sys.exit(0 if b' 200 ' in s.recv(100) else 1)" && break
    [ "$i" -eq 200 ] && { echo "slot $new never answered" >&2; exit 1; }
    sleep 0.05
done
ln -sfn "bsurge-$new.sock" "$dir/live.tmp"
mv -T "$dir/live.tmp" "$dir/live.sock"
t0=$(date +%s%N)
left=0
for i in $(seq 1 300); do
    # The listening socket is one line of its own.
    left=$(ss -xH | grep -c "bsurge-$old.sock" || true)
    [ "$left" -le 1 ] && break
    sleep 0.05
done
t1=$(date +%s%N)
echo "drained after $(( (t1 - t0) / 1000000 )) ms, lines left $left ($i polls)" >&2
systemctl stop "bsurge@$old.service" "bsurge@$old.socket"
