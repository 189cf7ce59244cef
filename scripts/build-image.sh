#!/usr/bin/env bash
# Build the systemd test image locally (no registry): debootstrap a minimal
# Debian with systemd as init, then `podman import` the tree. The tag is a
# hash of the recipe; an image with that tag already present is reused.
#
#   scripts/build-image.sh [bookworm|trixie]     prints the image reference
set -euo pipefail
. "$(dirname "$0")/lib.sh"

release="${1:-${ZD_IMAGE_RELEASE:-bookworm}}"
pkgfile="$ZD_ROOT/tests/image/packages-$release.txt"
[ -f "$pkgfile" ] || die "no package list for release '$release' ($pkgfile); known: bookworm, trixie"

ref="$(image_ref "$release")"
mapfile -t packages < <(host_tool_packages)
ensure_apt_packages "${packages[@]}" ca-certificates
check_host_tools

if as_root podman image exists "$ref"; then
    log "test image $ref is up to date"
    echo "$ref"
    exit 0
fi

# The mirror the host itself uses, so the image builds wherever apt works.
mirror="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
          | grep -m1 -E '/debian/?$' | awk '{print $NF}')" || true
mirror="${ZD_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
include="$(grep -vE '^\s*(#|$)' "$pkgfile" | paste -sd, -)"

rootfs="$(mktemp -d /var/tmp/zerodown-rootfs.XXXXXX)"
trap 'as_root rm -rf "$rootfs"' EXIT
log "debootstrap $release from $mirror (about a minute)"
if ! as_root debootstrap --variant=minbase --include="$include" "$release" "$rootfs" "$mirror" >/dev/null; then
    as_root tail -n 25 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap of $release failed (log above)"
fi

# Trim what a test container never needs and make systemd container-friendly:
# no getty on a console that does not exist, no network wait, no udev, no
# kernel modules (systemd-modules-load fails in a container: the system would
# boot "degraded").
as_root chroot "$rootfs" /bin/sh -e <<'CHROOT'
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-modules-load.service >/dev/null 2>&1 || true
systemctl disable nginx.service >/dev/null 2>&1 || true
echo zerodown-test > /etc/hostname
: > /etc/machine-id
CHROOT

log "importing $ref"
as_root tar -C "$rootfs" -c . | as_root podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$ref" >/dev/null
echo "$ref"
