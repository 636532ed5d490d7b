//! One check of a watched tag: `HEAD` for its digest, `GET` only when the
//! digest moved or a watched platform is not known yet, then record what was
//! seen (history, change event and outbox rows in one transaction). A
//! change also reaches the inventory (the tag pointed at its new digest,
//! scanned if need be), so lineage follows the tag without a manual scan.

use std::collections::HashMap;

use chrono::Utc;
use freshen_inventory::{Followed, InventoryError, Scanner};
use freshen_judge::{Judge, JudgeError};
use freshen_reference::{Platform, Reference};
use freshen_registry::{Client, RegistryError};
use freshen_store::{
    EventDecision, Judgement, Observation, PlatformChange, PlatformDigest, Status, Store,
    StoreError,
};
use futures::StreamExt as _;
use serde::Serialize;

use crate::Watch;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The registry failed or refused the `HEAD` or `GET` (a missing tag,
    /// refused credentials, a timeout, ...).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store could not read the last observation or record this one.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy could not judge a change; nothing was recorded, so the
    /// next check sees the change again and retries.
    #[error("judging the change of {reference}: {source}")]
    Judge {
        /// The watched reference whose change was being judged.
        reference: String,
        /// Why judging failed.
        source: JudgeError,
    },
}

impl CheckError {
    /// True when trying again later may succeed: the registry was
    /// unreachable, overloaded or rate limiting, or the store failed. A
    /// missing tag, refused credentials or bad content are not.
    pub fn retryable(&self) -> bool {
        match self {
            CheckError::Registry(e) => e.is_transient(),
            CheckError::Store(_) => true,
            CheckError::Judge { source, .. } => {
                matches!(
                    source,
                    JudgeError::Store(_) | JudgeError::Inventory(InventoryError::Store(_))
                ) || matches!(source, JudgeError::Inventory(InventoryError::Registry(e)) if e.is_transient())
            }
        }
    }
}

/// How [`Checker::check_pushed`] treats a push.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    /// A tag never observed before is a change (from nothing), not a baseline.
    pub first_sight_fires: bool,
    /// Deliveries `(trigger, payload)` to add to the change event the
    /// check creates, in its transaction (see `Observation::with_event`).
    pub with_event: Vec<(String, serde_json::Value)>,
}

/// What one check saw.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The normalised reference.
    pub reference: String,
    /// The tag's digest (an index or a single manifest).
    pub digest: String,
    /// How the tag's own digest compares with the last check.
    pub top: Status,
    /// Each watched platform, its manifest digest, and how it compares.
    pub platforms: Vec<PlatformResult>,
    /// The change event created, when a watched platform changed.
    pub event_id: Option<String>,
    /// What the policy said of the change, when one judged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<EventDecision>,
    /// Why the inventory could not be brought to the tag's new digest.
    /// The change was recorded and fired all the same; lineage stays
    /// behind the tag until its next move or a `freshen scan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_error: Option<String>,
}

/// One watched platform in a [`CheckResult`].
#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest seen now.
    pub digest: String,
    /// New, unchanged, or changed from the previous digest; serialised
    /// inline.
    #[serde(flatten)]
    pub status: Status,
}

impl CheckResult {
    /// True when a watched platform's digest moved, or a pushed tag was
    /// seen first: a change event was recorded.
    pub fn changed(&self) -> bool {
        self.event_id.is_some()
    }

    /// True when a change fired the watch's triggers: it changed, and no
    /// policy said to stay quiet.
    pub fn fired(&self) -> bool {
        self.changed() && self.decision.as_ref().is_none_or(|d| d.act)
    }
}

/// Runs checks against a registry client and a store.
#[derive(Clone)]
pub struct Checker {
    client: Client,
    store: Store,
    /// Brings a moved tag's new digest into the inventory.
    scanner: Scanner,
    /// Judges changes with the policies before they are recorded.
    judge: Option<Judge>,
    /// Checks in flight at once, across registries (each registry has its own limit too).
    concurrency: usize,
}

impl Checker {
    /// A checker; `scanner` (over the same store) keeps the inventory
    /// current with what the checks see; `concurrency` bounds checks in
    /// flight at once.
    pub fn new(client: Client, store: Store, scanner: Scanner, concurrency: usize) -> Checker {
        Checker {
            client,
            store,
            scanner,
            judge: None,
            concurrency: concurrency.max(1),
        }
    }

    /// Judges each change with `judge` before recording it: a change the
    /// policy says not to act on is recorded with its reason and fires
    /// nothing.
    pub fn with_judge(mut self, judge: Judge) -> Checker {
        self.judge = Some(judge);
        self
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks every watch once, in parallel; results in the watches' order.
    pub async fn check_all(
        &self,
        watches: &[Watch],
        source: &str,
    ) -> Result<Vec<Result<CheckResult, CheckError>>, StoreError> {
        let current = self.store.current_all().await?;
        let results = futures::stream::iter(watches.iter().enumerate())
            .map(|(i, w)| {
                let cur = current.get(&w.reference.to_string());
                async move { (i, self.check(w, cur.map(Vec::as_slice), source).await) }
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut ordered: Vec<_> = results;
        ordered.sort_by_key(|(i, _)| *i);
        Ok(ordered.into_iter().map(|(_, r)| r).collect())
    }

    /// Checks one watch. `current` is what the store last recorded for it
    /// (pass `None` to have it looked up).
    pub async fn check(
        &self,
        watch: &Watch,
        current: Option<&[PlatformDigest]>,
        source: &str,
    ) -> Result<CheckResult, CheckError> {
        self.check_with(watch, current, source, Pushed::default())
            .await
    }

    /// Checks a tag a registry says was pushed: like [`Checker::check`],
    /// with `pushed`'s options. With `first_sight_fires`, a policy other
    /// than `always` keeps a first sight quiet: with no earlier digest,
    /// nothing can be judged fixed.
    pub async fn check_pushed(
        &self,
        watch: &Watch,
        source: &str,
        pushed: Pushed,
    ) -> Result<CheckResult, CheckError> {
        self.check_with(watch, None, source, pushed).await
    }

    async fn check_with(
        &self,
        watch: &Watch,
        current: Option<&[PlatformDigest]>,
        source: &str,
        pushed: Pushed,
    ) -> Result<CheckResult, CheckError> {
        let started = std::time::Instant::now();
        let checked = self.check_once(watch, current, source, pushed).await;
        crate::telemetry::checked(source, &checked, started.elapsed());
        checked
    }

    async fn check_once(
        &self,
        watch: &Watch,
        current: Option<&[PlatformDigest]>,
        source: &str,
        pushed: Pushed,
    ) -> Result<CheckResult, CheckError> {
        let Pushed {
            first_sight_fires,
            with_event,
        } = pushed;
        let looked_up;
        let current = match current {
            Some(c) => c,
            None => {
                looked_up = self.store.current(&watch.reference.to_string()).await?;
                &looked_up
            }
        };
        let (digest, manifests) = self
            .observe(&watch.reference, &watch.platforms, current)
            .await?;
        let judgement = match &self.judge {
            Some(judge) if first_sight_fires && current.is_empty() => judge
                .needed(watch.policy.as_deref())
                .then(|| Judgement {
                    act: false,
                    reason: format!(
                        "first sight of {}: no earlier digest to judge a fix against, and the policy {} acts on fixes only",
                        watch.reference,
                        watch.policy.as_deref().map_or("of each image".to_string(), |p| format!("{p:?}"))
                    ),
                    decisions: Vec::new(),
                }),
            Some(judge) if judge.needed(watch.policy.as_deref()) => {
                let moved = moves(current, &manifests);
                if moved.is_empty() {
                    None
                } else {
                    let j = judge
                        .judge(&watch.reference, watch.policy.as_deref(), &moved)
                        .await
                        .map_err(|source| CheckError::Judge {
                            reference: watch.reference.to_string(),
                            source,
                        })?;
                    tracing::info!(reference = %watch.reference, act = j.act, reason = %j.reason, "change judged");
                    Some(j)
                }
            }
            _ => None,
        };
        // Before the record: once its outbox rows are committed, a cascade
        // (here or in another replica) may build on the tag, and its scan
        // of the result reads the base's digest from the inventory. A
        // failure costs the inventory only, never the change.
        let inventory_error = match self
            .follow(watch, current, &digest, &manifests, first_sight_fires)
            .await
        {
            Ok(Some(f)) => {
                tracing::info!(
                    reference = %watch.reference,
                    pointed = f.pointed.len(),
                    scanned = f.scanned.len(),
                    layers_read = f.scanned.iter().map(|r| r.layers_read).sum::<usize>(),
                    "inventory follows the tag"
                );
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(reference = %watch.reference, error = %e, "the inventory could not follow the tag; the change is recorded all the same");
                Some(e.to_string())
            }
        };
        let recorded = self
            .store
            .record(&Observation {
                reference: watch.reference.to_string(),
                top_digest: digest.clone(),
                manifests: manifests.clone(),
                source: source.to_string(),
                seen_at: Utc::now(),
                triggers: watch.triggers.clone(),
                judgement,
                first_sight_fires,
                with_event,
            })
            .await?;
        let statuses: HashMap<&str, &Status> = recorded
            .platforms
            .iter()
            .map(|(p, s)| (p.as_str(), s))
            .collect();
        let platforms = manifests
            .iter()
            .map(|m| PlatformResult {
                platform: m.platform.clone(),
                digest: m.digest.clone(),
                status: statuses
                    .get(m.platform.as_str())
                    .map(|s| (*s).clone())
                    .unwrap_or(Status::New),
            })
            .collect();
        Ok(CheckResult {
            reference: watch.reference.to_string(),
            digest,
            top: recorded.top,
            platforms,
            decision: recorded.event.as_ref().and_then(|e| e.decision.clone()),
            event_id: recorded.event.map(|e| e.id),
            inventory_error,
        })
    }

    /// Brings the inventory to what the check saw, where it matters: a
    /// watched platform that moved, or one seen first that fires (a push
    /// is the news) or that the inventory holds at another digest. A
    /// first sight of a tag the inventory doesn't hold is a baseline:
    /// nothing is read. `None` when there was nothing to do; steady state
    /// costs no query.
    async fn follow(
        &self,
        watch: &Watch,
        current: &[PlatformDigest],
        top: &str,
        seen: &[PlatformDigest],
        first_sight_fires: bool,
    ) -> Result<Option<Followed>, InventoryError> {
        let fresh: Vec<&PlatformDigest> = seen
            .iter()
            .filter(|m| {
                !current
                    .iter()
                    .any(|c| c.platform == m.platform && c.digest == m.digest)
            })
            .collect();
        if fresh.is_empty() {
            return Ok(None);
        }
        let held = self.store.resolve_ref(&watch.reference.to_string()).await?;
        let index = seen.iter().all(|m| m.digest != top).then_some(top);
        let wanted: Vec<PlatformDigest> = fresh
            .into_iter()
            .filter(|m| match held.iter().find(|h| h.platform == m.platform) {
                // A judge's scan may have pointed it already (without the
                // index): pointing again costs one row.
                Some(h) => h.digest != m.digest || h.index_digest.as_deref() != index,
                None => first_sight_fires || current.iter().any(|c| c.platform == m.platform),
            })
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        self.scanner
            .follow(&watch.reference, top, &wanted)
            .await
            .map(Some)
    }

    /// The tag's digest and its watched platforms' manifests: one `HEAD` when
    /// the digest is what the store knows, else a `GET` of the manifest.
    async fn observe(
        &self,
        reference: &Reference,
        platforms: &[Platform],
        current: &[PlatformDigest],
    ) -> Result<(String, Vec<PlatformDigest>), RegistryError> {
        let known = |key: &str| {
            current
                .iter()
                .find(|c| c.platform == key)
                .map(|c| c.digest.clone())
        };
        if let Some(top) = known("") {
            let head = self.client.head_manifest(reference).await?;
            if head.digest.as_deref() == Some(top.as_str()) {
                let cached: Option<Vec<PlatformDigest>> = platforms
                    .iter()
                    .map(|p| {
                        let key = p.to_string();
                        known(&key).map(|digest| PlatformDigest {
                            platform: key,
                            digest,
                        })
                    })
                    .collect();
                if let Some(manifests) = cached {
                    return Ok((top, manifests));
                }
            }
        }
        let resolved = self.client.resolve(reference).await?;
        let selected = self
            .client
            .select_platforms(reference, &resolved, platforms)?;
        Ok((
            resolved.digest,
            selected
                .into_iter()
                .map(|m| PlatformDigest {
                    platform: m.platform.to_string(),
                    digest: m.digest,
                })
                .collect(),
        ))
    }
}

/// The watched platforms whose digest moved from what the store knows
/// (first sights are baselines, not moves).
fn moves(current: &[PlatformDigest], seen: &[PlatformDigest]) -> Vec<PlatformChange> {
    seen.iter()
        .filter_map(|m| {
            let old = current.iter().find(|c| c.platform == m.platform)?;
            (old.digest != m.digest).then(|| PlatformChange {
                platform: m.platform.clone(),
                old_digest: Some(old.digest.clone()),
                new_digest: m.digest.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_failures_are_retried() {
        let registry = |e| CheckError::Registry(e);
        assert!(
            registry(RegistryError::Transport {
                host: "r".into(),
                image: "i".into(),
                detail: "connection refused".into(),
                attempts: 4,
            })
            .retryable()
        );
        assert!(
            !registry(RegistryError::NotFound {
                host: "r".into(),
                image: "i".into(),
                what: "manifest".into(),
            })
            .retryable()
        );
        assert!(
            !registry(RegistryError::AuthRequired {
                host: "r".into(),
                image: "i".into(),
            })
            .retryable()
        );
    }
}
