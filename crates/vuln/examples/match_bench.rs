//! Benchmark (not a test) of OSV matching at fleet scale: `bench/match.sh`
//! drives it and compares it with its peers.
//!
//! ```text
//! match_bench gen --universe U.tsv --out DIR [--seed 1] [--records 50000]
//!                 [--images 100] [--per-image 10000]
//! match_bench run --data DIR [--digest]
//! ```
//!
//! `gen` makes, deterministically from the seed and a universe of real
//! Debian binary packages (`name\tversion\tsource\tsource_version`, one a
//! line, e.g. from the apt lists), a Debian-shaped OSV set and a fleet:
//! - `DIR/records.jsonl`: one record a line, in the text freshen's store
//!   keeps (`serde_json::to_string` of a parsed [`Record`]);
//! - `DIR/packages.tsv`: `image\tname\tversion\tsource\tsource_version\tos`.
//!
//! `run` reads both and measures, in one process: (c) `Record::parse` of
//! every line, (a) `Index::new` over the parsed records, (b)
//! `Index::matches` for every package (as `inventory::vulns::match_packages`
//! does), and a floor: the same lookups in a plain `HashMap` with no version
//! comparison and no finding built. It prints one `key value` line each.
//! `--digest` adds an untimed second pass that hashes every finding (its
//! JSON), to check that a change to matching changed no result.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use freshen_vuln::{Index, Installed, Record};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let num = |name: &str, default: usize| -> usize {
        opt(name).map_or(default, |v| v.parse().expect("a number"))
    };
    match args.first().map(String::as_str) {
        Some("gen") => generate(&Gen {
            universe: PathBuf::from(opt("--universe").expect("--universe FILE")),
            out: PathBuf::from(opt("--out").expect("--out DIR")),
            seed: num("--seed", 1) as u64,
            records: num("--records", 50_000),
            images: num("--images", 100),
            per_image: num("--per-image", 10_000),
        }),
        Some("run") => run(
            Path::new(&opt("--data").expect("--data DIR")),
            args.iter().any(|a| a == "--digest"),
        ),
        _ => {
            eprintln!(
                "usage: match_bench gen --universe U.tsv --out DIR [--seed N] [--records N] [--images N] [--per-image N]\n       match_bench run --data DIR"
            );
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------- generator

struct Gen {
    universe: PathBuf,
    out: PathBuf,
    seed: u64,
    records: usize,
    images: usize,
    per_image: usize,
}

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone)]
struct Bin {
    name: String,
    version: String,
    source: String,
    source_version: String,
}

/// Sources that get the most Debian CVE entries, most first (Zipf ranks
/// 1..): the kernel far ahead, then browsers, mail, media and runtimes.
const HEAVY: &[&str] = &[
    "linux",
    "chromium",
    "firefox-esr",
    "thunderbird",
    "imagemagick",
    "php8.2",
    "qemu",
    "openjdk-17",
    "wireshark",
    "binutils",
    "webkit2gtk",
    "ffmpeg",
    "xen",
    "tcpdump",
    "mariadb",
    "tiff",
    "libxml2",
    "ghostscript",
    "vim",
    "curl",
    "openssl",
    "samba",
    "glibc",
    "python3.11",
    "poppler",
    "libreoffice",
    "sqlite3",
    "gimp",
    "emacs",
    "ruby3.1",
    "golang-1.19",
    "nodejs",
    "tomcat10",
    "libvpx",
    "mupdf",
];

/// CVSS v3.1 vectors seen on real Debian/NVD entries (base 9.8, 7.5, 5.5, 6.1, 8.8, 3.3).
const VECTORS: &[&str] = &[
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
    "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N",
];

/// `[epoch:]rest`.
fn split_epoch(v: &str) -> (&str, &str) {
    match v.split_once(':') {
        Some((e, r)) => (&v[..e.len() + 1], r),
        None => ("", v),
    }
}

/// A lower version: the last non-zero digit run after the epoch, minus
/// one (`3.0.11-1~deb12u2` -> `3.0.11-1~deb12u1`, `2.36-9` -> `2.36-8`).
fn lower(v: &str) -> String {
    let (epoch, rest) = split_epoch(v);
    let b = rest.as_bytes();
    let mut end = b.len();
    while end > 0 {
        if b[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0 && b[start - 1].is_ascii_digit() {
                start -= 1;
            }
            if let Ok(n) = rest[start..end].parse::<u64>()
                && n > 0
            {
                return format!("{epoch}{}{}{}", &rest[..start], n - 1, &rest[end..]);
            }
            end = start;
        } else {
            end -= 1;
        }
    }
    // All zeros: a pre-release of it.
    match rest.rsplit_once('-') {
        Some((u, r)) => format!("{epoch}{u}~pre-{r}"),
        None => format!("{epoch}{rest}~pre"),
    }
}

/// Much lower: the first digit run of the upstream version, minus one,
/// with revision `1` (an older upstream release).
fn lower_major(v: &str) -> String {
    let (epoch, rest) = split_epoch(v);
    let upstream = rest.rsplit_once('-').map_or(rest, |(u, _)| u);
    let b = upstream.as_bytes();
    if let Some(start) = b.iter().position(u8::is_ascii_digit) {
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if let Ok(n) = upstream[start..end].parse::<u64>()
            && n > 0
        {
            return format!(
                "{epoch}{}{}{}-1",
                &upstream[..start],
                n - 1,
                &upstream[end..]
            );
        }
    }
    lower(v)
}

/// A stable update above `v`: the next `+debNNuK`, or `+debNNu1`.
fn higher(v: &str, release: &str) -> String {
    let tag = format!("deb{release}u");
    if let Some(i) = v.rfind(&tag) {
        let digits: String = v[i + tag.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<u64>() {
            let after = i + tag.len() + digits.len();
            return format!("{}{}{}", &v[..i + tag.len()], n + 1, &v[after..]);
        }
    }
    format!("{v}+{tag}1")
}

/// A newer upstream release (what testing carries).
fn higher_major(v: &str) -> String {
    let (epoch, rest) = split_epoch(v);
    let upstream = rest.rsplit_once('-').map_or(rest, |(u, _)| u);
    let b = upstream.as_bytes();
    if let Some(start) = b.iter().position(u8::is_ascii_digit) {
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if let Ok(n) = upstream[start..end].parse::<u64>() {
            return format!(
                "{epoch}{}{}{}-1",
                &upstream[..start],
                n + 1,
                &upstream[end..]
            );
        }
    }
    format!("{v}+1")
}

fn read_universe(path: &Path) -> Vec<Bin> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.expect("utf-8 universe");
        let mut it = line.split('\t');
        let (Some(n), Some(v), Some(s), Some(sv)) = (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        if seen.insert(n.to_string()) {
            out.push(Bin {
                name: n.into(),
                version: v.into(),
                source: s.into(),
                source_version: sv.into(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn generate(g: &Gen) {
    let universe = read_universe(&g.universe);
    assert!(
        universe.len() >= g.per_image,
        "the universe has fewer packages than an image"
    );
    let mut rng = Rng(g.seed);

    // Source packages and their bookworm version.
    let mut sources: BTreeMap<&str, &str> = BTreeMap::new();
    for b in &universe {
        sources.entry(&b.source).or_insert(&b.source_version);
    }
    let all_sources: Vec<(&str, &str)> = sources.iter().map(|(s, v)| (*s, *v)).collect();
    // Records concentrate on a few thousand sources: the heavy ones first,
    // then random others, weighted by Zipf (s = 1) over their rank.
    let vulnerable_count = 4_000.min(all_sources.len());
    let mut ranked: Vec<(&str, &str)> = HEAVY
        .iter()
        .filter_map(|h| sources.get_key_value(h).map(|(s, v)| (*s, *v)))
        .collect();
    let heavy: HashSet<&str> = ranked.iter().map(|(s, _)| *s).collect();
    let mut rest: Vec<(&str, &str)> = all_sources
        .iter()
        .copied()
        .filter(|(s, _)| !heavy.contains(s))
        .collect();
    shuffle(&mut rest, &mut rng);
    ranked.extend(rest.into_iter().take(vulnerable_count - ranked.len()));
    let weights: Vec<f64> = (1..=ranked.len()).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let pick_source = |rng: &mut Rng| -> (&str, &str) {
        let u = rng.unit();
        let i = cumulative.partition_point(|c| *c < u).min(ranked.len() - 1);
        ranked[i]
    };

    std::fs::create_dir_all(&g.out).expect("create the output dir");
    let mut out = BufWriter::new(
        std::fs::File::create(g.out.join("records.jsonl")).expect("create records.jsonl"),
    );
    let mut cve_seen: HashSet<String> = HashSet::new();
    // Each source's CVEs, for DSAs/DLAs to name.
    let mut cves_of: HashMap<&str, Vec<String>> = HashMap::new();
    let dsa_count = g.records * 8 / 100;
    let dla_count = g.records * 4 / 100;
    let cve_count = g.records - dsa_count - dla_count;
    let mut stats: BTreeMap<&str, usize> = BTreeMap::new();

    let write = |v: Value, out: &mut BufWriter<std::fs::File>| {
        let text = serde_json::to_vec(&v).expect("json");
        let r = Record::parse(&text).expect("a valid record");
        serde_json::to_writer(&mut *out, &r).expect("write");
        out.write_all(b"\n").expect("write");
    };
    for _ in 0..cve_count {
        let (src, v12) = pick_source(&mut rng);
        let cve = loop {
            let year = 1999 + rng.below(27);
            let num = if year >= 2014 && rng.chance(0.7) {
                10_000 + rng.below(40_000)
            } else {
                1 + rng.below(9_999)
            };
            let id = format!("CVE-{year}-{num:04}");
            if cve_seen.insert(id.clone()) {
                break id;
            }
        };
        let mut affected = Vec::new();
        for (eco, p) in [("Debian:11", 0.7), ("Debian:12", 0.85), ("Debian:13", 0.9)] {
            if !rng.chance(p) {
                continue;
            }
            let u = rng.unit();
            let (fixed, kind) = match eco {
                // bullseye carries older versions; fixes are older still.
                "Debian:11" => {
                    if u < 0.2 {
                        (None, "11-unfixed")
                    } else {
                        (Some(higher(&lower_major(v12), "11")), "11-fixed")
                    }
                }
                "Debian:12" => {
                    if u < 0.70 {
                        // Fixed before bookworm's version (an older CVE).
                        let f = if rng.chance(0.5) {
                            lower_major(v12)
                        } else {
                            let mut f = lower(v12);
                            for _ in 0..rng.below(3) {
                                f = lower(&f);
                            }
                            f
                        };
                        (Some(f), "12-fixed-below")
                    } else if u < 0.82 {
                        // A stable update the fleet may not have yet.
                        (Some(higher(v12, "12")), "12-fixed-above")
                    } else {
                        (None, "12-unfixed")
                    }
                }
                _ => {
                    if u < 0.1 {
                        (None, "13-unfixed")
                    } else {
                        (Some(higher_major(v12)), "13-fixed")
                    }
                }
            };
            *stats.entry(kind).or_default() += 1;
            let mut events = vec![json!({"introduced": "0"})];
            if let Some(f) = fixed {
                events.push(json!({ "fixed": f }));
            }
            let mut a = json!({
                "package": {"ecosystem": eco, "name": src},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            });
            // Some entries also list affected versions one by one.
            if eco == "Debian:12" && rng.chance(0.05) {
                let mut vs = vec![lower(v12), lower(&lower(v12))];
                if rng.chance(0.3) {
                    vs.push(v12.to_string());
                }
                a["versions"] = json!(vs);
                *stats.entry("12-with-versions").or_default() += 1;
            }
            affected.push(a);
        }
        let mut r = json!({
            "id": format!("DEBIAN-{cve}"),
            "modified": format!("2025-{:02}-{:02}T{:02}:00:00Z", 1 + rng.below(12), 1 + rng.below(28), rng.below(24)),
            "published": format!("{}-01-01T00:00:00Z", &cve[4..8]),
            "upstream": [cve.clone()],
            "affected": affected,
        });
        if rng.chance(0.5) {
            r["severity"] =
                json!([{"type": "CVSS_V3", "score": VECTORS[rng.below(VECTORS.len())]}]);
        }
        cves_of.entry(src).or_default().push(cve);
        write(r, &mut out);
    }
    // DSAs (bookworm, one source, 1-5 of its CVEs) and DLAs (bullseye LTS).
    let sourced: Vec<&str> = {
        let mut s: Vec<&str> = cves_of.keys().copied().collect();
        s.sort();
        s
    };
    let cve_weight: Vec<f64> = sourced
        .iter()
        .scan(0.0, |acc, s| {
            *acc += cves_of[s].len() as f64;
            Some(*acc)
        })
        .collect();
    for (prefix, count, first, eco) in [
        ("DSA", dsa_count, 4_000, "Debian:12"),
        ("DLA", dla_count, 3_000, "Debian:11"),
    ] {
        for k in 0..count {
            let u = rng.unit() * cve_weight.last().copied().unwrap_or(1.0);
            let src = sourced[cve_weight
                .partition_point(|c| *c < u)
                .min(sourced.len() - 1)];
            let v12 = sources[src];
            let cves = &cves_of[src];
            let n = (1 + rng.below(5)).min(cves.len());
            let start = rng.below(cves.len() + 1 - n);
            let upstream: Vec<&String> = cves[start..start + n].iter().collect();
            let fixed = if eco == "Debian:12" {
                if rng.chance(0.85) {
                    lower(v12)
                } else {
                    higher(v12, "12")
                }
            } else {
                higher(&lower_major(v12), "11")
            };
            let r = json!({
                "id": format!("{prefix}-{}-1", first + k),
                "modified": format!("2024-{:02}-{:02}T12:00:00Z", 1 + rng.below(12), 1 + rng.below(28)),
                "published": "2024-01-01T00:00:00Z",
                "upstream": upstream,
                "summary": format!("{src} - security update"),
                "affected": [{
                    "package": {"ecosystem": eco, "name": src, "purl": format!("pkg:deb/debian/{src}?arch=source")},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                }],
            });
            write(r, &mut out);
        }
    }
    out.flush().expect("flush");

    // The fleet: every image shares a core, plus its own packages; each
    // image lags behind on a share of its packages (an older revision).
    let mut pkgs = BufWriter::new(
        std::fs::File::create(g.out.join("packages.tsv")).expect("create packages.tsv"),
    );
    let mut order: Vec<usize> = (0..universe.len()).collect();
    shuffle(&mut order, &mut rng);
    let core_n = g.per_image / 5;
    let (core, others) = order.split_at(core_n);
    let mut others = others.to_vec();
    let mut line = String::new();
    for image in 0..g.images {
        let staleness = rng.unit() * 0.3;
        // Partial Fisher-Yates: the first per_image - core_n of `others`.
        let want = g.per_image - core_n;
        for i in 0..want {
            let j = i + rng.below(others.len() - i);
            others.swap(i, j);
        }
        for &i in core.iter().chain(&others[..want]) {
            let b = &universe[i];
            let (v, sv) = if rng.chance(staleness) {
                (lower(&b.version), lower(&b.source_version))
            } else {
                (b.version.clone(), b.source_version.clone())
            };
            line.clear();
            let _ = writeln!(
                line,
                "img-{image:03}\t{}\t{v}\t{}\t{sv}\tDebian:12",
                b.name, b.source
            );
            pkgs.write_all(line.as_bytes()).expect("write");
        }
    }
    pkgs.flush().expect("flush");
    let heavy_top: Vec<String> = ranked
        .iter()
        .take(5)
        .map(|(s, _)| format!("{s}={}", cves_of.get(s).map_or(0, Vec::len)))
        .collect();
    println!(
        "generated {} records ({cve_count} DEBIAN-CVE, {dsa_count} DSA, {dla_count} DLA) over {} of {} source packages (top: {}); {} images x {} packages from {} real binary packages",
        cve_count + dsa_count + dla_count,
        cves_of.len(),
        all_sources.len(),
        heavy_top.join(" "),
        g.images,
        g.per_image,
        universe.len()
    );
    println!("entries by kind: {stats:?}");
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

// ---------------------------------------------------------------- measure

struct Pkg {
    name: String,
    version: String,
    source: String,
    source_version: String,
    os: String,
}

fn installed(p: &Pkg) -> Installed<'_> {
    Installed {
        package_type: "deb",
        name: &p.name,
        version: &p.version,
        source_name: Some(&p.source),
        source_version: Some(&p.source_version),
        os_ecosystem: Some(&p.os),
    }
}

fn run(dir: &Path, digest: bool) {
    let texts: Vec<String> = std::fs::read_to_string(dir.join("records.jsonl"))
        .expect("read records.jsonl")
        .lines()
        .map(str::to_string)
        .collect();
    let packages: Vec<Pkg> = std::fs::read_to_string(dir.join("packages.tsv"))
        .expect("read packages.tsv")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Pkg {
                name: f[1].into(),
                version: f[2].into(),
                source: f[3].into(),
                source_version: f[4].into(),
                os: f[5].into(),
            }
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();

    // (c) parse the store's texts, as inventory::vulns::index does.
    let t = Instant::now();
    let records: Vec<Record> = texts
        .iter()
        .map(|t| Record::parse(t.as_bytes()))
        .collect::<Result<_, _>>()
        .expect("records parse");
    let parse = t.elapsed().as_secs_f64();

    // (a) build the index.
    let t = Instant::now();
    let index = Index::new(records);
    let build = t.elapsed().as_secs_f64();

    // (b) match every package.
    let t = Instant::now();
    let mut findings = 0usize;
    let mut affected_pkgs = 0usize;
    for p in &packages {
        let n = index.matches(&installed(p)).len();
        findings += n;
        affected_pkgs += usize::from(n > 0);
    }
    let matching = t.elapsed().as_secs_f64();

    // Floor: the same lookups, keyed the same way, in a plain HashMap; the
    // candidates are counted, not compared.
    let mut floor_map: HashMap<String, usize> = HashMap::new();
    for line in &texts {
        let v: Value = serde_json::from_str(line).expect("json");
        for a in v["affected"].as_array().into_iter().flatten() {
            let key = format!(
                "{}\0{}",
                a["package"]["ecosystem"].as_str().unwrap_or_default(),
                a["package"]["name"].as_str().unwrap_or_default()
            );
            *floor_map.entry(key).or_default() += 1;
        }
    }
    let t = Instant::now();
    let mut key = String::new();
    let mut candidates = 0usize;
    for p in &packages {
        key.clear();
        key.push_str(&p.os);
        key.push('\0');
        key.push_str(&p.source);
        candidates += floor_map.get(key.as_str()).copied().unwrap_or(0);
        std::hint::black_box(&p.source_version);
    }
    let floor = t.elapsed().as_secs_f64();

    if digest {
        use std::hash::{DefaultHasher, Hasher};
        let mut h = DefaultHasher::new();
        for p in &packages {
            for f in index.matches(&installed(p)) {
                h.write(&serde_json::to_vec(&f).expect("json"));
            }
        }
        println!("findings_digest {:016x}", h.finish());
    }

    let distinct: HashSet<(&str, &str)> = packages
        .iter()
        .map(|p| (p.source.as_str(), p.source_version.as_str()))
        .collect();
    println!("records {}", texts.len());
    println!("record_bytes {bytes}");
    println!("packages {}", packages.len());
    println!("distinct_source_versions {}", distinct.len());
    println!("candidates {candidates}");
    println!("findings {findings}");
    println!("affected_packages {affected_pkgs}");
    println!("parse_s {parse:.4}");
    println!("build_s {build:.4}");
    println!("match_s {matching:.4}");
    println!("floor_s {floor:.4}");
}
