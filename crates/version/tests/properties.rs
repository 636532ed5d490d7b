//! Order laws for every scheme on the collected strings: antisymmetry,
//! transitivity on sampled triples, consistency of `==` with `cmp`, and a
//! sort that agrees with pairwise comparison. Plus the speed budget.

mod common;

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use freshen_version::{Scheme, Version};

fn corpus(scheme: Scheme) -> Vec<Version> {
    let strings: Vec<String> = match scheme {
        Scheme::Dpkg | Scheme::Generic => common::debian_versions(2000),
        Scheme::Rpm => {
            let mut v = common::rpm_versions();
            v.extend(common::debian_versions(500));
            v
        }
        Scheme::Pep440 => common::pep440_versions(),
        Scheme::Semver => common::semver_versions(),
        Scheme::Apk => common::apk_vectors()
            .into_iter()
            .flat_map(|(a, _, b)| [a, b])
            .collect(),
    };
    strings
        .iter()
        .filter_map(|s| Version::parse(scheme, s).ok())
        .collect()
}

fn check_laws(scheme: Scheme) {
    let vs = corpus(scheme);
    assert!(vs.len() >= 20, "{scheme}: only {} versions", vs.len());
    let mut rng = common::Rng::new(0x5eed ^ scheme as u64);
    let pick = |rng: &mut common::Rng| &vs[rng.below(vs.len())];
    for _ in 0..20_000 {
        let (a, b, c) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let (ab, bc, ac) = (a.cmp(b), b.cmp(c), a.cmp(c));
        assert_eq!(ab, b.cmp(a).reverse(), "{scheme}: antisymmetry {a} {b}");
        assert_eq!(a == b, ab == Ordering::Equal, "{scheme}: eq {a} {b}");
        assert_eq!(a.cmp(a), Ordering::Equal, "{scheme}: reflexive {a}");
        if ab != Ordering::Greater && bc != Ordering::Greater {
            assert_ne!(
                ac,
                Ordering::Greater,
                "{scheme}: transitivity {a} <= {b} <= {c}"
            );
        }
        if ab == bc && ab != Ordering::Equal {
            assert_eq!(ac, ab, "{scheme}: transitivity {a} {ab:?} {b} {bc:?} {c}");
        }
    }
    let mut sorted = vs.clone();
    sorted.sort();
    for _ in 0..20_000 {
        let (i, j) = (rng.below(sorted.len()), rng.below(sorted.len()));
        let (i, j) = (i.min(j), i.max(j));
        assert_ne!(
            sorted[i].cmp(&sorted[j]),
            Ordering::Greater,
            "{scheme}: sort order broken at {} / {}",
            sorted[i],
            sorted[j]
        );
    }
    println!("{scheme}: order laws hold on {} versions", vs.len());
}

#[test]
fn dpkg_is_a_total_order() {
    check_laws(Scheme::Dpkg);
}

#[test]
fn rpm_is_a_total_order() {
    check_laws(Scheme::Rpm);
}

#[test]
fn apk_is_a_total_order() {
    check_laws(Scheme::Apk);
}

#[test]
fn pep440_is_a_total_order() {
    check_laws(Scheme::Pep440);
}

#[test]
fn semver_is_a_total_order() {
    check_laws(Scheme::Semver);
}

#[test]
fn generic_is_a_total_order() {
    check_laws(Scheme::Generic);
}

#[test]
fn mixed_schemes_sort_by_scheme_first() {
    let a = Version::parse(Scheme::Dpkg, "9.0").unwrap();
    let b = Version::parse(Scheme::Generic, "1.0").unwrap();
    assert!(a < b);
    assert_ne!(a, b);
}

/// Matching a million installed packages against advisories means about a
/// million comparisons of parsed versions; the budget is well under 2 s.
/// Unoptimised test builds are several times slower, so they get a looser
/// bound that still catches an accidental re-parse or allocation per
/// comparison; `cargo test --release` checks the real budget.
#[test]
fn a_million_comparisons_fit_the_budget() {
    let budget = if cfg!(debug_assertions) {
        Duration::from_secs(8)
    } else {
        Duration::from_secs(2)
    };
    for scheme in [
        Scheme::Dpkg,
        Scheme::Rpm,
        Scheme::Apk,
        Scheme::Pep440,
        Scheme::Semver,
    ] {
        let vs = corpus(scheme);
        let mut rng = common::Rng::new(7);
        let idx: Vec<(usize, usize)> = (0..1_000_000)
            .map(|_| (rng.below(vs.len()), rng.below(vs.len())))
            .collect();
        let start = Instant::now();
        let less = idx.iter().filter(|(i, j)| vs[*i] < vs[*j]).count();
        let took = start.elapsed();
        println!("{scheme}: 1,000,000 comparisons in {took:?} ({less} less)");
        assert!(took < budget, "{scheme}: {took:?}, budget {budget:?}");
    }
}
