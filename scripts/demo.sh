#!/usr/bin/env bash
# make demo: build a Triton model repository from the bundled example models and
# check it; put their versions in a real S3 server (versitygw, on loopback) and,
# when Python is there, register two of them in a real MLflow server (artifacts
# in the same S3, alias "champion"); let the syncer put each pool's models in
# place in two tritonlite "pools" (explicit model control); query and load-test
# them through the gateway; and roll out a new version under load (an S3 upload,
# or moving MLflow's alias) with the syncer watching.
#
# Ports: DEMO_GRPC_PORT (default 18001) and the 8 after it: tritonlite cpu and
# gpu (gRPC, metrics), gateway (gRPC, metrics), syncer watch, S3 (DEMO_S3_PORT),
# MLflow (DEMO_MLFLOW_PORT). DEMO_NO_PYTHON=1 skips MLflow (S3 alone), as on a
# machine without Python.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=.cache/demo
out=$demo/models
rm -rf "$demo"
mkdir -p "$demo"

cpu_port=${DEMO_GRPC_PORT:-18001}
gpu_port=$((cpu_port + 2))
gw_port=$((cpu_port + 4))
sync_port=$((cpu_port + 6))
s3_port=${DEMO_S3_PORT:-$((cpu_port + 7))}
mlflow_port=${DEMO_MLFLOW_PORT:-$((cpu_port + 8))}
ports="$cpu_port $((cpu_port + 1)) $gpu_port $((gpu_port + 1)) $gw_port $((gw_port + 1)) $sync_port $s3_port"
[ -n "${DEMO_NO_PYTHON:-}" ] || ports="$ports $mlflow_port"
for p in $ports; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "demo: port $p on 127.0.0.1 is taken (another demo, a test?): pick free ones with DEMO_GRPC_PORT=N (N to N+8), DEMO_S3_PORT, DEMO_MLFLOW_PORT" >&2
    exit 1
  fi
done

# Every process the demo starts is stopped when it ends, however it ends.
pids=()   # processes
groups=() # process groups (mlflow server and its workers)
stop_all() {
  trap - EXIT
  local p alive
  for p in "${groups[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=""
    for p in "${groups[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.2
  done
  for p in "${groups[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_up NAME PID LOG SECONDS CMD...: wait until CMD succeeds. If PID exits
# first or SECONDS pass: one line, the end of LOG, exit 1.
wait_up() {
  local name=$1 pid=$2 log=$3 secs=$4
  shift 4
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name exited before it was up; the end of $log:" >&2
    elif [ "$SECONDS" -ge "$end" ]; then
      echo "demo: $name not up after ${secs}s; the end of $log:" >&2
    else
      sleep 0.2
      continue
    fi
    tail -n 20 "$log" | sed 's/^/  /' >&2
    exit 1
  done
}

# The S3 server and its client settings (the syncer takes them from the
# environment and the catalog's s3: block; nothing of the caller's AWS setup).
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
unset MLFLOW_TRACKING_URI MLFLOW_TRACKING_TOKEN MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD MLFLOW_S3_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=tritongate AWS_SECRET_ACCESS_KEY=tritongate-demo-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY} no_proxy=127.0.0.1,localhost${no_proxy:+,$no_proxy}
s3=http://127.0.0.1:$s3_port
mlflow=http://127.0.0.1:$mlflow_port
bucket=tritongate-demo
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# S3 requests with curl's SigV4 signing (no AWS CLI needed); payloads are signed
# with their SHA-256.
s3req() { curl -fsS --max-time 60 --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }
s3put() { # FILE KEY
  s3req -H "x-amz-content-sha256: $(sha256sum "$1" | cut -d' ' -f1)" -T "$1" -o /dev/null "$s3/$bucket/$2"
}
# s3put_version DIR PREFIX: one version, as a model's producer uploads it: its
# manifest first (size and SHA-256 of every file: the syncer verifies each file
# against it), then the files.
s3put_version() {
  local dir=$1 prefix=$2 f sep="" manifest=$demo/.manifest.json
  {
    printf '{"files": ['
    while IFS= read -r f; do
      printf '%s\n  {"path": "%s", "size": %d, "sha256": "%s"}' "$sep" "$f" "$(stat -c %s "$dir/$f")" "$(sha256sum "$dir/$f" | cut -d' ' -f1)"
      sep=,
    done < <(cd "$dir" && find . -type f | sed 's|^\./||' | sort)
    printf '\n]}\n'
  } >"$manifest"
  s3put "$manifest" "$prefix/tritongate-manifest.json"
  rm -f "$manifest"
  while IFS= read -r f; do s3put "$dir/$f" "$prefix/$f"; done < <(cd "$dir" && find . -type f | sed 's|^\./||' | sort)
}
s3ls() { # PREFIX: "size key" of each object (the prefix percent-encoded: curl signs the query as written)
  { s3req -H "x-amz-content-sha256: $empty_sha256" "$s3/$bucket?list-type=2&prefix=${1//\//%2F}"; echo; } | sed 's|<Contents>|\n|g' |
    sed -n 's|.*<Key>\([^<]*\)</Key>.*<Size>\([0-9]*\)</Size>.*|\2 \1|p'
}

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

# --- the model store: a real S3 server
vgw_version=v1.8.0
export PATH="$(go env GOPATH)/bin:$PATH"
if ! go version -m "$(command -v versitygw 2>/dev/null || echo /nonexistent)" 2>/dev/null | grep -q "mod.*github.com/versity/versitygw.*$vgw_version"; then
  echo
  echo "== go install github.com/versity/versitygw/cmd/versitygw@$vgw_version (the S3 server; once, about 2 minutes)"
  go install "github.com/versity/versitygw/cmd/versitygw@$vgw_version" >"$demo/go-install.log" 2>&1 || {
    echo "demo: go install versitygw@$vgw_version failed: $(tail -1 "$demo/go-install.log")" >&2
    exit 1
  }
fi
echo
echo "== versitygw $vgw_version: a real S3 server on $s3 (posix backend in $demo/s3); bucket $bucket"
mkdir -p "$demo/s3"
versitygw --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --region "$AWS_REGION" \
  --port "127.0.0.1:$s3_port" posix "$demo/s3" >"$demo/versitygw.log" 2>&1 &
pids+=($!)
wait_up versitygw $! "$demo/versitygw.log" 30 curl -s --max-time 2 -o /dev/null "$s3/"
s3req -X PUT -H "x-amz-content-sha256: $empty_sha256" -o /dev/null "$s3/$bucket"

# --- the model registry: a real MLflow server, when Python is there
use_mlflow=""
venv=$PWD/.cache/interop/venv
if [ -n "${DEMO_NO_PYTHON:-}" ]; then
  echo
  echo "== MLflow: not used (DEMO_NO_PYTHON is set): the demo uses S3 alone"
else
  echo
  echo "== the Python peers: interop/setup.sh (pinned MLflow in .cache/interop/venv; minutes the first time, log in $demo/setup.log)"
  if interop/setup.sh >"$demo/setup.log" 2>&1; then
    use_mlflow=1
  else
    echo "== MLflow: not used ($(tail -1 "$demo/setup.log" | sed 's/^interop: //')): the demo uses S3 alone"
  fi
fi
if [ -n "$use_mlflow" ]; then
  export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PYTHONUNBUFFERED=1
  echo
  echo "== MLflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))'): a real tracking server on $mlflow"
  echo "   (SQLite in $demo/mlflow, artifacts proxied to s3://$bucket/mlflow on versitygw)"
  mkdir -p "$demo/mlflow"
  (cd "$demo/mlflow" && MLFLOW_S3_ENDPOINT_URL=$s3 exec setsid "$venv/bin/mlflow" server \
    --backend-store-uri "sqlite:///$PWD/mlflow.db" --host 127.0.0.1 --port "$mlflow_port" --workers 1 \
    --serve-artifacts --artifacts-destination "s3://$bucket/mlflow") >"$demo/mlflow.log" 2>&1 &
  groups+=($!)
  mlflow_pid=$! # waited for below, after the S3 uploads
fi
mlflow_models=" mnist example_dynamic_axes "
from_mlflow() { [ -n "$use_mlflow" ] && [[ $mlflow_models == *" $1 "* ]]; }

echo
if [ -n "$use_mlflow" ]; then
  echo "== uploading version 1 of the models that come from S3 to s3://$bucket/models/<model>/1/ (manifest first, then the files)"
else
  echo "== uploading version 1 of every model to s3://$bucket/models/<model>/1/ (manifest first, then the files)"
fi
for d in "$out"/*/; do
  m=$(basename "$d")
  from_mlflow "$m" || s3put_version "$d/1" "models/$m/1"
done
s3ls models/ | while read -r size key; do printf '  %8d  s3://%s/%s\n' "$size" "$bucket" "$key"; done

if [ -n "$use_mlflow" ]; then
  wait_up "mlflow server" "$mlflow_pid" "$demo/mlflow.log" 120 curl -fsS --max-time 2 "$mlflow/health"
  echo
  echo "== logging mnist and example_dynamic_axes to MLflow with mlflow.onnx.log_model (scripts/demo_mlflow.py),"
  echo "   registered, alias champion on version 1; mnist version 2 is registered too, champion stays on 1"
  MLFLOW_TRACKING_URI=$mlflow timeout 300 "$venv/bin/python" scripts/demo_mlflow.py \
    "mnist=$out/mnist/1/model.onnx@champion" \
    "example_dynamic_axes=$out/example_dynamic_axes/1/model.onnx@champion" \
    "mnist=$out/mnist/1/model.onnx" 2>"$demo/mlflow-client.log" || {
    echo "demo: scripts/demo_mlflow.py failed (or took over 5 minutes); the end of $demo/mlflow-client.log:" >&2
    tail -n 20 "$demo/mlflow-client.log" | sed 's/^/  /' >&2
    exit 1
  }
fi

source_of() { # the catalog's source (and versions) for model $1
  if from_mlflow "$1"; then
    echo "source: \"mlflow:$1\", versions: {aliases: [champion]}"
  else
    echo "source: \"s3://$bucket/models/$1/\""
  fi
}

echo
echo "== the catalog: which pool serves which model, where its versions come from, which versions, and each pool's settings"
{
  echo "s3: {endpoint: \"$s3\", region: $AWS_REGION, path_style: true}"
  [ -z "$use_mlflow" ] || echo "mlflow: {tracking_uri: \"$mlflow\"}"
  cat <<YAML
defaults: {pools: [cpu], versions: {latest: 1}, warmup: {requests: 2}}
pools:
  cpu: {kind: cpu, instances: 1}
  # "gpu" runs on tritonlite here, on CPU: the same settings a GPU pool takes,
  # with kind cpu (on EKS: kind: gpu).
  gpu: {kind: cpu, instances: 2, max_batch_size: 16, dynamic_batching: {max_queue_delay_microseconds: 200}}
models:
  - {name: mnist, $(source_of mnist)}
  - {name: add, $(source_of add), pools: [cpu, gpu]}
  - {name: string_concat, $(source_of string_concat)}
  - {name: example_several_inputs_and_outputs, $(source_of example_several_inputs_and_outputs)}
  - {name: example_dynamic_axes, $(source_of example_dynamic_axes), pools: [gpu]}
  - {name: ultraface_version-RFB-320, $(source_of ultraface_version-RFB-320), pools: [gpu]}
YAML
} >$demo/catalog.yaml
cat $demo/catalog.yaml

echo
echo "== two tritonlite instances in explicit model control, as Triton runs under the syncer: the \"cpu\" and the \"gpu\" pool;"
echo "   every version takes 1 s to load (--load-delay 1s), as a real model's initialization does: the"
echo "   rollout below has the window real Triton has, with the new version LOADING beside the serving one"
for pool in cpu gpu; do
  port=$cpu_port; [ $pool = gpu ] && port=$gpu_port
  mkdir -p .cache/demo/pools/$pool
  ./bin/tritonlite --model-repository .cache/demo/pools/$pool --model-control-mode=explicit --load-delay 1s \
    --grpc-address 127.0.0.1 --grpc-port "$port" --metrics-address 127.0.0.1 --metrics-port $((port + 1)) \
    >.cache/demo/tritonlite-$pool.log 2>&1 &
  pids+=($!)
  wait_up "tritonlite ($pool pool)" $! .cache/demo/tritonlite-$pool.log 30 grep -q 'started metrics service' .cache/demo/tritonlite-$pool.log
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
wait_up "syncer watch" $! .cache/demo/syncer-watch.log 30 curl -fsS --max-time 2 "localhost:$sync_port/readyz"

echo
echo "== an 8-second open-loop load test through the gateway on mnist and add (Poisson, 300 req/s);"
if [ -n "$use_mlflow" ]; then
  echo "   meanwhile MLflow's alias champion of mnist moves to version 2 (the registry's REST API):"
else
  echo "   meanwhile mnist version 2 is uploaded to s3://$bucket/models/mnist/2/ (latest: 1 picks it; its manifest"
  echo "   goes first, so a listing between the two uploads sees an incomplete version and refuses it):"
fi
echo "   the syncer loads it next to version 1, waits until it is ready, warms it up, then unloads"
echo "   version 1. The SLO allows no error. Report in .cache/demo/report"
./bin/loadtest run --target "localhost:$gw_port" --model mnist:1 --model add:2 --rate 300 --arrival poisson \
  --duration 8s --quiet --out .cache/demo/report --slo 'errors<=0%' &
lt=$!
sleep 2
if [ -n "$use_mlflow" ]; then
  curl -fsS --max-time 30 -X POST -H 'Content-Type: application/json' -d '{"name": "mnist", "alias": "champion", "version": "2"}' \
    "$mlflow/api/2.0/mlflow/registered-models/alias" -o /dev/null
  echo "   $(date +%T) champion -> mnist version 2"
else
  s3put_version "$out/mnist/1" models/mnist/2
  echo "   $(date +%T) uploaded s3://$bucket/models/mnist/2/"
fi
wait $lt

echo
echo "== mnist now answers from version 2; the syncer's /status for it"
./bin/modelctl infer mnist --server "localhost:$gw_port" --batch 1 | head -3
# /status is indented JSON: mnist's part of it, once the reconcile under way has ended
for _ in $(seq 20); do
  mnist_status=$(curl -fsS "localhost:$sync_port/status" | sed -n '/^    "mnist": {/,/^    }/p')
  [[ $mnist_status == *'"state": "syncing"'* ]] || break
  sleep 0.1
done
echo "${mnist_status%,}"
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
stop_all
echo "gateway log:"
cat .cache/demo/gateway.log
