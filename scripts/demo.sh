#!/usr/bin/env bash
# make demo: build a Triton model repository from the bundled example models,
# check it as Triton would load it, and show what was written.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/demo/models
rm -rf "$out"
mkdir -p "$(dirname "$out")"

echo "== inspecting the bundled ONNX models"
./bin/modelctl inspect testdata/onnx/models/*.onnx

echo
echo "== building a Triton model repository in $out"
./bin/modelctl repo build testdata/onnx/models/*.onnx \
  add=testdata/onnx/node/test_add \
  string_concat=testdata/onnx/node/test_string_concat \
  --out "$out"

echo
echo "== checking it with auto-complete disabled (every config is complete)"
./bin/modelctl config check --no-autofill --gpus 0 "$out"

echo
echo "== the repository"
find "$out" -type f | sort | while read -r f; do printf '  %8d  %s\n' "$(stat -c %s "$f")" "$f"; done

echo
echo "== $out/example_dynamic_axes/config.pbtxt"
cat "$out/example_dynamic_axes/config.pbtxt"

echo
echo "== the same model generated for the GPU pool: 2 instances per GPU, batches up to 16"
./bin/modelctl config generate testdata/onnx/models/example_dynamic_axes.onnx \
  --name example_dynamic_axes --kind gpu --instances 2 --max-batch-size 16 | sed -n '/^dynamic_batching/,/^]/p'
