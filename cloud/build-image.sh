#!/bin/sh
# Builds the cloud service image (cloud/Dockerfile) with podman, or docker when podman is absent.
#
#   cloud/build-image.sh [--local-base] [--tag IMAGE]
#
# --local-base: for hosts that reach Debian's mirror and the npm registry but no container
# registry (this project's build machines). The base image the Dockerfile starts from, Node 20
# on Debian bookworm, is then made here: a minimal bookworm root file system from Debian's
# packages (debootstrap) plus this host's Node 20 and npm, imported as
# localhost/tandem-node-base:20-bookworm. It stands in for node:20-bookworm-slim; with a
# registry, leave the flag out and the official image is used.
#
# TANDEM_ENGINE_FLAGS are passed to the engine before the command, TANDEM_CONTAINER_FLAGS to
# `build` (test/container-image.test.ts passes both to `run` too). On this project's build
# machines (cgroup v1, a hard open-files limit below podman's default):
#   TANDEM_ENGINE_FLAGS='--runtime runc'
#   TANDEM_CONTAINER_FLAGS='--ulimit nofile=10000:10000 --ulimit nproc=4096:4096'
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=localhost/tandem-cloud:latest
LOCAL_BASE=
BASE=localhost/tandem-node-base:20-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

while [ $# -gt 0 ]; do
  case "$1" in
    --local-base) LOCAL_BASE=1 ;;
    --tag) IMAGE=$2; shift ;;
    *) echo "usage: $0 [--local-base] [--tag IMAGE]" >&2; exit 2 ;;
  esac
  shift
done

if command -v podman >/dev/null 2>&1; then ENGINE="podman ${TANDEM_ENGINE_FLAGS:-}"
elif command -v docker >/dev/null 2>&1; then ENGINE="docker ${TANDEM_ENGINE_FLAGS:-}"
else echo "neither podman nor docker is installed (Debian: apt-get install podman)" >&2; exit 1
fi

if [ -n "$LOCAL_BASE" ] && ! $ENGINE image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || { echo "--local-base needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  case "$(node --version)" in
    v20.*) ;;
    *) echo "--local-base copies this host's Node, which must be 20.x (found $(node --version))" >&2; exit 1 ;;
  esac
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # ca-certificates: npm reaches the registry over TLS during the image build.
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$MIRROR"
  npm_dir=$(npm root -g)/npm
  mkdir -p "$work/rootfs/usr/local/bin" "$work/rootfs/usr/local/lib/node_modules"
  cp "$(command -v node)" "$work/rootfs/usr/local/bin/node"
  cp -a "$npm_dir" "$work/rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  # The host's own trust anchors (an egress proxy that inspects TLS, say), so that npm in the
  # build trusts what this host trusts; Node reads the system store only through
  # NODE_EXTRA_CA_CERTS, set on the image below. Only the stand-in base carries them.
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null
  fi
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*
  # The host's Node must run on bookworm's C library: fail here, not in the image build.
  chroot "$work/rootfs" /usr/local/bin/node --version >/dev/null
  tar -C "$work/rootfs" -c . | $ENGINE import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' - "$BASE"
fi

# shellcheck disable=SC2086 # flag lists: split into words.
set -- build --network host ${TANDEM_CONTAINER_FLAGS:-} -f "$ROOT/cloud/Dockerfile" -t "$IMAGE"
[ -n "$LOCAL_BASE" ] && set -- "$@" --build-arg "NODE_IMAGE=$BASE"
$ENGINE "$@" "$ROOT"
echo "built $IMAGE"
