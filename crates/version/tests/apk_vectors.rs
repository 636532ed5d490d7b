//! apk order against the fixture of known pairs (apk-tools is not packaged
//! for Debian, so there is no tool to ask).

mod common;

use freshen_version::{Scheme, Version, compare};

#[test]
fn fixture_pairs_hold_both_ways() {
    let vectors = common::apk_vectors();
    assert!(vectors.len() >= 40, "only {} apk vectors", vectors.len());
    let mut wrong = Vec::new();
    for (a, want, b) in &vectors {
        let got = compare(Scheme::Apk, a, b).unwrap_or_else(|e| panic!("{e}"));
        if got != *want {
            wrong.push(format!("{a} vs {b}: want {want:?}, got {got:?}"));
        }
        let back = compare(Scheme::Apk, b, a).unwrap();
        if back != want.reverse() {
            wrong.push(format!(
                "{b} vs {a}: want {:?}, got {back:?}",
                want.reverse()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!("apk: all {} fixture pairs hold both ways", vectors.len());
}

#[test]
fn invalid_apk_versions_are_rejected() {
    for s in [
        "", "a1", "1.", "1..2", "1.0_foo", "1.0-r", "1.0-1", "1.0A", "1.0ab", "1.0 ", "v1.0",
    ] {
        let e = Version::parse(Scheme::Apk, s).expect_err(s);
        assert!(
            e.to_string()
                .contains("is not a valid Alpine (apk) version"),
            "{e}"
        );
    }
}
