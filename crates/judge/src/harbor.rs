//! Importing the vulnerability reports a Harbor holds, artifact by
//! artifact: what `freshen vulns import --harbor` does for a project, and
//! what a Harbor `SCANNING_COMPLETED` webhook does for one artifact.

use freshen_harbor::{Artifact, Client};
use freshen_store::Store;

use crate::JudgeError;
use crate::scanner_report::{Imported, import_report_bytes};

/// What importing some artifacts did.
#[derive(Debug, Default)]
pub struct HarborImport {
    /// One per report stored.
    pub imported: Vec<Imported>,
    /// Artifacts without a successful scan, each with why.
    pub skipped: Vec<String>,
}

/// Which artifacts of a Harbor project to import.
#[derive(Debug, Clone, Copy)]
pub enum HarborScope<'a> {
    /// Every repository of the project.
    Project,
    /// One repository: `project/name`, or `name` within the project.
    Repository(&'a str),
    /// One artifact (a completed scan's webhook): its repository's full
    /// name and its digest.
    Artifact {
        /// `project/name`.
        repository: &'a str,
        /// The artifact's digest.
        digest: &'a str,
    },
}

/// Imports the scan reports of `scope` in `project`, repository by
/// repository, each stored for its digest. `skipped` is told each artifact
/// without a successful scan as its repository is done (the CLI names
/// them as it goes, so what was skipped shows even if a later repository
/// fails).
pub async fn import_harbor(
    store: &Store,
    client: &Client,
    project: &str,
    scope: HarborScope<'_>,
    mut skipped: impl FnMut(&str),
) -> Result<HarborImport, JudgeError> {
    let repos = match scope {
        HarborScope::Project => client
            .repositories(project)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect(),
        HarborScope::Repository(r) if r.starts_with(&format!("{project}/")) => vec![r.to_string()],
        HarborScope::Repository(r) => vec![format!("{project}/{r}")],
        HarborScope::Artifact { repository, .. } => vec![repository.to_string()],
    };
    let mut out = HarborImport::default();
    for repo in &repos {
        let artifacts = match scope {
            HarborScope::Artifact { digest, .. } => {
                vec![client.artifact(project, repo, digest).await?]
            }
            _ => client.artifacts(project, repo).await?,
        };
        let done = import_harbor_artifacts(store, client, project, repo, artifacts).await?;
        for why in &done.skipped {
            skipped(why);
        }
        out.imported.extend(done.imported);
        out.skipped.extend(done.skipped);
    }
    Ok(out)
}

/// Imports the reports of `artifacts` of `repository` (Harbor's full name,
/// `project/name`). An index is imported child by child: Harbor scans each
/// platform manifest, as the inventory knows images.
pub async fn import_harbor_artifacts(
    store: &Store,
    client: &Client,
    project: &str,
    repository: &str,
    artifacts: Vec<Artifact>,
) -> Result<HarborImport, JudgeError> {
    let mut flat = Vec::new();
    for a in artifacts {
        if a.references.is_empty() {
            flat.push(a);
        } else {
            for r in &a.references {
                flat.push(
                    client
                        .artifact(project, repository, &r.child_digest)
                        .await?,
                );
            }
        }
    }
    let mut out = HarborImport::default();
    for a in flat {
        if a.scanned().is_none() {
            let status: Vec<String> = a
                .scan_overview
                .values()
                .filter_map(|o| o.scan_status.clone())
                .collect();
            out.skipped.push(format!(
                "{repository}@{}: no successful scan in Harbor ({})",
                a.digest,
                if status.is_empty() {
                    "not scanned".to_string()
                } else {
                    status.join(", ")
                }
            ));
            continue;
        }
        let source = format!("{}#{repository}@{}", client.base(), a.digest);
        let bytes = client
            .vulnerabilities(project, repository, &a.digest)
            .await?;
        out.imported
            .push(import_report_bytes(store, &source, &bytes, &a.digest).await?);
    }
    Ok(out)
}
