#!/usr/bin/env bash
# bench/loadtest.sh: tritongate's loadtest beside ghz and Triton's own perf_analyzer,
# in one run, all three driving the same tritonlite identity model over loopback gRPC:
#   1. at the same offered rate (RATE req/s for DURATION, open loop): the CPU seconds
#      each generator itself spends per 10,000 requests, and the p99 it reports;
#   2. the highest rate each sustains, closed loop at concurrency 64.
# Requests are counted by the server (tritonlite's nv_inference_request_success), so
# warm-up requests a tool does not report are still charged to its CPU time.
# perf_analyzer comes from interop/setup.sh (run here when it is missing).
# Usage: bench/loadtest.sh [RATE] [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
secs=${2:-10}
export PATH="$(go env GOPATH)/bin:$PATH"
command -v ghz >/dev/null || go install github.com/bojand/ghz/cmd/ghz@v0.121.0 2>/dev/null || go install github.com/bojand/ghz/cmd/ghz@latest
make --no-print-directory build >/dev/null
pa=.cache/interop/perf_analyzer/perf_analyzer
[ -x "$pa" ] || ./interop/setup.sh >/dev/null || { echo "bench: interop/setup.sh failed; perf_analyzer is needed" >&2; exit 1; }
export LD_LIBRARY_PATH="$PWD/$(ls -d .cache/interop/venv/lib/python3*/site-packages/nvidia/cuda_runtime/lib | head -1)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

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

# served: requests the server has answered so far.
served() { curl -sf "127.0.0.1:$((port + 1))/metrics" | awk '/^nv_inference_request_success\{model="ident"/ {n += $2} END {print n + 0}'; }
# perf_analyzer measures 3 stable windows; with -s 1000 the first 3 are taken.
pa_common=(-m ident -i grpc -u "127.0.0.1:$port" -b 1 --measurement-interval $((secs * 1000 / 3)) -s 1000 --percentile 99)

# cpu CMD...: runs CMD and prints "user+sys" CPU seconds it used.
cpu() {
  local me=$BASHPID start end
  start=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  "$@" >"$work/out.txt" 2>&1 || { cat "$work/out.txt"; return 1; }
  # the command's CPU time is now in this (sub)shell's cutime/cstime
  end=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  echo "scale=3; ($end - $start) / $(getconf CLK_TCK)" | bc
}

echo "== 1. the same offered rate: $rate req/s for ${secs}s, open loop"
n0=$(served)
lt_cpu=$(cpu ./bin/loadtest run --target "127.0.0.1:$port" --model ident --rate "$rate" --duration "${secs}s" --quiet --json "$work/lt-rate.json")
n1=$(served)
lt_p99=$(jq .summary.latency.p99_ms "$work/lt-rate.json")
ghz_cpu=$(cpu ghz "${ghz_common[@]}" --rps "$rate" -c 50 -z "${secs}s" --format json -o "$work/ghz-rate.json")
n2=$(served)
ghz_p99=$(jq '[.latencyDistribution[] | select(.percentage==99)][0].latency / 1e6' "$work/ghz-rate.json")
pa_cpu=$(cpu "$pa" "${pa_common[@]}" --request-rate-range "$rate" -f "$work/pa-rate.csv")
n3=$(served)
# the CSV's last column is the p99 in microseconds
pa_p99=$(awk -F, 'NR == 2 {print $NF / 1000}' "$work/pa-rate.csv")
lt_n=$((n1 - n0)) ghz_n=$((n2 - n1)) pa_n=$((n3 - n2))
per10k() { echo "scale=3; $1 * 10000 / $2" | bc; }
printf '%-14s %10s %12s %16s %10s\n' tool requests "cpu seconds" "cpu s / 10k req" "p99 ms"
printf '%-14s %10s %12s %16s %10.2f\n' loadtest "$lt_n" "$lt_cpu" "$(per10k "$lt_cpu" "$lt_n")" "$lt_p99"
printf '%-14s %10s %12s %16s %10.2f\n' ghz "$ghz_n" "$ghz_cpu" "$(per10k "$ghz_cpu" "$ghz_n")" "$ghz_p99"
printf '%-14s %10s %12s %16s %10.2f\n' perf_analyzer "$pa_n" "$pa_cpu" "$(per10k "$pa_cpu" "$pa_n")" "$pa_p99"
echo "ratio loadtest/ghz CPU per request: $(echo "scale=3; ($lt_cpu * $ghz_n) / ($ghz_cpu * $lt_n)" | bc)"
echo "ratio loadtest/perf_analyzer CPU per request: $(echo "scale=3; ($lt_cpu * $pa_n) / ($pa_cpu * $lt_n)" | bc)"

echo
echo "== 2. highest sustained rate: closed loop, concurrency 64, ${secs}s"
./bin/loadtest run --target "127.0.0.1:$port" --model ident --concurrency 64 --duration "${secs}s" --quiet --json "$work/lt-max.json" >/dev/null
ghz "${ghz_common[@]}" -c 64 -z "${secs}s" --format json -o "$work/ghz-max.json" >/dev/null 2>&1
"$pa" "${pa_common[@]}" --concurrency-range 64 -f "$work/pa-max.csv" >/dev/null
lt_rps=$(jq .summary.throughput_rps "$work/lt-max.json")
ghz_rps=$(jq .rps "$work/ghz-max.json")
pa_rps=$(awk -F, 'NR == 2 {print $2}' "$work/pa-max.csv")
printf '%-14s %12s\n' tool "req/s"
printf '%-14s %12.0f\n' loadtest "$lt_rps" ghz "$ghz_rps" perf_analyzer "$pa_rps"
echo "ratio loadtest/ghz throughput: $(echo "scale=3; $lt_rps / $ghz_rps" | bc)"
echo "ratio loadtest/perf_analyzer throughput: $(echo "scale=3; $lt_rps / $pa_rps" | bc)"
