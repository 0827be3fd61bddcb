#!/usr/bin/env bash
# Builds the sample agent images offline (no registry is reachable): each agent is a
# static binary on a root filesystem made from Debian's busybox-static, imported with
# `docker import`. docker/agents/*/Dockerfile describe the same images for a machine
# with a registry.
set -euo pipefail
cd "$(dirname "$0")"
build() {  # build NAME SOURCE ENTRYPOINT
  local name=$1 source=$2 entry=$3 root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/agent" "$root/tmp" "$root/etc"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh cat echo ls; do ln -s busybox "$root/bin/$applet"; done
  echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' > "$root/etc/passwd"
  g++ -std=c++17 -O2 -static -o "$root$entry" "$source"
  tar -C "$root" -c . | docker import -c "ENTRYPOINT [\"$entry\"]" -c 'ENV PATH=/bin' - "orchestration/$name:1.0" >/dev/null
  rm -rf "$root"
  echo "built orchestration/$name:1.0"
}
build security-scanner security-scanner/scan.cpp /agent/scan
build notifier notifier/notify.cpp /agent/notify
