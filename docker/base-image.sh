#!/usr/bin/env bash
# Build the local base image relay-base:bookworm (Debian bookworm, minbase, python3 and
# python3-venv) with debootstrap from this machine's own Debian mirror, for hosts that reach
# no image registry. Reuses the image when it is already there. Usage: base-image.sh [TAG]
set -euo pipefail
tag="${1:-relay-base:bookworm}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag: present, reused"
  exit 0
fi

# The mirror apt uses here: the first Debian archive (not -security) in the enabled sources.
mirror="$(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {print $2}'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -nE 's/^deb +(\[[^]]*\] +)?([^ ]+).*/\2/p'
  } | awk '/\/debian\/?$/ {print; exit}' || true
)"
if [ -z "$mirror" ]; then
  echo "base-image.sh: no Debian mirror found in /etc/apt/sources.list{,.d}; set one there" >&2
  exit 1
fi

command -v debootstrap >/dev/null || {
  echo "base-image.sh: debootstrap is missing (apt-get install debootstrap)" >&2
  exit 1
}

root="$(mktemp -d /tmp/relay-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base image $tag: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" \
  >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# No package lists, caches or docs in the image: it only runs relay.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "base image $tag: built ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
