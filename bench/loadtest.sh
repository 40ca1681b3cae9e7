#!/usr/bin/env bash
# bench/loadtest.sh: tritongate's loadtest against ghz, side by side in one run,
# both driving the same tritonlite identity model over loopback gRPC:
#   1. CPU seconds the load generator itself spends per 10,000 requests at the
#      same offered rate (RATE req/s for DURATION), and
#   2. the highest rate each sustains, closed loop at concurrency 64.
# Usage: bench/loadtest.sh [RATE] [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
secs=${2:-10}
export PATH="$(go env GOPATH)/bin:$PATH"
command -v ghz >/dev/null || go install github.com/bojand/ghz/cmd/ghz@v0.121.0 2>/dev/null || go install github.com/bojand/ghz/cmd/ghz@latest
make --no-print-directory build >/dev/null

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/models/ident/1"
cat >"$work/models/ident/config.pbtxt" <<'CFG'
name: "ident"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
instance_group [ { kind: KIND_CPU count: 2 } ]
CFG
port=${BENCH_PORT:-18301}
./bin/tritonlite --model-repository "$work/models" --grpc-port "$port" --metrics-port $((port + 1)) --grpc-address 127.0.0.1 >"$work/tritonlite.log" 2>&1 &
./bin/modelctl infer ident --server "127.0.0.1:$port" --wait 20s >/dev/null

# One request, as ghz needs it: JSON with the raw tensor bytes in base64.
raw=$(head -c 64 /dev/zero | base64 -w0)
cat >"$work/req.json" <<JSON
{"model_name":"ident","inputs":[{"name":"INPUT0","datatype":"FP32","shape":["1","16"]}],"raw_input_contents":["$raw"]}
JSON
ghz_common=(--insecure --proto proto/inference/grpc_service.proto --import-paths proto/inference
  --call inference.GRPCInferenceService.ModelInfer -D "$work/req.json" "127.0.0.1:$port")

# cpu CMD...: runs CMD and prints "user+sys" CPU seconds it used.
cpu() {
  local me=$BASHPID start end
  start=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  "$@" >"$work/out.txt" 2>&1 || { cat "$work/out.txt"; return 1; }
  # the command's CPU time is now in this (sub)shell's cutime/cstime
  end=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  echo "scale=3; ($end - $start) / $(getconf CLK_TCK)" | bc
}

echo "== 1. generator CPU at the same offered rate: $rate req/s for ${secs}s, open loop"
lt_cpu=$(cpu ./bin/loadtest run --target "127.0.0.1:$port" --model ident --rate "$rate" --duration "${secs}s" --quiet --json "$work/lt-rate.json")
lt_n=$(jq .summary.requests "$work/lt-rate.json")
lt_p99=$(jq .summary.latency.p99_ms "$work/lt-rate.json")
ghz_cpu=$(cpu ghz "${ghz_common[@]}" --rps "$rate" -c 50 -z "${secs}s" --format json -o "$work/ghz-rate.json")
ghz_n=$(jq .count "$work/ghz-rate.json")
ghz_p99=$(jq '[.latencyDistribution[] | select(.percentage==99)][0].latency / 1e6' "$work/ghz-rate.json")
per10k() { echo "scale=3; $1 * 10000 / $2" | bc; }
printf '%-10s %10s %14s %18s %10s\n' tool requests "cpu seconds" "cpu s / 10k req" "p99 ms"
printf '%-10s %10s %14s %18s %10.2f\n' loadtest "$lt_n" "$lt_cpu" "$(per10k "$lt_cpu" "$lt_n")" "$lt_p99"
printf '%-10s %10s %14s %18s %10.2f\n' ghz "$ghz_n" "$ghz_cpu" "$(per10k "$ghz_cpu" "$ghz_n")" "$ghz_p99"
echo "ratio loadtest/ghz CPU per request: $(echo "scale=3; ($lt_cpu * $ghz_n) / ($ghz_cpu * $lt_n)" | bc)"

echo
echo "== 2. highest sustained rate: closed loop, concurrency 64, ${secs}s"
./bin/loadtest run --target "127.0.0.1:$port" --model ident --concurrency 64 --duration "${secs}s" --quiet --json "$work/lt-max.json" >/dev/null
ghz "${ghz_common[@]}" -c 64 -z "${secs}s" --format json -o "$work/ghz-max.json" >/dev/null 2>&1
lt_rps=$(jq .summary.throughput_rps "$work/lt-max.json")
ghz_rps=$(jq .rps "$work/ghz-max.json")
printf '%-10s %12s\n' tool "req/s"
printf '%-10s %12.0f\n' loadtest "$lt_rps" ghz "$ghz_rps"
echo "ratio loadtest/ghz throughput: $(echo "scale=3; $lt_rps / $ghz_rps" | bc)"
