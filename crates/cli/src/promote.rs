//! `freshen promote REF --to TAG [--to TAG...]`: copies the manifest `REF`
//! points at, as its exact bytes (same digest), to other tags of its
//! repository, or to other repositories and registries, without pulling
//! layers (see `freshen_registry::Client::copy`).

use anyhow::{Context as _, Result, bail};
use freshen_reference::{Defaults, Reference};
use freshen_registry::{Client, CopyReport};
use serde::Serialize;

/// One `--to`: a bare tag (`latest`, `1.4-rc`) names a tag of the source's
/// repository; anything with `/`, `:` or `@` is a full reference
/// (`registry/repo:tag`), for another repository or registry.
pub fn target(source: &Reference, to: &str, defaults: &Defaults) -> Result<Reference> {
    if to.contains(['/', ':', '@']) {
        return Reference::parse_with(to, defaults)
            .with_context(|| format!("--to {to}: not a tag or a reference"));
    }
    source
        .with_tag(to)
        .with_context(|| format!("--to {to}: not a valid tag"))
}

#[derive(Serialize)]
struct Promoted {
    reference: String,
    #[serde(flatten)]
    report: CopyReport,
}

#[derive(Serialize)]
struct Summary {
    source: String,
    digest: String,
    media_type: String,
    targets: Vec<Promoted>,
}

/// Copies `source` to each target in order. The first copy pins the
/// source's digest; the others copy that digest, so every target gets the
/// same manifest even if the source tag moves meanwhile. Text output is
/// printed as each target is done, so a failure shows what was promoted.
pub async fn run(
    client: &Client,
    source: &Reference,
    targets: &[Reference],
    json: bool,
) -> Result<u8> {
    if targets.is_empty() {
        bail!("nothing to promote to: give one or more --to TAG");
    }
    let mut pinned: Option<Reference> = None;
    let mut summary: Option<Summary> = None;
    for to in targets {
        let from = pinned.as_ref().unwrap_or(source);
        let report = client
            .copy_report(from, to)
            .await
            .with_context(|| format!("promoting {source} to {to}"))?;
        let s = summary.get_or_insert_with(|| Summary {
            source: source.to_string(),
            digest: report.digest.clone(),
            media_type: report.media_type.clone(),
            targets: Vec::new(),
        });
        if report.digest != s.digest {
            bail!(
                "promoting {source} to {to}: the target got {} but the source is {}",
                report.digest,
                s.digest
            );
        }
        if pinned.is_none() {
            pinned = Some(
                source
                    .with_digest(&report.digest)
                    .context("pinning the source digest")?,
            );
            if !json {
                println!("{source}  {}", report.digest);
            }
        }
        if !json {
            println!("  -> {to}  {}  ({})", report.digest, how(&report));
        }
        s.targets.push(Promoted {
            reference: to.to_string(),
            report,
        });
    }
    if json {
        let s = summary.expect("at least one target");
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("serialisable")
        );
    }
    Ok(0)
}

/// What a copy did, in a few words.
fn how(r: &CopyReport) -> String {
    let mut parts = Vec::new();
    if r.manifests_pushed > 1 {
        parts.push(format!("{} manifests", r.manifests_pushed));
    }
    if r.blobs_mounted > 0 {
        parts.push(format!("{} blobs mounted", r.blobs_mounted));
    }
    if r.blobs_copied > 0 {
        parts.push(format!("{} blobs copied", r.blobs_copied));
    }
    if r.already_present > 0 {
        parts.push(format!("{} already there", r.already_present));
    }
    if parts.is_empty() {
        "manifest only".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_tags_or_references() {
        let d = Defaults::default();
        let src = Reference::parse("127.0.0.1:5000/team/app:1.4").unwrap();
        assert_eq!(
            target(&src, "1.4-rc", &d).unwrap().to_string(),
            "127.0.0.1:5000/team/app:1.4-rc"
        );
        assert_eq!(
            target(&src, "127.0.0.1:5000/prod/app:1.4", &d)
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/prod/app:1.4"
        );
        assert_eq!(
            target(&src, "ghcr.io/o/app:latest", &d).unwrap().registry(),
            "ghcr.io"
        );
        assert!(target(&src, "-bad", &d).is_err());
        assert!(target(&src, "", &d).is_err());
    }
}
