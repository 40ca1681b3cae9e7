#!/usr/bin/env bash
# Installs the interop suite's real peers (make interop runs it; safe to run again):
#   - a Python virtualenv in .cache/interop/venv from interop/requirements.txt (pinned):
#     MLflow 3 (server and client), boto3, tritonclient[grpc], onnx, onnxruntime, numpy,
#     nvidia-pytriton (a real tritonserver 2.51 with the Python backend);
#   - Triton's perf_analyzer, from the tritonclient 2.50.0 wheel (the newer perf-analyzer
#     wheels need glibc 2.38), with Debian's libb64-0d;
#   - versitygw (a real S3 server) with go install.
# Each failure is one line on stderr and a non-zero exit; nothing waits for ever (pip has
# timeouts and a bounded number of retries).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.cache/interop
venv=$cache/venv
mkdir -p "$cache"
export PATH="$(go env GOPATH)/bin:$PATH"

die() { echo "interop: $*" >&2; exit 1; }

# --- Python and the virtualenv
py=${INTEROP_PYTHON:-python3}
command -v "$py" >/dev/null || die "no $py on PATH: the interop suite needs Python 3.11 with venv and pip (apt-get install python3 python3-venv)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' ||
  die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'): the pinned peers (tritonserver's Python backend stub) need Python 3.11"
want=$(sha256sum interop/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv" 2>"$cache/venv.log" || die "python3 -m venv failed (apt-get install python3-venv?): $(tail -1 "$cache/venv.log")"
  echo "interop: installing the Python peers into $venv (pinned, about 2 minutes)" >&2
  if ! "$venv/bin/pip" install --disable-pip-version-check --timeout 30 --retries 2 -q \
      -r interop/requirements.txt >"$cache/pip.log" 2>&1; then
    die "pip install -r interop/requirements.txt failed (is the Python package index reachable?): $(grep -E 'ERROR|Error' "$cache/pip.log" | tail -1)"
  fi
  echo "$want" >"$venv/.requirements"
fi

# --- the real tritonserver in nvidia-pytriton: its Python backend needs the stub next to it
ts=$("$venv/bin/python" -c 'import pytriton, os; print(os.path.join(os.path.dirname(pytriton.__file__), "tritonserver"))')
[ -x "$ts/bin/tritonserver" ] || die "nvidia-pytriton has no tritonserver binary at $ts/bin"
if [ ! -x "$ts/backends/python/triton_python_backend_stub" ]; then
  cp "$ts/python_backend_stubs/3.11/triton_python_backend_stub" "$ts/backends/python/"
fi
# Its version, from the server itself: started on an empty repository, asked (HTTP /v2), stopped.
ts_version() {
  local repo port pid v=""
  repo=$(mktemp -d)
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PATH="$venv/bin:$PATH" LD_LIBRARY_PATH="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$ts/bin/tritonserver" --model-repository "$repo" --model-control-mode=explicit --backend-directory "$ts/backends" \
    --cache-directory "$ts/caches" --allow-grpc false --allow-metrics false --http-address 127.0.0.1 --http-port "$port" \
    --exit-timeout-secs 1 >"$cache/tritonserver-version.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    v=$(curl -fsS --max-time 1 "http://127.0.0.1:$port/v2" 2>/dev/null | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["version"])' 2>/dev/null) && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$repo"
  [ -n "$v" ] || die "tritonserver did not start (see $cache/tritonserver-version.log): $(tail -1 "$cache/tritonserver-version.log")"
  echo "$v"
}
tsver=$(ts_version)

# --- perf_analyzer from the tritonclient 2.50.0 wheel (checksum pinned)
pa_whl=tritonclient-2.50.0-py3-none-manylinux1_x86_64.whl
pa_sum=421fbb69ae6ab8cdb2c35b82134fcef2fe11e7af7718b1fcbc53335ab9bfe889
pa=$cache/perf_analyzer/perf_analyzer
if [ ! -x "$pa" ]; then
  mkdir -p "$cache/perf_analyzer"
  "$venv/bin/pip" download --disable-pip-version-check --timeout 30 --retries 2 -q --no-deps \
    --only-binary=:all: tritonclient==2.50.0 -d "$cache/perf_analyzer" >"$cache/pa.log" 2>&1 ||
    die "downloading $pa_whl failed: $(tail -1 "$cache/pa.log")"
  echo "$pa_sum  $cache/perf_analyzer/$pa_whl" | sha256sum -c --quiet - || die "$pa_whl: checksum mismatch"
  "$venv/bin/python" - "$cache/perf_analyzer/$pa_whl" "$pa" <<'PY'
import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(z.read("tritonclient-2.50.0.data/data/bin/perf_analyzer"))
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
PY
  rm -f "$cache/perf_analyzer/$pa_whl"
fi
if ! dpkg -s libb64-0d >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libb64-0d; } >"$cache/apt.log" 2>&1 ||
    die "apt-get install libb64-0d (for perf_analyzer) failed: $(tail -1 "$cache/apt.log")"
fi

# --- versitygw, a real S3 server
vgw_version=v1.8.0
if ! go version -m "$(command -v versitygw 2>/dev/null || echo /nonexistent)" 2>/dev/null | grep -q "mod.*github.com/versity/versitygw.*$vgw_version"; then
  echo "interop: go install versitygw@$vgw_version (about 2 minutes)" >&2
  go install "github.com/versity/versitygw/cmd/versitygw@$vgw_version" >"$cache/go-install.log" 2>&1 ||
    die "go install versitygw@$vgw_version failed: $(tail -1 "$cache/go-install.log")"
fi

# --- one line per peer, with its version
"$venv/bin/python" - "$tsver" <<'PY'
from importlib.metadata import version
import sys
print("peer python        %s (venv)" % sys.version.split()[0])
print("peer mlflow        %s (mlflow server, SQLite store)" % version("mlflow"))
print("peer boto3         %s" % version("boto3"))
print("peer tritonclient  %s (tritonclient.grpc)" % version("tritonclient"))
print("peer tritonserver  %s (nvidia-pytriton %s, Python backend)" % (sys.argv[1], version("nvidia-pytriton")))
print("peer onnx          %s, onnxruntime %s" % (version("onnx"), version("onnxruntime")))
print("peer exporters     skl2onnx %s (scikit-learn %s), onnxmltools %s (lightgbm %s, xgboost-cpu %s)" % (
    version("skl2onnx"), version("scikit-learn"), version("onnxmltools"), version("lightgbm"), version("xgboost-cpu")))
PY
echo "peer perf_analyzer  from tritonclient 2.50.0 ($pa)"
echo "peer versitygw      $(go version -m "$(command -v versitygw)" | awk '$1 == "mod" {print $3}')"
