#!/usr/bin/env bash
# make demo: build a Triton model repository from the bundled example models,
# check it as Triton would load it, serve it from two tritonlite "pools" behind
# the gateway, and query and load-test it through the gateway.
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
echo "== serving $out with two tritonlite instances: the \"cpu\" and the \"gpu\" pool (ONNX Runtime on CPU)"
cpu_port=${DEMO_GRPC_PORT:-18001}
gpu_port=$((cpu_port + 2))
gw_port=$((cpu_port + 4))
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
./bin/tritonlite --model-repository "$out" --grpc-port "$cpu_port" --metrics-port $((cpu_port + 1)) >.cache/demo/tritonlite-cpu.log 2>&1 &
pids+=($!)
./bin/tritonlite --model-repository "$out" --grpc-port "$gpu_port" --metrics-port $((gpu_port + 1)) >.cache/demo/tritonlite-gpu.log 2>&1 &
pids+=($!)

echo
echo "== the gateway in front of both: each model routed to its pool; add is mirrored to the gpu pool and compared"
cat >.cache/demo/gateway.yaml <<YAML
listen: 127.0.0.1:$gw_port
metrics_listen: 127.0.0.1:$((gw_port + 1))
pools:
  - {name: cpu, endpoints: ["127.0.0.1:$cpu_port"], health: {interval: 500ms}}
  - {name: gpu, endpoints: ["127.0.0.1:$gpu_port"], health: {interval: 500ms}}
routes:
  - {model: mnist, pool: cpu}
  - {model: string_concat, pool: cpu}
  - {model: example_several_inputs_and_outputs, pool: cpu}
  - {model: example_dynamic_axes, pool: gpu}
  - {model: ultraface_version-RFB-320, pool: gpu}
  - model: add
    pool: cpu
    shadow: {pool: gpu, fraction: 1}
YAML
cat .cache/demo/gateway.yaml
./bin/gateway --config .cache/demo/gateway.yaml --check
./bin/gateway --config .cache/demo/gateway.yaml >.cache/demo/gateway.log 2>&1 &
gw_pid=$!
pids+=($gw_pid)
for m in mnist add string_concat example_dynamic_axes example_several_inputs_and_outputs ultraface_version-RFB-320; do
  echo
  ./bin/modelctl infer "$m" --server "localhost:$gw_port" --wait 30s --batch 2 || { cat .cache/demo/*.log; exit 1; }
done

echo
echo "== add, with the ONNX node test's reference inputs, through the gateway"
./bin/modelctl infer add --server "localhost:$gw_port" \
  --input x=testdata/onnx/node/test_add/test_data_set_0/input_0.pb \
  --input y=testdata/onnx/node/test_add/test_data_set_0/input_1.pb

echo
echo "== a 3-second open-loop load test through the gateway on mnist and add (Poisson, 300 req/s), report in .cache/demo/report"
./bin/loadtest run --target "localhost:$gw_port" --model mnist:1 --model add:2 --rate 300 --arrival poisson \
  --duration 3s --quiet --out .cache/demo/report --slo 'errors<=0%'

echo
echo "== the gateway's metrics: requests by model, pool and code; shadow comparisons"
sleep 0.5 # the last shadow copies
curl -fsS "localhost:$((gw_port + 1))/metrics" | grep -E '^gateway_(requests_total|shadow_requests_total)\{' | sort

echo
echo "== Triton's metrics of the cpu pool from http://localhost:$((cpu_port + 1))/metrics"
curl -fsS "localhost:$((cpu_port + 1))/metrics" | grep -E '^nv_inference_(count|request_success)\{' | sort

echo
echo "== SIGTERM: the gateway drains and exits 0, then the backends"
kill -TERM "$gw_pid"
wait "$gw_pid"
kill -TERM "${pids[@]:0:2}"
wait "${pids[@]:0:2}" || true
trap - EXIT
echo "gateway log:"
cat .cache/demo/gateway.log
