//! Shared parts of the differential and property tests: real version
//! strings from this machine, a seeded generator, and tool checks that fail
//! loudly (tests never skip).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// A small xorshift generator: fixed seeds make failures reproducible
/// without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Panics with the install command unless `cmd` runs.
pub fn require(cmd: &str, install: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{cmd} not found: {install}");
}

/// Runs `cmd` with `stdin`, panicking on failure; returns stdout.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Distinct real Debian version strings: every `Version:` in the apt lists
/// (read through apt-helper, which undoes their compression) plus the
/// installed packages', thinned deterministically to about `want`.
pub fn debian_versions(want: usize) -> Vec<String> {
    require("dpkg-query", "apt-get install dpkg");
    let mut all = BTreeSet::new();
    let lists = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.contains("_Packages"))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !lists.is_empty() {
        require("/usr/lib/apt/apt-helper", "apt-get install apt");
        for list in lists {
            let text = run(
                Command::new("/usr/lib/apt/apt-helper")
                    .arg("cat-file")
                    .arg(&list),
                b"",
            );
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("Version: ") {
                    all.insert(v.trim().to_owned());
                }
            }
        }
    }
    let installed = run(
        Command::new("dpkg-query").args(["-W", "-f", "${Version}\n"]),
        b"",
    );
    all.extend(
        installed
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    assert!(
        all.len() >= 300,
        "only {} Debian versions found; run apt-get update first",
        all.len()
    );
    let step = all.len().div_ceil(want).max(1);
    all.into_iter().step_by(step).collect()
}

/// Pairs to compare: neighbours in the given (sorted) order, which is where
/// ordering bugs hide, plus random pairs from a fixed seed.
pub fn pairs(sorted: &[String], random: usize, seed: u64) -> Vec<(String, String)> {
    let mut out: Vec<_> = sorted
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    let mut rng = Rng::new(seed);
    for _ in 0..random {
        let a = &sorted[rng.below(sorted.len())];
        let b = &sorted[rng.below(sorted.len())];
        out.push((a.clone(), b.clone()));
    }
    out
}

/// Real-looking RPM EVRs: tildes, carets, epochs, letters, leading zeros,
/// dist tags.
pub fn rpm_versions() -> Vec<String> {
    let versions = [
        "1.0",
        "1.0.0",
        "1.00",
        "1.01",
        "1.1",
        "1.10",
        "1.9",
        "2.0",
        "1.0a",
        "1.0.a",
        "1.0b",
        "1.a",
        "a",
        "1.0~rc1",
        "1.0~rc2",
        "1.0~~",
        "1.0~",
        "1.0^",
        "1.0^git1",
        "1.0^git2",
        "1.0^20230101git3f2a1b",
        "1.0.1",
        "1.0.1~beta",
        "1.0_1",
        "1.0+1",
        "1..0",
        "1.0.",
        "5.14.0",
        "0.9.8zh",
        "2.4.57",
        "9.0.1a",
        "0012",
        "12",
        "1.2.3.4.5",
        "20230801",
        "3.2.1~1.gbp",
        "1.0git",
        "1.0.git",
        "FC5",
        "fc4",
        "R2",
        "r10",
        "1.0~rc1^post",
    ];
    let releases = [
        None,
        Some("1"),
        Some("1.el9"),
        Some("2.el9_3"),
        Some("0.1.rc1.fc39"),
        Some("10"),
        Some("1~beta"),
        Some("1^1"),
        Some("03"),
        Some(""),
    ];
    let epochs = [None, Some("0"), Some("1"), Some("2"), Some("")];
    let mut out = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        for (j, r) in releases.iter().enumerate() {
            // A fixed, sparse walk over epochs keeps the set a few hundred.
            let e = epochs[(i + j) % epochs.len()];
            let mut s = String::new();
            if let Some(e) = e {
                s.push_str(e);
                s.push(':');
            }
            s.push_str(v);
            if let Some(r) = r {
                s.push('-');
                s.push_str(r);
            }
            out.insert(s);
            out.insert(v.to_string());
        }
    }
    out.into_iter().collect()
}

/// PEP 440 versions (and a few spellings that are not), in normal and
/// non-normal forms.
pub fn pep440_versions() -> Vec<String> {
    let epochs = ["", "1!", "0!"];
    let releases = [
        "0.9", "1", "1.0", "1.0.0", "1.0.1", "1.1", "1.10", "2.0", "2013.10",
    ];
    let pres = [
        "", "a1", "a2", "b1", "rc1", "c1", "alpha2", "beta", "pre1", "-rc.2", "RC3",
    ];
    let posts = ["", ".post1", "-1", ".post", "post2", "-post3"];
    let devs = ["", ".dev0", ".dev3", "dev"];
    let locals = ["", "+local.1", "+abc", "+1", "+ubuntu-1", "+1.2.a"];
    let mut rng = Rng::new(440);
    let mut out = BTreeSet::new();
    while out.len() < 500 {
        let mut s = String::new();
        for part in [&epochs[..], &releases, &pres, &posts, &devs, &locals] {
            s.push_str(part[rng.below(part.len())]);
        }
        out.insert(s);
    }
    for s in [
        "v1.0",
        " 1.0 ",
        "1.0.x",
        "1.0-",
        "01.02",
        "1.0.dev",
        "1.0a.1",
        "1!",
        "1.2.3.4.5.6",
        "1.0_rc1",
        "1.0-beta.1",
        "1.0+",
        "1.0+ab_c",
        "",
    ] {
        out.insert(s.to_owned());
    }
    out.into_iter().collect()
}

/// SemVer-ish versions as registries publish them.
pub fn semver_versions() -> Vec<String> {
    [
        "0.0.1",
        "0.1.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.0+build.1",
        "1.0.1",
        "1.1",
        "1",
        "v1",
        "v1.2.3",
        "1.2.3",
        "v1.2.4-0.20191109021931-daa7c04131f5",
        "v0.0.0-20191109021931-daa7c04131f5",
        "v0.0.0-20200101000000-aaaaaaaaaaaa",
        "v2.0.0+incompatible",
        "2.0.0",
        "10.0.0",
        "2.0.0-0",
        "2.0.0-1",
        "2.0.0-a",
        "2.0.0-a.b.c",
        "1.2-rc.1",
        "1.2.0-rc.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The apk fixture: (a, expected order, b).
pub fn apk_vectors() -> Vec<(String, std::cmp::Ordering, String)> {
    let text = include_str!("../fixtures/apk-versions.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "bad fixture line {l:?}");
            let op = match f[1] {
                "<" => std::cmp::Ordering::Less,
                "=" => std::cmp::Ordering::Equal,
                ">" => std::cmp::Ordering::Greater,
                o => panic!("bad operator {o:?} in {l:?}"),
            };
            (f[0].to_owned(), op, f[2].to_owned())
        })
        .collect()
}
