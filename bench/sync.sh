#!/usr/bin/env bash
# bench/sync.sh: the syncer against rclone and the AWS CLI, side by side in one
# run on this machine, all pulling the same bucket from a loopback S3 server
# (versitygw, posix backend) into an empty local directory:
#   (a) syncer init --triton none (staging, verification, fsync, atomic publish),
#       with a few --parallel/--concurrency/--part-size settings,
#   (b) rclone sync,
#   (c) aws s3 sync,
# each cold (fresh destination; the page cache dropped first when we are root)
# and then again into the same destination with nothing changed. Every
# measurement is taken REPS times, the tools taking turns, and the median is
# shown, with the client's CPU time and the requests the server saw (its
# access log). Phase 1 runs every setting on the plain bucket; phase 2 runs the
# fastest syncer setting on the manifest and single buckets, and rclone on
# single. Every syncer result is checked (files, a byte-for-byte sample, once a
# sha256 of every file, a config.pbtxt per model, a marker per version).
#
# The bucket: MODELS models x VERSIONS versions, s3://BUCKET/models/m<i>/<v>/model.onnx,
# each a real ONNX model (testdata's identity model) carrying SIZE_MB MiB of
# random bytes as an unused initializer, so the syncer's check of the model
# (as Triton would load it) passes and the bytes are incompressible. It is
# uploaded three times:
#   plain     aws s3 cp defaults: objects above 8 MiB are multipart ("-N" ETags),
#             so there is no checksum: the syncer verifies sizes. The common case
#             (aws s3 cp, boto3 and the MLflow S3 artifact store all upload so).
#   manifest  the same, plus a tritongate-manifest.json per version: SHA-256.
#   single    single-part uploads: the ETag is the MD5 (syncer and rclone check it).
# Data is kept in .cache/bench-sync/ and reused by the next run with the same sizes.
#
# Usage: bench/sync.sh            (MODELS=50 VERSIONS=2 SIZE_MB=20 REPS=3 by default)
#        MODELS=10 SIZE_MB=5 REPS=1 bench/sync.sh   a quick run
# Env: BENCH_PORT (18500), DROP_CACHES (1 when root, else 0), QUICK=1 (one
# syncer setting, one rclone and one aws setting, no variants), QUIET_WAIT
# (60: seconds to wait before a measurement for the cores to be idle), PROBE=0
# (skip the page-cache write probe).
# Installs versitygw (go install), rclone and awscli (Debian) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
models=${MODELS:-50}
versions=${VERSIONS:-2}
size_mb=${SIZE_MB:-20}
reps=${REPS:-3}
port=${BENCH_PORT:-18500}
quick=${QUICK:-0}
drop=${DROP_CACHES:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}
versitygw_version=v1.8.0
export PATH="$(go env GOPATH)/bin:$PATH"
# The endpoint is plain http on loopback: no CA bundle is involved, and rclone
# refuses to start with the one this machine sets.
unset AWS_CA_BUNDLE

command -v versitygw >/dev/null || go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_version"
need=()
[ -x /usr/bin/aws ] || need+=(awscli) # call /usr/bin/aws: a pyenv shim may shadow it
command -v rclone >/dev/null || need+=(rclone)
[ -x /usr/bin/time ] || need+=(time)
command -v jq >/dev/null || need+=(jq)
command -v bc >/dev/null || need+=(bc)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
AWS=/usr/bin/aws

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/aws" "$work/d"
# A snapshot of the syncer: Go files may change while the benchmark runs.
go build -o "$work/bin/syncer" ./cmd/syncer

data=.cache/bench-sync/${models}x${versions}x${size_mb}MiB
endpoint=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE=$work/aws/credentials
: >"$work/aws/credentials"
: >"$work/aws/empty"

[ -f "$data/ready" ] || { rm -rf "$data"; mkdir -p "$data/gw"; }
versitygw --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$port" \
  --keep-alive --quiet --access-log "$work/access.log" posix "$data/gw" >"$work/versitygw.log" 2>&1 &
gwpid=$!
for _ in $(seq 100); do
  AWS_CONFIG_FILE=$work/aws/empty $AWS --endpoint-url "$endpoint" s3 ls >/dev/null 2>&1 && break
  sleep 0.1
done

# awscfg NAME KEY=VALUE...: an AWS CLI config file with those s3 settings.
awscfg() {
  local f=$work/aws/$1 kv
  shift
  : >"$f"
  for kv in "$@"; do AWS_CONFIG_FILE=$f $AWS configure set "default.s3.${kv%%=*}" "${kv#*=}"; done
  echo "$f"
}
upload_cfg=$(awscfg upload max_concurrent_requests=16)
single_cfg=$(awscfg single max_concurrent_requests=16 multipart_threshold=5GB)

if [ ! -f "$data/ready" ]; then
  echo "== generating $models models x $versions versions x $size_mb MiB in $data/src"
  cat >"$work/mkmodels.py" <<'PY'
# Writes OUT/models/m<i>/<v>/model.onnx: TEMPLATE's graph plus an unused UINT8
# initializer of SIZE random bytes; and MF/models/m<i>/<v>/tritongate-manifest.json.
import hashlib, json, os, sys
template, size, models, versions, out, mf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
def varint(n):
    b = bytearray()
    while True:
        x, n = n & 0x7F, n >> 7
        b.append(x | 0x80 if n else x)
        if not n:
            return bytes(b)
def read_varint(buf, i):
    n = s = 0
    while True:
        x = buf[i]; i += 1; n |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return n, i
buf = open(template, "rb").read()
i, rest, graph = 0, b"", None
while i < len(buf):  # top-level fields of ModelProto; the graph (7) goes last
    start = i
    tag, i = read_varint(buf, i)
    wt = tag & 7
    if wt == 0: _, i = read_varint(buf, i)
    elif wt == 1: i += 8
    elif wt == 5: i += 4
    elif wt == 2:
        n, i = read_varint(buf, i); i += n
    else: sys.exit("unexpected wire type in " + template)
    if tag >> 3 == 7: graph = buf[i - n:i]
    else: rest += buf[start:i]
# TensorProto: dims (1), data_type (2) = UINT8, name (8), raw_data (9) last
tensor = varint(1 << 3) + varint(size) + varint(2 << 3) + varint(2) + varint(8 << 3 | 2) + varint(3) + b"pad" + varint(9 << 3 | 2) + varint(size)
init = varint(5 << 3 | 2) + varint(len(tensor) + size) + tensor  # GraphProto.initializer (5)
g = graph + init
head = rest + varint(7 << 3 | 2) + varint(len(g) + size) + g
for m in range(1, models + 1):
    for v in range(1, versions + 1):
        rel = "models/m%d/%d" % (m, v)
        os.makedirs(os.path.join(out, rel)); os.makedirs(os.path.join(mf, rel))
        h = hashlib.sha256(head)
        with open(os.path.join(out, rel, "model.onnx"), "wb") as f:
            f.write(head)
            left = size
            while left:
                chunk = os.urandom(min(left, 8 << 20)); left -= len(chunk)
                h.update(chunk); f.write(chunk)
        entry = {"path": "model.onnx", "size": len(head) + size, "sha256": h.hexdigest()}
        with open(os.path.join(mf, rel, "tritongate-manifest.json"), "w") as f:
            json.dump({"files": [entry]}, f)
PY
  python3 "$work/mkmodels.py" testdata/onnx/node/test_identity/model.onnx $((size_mb << 20)) "$models" "$versions" "$data/src" "$data/mf"
  echo "== uploading to s3://plain (aws s3 cp defaults: multipart), s3://manifest (+ manifests), s3://single (single-part)"
  for b in plain manifest single; do AWS_CONFIG_FILE=$upload_cfg $AWS --endpoint-url "$endpoint" s3 mb "s3://$b" >/dev/null; done
  AWS_CONFIG_FILE=$upload_cfg $AWS --endpoint-url "$endpoint" s3 cp --recursive --only-show-errors "$data/src" s3://plain/
  AWS_CONFIG_FILE=$upload_cfg $AWS --endpoint-url "$endpoint" s3 cp --recursive --only-show-errors "$data/src" s3://manifest/
  AWS_CONFIG_FILE=$upload_cfg $AWS --endpoint-url "$endpoint" s3 cp --recursive --only-show-errors "$data/mf" s3://manifest/
  AWS_CONFIG_FILE=$single_cfg $AWS --endpoint-url "$endpoint" s3 cp --recursive --only-show-errors "$data/src" s3://single/
  touch "$data/ready"
fi
nfiles=$((models * versions))
bytes=$(find "$data/src" -name model.onnx -printf '%s\n' | awk '{s += $1} END {print s}')
mib=$(echo "scale=1; $bytes / 1048576" | bc)
etag() { AWS_CONFIG_FILE=$work/aws/empty $AWS --endpoint-url "$endpoint" s3api head-object --bucket "$1" --key models/m1/1/model.onnx --query ETag --output text; }
echo "bucket: $nfiles files, $mib MiB; ETags: plain $(etag plain), single $(etag single)"

# One catalog per bucket: one model per prefix, every version.
for b in plain manifest single; do
  {
    echo "s3: {endpoint: \"$endpoint\", path_style: true}"
    echo "defaults: {pools: [cpu], versions: {latest: $versions}, warmup: {requests: 0}}"
    echo "models:"
    for i in $(seq "$models"); do echo "  - {name: m$i, source: \"s3://$b/models/m$i/\"}"; done
  } >"$work/catalog-$b.yaml"
done

rclone_env=(env RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT="$endpoint"
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
  RCLONE_CONFIG_BENCH_REGION=us-east-1 RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true)

# The configurations: "label|bucket|kind|flags" (kind: how flags are used).
# Phase 1 pulls the plain bucket with several settings of each tool; phase 2
# takes the fastest syncer setting of phase 1 to the manifest and single
# buckets, and rclone to the single one (it checks MD5s too).
rclone_best="--transfers 16 --checkers 16 --fast-list --multi-thread-cutoff 8M --multi-thread-streams 4"
configs=()
if [ "$quick" = 1 ]; then
  configs+=("syncer p8 c4 8M|plain|syncer|--parallel 8 --concurrency 4 --part-size 8388608")
  configs+=("rclone t16 mt fast-list|plain|rclone|$rclone_best")
  configs+=("aws c10 (default)|plain|aws|10")
else
  configs+=("syncer default p4 c16 8M|plain|syncer|--parallel 4 --concurrency 16 --part-size 8388608")
  configs+=("syncer p8 c4 8M|plain|syncer|--parallel 8 --concurrency 4 --part-size 8388608")
  configs+=("syncer p4 c8 4M|plain|syncer|--parallel 4 --concurrency 8 --part-size 4194304")
  configs+=("syncer p16 c2 32M|plain|syncer|--parallel 16 --concurrency 2 --part-size 33554432")
  configs+=("rclone t16|plain|rclone|--transfers 16 --checkers 16")
  configs+=("rclone t16 mt fast-list|plain|rclone|$rclone_best")
  configs+=("rclone t16 mt fl + sync -f|plain|rclone+fsync|$rclone_best")
  configs+=("aws c10 (default)|plain|aws|10")
  configs+=("aws c32|plain|aws|32")
fi

# run KIND BUCKET FLAGS DEST LOG: one sync (run in a child bash: see measure).
run() {
  local kind=$1 bucket=$2 flags=$3 dest=$4 log=$5
  # shellcheck disable=SC2086
  case $kind in
    syncer) AWS_CONFIG_FILE=$work/aws/empty "$work/bin/syncer" init --catalog "$work/catalog-$bucket.yaml" --pool cpu \
      --repository "$dest" --triton none --progress log --log-level debug --s3-endpoint "$endpoint" --s3-path-style $flags >"$log" 2>&1 ;;
    rclone) "${rclone_env[@]}" rclone --config /dev/null sync "bench:$bucket/models" "$dest" $flags >"$log" 2>&1 ;;
    rclone+fsync) "${rclone_env[@]}" rclone --config /dev/null sync "bench:$bucket/models" "$dest" $flags >"$log" 2>&1 && sync -f "$dest" ;;
    aws) AWS_CONFIG_FILE=$work/aws/c$flags $AWS --endpoint-url "$endpoint" s3 sync --only-show-errors "s3://$bucket/models" "$dest" >"$log" 2>&1 ;;
  esac
}

tck=$(getconf CLK_TCK)
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # jiffies, all cores, not idle
gwcpu() { awk '{print $14 + $15}' "/proc/$gwpid/stat"; }
# wait_quiet: other work on this machine (builds, tests) skews the timings;
# wait up to QUIET_WAIT seconds for one second in which the cores are <15% busy.
wait_quiet() {
  local b0 b1 i
  for ((i = 0; i < ${QUIET_WAIT:-60}; i++)); do
    b0=$(busy); sleep 1; b1=$(busy)
    (((b1 - b0) * 100 < 15 * tck * $(nproc))) && return
  done
  echo "  (the machine is still busy after ${QUIET_WAIT:-60}s of waiting: measuring anyway)" >&2
}
loglines() { wc -l <"$work/access.log"; }
# requests N: GET LIST HEAD counts in the server's access log after line N.
requests() {
  tail -n +"$(($1 + 1))" "$work/access.log" | awk '
    / s3_GetObject / {g++} / s3_ListObjects/ {l++} / s3_HeadObject / {h++}
    END {printf "%d %d %d\n", g, l, h}'
}

# measure ID KIND BUCKET FLAGS DEST PHASE: times one sync and appends to results
# "ID PHASE wall client_cpu maxrss_kib GET LIST HEAD server_cpu other_cpu":
# other_cpu is what the rest of the machine used meanwhile (noise).
measure() {
  local id=$1 kind=$2 bucket=$3 flags=$4 dest=$5 phase=$6 before t0 t1 b0 b1 g0 g1 rc=0 u s rss
  before=$(loglines)
  b0=$(busy) g0=$(gwcpu) t0=$(date +%s%N)
  /usr/bin/time -f '%U %S %M' -o "$work/time.txt" bash -c "$(declare -f run); $(declare -p work endpoint AWS rclone_env); run $kind $bucket '$flags' '$dest' '$work/logs/$id-$phase-$rep.txt'" || rc=$?
  t1=$(date +%s%N) b1=$(busy) g1=$(gwcpu)
  if [ "$rc" != 0 ]; then
    echo "config $id ($kind $flags) $phase run failed (exit $rc):" >&2
    tail -20 "$work/logs/$id-$phase-$rep.txt" >&2
    exit 1
  fi
  read -r u s rss <"$work/time.txt"
  sleep 0.3 # the access log is written after the response
  echo "$id $phase $(echo "scale=3; ($t1 - $t0) / 1000000000" | bc) $(echo "$u + $s" | bc) $rss $(requests "$before")" \
    "$(echo "scale=2; ($g1 - $g0) / $tck" | bc)" "$(echo "scale=2; ($b1 - $b0 - ($g1 - $g0)) / $tck - $u - $s" | bc)" >>"$work/results"
}

# verify ID DEST KIND: every file there; a sample compared byte for byte; for
# the syncer, a config.pbtxt per model, a marker per version, nothing left in staging.
verify() {
  local id=$1 dest=$2 kind=$3 n i v
  n=$(find "$dest" -name model.onnx | wc -l)
  [ "$n" = "$nfiles" ] || { echo "config $id: $n model.onnx files in $dest, want $nfiles" >&2; exit 1; }
  for i in 1 $(((models + 1) / 2)) "$models" $((RANDOM % models + 1)); do
    for v in $(seq "$versions"); do
      cmp -s "$dest/m$i/$v/model.onnx" "$data/src/models/m$i/$v/model.onnx" || {
        echo "config $id: $dest/m$i/$v/model.onnx differs from the source" >&2; exit 1; }
    done
  done
  if [[ $kind == syncer ]]; then
    for i in $(seq "$models"); do
      [ -f "$dest/m$i/config.pbtxt" ] || { echo "config $id: no $dest/m$i/config.pbtxt" >&2; exit 1; }
      for v in $(seq "$versions"); do
        [ -f "$dest/m$i/$v/.tritongate.json" ] || { echo "config $id: no marker in $dest/m$i/$v" >&2; exit 1; }
      done
    done
    [ -z "$(ls -A "$(dirname "$dest")/.$(basename "$dest")-staging/work")" ] || { echo "config $id: staging not empty" >&2; exit 1; }
  fi
}

median() { sort -n | awk '{a[NR] = $1} END {if (NR == 0) print 0; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v id="$1" -v ph="$2" -v c="$3" '$1 == id && $2 == ph {print $c}' "$work/results" | median; }

# bench FIRST LAST: REPS rounds over configs FIRST..LAST, the tools taking
# turns; each round starts at another config (a run right after another tool's
# is often slower here: see "probe" below).
sha_checked=0
bench() {
  local first=$1 n=$(($2 - $1 + 1)) id k label bucket kind flags dest
  for rep in $(seq "$reps"); do
    for ((k = 0; k < n; k++)); do
      id=$((first + (k + (rep - 1) * ((n + reps - 1) / reps)) % n))
      IFS='|' read -r label bucket kind flags <<<"${configs[$id]}"
      dest=$work/d/c$id
      rm -rf "$dest" "$work/d/.c$id-staging"
      if [ "$drop" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
      wait_quiet
      printf '  rep %d  %-28s %-9s cold' "$rep" "$label" "$bucket"
      measure "$id" "$kind" "$bucket" "$flags" "$dest" cold
      printf ' %6.2fs (others %5.2f cpu s)' "$(tail -1 "$work/results" | cut -d' ' -f3)" "$(tail -1 "$work/results" | cut -d' ' -f10)"
      verify "$id" "$dest" "$kind"
      if [ "$kind" = syncer ] && [ "$sha_checked" = 0 ]; then
        (cd "$data/src/models" && sha256sum -- */*/model.onnx) >"$work/src.sha"
        (cd "$dest" && sha256sum -c --quiet "$work/src.sha") || { echo "sha256 of $dest differs from the source" >&2; exit 1; }
        sha_checked=1
      fi
      wait_quiet
      measure "$id" "$kind" "$bucket" "$flags" "$dest" nochange
      printf '   no-change %6.3fs\n' "$(tail -1 "$work/results" | cut -d' ' -f3)"
      rm -rf "$dest" "$work/d/.c$id-staging"
    done
  done
}

# probe: what writing the same bytes into the page cache costs in 1 MiB and in
# 8 MiB write() calls (the syncer writes a whole part at once; rclone and aws
# write small pieces). On this VM big writes cost several times the kernel CPU.
probe() {
  local bs rep d=$work/probe
  head -c $((size_mb << 20)) /dev/urandom >"$work/probe.src"
  for rep in $(seq "$reps"); do
    for bs in 1 8; do
      rm -rf "$d"; mkdir -p "$d"; sync
      [ "$drop" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
      cat "$work/probe.src" >/dev/null
      /usr/bin/time -f "$bs %S" -a -o "$work/probe.txt" bash -c \
        "for i in \$(seq $nfiles); do dd if='$work/probe.src' of='$d/f'\$i bs=${bs}M status=none; done"
    done
  done
  rm -rf "$d" "$work/probe.src"
  printf 'page-cache write probe (%d files of %d MiB, dd, median of %d): kernel CPU %.2f s in 1 MiB writes, %.2f s in 8 MiB writes\n' \
    "$nfiles" "$size_mb" "$reps" "$(awk '$1 == 1 {print $2}' "$work/probe.txt" | median)" "$(awk '$1 == 8 {print $2}' "$work/probe.txt" | median)"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; page cache dropped before each cold run: $([ "$drop" = 1 ] && echo yes || echo no)"
echo "$reps repetitions, the tools taking turns; median shown"
mkdir -p "$work/logs"
: >"$work/results"
[ "${PROBE:-1}" = 1 ] && probe
echo "== phase 1: s3://plain"
bench 0 $((${#configs[@]} - 1))

# Phase 2: the fastest syncer setting on the other buckets; rclone on single.
best=-1
for id in "${!configs[@]}"; do
  IFS='|' read -r _ _ kind _ <<<"${configs[$id]}"
  [ "$kind" = syncer ] || continue
  if [ "$best" = -1 ] || (($(echo "$(col "$id" cold 3) < $(col "$best" cold 3)" | bc))); then best=$id; fi
done
IFS='|' read -r best_label _ _ best_flags <<<"${configs[$best]}"
if [ "$quick" != 1 ]; then
  n1=${#configs[@]}
  configs+=("$best_label sha256|manifest|syncer|$best_flags")
  configs+=("$best_label md5|single|syncer|$best_flags")
  configs+=("rclone t16 md5|single|rclone|--transfers 16 --checkers 16")
  echo "== phase 2: the fastest syncer setting ($best_label) on s3://manifest (SHA-256) and s3://single (MD5); rclone on s3://single"
  bench "$n1" $((${#configs[@]} - 1))
fi

# Where the syncer's time goes, from its debug log: per version, the fetch
# (GETs, writes, hashing, the size-only fsync) and the rest (verify, fsync, publish).
breakdown() {
  local id=$1
  cat "$work"/logs/"$id"-cold-*.txt | jq -rs '
    [.[] | select(.msg == "s3: fetched") | .elapsed / 1e9] as $f |
    [.[] | select(.msg == "version published") | .duration / 1e9] as $p |
    if ($f | length) == 0 then "" else
    "fetch \(($f | add / length * 1000 | floor)) ms, verify+fsync+publish \((($p | add) - ($f | add)) / ($p | length) * 1000 | floor) ms per version (mean of \($p | length))" end' 2>/dev/null
}

echo
echo "sync benchmark: $nfiles files, $mib MiB, versitygw $versitygw_version on loopback, $(nproc) cores; median of $reps"
echo "cpu s: the client's user+sys; server: versitygw's; others: all other CPU meanwhile (kernel writeback and"
echo "  extent conversion threads working for the client, and anything else running: noise)"
printf '%-30s %-8s %7s %6s %6s %6s %6s %5s %12s %8s %6s %10s\n' config bucket "cold s" "MiB/s" "cpu s" server others "RSS M" "GET/LIST/HD" "nochg s" "cpu s" "GET/LIST/HD"
for id in "${!configs[@]}"; do
  IFS='|' read -r label bucket kind flags <<<"${configs[$id]}"
  cold=$(col "$id" cold 3)
  printf '%-30s %-8s %7.2f %6.0f %6.2f %6.2f %6.2f %5.0f %12s %8.3f %6.2f %10s\n' "$label" "$bucket" "$cold" \
    "$(echo "$mib / $cold" | bc -l)" "$(col "$id" cold 4)" "$(col "$id" cold 9)" "$(col "$id" cold 10)" \
    "$(echo "$(col "$id" cold 5) / 1024" | bc -l)" "$(col "$id" cold 6)/$(col "$id" cold 7)/$(col "$id" cold 8)" \
    "$(col "$id" nochange 3)" "$(col "$id" nochange 4)" "$(col "$id" nochange 6)/$(col "$id" nochange 7)/$(col "$id" nochange 8)"
done
echo
echo "flags:"
for id in "${!configs[@]}"; do
  IFS='|' read -r label _ kind flags <<<"${configs[$id]}"
  [ "$kind" = aws ] && flags="aws configure set default.s3.max_concurrent_requests $flags"
  printf '  %-30s %s\n' "$label" "$flags"
done
echo
echo "syncer, where the time goes (cold runs):"
for id in "${!configs[@]}"; do
  IFS='|' read -r label _ kind _ <<<"${configs[$id]}"
  [ "$kind" = syncer ] && printf '  %-30s %s\n' "$label" "$(breakdown "$id")"
done
mkdir -p .cache/bench-sync
rm -rf .cache/bench-sync/last-run && cp -r "$work/logs" .cache/bench-sync/last-run && cp "$work/results" .cache/bench-sync/last-run/results
echo "raw results and every run's log: .cache/bench-sync/last-run/"
