#!/usr/bin/python3
"""The peer of bench/match.sh: OSV matching as a user would write it in
Python, with dpkg order from python-apt (`apt_pkg.version_compare`, the
libapt-pkg C++ comparison), over the same files match_bench reads.

  match_peer.py DIR      # DIR/records.jsonl, DIR/packages.tsv

It follows freshen's rules so that the finding counts can be checked
against each other: the latest record per id, withdrawn ones dropped;
ids, aliases and a single upstream id merged into one vulnerability
(union-find), while a record with several upstream ids counts once for
each of them;
records filed under (ecosystem, source package); a package is affected
when its source version is listed in `versions` or falls in an ECOSYSTEM
range (the OSV evaluation: events in version order, introduced "0" first);
one finding per vulnerability per package. It builds no finding objects:
it counts them. Prints `key value` lines like match_bench.
"""

import functools
import json
import sys
import time

import apt_pkg

apt_pkg.init_system()
vc = apt_pkg.version_compare


def parse(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def build(records):
    latest = {}
    for r in records:
        old = latest.get(r["id"])
        if old is None or old["modified"] < r["modified"]:
            latest[r["id"]] = r
    recs = sorted((r for r in latest.values() if not r.get("withdrawn")), key=lambda r: r["id"])
    parent = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in recs:
        up = r.get("upstream", [])
        for i in up:
            parent.setdefault(i, i)
        ids = [r["id"], *r.get("aliases", []), *(up if len(up) == 1 else [])]
        for i in ids:
            parent.setdefault(i, i)
        a = find(ids[0])
        for i in ids[1:]:
            b = find(i)
            if a != b:
                parent[b] = a
    zero = functools.cmp_to_key(lambda x, y: -1 if x is None else 1 if y is None else vc(x, y))
    by_key = {}
    for r in recs:
        up = r.get("upstream", [])
        groups = sorted({find(u) for u in up}) if len(up) > 1 else [find(r["id"])]
        for a in r.get("affected", []):
            p = a.get("package") or {}
            if not p.get("ecosystem") or not p.get("name"):
                continue
            ranges = []
            for rg in a.get("ranges", []):
                if rg["type"] != "ECOSYSTEM":
                    continue
                events = []
                for e in rg.get("events", []):
                    (kind, v), = e.items()
                    if kind == "limit" and v == "*":
                        continue
                    events.append((None if kind == "introduced" and v == "0" else v, kind))
                events.sort(key=lambda e: zero(e[0]))
                ranges.append(events)
            for group in groups:
                by_key.setdefault((p["ecosystem"], p["name"]), []).append((group, ranges, a.get("versions", [])))
    return by_key


def in_range(events, v):
    affected = False
    for at, kind in events:
        c = -1 if at is None else vc(at, v)
        if kind == "introduced":
            if c <= 0:
                affected = True
        elif kind == "fixed":
            if c <= 0:
                affected = False
        elif kind == "last_affected":
            if c < 0:
                affected = False
        elif kind == "limit":
            if c <= 0:
                return False
    return affected


def match(by_key, path):
    findings = affected_pkgs = packages = 0
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    t = time.perf_counter()
    for _image, name, version, source, source_version, os_ in rows:
        packages += 1
        entries = by_key.get((os_, source or name))
        if not entries:
            continue
        v = source_version or version
        groups = set()
        for group, ranges, versions in entries:
            if group in groups:
                continue
            if any(vc(v, x) == 0 for x in versions) or any(in_range(r, v) for r in ranges):
                groups.add(group)
        findings += len(groups)
        affected_pkgs += bool(groups)
    return time.perf_counter() - t, packages, findings, affected_pkgs


def main():
    d = sys.argv[1]
    t = time.perf_counter()
    records = parse(f"{d}/records.jsonl")
    parse_s = time.perf_counter() - t
    t = time.perf_counter()
    by_key = build(records)
    build_s = time.perf_counter() - t
    match_s, packages, findings, affected = match(by_key, f"{d}/packages.tsv")
    print(f"records {len(records)}")
    print(f"packages {packages}")
    print(f"findings {findings}")
    print(f"affected_packages {affected}")
    print(f"parse_s {parse_s:.4f}")
    print(f"build_s {build_s:.4f}")
    print(f"match_s {match_s:.4f}")


if __name__ == "__main__":
    main()
