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

echo
echo "== serving $out with tritonlite (ONNX Runtime on CPU)"
grpc_port=${DEMO_GRPC_PORT:-18001}
metrics_port=${DEMO_METRICS_PORT:-18002}
log=.cache/demo/tritonlite.log
./bin/tritonlite --model-repository "$out" --grpc-port "$grpc_port" --metrics-port "$metrics_port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for m in mnist add string_concat example_dynamic_axes example_several_inputs_and_outputs ultraface_version-RFB-320; do
  echo
  ./bin/modelctl infer "$m" --server "localhost:$grpc_port" --wait 30s --batch 2 || { cat "$log"; exit 1; }
done

echo
echo "== add, with the ONNX node test's reference inputs"
./bin/modelctl infer add --server "localhost:$grpc_port" \
  --input x=testdata/onnx/node/test_add/test_data_set_0/input_0.pb \
  --input y=testdata/onnx/node/test_add/test_data_set_0/input_1.pb

echo
echo "== a 3-second open-loop load test on mnist and add (Poisson, 300 req/s), report in .cache/demo/report"
./bin/loadtest run --target "localhost:$grpc_port" --model mnist:1 --model add:2 --rate 300 --arrival poisson \
  --duration 3s --quiet --out .cache/demo/report --slo 'errors<=0%'

echo
echo "== Triton's metrics from http://localhost:$metrics_port/metrics"
curl -fsS "localhost:$metrics_port/metrics" | grep -E '^nv_inference_(count|exec_count|request_success)\{' | sort

kill -TERM "$pid"
wait "$pid" || true
trap - EXIT
echo
echo "== tritonlite log"
cat "$log"
