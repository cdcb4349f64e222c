#!/bin/sh
# Removes the native binaries an image for this platform never loads.
#
#   cloud/prune-natives.sh [NODE_MODULES]   (default: ./node_modules)
#
# onnxruntime-node ships its library for every OS and CPU (≈ 245 MB of its 290 MB are
# macOS, Windows and the other Linux CPU), and aws-crt (the Greengrass IPC client's
# runtime) likewise. The cloud image is built for one platform, the one its build stage
# runs on, so everything else goes. A package whose layout no longer has this platform's
# directory is left whole, and the script fails: an image that cannot load onnxruntime must
# not be built quietly.
set -eu

MODULES=${1:-node_modules}
os=$(node -p process.platform)
arch=$(node -p process.arch)

# onnxruntime-node: bin/napi-vN/OS/ARCH
found=
for napi in "$MODULES"/onnxruntime-node/bin/napi-v*; do
  [ -d "$napi" ] || continue
  if [ ! -d "$napi/$os/$arch" ]; then
    echo "prune-natives: $napi has no $os/$arch build; nothing removed" >&2
    exit 1
  fi
  found=1
  for dir in "$napi"/*/*; do
    [ "$dir" = "$napi/$os/$arch" ] || rm -rf "$dir"
  done
  for dir in "$napi"/*; do
    [ "$dir" = "$napi/$os" ] || rm -rf "$dir"
  done
done
[ -n "$found" ] || { echo "prune-natives: no onnxruntime-node binaries under $MODULES" >&2; exit 1; }

# aws-crt: dist/bin/OS-ARCH-LIBC (both C libraries of this OS and CPU stay: it picks at run time)
crt="$MODULES/aws-crt/dist/bin"
if [ -d "$crt" ]; then
  if ! ls -d "$crt/$os-$arch-"* >/dev/null 2>&1; then
    echo "prune-natives: $crt has no $os-$arch build; nothing removed there" >&2
    exit 1
  fi
  for dir in "$crt"/*; do
    case "${dir##*/}" in
      "$os-$arch-"*) ;;
      *) rm -rf "$dir" ;;
    esac
  done
fi
echo "prune-natives: kept $os/$arch"
