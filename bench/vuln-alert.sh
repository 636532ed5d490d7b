#!/usr/bin/env bash
# Benchmark (not a test): issue 15's "Measure". The time from a feed sync to
# the alert, on an inventory of IMAGES images on shared bases, against the
# time to import the same data.
#
#  1. Setup (not measured, but timed):
#     - a local Distribution registry (Debian's `docker-registry`);
#     - three small Debian bookworm bases, built with buildah (`FROM scratch`
#       + `var/lib/dpkg/status` + `etc/os-release`, from the fixture
#       crates/sbom/tests/fixtures/dpkg/status, 794 packages): `base-a` and
#       `base-b` hold openssl 3.0.11-1~deb12u1 (vulnerable to CVE-2023-5363,
#       DSA-5532-1), `base-c` the fixed 3.0.19-1~deb12u2;
#     - IMAGES apps `apps/app-NNNN:1`, app i on base (a, b, c)[i % 3]: the
#       base's layers (cross-repository mount) plus one tiny layer of its own,
#       so each app is its own digest; pushed with plain HTTP calls;
#     - `freshen scan --registry --repo-prefix apps/ --all --concurrency
#       SCAN_CONCURRENCY` into a template database, per store;
#     - a Debian OSV export, `Debian/all.zip`: the real-schema records of
#       crates/vuln/tests/fixtures/osv/debian/ plus RECORDS synthetic but
#       schema-valid ones (DEBIAN-CVE-* and DSA-*, on the fixture's source
#       packages and on made-up ones, for Debian:11/12/13; none of them makes
#       an image act under `high > 0`), served by a small Python
#       http.server that logs each request's arrival time.
#  2. RUNS rounds, each store (SQLite; and PostgreSQL with POSTGRES=1), each
#     on fresh copies of the template database:
#     (a) import only: `freshen vulns import all.zip` with a config whose
#         policy (`thresholds: "high > 0"`) has no `on_vulnerable`;
#     (b) sync to alert: `freshen watch` with `feeds: {osv: {url: ...}}`, a
#         webhook trigger `alert` posting to a Python receiver that logs each
#         arrival, and `policy: {mode: thresholds, thresholds: "high > 0",
#         on_vulnerable: [alert]}`. The daemon's feed job syncs at start,
#         judges the inventory and delivers; timed from the process start
#         and from the feed request's arrival to the first and the Nth alert
#         (N = the apps on base-a and base-b), with the daemon's own log
#         (`--log-format json`) splitting the time: download and import,
#         judging, recording the events, delivering.
#  3. Prints each round, the medians and the ratio (b)/(a).
#
#   bash bench/vuln-alert.sh                 # about 4 min here, build excluded
#   RUNS=3 IMAGES=300 bash bench/vuln-alert.sh
#   POSTGRES=1 bash bench/vuln-alert.sh      # PostgreSQL too (127.0.0.1:5432, user postgres, trust)
#   PGURL='postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432' POSTGRES=only bash bench/vuln-alert.sh   # over the socket
#
# Knobs (environment): IMAGES=1000 RUNS=5 RECORDS=5000 SEED=1
# POSTGRES=0|1|only (1: PostgreSQL rounds beside SQLite ones; only: just
# PostgreSQL) PGURL=postgres://postgres@127.0.0.1:5432 SCAN_CONCURRENCY=8
# ALERT_TIMEOUT=900 (s, per round) TIME_LIMIT=3600 (s, whole script) KEEP=0
# (1: keep the temp dir) BUILD=1 (0: use the binary as it is). The binary is
# $CARGO_TARGET_DIR/release/freshen (default target/).
#
# Loopback only. Everything it starts (registry, OSV server, receiver,
# freshen daemons, watchdog) is stopped on exit, and the PostgreSQL
# databases it creates are dropped. It writes only into a temp dir
# (buildah's storage and freshen's scratch directories included) and
# cargo's target dir. Needs: cargo, docker-registry, buildah, curl, python3,
# root (buildah); psql with POSTGRES=1.
set -euo pipefail

IMAGES=${IMAGES:-1000}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-5000}
SEED=${SEED:-1}
POSTGRES=${POSTGRES:-0}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
SCAN_CONCURRENCY=${SCAN_CONCURRENCY:-8}
ALERT_TIMEOUT=${ALERT_TIMEOUT:-900}
TIME_LIMIT=${TIME_LIMIT:-3600}
KEEP=${KEEP:-0}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FRESHEN="$TARGET/release/freshen"
STATUS_FIXTURE="$ROOT/crates/sbom/tests/fixtures/dpkg/status"
OSV_FIXTURES="$ROOT/crates/vuln/tests/fixtures/osv/debian"

say() { printf '%s\n' "$*"; }
die() {
  printf 'vuln-alert-bench: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need cargo "rustup/cargo"
need docker-registry "apt-get install docker-registry"
need buildah "apt-get install buildah"
need curl "apt-get install curl"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || die "needs root (buildah)"
case "$POSTGRES" in
  0) STORES="sqlite" ;;
  1) STORES="sqlite postgres" ;;
  only) STORES="postgres" ;;
  *) die "POSTGRES=$POSTGRES: 0, 1 or only" ;;
esac
case " $STORES " in *" postgres "*) need psql "apt-get install postgresql-client" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-vuln-alert-bench.XXXXXX")
# freshen's feed scratch directories (tempfile) go here too.
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
PIDS=()
WPID="" # the daemon of the round in progress
PG_DBS=()
WATCHDOG_PID=""
BUILDAH=(buildah --root "$WORK/containers" --runroot "$WORK/run" --storage-driver vfs)
stop() { # $1: pid
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
psql_admin() { psql "$PGURL/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }
drop_pg() { # $1: database
  psql_admin -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$WPID"
  for p in "${PIDS[@]}"; do stop "$p"; done
  for d in "${PG_DBS[@]}"; do drop_pg "$d"; done
  if [ -d "$WORK/containers" ]; then
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  stop "$WATCHDOG_PID"
  if [ "$KEEP" = 1 ]; then say "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MAIN_PID=$$
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIME_LIMIT" &
  sp=$!
  wait "$sp"
  trap - TERM
  echo "vuln-alert-bench: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR == 1 {lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # $1: url, $2: what
  for _ in $(seq 200); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not start"
}
cpu_s() { # $1: pid; user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo nan
}
load() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------- helper
HELPER=$WORK/helper.py
cat >"$HELPER" <<'PY'
"""Helpers for bench/vuln-alert.sh (a benchmark, not a test)."""
import gzip, hashlib, http.client, io, json, os, random, re, sys, tarfile, threading, time, zipfile
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer


def push(host, n, work):
    """IMAGES apps, app i on bases[i % 3]: mounted base layers + one tiny layer."""
    n = int(n)
    h, p = host.split(":")
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
    bases = ["bench/base-a", "bench/base-b", "bench/base-c"]

    def req(c, method, path, body=None, headers=None, want=(200, 201, 202)):
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if r.status not in want:
            raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
        return r, data

    c = http.client.HTTPConnection(h, int(p), timeout=60)
    base = {}
    for b in bases:
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        _, m = req(c, "GET", f"/v2/{b}/manifests/1", headers={"Accept": accept})
        m = json.loads(m)
        _, cfg = req(c, "GET", f"/v2/{b}/blobs/{m['config']['digest']}")
        base[b] = (m, json.loads(cfg))
    out = open(f"{work}/apps.tsv", "w")
    lock = threading.Lock()

    def upload(c, repo, blob):
        d = sha(blob)
        r, _ = req(c, "POST", f"/v2/{repo}/blobs/uploads/")
        loc = r.getheader("Location").split(host, 1)[-1]
        req(c, "PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", blob,
            {"Content-Type": "application/octet-stream"})
        return d

    def app(i, c):
        b = bases[i % 3]
        m, cfg = base[b]
        repo = f"apps/app-{i:04d}"
        for l in m["layers"]:
            req(c, "POST", f"/v2/{repo}/blobs/uploads/?mount={l['digest']}&from={b}")
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            data = f"app {i}\n".encode()
            ti = tarfile.TarInfo("etc/bench-app")
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            t.addfile(ti, io.BytesIO(data))
        raw = raw.getvalue()
        gz = gzip.compress(raw, mtime=0)
        ld = upload(c, repo, gz)
        cfg = json.loads(json.dumps(cfg))
        cfg["rootfs"]["diff_ids"].append(sha(raw))
        cfg.setdefault("history", []).append({"created_by": f"COPY app {i}"})
        cfg = json.dumps(cfg, separators=(",", ":")).encode()
        cd = upload(c, repo, cfg)
        mt = m.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        docker = "docker" in mt
        lmt = "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else "application/vnd.oci.image.layer.v1.tar+gzip"
        man = {"schemaVersion": 2, "mediaType": mt,
               "config": {"mediaType": m["config"]["mediaType"], "digest": cd, "size": len(cfg)},
               "layers": m["layers"] + [{"mediaType": lmt, "digest": ld, "size": len(gz)}]}
        req(c, "PUT", f"/v2/{repo}/manifests/1", json.dumps(man).encode(), {"Content-Type": mt})
        with lock:
            out.write(f"{repo}:1\t{b}\n")

    def worker(k):
        c = http.client.HTTPConnection(h, int(p), timeout=60)
        for i in range(k, n, 8):
            app(i, c)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    out.close()


def parse_status(path):
    """(source, source version) of each package of a dpkg status file."""
    out = set()
    for para in open(path).read().split("\n\n"):
        f = {}
        for line in para.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1)
                f[k] = v.strip()
        if "Package" not in f:
            continue
        v = f.get("Version", "")
        src = f.get("Source", f["Package"])
        m = re.match(r"^(\S+) \((.*)\)$", src)
        if m:
            src, v = m.group(1), m.group(2)
        out.add((src, v))
    return sorted(out)


def gen(status, fixtures, n, seed, out):
    """Debian/all.zip: the fixture records plus n synthetic ones."""
    rnd = random.Random(int(seed))
    n = int(n)
    pkgs = [p for p in parse_status(status) if p[0] != "openssl"]
    made_up = [f"benchpkg{i:04d}" for i in range(1500)]
    CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"    # 9.8
    HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"    # 7.5
    MED = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N"     # 4.4
    LOW = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"     # 3.1
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    words = ("buffer overflow use-after-free integer overflow null pointer dereference out-of-bounds read "
             "denial of service crafted input remote attacker memory corruption heap stack parser").split()
    records = []
    stats = {"affecting_debian12_images": 0}
    for k in range(n):
        year = 2018 + k % 8
        cve = f"CVE-{year}-{50000 + k}"
        dsa = k % 10 == 9
        rid = f"DSA-{6000 + k // 10}-1" if dsa else f"DEBIAN-CVE-{year}-{50000 + k}"
        upstream = [cve] + ([f"CVE-{year}-{90000 + k}"] if dsa and k % 20 == 19 else [])
        pub = t0 + timedelta(hours=rnd.randrange(0, 24 * 700))
        real = rnd.random() < 0.6
        affected = []
        sev = None
        if real:
            src, ver = rnd.choice(pkgs)
            for eco, p in (("Debian:11", 0.6), ("Debian:12", 0.95), ("Debian:13", 0.9)):
                if rnd.random() > p:
                    continue
                ev = [{"introduced": "0"}]
                if eco == "Debian:12":
                    if rnd.random() < 0.08:
                        # A later stable update: the images are affected,
                        # at low or medium severity (under `high > 0`).
                        ev.append({"fixed": ver + "+bench1"})
                        sev = rnd.choice([LOW, MED])
                        stats["affecting_debian12_images"] += 1
                    else:
                        # Fixed below what the images hold.
                        ev.append({"fixed": ver + "~bench1"})
                elif rnd.random() < 0.85:
                    ev.append({"fixed": ver + ("~bench1" if eco == "Debian:11" else "+bench2")})
                a = {"package": {"ecosystem": eco, "name": src}, "ranges": [{"type": "ECOSYSTEM", "events": ev}]}
                if dsa:
                    a["package"]["purl"] = f"pkg:deb/debian/{src}?arch=source"
                affected.append(a)
        if not affected:
            src = rnd.choice(made_up)
            for eco in ("Debian:11", "Debian:12", "Debian:13"):
                ev = [{"introduced": "0"}]
                if rnd.random() < 0.8:
                    ev.append({"fixed": f"{rnd.randrange(1, 9)}.{rnd.randrange(0, 30)}-{rnd.randrange(1, 5)}"})
                affected.append({"package": {"ecosystem": eco, "name": src},
                                 "ranges": [{"type": "ECOSYSTEM", "events": ev}]})
        if sev is None:
            sev = rnd.choice([CRIT, HIGH, HIGH, MED, MED, LOW, None])
        details = " ".join(rnd.choice(words) for _ in range(rnd.randrange(15, 60))).capitalize() + "."
        r = {"schema_version": "1.6.0", "id": rid, "modified": iso(pub + timedelta(days=rnd.randrange(1, 200))),
             "published": iso(pub), "upstream": upstream}
        if dsa:
            r["summary"] = f"{affected[0]['package']['name']} - security update"
        r["details"] = details
        if sev:
            r["severity"] = [{"type": "CVSS_V3", "score": sev}]
        r["affected"] = affected
        r["references"] = [{"type": "ADVISORY", "url": f"https://security-tracker.debian.org/tracker/{cve}"}]
        records.append(r)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    raw = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(os.listdir(fixtures)):
            data = open(os.path.join(fixtures, f), "rb").read()
            raw += len(data)
            z.writestr(f, data)
        seen = set()
        for r in records:
            if r["id"] in seen:  # a DSA id spans 10 records: keep the first
                continue
            seen.add(r["id"])
            data = json.dumps(r, indent=2).encode()
            raw += len(data)
            z.writestr(f"{r['id']}.json", data)
    total = len(seen) + len(os.listdir(fixtures))
    print(f"records {total} fixtures {len(os.listdir(fixtures))} synthetic {len(seen)} "
          f"json_bytes {raw} zip_bytes {os.path.getsize(out)} "
          f"synthetic_affecting_debian12 {stats['affecting_debian12_images']} sources {len(pkgs)}")


def serve(directory, port, log):
    """The OSV export: GET /<Ecosystem>/all.zip (Last-Modified, 304), each request logged."""
    out = open(log, "a", buffering=1)

    class H(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def do_GET(self):
            # "<arrival> GET <path> <status> <body sent>"
            t = time.time()
            self._code = "-"
            super().do_GET()
            out.write(f"{t:.6f} GET {self.path} {self._code} {time.time():.6f}\n")

        def send_response(self, code, message=None):
            self._code = code
            super().send_response(code, message)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


def receive(port, log):
    """The alert receiver: answers 200, logs "<arrival> <reference> <source> <event id>"."""
    out = open(log, "a", buffering=1)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            t = time.time()
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            ref, source = "-", "-"
            try:
                v = json.loads(body)
                ref = v.get("reference") or "-"
                source = v.get("source") or "-"
            except ValueError:
                pass
            out.write(f"{t:.6f} {ref} {source} {self.headers.get('X-Freshen-Event-Id', '-')}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


def logtimes(log):
    """From the daemon's JSON log: epoch of the feed synced, the first and
    last vulnerability event recorded, and "new data made images act"."""
    first = {}
    last = {}
    events = 0
    for line in open(log):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        msg = v.get("fields", {}).get("message", "")
        ts = v.get("timestamp")
        if not ts:
            continue
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        key = {"feed synced": "synced", "vulnerability event": "event",
               "new data made images act": "acted"}.get(msg)
        if key:
            first.setdefault(key, t)
            last[key] = t
            if key == "event":
                events += 1
    g = lambda d, k: f"{d[k]:.6f}" if k in d else "nan"
    print(g(first, "synced"), g(first, "event"), g(last, "event"), g(first, "acted"), events)


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    {"push": push, "gen": gen, "serve": serve, "receive": receive, "logtimes": logtimes}[what](*args)
PY

say "== freshen: feed sync to alert vs import, $IMAGES images"
say "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified in the work tree)"
say "cpus:     $(nproc) ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "registry: $(docker-registry --version 2>/dev/null | head -1), buildah $(buildah --version | awk '{print $3}')"
say "settings: IMAGES=$IMAGES RUNS=$RUNS RECORDS=$RECORDS SEED=$SEED stores: $STORES SCAN_CONCURRENCY=$SCAN_CONCURRENCY"
say

if [ "$BUILD" = 1 ]; then
  say "== building: cargo build --release -p freshen (target dir $TARGET)"
  (cd "$ROOT" && timeout 2400 cargo build --release -p freshen) >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
fi
[ -x "$FRESHEN" ] || die "no binary at $FRESHEN"

# ---------------------------------------------------------------- registry
REG_PORT=$(free_port)
HOST="127.0.0.1:$REG_PORT"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
http:
  addr: $HOST
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=("$!")
wait_http "http://$HOST/v2/" "the registry"

# ---------------------------------------------------------------- bases and apps
say "== bases: FROM scratch + dpkg status ($(grep -c '^Package:' "$STATUS_FIXTURE") packages) + os-release (bookworm), buildah"
t0=$(now)
build_base() { # $1: name, $2: sed expression on the status
  local ctx=$WORK/ctx-$1
  mkdir -p "$ctx/var/lib/dpkg" "$ctx/etc"
  sed "$2" "$STATUS_FIXTURE" >"$ctx/var/lib/dpkg/status"
  printf 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n' >"$ctx/etc/os-release"
  printf 'FROM scratch\nCOPY var /var\nCOPY etc /etc\n' >"$ctx/Containerfile"
  "${BUILDAH[@]}" bud -q --isolation chroot -f "$ctx/Containerfile" -t "localhost/bench/$1:1" "$ctx" >/dev/null
  "${BUILDAH[@]}" push -q --tls-verify=false "localhost/bench/$1:1" "docker://$HOST/bench/$1:1"
  say "   bench/$1:1: openssl $(awk '/^Package: openssl$/ {p=1} p && /^Version:/ {print $2; exit}' "$ctx/var/lib/dpkg/status")"
}
# a: vulnerable; b: vulnerable, another point release (base-files); c: fixed.
build_base base-a 's/^Version: 3.0.19-1~deb12u2$/Version: 3.0.11-1~deb12u1/'
build_base base-b 's/^Version: 3.0.19-1~deb12u2$/Version: 3.0.11-1~deb12u1/; s/^Version: 12.4+deb12u11$/Version: 12.4+deb12u10/'
build_base base-c 's/^x$/x/'
say "   built and pushed in $(calc '%.1f' "$(now) - $t0") s"
t0=$(now)
timeout 900 python3 "$HELPER" push "$HOST" "$IMAGES" "$WORK" || die "pushing the apps failed"
N=$(awk -F'\t' '$2 != "bench/base-c"' "$WORK/apps.tsv" | wc -l)
say "== $IMAGES apps apps/app-NNNN:1 (base layers mounted + one tiny layer each) pushed in $(calc '%.1f' "$(now) - $t0") s"
say "   on base-a: $(grep -c 'base-a$' "$WORK/apps.tsv"), base-b: $(grep -c 'base-b$' "$WORK/apps.tsv"), base-c: $(grep -c 'base-c$' "$WORK/apps.tsv"); vulnerable (expected alerts per round): N = $N"

# ---------------------------------------------------------------- OSV data
say "== OSV data: Debian/all.zip"
mkdir -p "$WORK/osv/Debian"
ZIP=$WORK/osv/Debian/all.zip
python3 "$HELPER" gen "$STATUS_FIXTURE" "$OSV_FIXTURES" "$RECORDS" "$SEED" "$ZIP" >"$WORK/gen.out"
read -r _ NREC _ NFIX _ NSYN _ JSONB _ ZIPB _ NAFF _ NSRC <"$WORK/gen.out"
say "   $NREC records ($NFIX fixtures + $NSYN synthetic on $NSRC fixture source packages and made-up ones), $(calc '%.1f' "$JSONB / 1048576") MiB of JSON, all.zip $(calc '%.2f' "$ZIPB / 1048576") MiB; $NAFF synthetic entries affect the images at low/medium severity"
OSV_PORT=$(free_port)
: >"$WORK/osv.log"
python3 "$HELPER" serve "$WORK/osv" "$OSV_PORT" "$WORK/osv.log" 2>"$WORK/osv.err" &
PIDS+=("$!")
wait_http "http://127.0.0.1:$OSV_PORT/Debian/all.zip" "the OSV server"
RECV_PORT=$(free_port)
: >"$WORK/alerts.log"
python3 "$HELPER" receive "$RECV_PORT" "$WORK/alerts.log" 2>"$WORK/receiver.err" &
PIDS+=("$!")
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$RECV_PORT") 2>/dev/null && break
  sleep 0.1
done

# ---------------------------------------------------------------- configs
cat >"$WORK/import.yaml" <<EOF
policy:
  mode: thresholds
  thresholds: "high > 0"
EOF
cat >"$WORK/watch.yaml" <<EOF
jitter: 0s
triggers:
  alert:
    webhook: {url: "http://127.0.0.1:$RECV_PORT/alert", timeout: 10s}
policy:
  mode: thresholds
  thresholds: "high > 0"
  on_vulnerable: [alert]
feeds:
  osv:
    url: http://127.0.0.1:$OSV_PORT
EOF

# ---------------------------------------------------------------- template databases
PGTAG="freshen_vab_$$"
db_url() { # $1: store, $2: name
  case "$1" in
    sqlite) echo "sqlite://$WORK/db/$2.db" ;;
    postgres) echo "$PGURL/${PGTAG}_$2" ;;
  esac
}
db_fresh() { # $1: store, $2: name; a copy of the template
  case "$1" in
    sqlite)
      for f in "$WORK/db/tpl.db"*; do cp "$f" "$WORK/db/$2.db${f#"$WORK/db/tpl.db"}"; done
      ;;
    postgres)
      PG_DBS+=("${PGTAG}_$2")
      psql_admin -c "CREATE DATABASE \"${PGTAG}_$2\" TEMPLATE \"${PGTAG}_tpl\"" >/dev/null
      ;;
  esac
}
db_drop() { # $1: store, $2: name
  case "$1" in
    sqlite) rm -f "$WORK/db/$2.db"* ;;
    postgres) drop_pg "${PGTAG}_$2" ;;
  esac
}
mkdir -p "$WORK/db" "$WORK/data"
export FRESHEN_DATA_DIR=$WORK/data
declare -A SCAN_S
for store in $STORES; do
  if [ "$store" = postgres ]; then
    PG_DBS+=("${PGTAG}_tpl")
    psql_admin -c "CREATE DATABASE \"${PGTAG}_tpl\"" >/dev/null
  fi
  t0=$(now)
  "$FRESHEN" --database "$(db_url "$store" tpl)" scan --registry "$HOST" --repo-prefix apps/ --all \
    --concurrency "$SCAN_CONCURRENCY" --json >"$WORK/scan-$store.json" 2>"$WORK/scan-$store.err" ||
    { tail "$WORK/scan-$store.err" >&2; die "scan failed ($store)"; }
  SCAN_S[$store]=$(calc '%.2f' "$(now) - $t0")
  if [ "$store" = sqlite ]; then
    # The scan leaves its write-ahead log behind (gigabytes for 1,000
    # images): fold it into the template once, so that each round copies
    # the database alone and opens it without a log to recover.
    say "   sqlite template after the scan: $(du -b "$WORK/db/tpl.db"* | awk '{sub(".*/", "", $2); printf "%s %.1f MiB; ", $2, $1 / 1048576}')"
    t1=$(now)
    python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); print("   checkpoint (busy, log, checkpointed):", c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()); c.close()' "$WORK/db/tpl.db"
    say "   after PRAGMA wal_checkpoint(TRUNCATE) ($(calc '%.1f' "$(now) - $t1") s): $(du -b "$WORK/db/tpl.db"* | awk '{sub(".*/", "", $2); printf "%s %.1f MiB; ", $2, $1 / 1048576}')"
  fi
  imgs=$(python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
print(len(v) if isinstance(v, list) else len(v.get("images", v.get("scanned", []))))' "$WORK/scan-$store.json" 2>/dev/null || echo "?")
  say "== inventory ($store): freshen scan --registry --repo-prefix apps/ --all --concurrency $SCAN_CONCURRENCY: ${SCAN_S[$store]} s (not measured below); images in the report: $imgs"
done
say

# ---------------------------------------------------------------- rounds
RESULTS=$WORK/results
: >"$RESULTS"
# results, one line per measurement:
#   import  store round wall_s added load
#   alert   store round t_start t_req t_served t_synced t_ev1 t_evN t_acted t_first t_last received events cpu_s load
say "== $RUNS rounds; each: (a) vulns import, (b) watch from start to the ${N}th alert; fresh databases"
for round in $(seq "$RUNS"); do
  for store in $STORES; do
    # (a) import only
    db_fresh "$store" "imp$round"
    l0=$(load)
    t0=$(now)
    "$FRESHEN" --database "$(db_url "$store" "imp$round")" --config "$WORK/import.yaml" vulns import "$ZIP" --json \
      >"$WORK/import-$store-$round.json" 2>"$WORK/import-$store-$round.err" ||
      { cat "$WORK/import-$store-$round.err" >&2; die "vulns import failed"; }
    t1=$(now)
    wall=$(calc '%.3f' "$t1 - $t0")
    added=$(python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
def find(v):
    if isinstance(v, dict):
        for k in ("added", "records_added"):
            if isinstance(v.get(k), int): return v[k]
        for x in v.values():
            r = find(x)
            if r is not None: return r
    if isinstance(v, list):
        s = [find(x) for x in v]
        s = [x for x in s if x is not None]
        return sum(s) if s else None
    return None
print(find(v))' "$WORK/import-$store-$round.json" 2>/dev/null || echo "?")
    echo "import $store $round $wall $added $l0" >>"$RESULTS"
    db_drop "$store" "imp$round"

    # (b) sync to alert
    db_fresh "$store" "al$round"
    l0=$(load)
    a_off=$(wc -l <"$WORK/alerts.log")
    o_off=$(wc -l <"$WORK/osv.log")
    wlog=$WORK/watch-$store-$round.log
    t_start=$(now)
    FRESHEN_DATABASE="$(db_url "$store" "al$round")" \
      "$FRESHEN" watch --config "$WORK/watch.yaml" --log info --log-format json >"$WORK/watch-$store-$round.out" 2>"$wlog" &
    WPID=$!
    deadline=$((EPOCHSECONDS + ALERT_TIMEOUT))
    while [ "$(($(wc -l <"$WORK/alerts.log") - a_off))" -lt "$N" ]; do
      kill -0 "$WPID" 2>/dev/null || { tail "$wlog" >&2; die "round $round ($store): the daemon exited"; }
      [ "$EPOCHSECONDS" -lt "$deadline" ] || { tail "$wlog" >&2; die "round $round ($store): $(($(wc -l <"$WORK/alerts.log") - a_off)) of $N alerts after ${ALERT_TIMEOUT}s"; }
      sleep 0.02
    done
    cpu=$(cpu_s "$WPID")
    sleep 1 # any alert beyond N would show here
    stop "$WPID"
    WPID=""
    read -r t_req t_served < <(tail -n +"$((o_off + 1))" "$WORK/osv.log" | awk '$3 == "/Debian/all.zip" && !n++ {print $1, $5}')
    read -r t_synced t_ev1 t_evN t_acted events < <(python3 "$HELPER" logtimes "$wlog")
    tail -n +"$((a_off + 1))" "$WORK/alerts.log" >"$WORK/alerts-$store-$round.log"
    received=$(wc -l <"$WORK/alerts-$store-$round.log")
    distinct=$(awk '{print $2}' "$WORK/alerts-$store-$round.log" | sort -u | wc -l)
    t_first=$(awk 'NR == 1 || $1 < m {m = $1} END {print m}' "$WORK/alerts-$store-$round.log")
    t_last=$(awk '{print $1}' "$WORK/alerts-$store-$round.log" | sort -g | sed -n "${N}p")
    echo "alert $store $round $t_start ${t_req:-nan} ${t_served:-nan} $t_synced $t_ev1 $t_evN $t_acted $t_first $t_last $received $events $cpu $l0" >>"$RESULTS"
    [ "$distinct" = "$received" ] || say "   round $round ($store): $received alerts for $distinct distinct images"
    db_drop "$store" "al$round"
    awk -v s="$store" -v r="$round" -v w="$wall" -v ts="$t_start" -v tq="${t_req:-nan}" -v tv="${t_served:-nan}" -v sy="$t_synced" \
      -v e1="$t_ev1" -v eN="$t_evN" -v tf="$t_first" -v tl="$t_last" -v rc="$received" -v cpu="$cpu" -v l="$l0" 'BEGIN {
      printf "  #%s %-8s (a) import %6.2f s | (b) start->request %5.2f, request->synced %5.2f, synced->1st event %6.2f, events %5.2f, ->1st alert %5.2f, ->Nth alert %6.2f (from start %6.2f); %d alerts, daemon cpu %s s (load %s)\n",
        r, s, w, tq - ts, sy - tq, e1 - sy, eN - e1, tf - eN, tl - tf, tl - ts, rc, cpu, l}'
  done
done
say

# ---------------------------------------------------------------- summary
col() { # $1: store, $2: awk expression over the alert line's fields
  awk -v s="$1" '$1 == "alert" && $2 == s {print '"$2"'}' "$RESULTS" | median
}
say "== summary: $IMAGES images ($N vulnerable), $NREC OSV records ($(calc '%.2f' "$ZIPB / 1048576") MiB zip, $(calc '%.1f' "$JSONB / 1048576") MiB JSON); medians of $RUNS rounds, seconds"
say "   load average (1 min) at the measurements' starts: $(awk '{print $NF}' "$RESULTS" | sort -g | tr '\n' ' ')"
for store in $STORES; do
  imp=$(awk -v s="$store" '$1 == "import" && $2 == s {print $4}' "$RESULTS" | median)
  from_start=$(col "$store" '$12 - $4')
  from_req=$(col "$store" '$12 - $5')
  say "-- $store (inventory scan, once: ${SCAN_S[$store]} s)"
  printf '  %-62s %8.2f  (%s)\n' "(a) freshen vulns import all.zip" "$imp" \
    "$(awk -v s="$store" '$1 == "import" && $2 == s {print $4}' "$RESULTS" | minmax)"
  printf '  %-62s %8.2f\n' "(b) daemon start -> feed request at the server" "$(col "$store" '$5 - $4')"
  printf '  %-62s %8.2f\n' "    request -> archive sent" "$(col "$store" '$6 - $5')"
  printf '  %-62s %8.2f\n' "    request -> \"feed synced\" (download + import)" "$(col "$store" '$7 - $5')"
  printf '  %-62s %8.2f\n' "    synced -> first event recorded (judging $IMAGES images)" "$(col "$store" '$8 - $7')"
  printf '  %-62s %8.2f\n' "    first -> last event recorded ($N events)" "$(col "$store" '$9 - $8')"
  printf '  %-62s %8.2f\n' "    last event -> first alert received" "$(col "$store" '$11 - $9')"
  printf '  %-62s %8.2f\n' "    first -> Nth alert received (delivery)" "$(col "$store" '$12 - $11')"
  printf '  %-62s %8.2f\n' "    last event -> Nth alert (deliveries may start earlier)" "$(col "$store" '$12 - $9')"
  printf '  %-62s %8.2f\n' "(b) request -> first alert" "$(col "$store" '$11 - $5')"
  printf '  %-62s %8.2f  (%s)\n' "(b) request -> Nth alert" "$from_req" \
    "$(awk -v s="$store" '$1 == "alert" && $2 == s {print $12 - $5}' "$RESULTS" | minmax)"
  printf '  %-62s %8.2f\n' "(b) process start -> first alert" "$(col "$store" '$11 - $4')"
  printf '  %-62s %8.2f  (%s)\n' "(b) process start -> Nth alert" "$from_start" \
    "$(awk -v s="$store" '$1 == "alert" && $2 == s {print $12 - $4}' "$RESULTS" | minmax)"
  printf '  %-62s %8.2f\n' "(b) daemon CPU until the Nth alert (user + system)" "$(col "$store" '$15')"
  printf '  %-62s %8s\n' "(b) alerts received per round / events logged" "$(col "$store" '$13') / $(col "$store" '$14')"
  say "  ratio (b) start->Nth alert / (a) import: $(calc '%.2f' "$from_start / $imp")x; from the request: $(calc '%.2f' "$from_req / $imp")x"
  say "  paired per round (median): $(awk -v s="$store" '$1 == "import" && $2 == s {a[$3] = $4} $1 == "alert" && $2 == s {b[$3] = $12 - $4}
    END {for (r in b) if (a[r] > 0) print b[r] / a[r]}' "$RESULTS" | median)x"
done
say
say "raw:"
sed 's/^/  /' "$RESULTS"
