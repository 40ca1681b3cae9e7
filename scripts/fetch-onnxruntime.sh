#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library tritonlite's ort executor loads, from the
# npm package onnxruntime-node (the only registry reachable here that ships it).
# Usage: fetch-onnxruntime.sh DEST_DIR   (writes DEST_DIR/libonnxruntime.so.1)
set -euo pipefail
version=1.24.3
# sha256 of package/bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.24.3
want=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682
dest=${1:?usage: fetch-onnxruntime.sh DEST_DIR}
lib="$dest/libonnxruntime.so.1"

if [ -f "$lib" ] && echo "$want  $lib" | sha256sum -c --status; then
  exit 0
fi
case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "fetch-onnxruntime: only linux/x64 is packaged here; set ONNXRUNTIME_LIB to your libonnxruntime" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is needed (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching onnxruntime-node@$version from the npm registry (86 MB)..." >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$version.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
got="$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
echo "$want  $got" | sha256sum -c --status || { echo "fetch-onnxruntime: checksum mismatch for libonnxruntime.so.1" >&2; exit 1; }
mkdir -p "$dest"
mv "$got" "$lib.tmp" && mv "$lib.tmp" "$lib"
echo "ONNX Runtime $version: $lib" >&2
