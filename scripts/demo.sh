#!/usr/bin/env bash
# make demo: build a Triton model repository from the bundled example models,
# check it, lay the versions out as a model store, let the syncer put each
# pool's models in place in two tritonlite "pools" (explicit model control),
# query and load-test them through the gateway, and roll out a new version
# under load with the syncer watching.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/demo/models
rm -rf "$out"
mkdir -p "$(dirname "$out")"

echo "== inspecting the bundled ONNX models"
./bin/modelctl inspect testdata/onnx/models/*.onnx

echo
echo "== building a Triton model repository in $out (modelctl repo build)"
./bin/modelctl repo build testdata/onnx/models/*.onnx \
  add=testdata/onnx/node/test_add \
  string_concat=testdata/onnx/node/test_string_concat \
  --out "$out"

echo
echo "== checking it with auto-complete disabled (every config is complete)"
./bin/modelctl config check --no-autofill --gpus 0 "$out"

echo
echo "== $out/example_dynamic_axes/config.pbtxt"
cat "$out/example_dynamic_axes/config.pbtxt"

echo
echo "== the same model generated for the GPU pool: 2 instances per GPU, batches up to 16"
./bin/modelctl config generate testdata/onnx/models/example_dynamic_axes.onnx \
  --name example_dynamic_axes --kind gpu --instances 2 --max-batch-size 16 | sed -n '/^dynamic_batching/,/^]/p'

# The model store the syncer reads: <model>/<version>/ (version folders of
# the repository just built). In production this is s3://bucket/prefix/ or
# an MLflow registered model; a folder behaves the same.
store=.cache/demo/store
rm -rf "$store" .cache/demo/pools
mkdir -p "$store"
for d in "$out"/*/; do
  m=$(basename "$d")
  mkdir -p "$store/$m"
  cp -r "$d/1" "$store/$m/1"
done

echo
echo "== the catalog: which pool serves which model, which versions, and each pool's settings"
cat >.cache/demo/catalog.yaml <<YAML
defaults: {pools: [cpu], versions: {latest: 1}, warmup: {requests: 2}}
pools:
  cpu: {kind: cpu, instances: 1}
  # "gpu" runs on tritonlite here, on CPU: the same settings a GPU pool takes,
  # with kind cpu (on EKS: kind: gpu).
  gpu: {kind: cpu, instances: 2, max_batch_size: 16, dynamic_batching: {max_queue_delay_microseconds: 200}}
models:
  - {name: mnist, source: "$PWD/$store/mnist"}
  - {name: add, source: "$PWD/$store/add", pools: [cpu, gpu]}
  - {name: string_concat, source: "$PWD/$store/string_concat"}
  - {name: example_several_inputs_and_outputs, source: "$PWD/$store/example_several_inputs_and_outputs"}
  - {name: example_dynamic_axes, source: "$PWD/$store/example_dynamic_axes", pools: [gpu]}
  - {name: ultraface_version-RFB-320, source: "$PWD/$store/ultraface_version-RFB-320", pools: [gpu]}
YAML
cat .cache/demo/catalog.yaml

echo
echo "== two tritonlite instances in explicit model control, as Triton runs under the syncer: the \"cpu\" and the \"gpu\" pool"
cpu_port=${DEMO_GRPC_PORT:-18001}
gpu_port=$((cpu_port + 2))
gw_port=$((cpu_port + 4))
sync_port=$((cpu_port + 6))
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for pool in cpu gpu; do
  port=$cpu_port; [ $pool = gpu ] && port=$gpu_port
  mkdir -p .cache/demo/pools/$pool
  ./bin/tritonlite --model-repository .cache/demo/pools/$pool --model-control-mode=explicit \
    --grpc-port "$port" --metrics-port $((port + 1)) >.cache/demo/tritonlite-$pool.log 2>&1 &
  pids+=($!)
done

for pool in cpu gpu; do
  port=$cpu_port; [ $pool = gpu ] && port=$gpu_port
  echo
  echo "== syncer init --pool $pool: fetch, verify, publish, load, wait ready, warm up (JSON logs)"
  ./bin/syncer init --catalog .cache/demo/catalog.yaml --pool $pool --repository .cache/demo/pools/$pool \
    --triton "localhost:$port" --progress log --retry 1s --timeout 2m
done

echo
echo "== the pools' repositories"
find .cache/demo/pools -type f | sort | while read -r f; do printf '  %8d  %s\n' "$(stat -c %s "$f")" "$f"; done
echo
echo "== .cache/demo/pools/gpu/example_dynamic_axes/config.pbtxt: generated, with the gpu pool's settings (2 instances, batches up to 16)"
cat .cache/demo/pools/gpu/example_dynamic_axes/config.pbtxt

echo
echo "== the gateway in front of both: routes from the same catalog (each model to its pool); add is routed"
echo "   by the gateway's own settings: to the cpu pool, mirrored to the gpu pool and compared"
cat >.cache/demo/gateway.yaml <<YAML
listen: 127.0.0.1:$gw_port
metrics_listen: 127.0.0.1:$((gw_port + 1))
catalog: catalog.yaml
pools:
  - {name: cpu, endpoints: ["127.0.0.1:$cpu_port"], health: {interval: 500ms}}
  - {name: gpu, endpoints: ["127.0.0.1:$gpu_port"], health: {interval: 500ms}}
routes:
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
echo "== syncer watch for the cpu pool (a sidecar): reconciles on catalog changes and every second here"
./bin/syncer watch --catalog .cache/demo/catalog.yaml --pool cpu --repository .cache/demo/pools/cpu \
  --triton "localhost:$cpu_port" --interval 1s --listen "127.0.0.1:$sync_port" >.cache/demo/syncer-watch.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fsS "localhost:$sync_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

echo
echo "== a 6-second open-loop load test through the gateway on mnist and add (Poisson, 300 req/s);"
echo "   meanwhile mnist version 2 appears in the store: the syncer loads it next to version 1, waits"
echo "   until it is ready, warms it up, then unloads version 1. The SLO allows no error. Report in .cache/demo/report"
./bin/loadtest run --target "localhost:$gw_port" --model mnist:1 --model add:2 --rate 300 --arrival poisson \
  --duration 6s --quiet --out .cache/demo/report --slo 'errors<=0%' &
lt=$!
sleep 2
cp -r "$store/mnist/1" "$store/mnist/.2.tmp" && mv "$store/mnist/.2.tmp" "$store/mnist/2"
wait $lt

echo
echo "== mnist now answers from version 2; the syncer's /status for it"
./bin/modelctl infer mnist --server "localhost:$gw_port" --batch 1 | head -3
curl -fsS "localhost:$sync_port/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps(s["models"]["mnist"], indent=2))' 2>/dev/null ||
  curl -fsS "localhost:$sync_port/status"
echo
echo "syncer watch log (mnist):"
grep '"model":"mnist"' .cache/demo/syncer-watch.log | tail -6

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
kill -TERM "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
trap - EXIT
echo "gateway log:"
cat .cache/demo/gateway.log
