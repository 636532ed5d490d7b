//! Importing the vulnerability reports a Harbor holds, artifact by
//! artifact: what `freshen vulns import --harbor` does for a project, and
//! what a Harbor `SCANNING_COMPLETED` webhook does for one artifact.

use freshen_harbor::{Artifact, Client};
use freshen_store::Store;

use crate::{Imported, InventoryError, import_report_bytes};

/// What importing some artifacts did.
#[derive(Debug, Default)]
pub struct HarborImport {
    /// One per report stored.
    pub imported: Vec<Imported>,
    /// Artifacts without a successful scan, each with why.
    pub skipped: Vec<String>,
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
) -> Result<HarborImport, InventoryError> {
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
