#!/usr/bin/env bash
# bench/gateway.sh: what the gateway adds, side by side in one run on this
# machine. The project's loadtest drives one tritonlite identity model (a
# trivial echo backend) over loopback gRPC:
#   (a) directly,
#   (b) through the tritongate gateway,
#   (c) through nginx grpc_pass,
#   (d) through HAProxy (h2 on both sides),
# closed loop at concurrency 1, 16 and 64, then open loop at RATE req/s, and
# prints for each proxy the latency it adds at p50 and p99 and the share of
# direct throughput it keeps.
# Usage: bench/gateway.sh [SECONDS_PER_STEP] [RATE]
# Installs nginx and haproxy (Debian packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rate=${2:-2000}
export PATH="$(go env GOPATH)/bin:$PATH"

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v jq >/dev/null || need+=(jq)
command -v bc >/dev/null || need+=(bc)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
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
base=${BENCH_PORT:-18400}
direct=$base gateway=$((base + 10)) nginx=$((base + 20)) haproxy=$((base + 30))

./bin/tritonlite --model-repository "$work/models" --grpc-port "$direct" --metrics-port $((direct + 1)) \
  --grpc-address 127.0.0.1 --metrics-address 127.0.0.1 >"$work/tritonlite.log" 2>&1 &

cat >"$work/gateway.yaml" <<YAML
listen: 127.0.0.1:$gateway
metrics_listen: 127.0.0.1:$((gateway + 1))
pools:
  - name: cpu
    endpoints: [127.0.0.1:$direct]
routes:
  - {model: ident, pool: cpu}
YAML
./bin/gateway --config "$work/gateway.yaml" --log-level warn >"$work/gateway.log" 2>&1 &

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  http2_max_concurrent_streams 1024;
  upstream triton { server 127.0.0.1:$direct; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx http2;
    location / { grpc_pass grpc://triton; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &

cat >"$work/haproxy.cfg" <<CONF
global
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend grpc
  bind 127.0.0.1:$haproxy proto h2
  default_backend triton
backend triton
  server t1 127.0.0.1:$direct proto h2
CONF
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &

for t in direct gateway nginx haproxy; do
  ./bin/modelctl infer ident --server "127.0.0.1:${!t}" --wait 20s >/dev/null || {
    echo "$t at 127.0.0.1:${!t} does not answer" >&2
    cat "$work"/*.log "$work"/nginx/error.log 2>/dev/null >&2
    exit 1
  }
done

echo "gateway benchmark: identity model, FP32[1,16], ${secs}s per step, $(nproc) cores, loadtest as the client"
echo
steps=("c1:--concurrency 1" "c16:--concurrency 16" "c64:--concurrency 64" "rate:--rate $rate")
for t in direct gateway nginx haproxy; do
  for s in "${steps[@]}"; do
    name=${s%%:*} args=${s#*:}
    # shellcheck disable=SC2086
    ./bin/loadtest run --target "127.0.0.1:${!t}" --model ident $args --duration "${secs}s" --warmup 1s \
      --quiet --json "$work/$t-$name.json" >/dev/null || true
  done
done

val() { jq -r "$2" "$work/$1.json"; }
printf '%-8s %-6s %10s %9s %9s %11s %11s %10s %7s\n' target step "req/s" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms" "thr ratio" errors
for s in "${steps[@]}"; do
  name=${s%%:*}
  d50=$(val "direct-$name" .summary.latency.p50_ms) d99=$(val "direct-$name" .summary.latency.p99_ms) drps=$(val "direct-$name" .summary.throughput_rps)
  for t in direct gateway nginx haproxy; do
    rps=$(val "$t-$name" .summary.throughput_rps) p50=$(val "$t-$name" .summary.latency.p50_ms) p99=$(val "$t-$name" .summary.latency.p99_ms)
    errs=$(val "$t-$name" .summary.errors)
    printf '%-8s %-6s %10.0f %9.3f %9.3f %11.3f %11.3f %10.2f %7s\n' "$t" "$name" "$rps" "$p50" "$p99" \
      "$(echo "$p50 - $d50" | bc -l)" "$(echo "$p99 - $d99" | bc -l)" "$(echo "$rps / $drps" | bc -l)" "$errs"
  done
  echo
done
