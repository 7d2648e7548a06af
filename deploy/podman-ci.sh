#!/usr/bin/env bash
# Builds the switchyard image from deploy/Containerfile.ci with Debian's
# podman, runs `up` in it as user 65532 with a read-only root filesystem
# and a tmpfs for /tmp, and checks that it serves a completion.
#
#   deploy/podman-ci.sh BINARY     (a static switchyard, as .ci/run builds it)
#
# Needs root and podman (apt-get install podman runc). The container uses
# the host's network on a loopback port, so nothing beyond 127.0.0.1 is
# reached.
set -euo pipefail
bin=${1:?usage: deploy/podman-ci.sh BINARY}
cd "$(dirname "$0")"
work=$(mktemp -d)
name="switchyard-ci-$$"
# These machines' podman works with runc, cgroupfs and no default ulimits.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

root="$work/ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/switchyard"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp Containerfile.ci "$work/ctx/Containerfile"

echo "-- podman build"
"${podman[@]}" build -q -t switchyard:ci "$work/ctx"

echo "-- podman run: up as user 65532, read-only root, tmpfs /tmp, on a loopback port"
"${podman[@]}" run -d --name "$name" --network host --read-only --tmpfs /tmp --user 65532:65532 \
  switchyard:ci up --listen 127.0.0.1:0 >/dev/null
url=
for _ in $(seq 120); do
  url=$("${podman[@]}" logs "$name" 2>/dev/null | sed -n 's/^ready: //p')
  [ -n "$url" ] && break
  if [ "$("${podman[@]}" inspect -f '{{.State.Running}}' "$name")" != true ]; then
    "${podman[@]}" logs "$name"; echo "the container stopped"; exit 1
  fi
  sleep 1
done
[ -n "$url" ] || { "${podman[@]}" logs "$name" | tail -20; echo "not ready after 2 minutes"; exit 1; }
"${podman[@]}" inspect -f 'image user {{.Config.User}}, read-only root {{.HostConfig.ReadonlyRootfs}}' "$name"
"${podman[@]}" logs "$name" 2>&1 | grep -m1 'read-only file system' || true
pid=$("${podman[@]}" inspect -f '{{.State.Pid}}' "$name")
echo "up's process: $(grep -E '^Uid:' "/proc/$pid/status" | tr -s '\t ' ' ')"
out=$(curl -sf "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "The list type", "max_tokens": 12, "temperature": 0}')
echo "completion: $out"
case "$out" in
  *'"text":" of the type of the type.'*) echo "-- the container served the greedy completion" ;;
  *) "${podman[@]}" logs "$name" | tail -20; echo "unexpected completion"; exit 1 ;;
esac
