#!/usr/bin/env bash
# Build local Debian base images with debootstrap, for air-gapped sites and for CI
# (no image registry is reachable there, so `FROM python:3.11-slim` cannot be pulled).
#
#   compose/build-base.sh [pacsim|orthanc|all]      (default: all)
#
# Images (names overridable through the environment):
#   PACSIM_LOCAL_BASE   pacsim/base:bookworm           python3 + venv, for compose/Dockerfile
#   PACSIM_ORTHANC_BASE pacsim/orthanc-base:bookworm   orthanc + orthanc-dicomweb + curl
#
# Idempotent: an image that already exists is skipped (PACSIM_REBUILD_BASE=1 forces).
# Needs root, debootstrap and a Debian mirror (PACSIM_DEBIAN_MIRROR); after that the
# image builds need no network at all.
set -euo pipefail

SUITE="${PACSIM_DEBIAN_SUITE:-bookworm}"
MIRROR="${PACSIM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${PACSIM_DEBOOTSTRAP_CACHE:-/var/cache/pacsim-debootstrap}"
PACSIM_BASE="${PACSIM_LOCAL_BASE:-pacsim/base:$SUITE}"
ORTHANC_BASE="${PACSIM_ORTHANC_BASE:-pacsim/orthanc-base:$SUITE}"
WHICH="${1:-all}"

case "$WHICH" in pacsim|orthanc|all) ;; *) echo "usage: $0 [pacsim|orthanc|all]" >&2; exit 2;; esac
command -v docker >/dev/null || { echo "build-base: docker CLI not found" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "build-base: apt-get install debootstrap" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build-base: debootstrap needs root" >&2; exit 2; }
# The engine before the debootstrap: without one the root filesystem (200+ MB) would be
# made only for `docker import` to fail.
docker info >/dev/null 2>&1 || { echo "build-base: no Docker engine answers (is dockerd running?)" >&2; exit 2; }

# Removed on every way out (set -e exits without running a RETURN trap).
CURRENT_ROOT=""
trap 'if [ -n "$CURRENT_ROOT" ]; then rm -rf "$CURRENT_ROOT" "$CURRENT_ROOT.log"; fi' EXIT

build() {  # build NAME PACKAGES
    local name="$1" packages="$2"
    if [ "${PACSIM_REBUILD_BASE:-0}" != 1 ] && docker image inspect "$name" >/dev/null 2>&1; then
        echo "build-base: $name exists, skipping"
        return 0
    fi
    local root started
    root="$(mktemp -d /tmp/pacsim-rootfs.XXXXXX)"
    CURRENT_ROOT="$root"
    started=$(date +%s)
    # shellcheck disable=SC2064  # expand now: the trap must remove this root
    trap "rm -rf '$root'; CURRENT_ROOT=''" RETURN
    mkdir -p "$CACHE"
    echo "build-base: debootstrap $SUITE ($packages) -> $name"
    debootstrap --variant=minbase --cache-dir="$CACHE" --include="$packages" \
        "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
        || { tail -30 "$root.log" >&2; rm -f "$root.log"; return 1; }
    rm -f "$root.log"
    # Smaller image: no package caches, lists, docs or man pages.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
           "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    # The image must not look for the host's resolver or hostname.
    : >"$root/etc/resolv.conf"; : >"$root/etc/hostname"
    tar -C "$root" --numeric-owner -c . | docker import \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
        --message "pacsim debootstrap $SUITE base" - "$name" >/dev/null
    echo "build-base: $name built in $(( $(date +%s) - started ))s," \
         "$(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}')"
}

if [ "$WHICH" = pacsim ] || [ "$WHICH" = all ]; then
    build "$PACSIM_BASE" "python3,python3-venv"
fi
if [ "$WHICH" = orthanc ] || [ "$WHICH" = all ]; then
    # libboost-regex1.74.0 provides the virtual libboost-regex1.74.0-icu72 orthanc depends on;
    # debootstrap does not resolve virtual packages, so it is named here.
    build "$ORTHANC_BASE" "orthanc,orthanc-dicomweb,libboost-regex1.74.0,curl"
fi
