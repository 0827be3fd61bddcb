#!/usr/bin/env bash
# Builds the test image orchestration/busybox:test offline: no registry is reachable, so
# the root filesystem is made here from Debian's busybox-static and imported.
set -euo pipefail
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
# /tmp as every standard image has it: Docker copies the image's /tmp permissions onto the
# tmpfs the sandbox mounts there, so this is what makes it writable for the agent.
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in sh cat echo id head tail tr dd sleep seq ls touch wc yes printf grep sed env true false; do
  ln -s busybox "$root/bin/$applet"
done
echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - orchestration/busybox:test >/dev/null
echo "built orchestration/busybox:test"
