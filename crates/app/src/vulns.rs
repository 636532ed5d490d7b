//! The "judge" actions: importing vulnerability data (files and a Harbor's
//! scan reports), an image's findings, the images a vulnerability
//! affects, what changed between two images, and policy decisions made and
//! replayed.

use std::path::PathBuf;

use freshen_judge::{AffectedImage, BaseDiff, ImageVulns, PolicyCheck, Replay};
use freshen_judge::{HarborScope, Imported};
use freshen_reference::Reference;

use crate::{App, AppError, harbor_credentials};

/// A Harbor to read scan reports from.
#[derive(Debug, Clone)]
pub struct HarborSource {
    /// `https://harbor.example.com`.
    pub url: String,
    /// The project whose artifacts to read.
    pub project: String,
    /// Only this repository (`project/name` or `name`).
    pub repository: Option<String>,
}

impl App {
    /// Imports vulnerability data recognised by content (OSV records,
    /// Trivy and Grype reports) from `paths`, with `image` as the image of
    /// reports that don't name it; then, from `harbor`, the scan report of
    /// every scanned artifact. `skipped` is told each Harbor artifact
    /// without a successful scan as it goes.
    pub async fn import_vulns(
        &self,
        paths: &[PathBuf],
        image: Option<&str>,
        harbor: Option<HarborSource>,
        skipped: &mut dyn FnMut(&str),
    ) -> Result<Vec<Imported>, AppError> {
        let q = self.vulns().await?;
        let mut done = q.import(paths, image).await?;
        if let Some(h) = harbor {
            let client = freshen_harbor::Client::new(&h.url, harbor_credentials()?)?;
            let scope = match h.repository.as_deref() {
                Some(r) => HarborScope::Repository(r),
                None => HarborScope::Project,
            };
            let imported = freshen_judge::import_harbor(
                self.store().await?,
                &client,
                &h.project,
                scope,
                skipped,
            )
            .await?;
            done.extend(imported.imported);
        }
        Ok(done)
    }

    /// Every image affected by a vulnerability (by id or alias).
    pub async fn vulnerable_images(&self, id: &str) -> Result<Vec<AffectedImage>, AppError> {
        Ok(self.vulns().await?.affected_by(id).await?)
    }

    /// An image's findings per platform (OSV matches merged with stored
    /// scanner reports), with the reference normalised.
    pub async fn image_vulns(
        &self,
        reference: &str,
    ) -> Result<(Reference, Vec<ImageVulns>), AppError> {
        let q = self.vulns().await?;
        let r = q.parse(reference)?;
        let list = q.vulnerabilities(&r).await?;
        Ok((r, list))
    }

    /// What changed from `old` to `new`: packages, vulnerabilities fixed
    /// and introduced, and the children of `old` holding what `new` fixes.
    pub async fn diff(&self, old: &str, new: &str) -> Result<Vec<BaseDiff>, AppError> {
        let q = self.vulns().await?;
        Ok(q.diff(&q.parse(old)?, &q.parse(new)?).await?)
    }

    /// Evaluates policies on `references` (every tag in the inventory when
    /// empty): each image's group policy, or `policy` for all. Each
    /// decision is stored.
    pub async fn policy_check(
        &self,
        references: &[String],
        policy: Option<&str>,
    ) -> Result<Vec<PolicyCheck>, AppError> {
        let q = self.vulns().await?;
        let refs = references
            .iter()
            .map(|r| q.parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(q.policy_check(&self.loaded.policies, policy, &refs).await?)
    }

    /// Makes stored decision `id` again: as it was made, or with `now`,
    /// with the config's policies and today's data.
    pub async fn policy_replay(&self, id: &str, now: bool) -> Result<Replay, AppError> {
        let q = self.vulns().await?;
        Ok(q.replay(id, now.then_some(&self.loaded.policies)).await?)
    }
}
