//! Reading tags: `digest` (what a tag points at, nothing recorded) and
//! `check` (each tag once: recorded, judged, its triggers delivered, and
//! the cascades run unless deferred).

use freshen_actions::Outcome;
use freshen_reference::Reference;
use freshen_registry::{PlatformManifest, Resolved};
use freshen_watch::{CheckResult, Watch};

use crate::{App, AppError, parse_platforms};

/// What a tag points at.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The reference, normalised.
    pub reference: Reference,
    /// The tag's manifest or index.
    pub resolved: Resolved,
    /// The platform manifests asked for (every one by default).
    pub manifests: Vec<PlatformManifest>,
}

/// How `check` goes about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckFlags {
    /// Leave the rebuild cascades of what changed queued for the daemon
    /// instead of running them before returning.
    pub defer_cascades: bool,
}

/// The outcome of a `check`.
#[derive(Debug)]
pub struct CheckReport {
    /// The checks that succeeded, in the watches' order.
    pub results: Vec<CheckResult>,
    /// The checks that failed: the reference and the error's message.
    pub errors: Vec<(String, String)>,
    /// The deliveries attempted (triggers, then cascades).
    pub deliveries: Vec<Outcome>,
    /// The rate limit each registry checked says is left, where it says.
    pub rate_limits: Vec<(String, String)>,
}

impl CheckReport {
    /// True when a check failed.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// True when a change fired triggers (changed, and no policy kept it quiet).
    pub fn fired(&self) -> bool {
        self.results.iter().any(CheckResult::fired)
    }
}

impl App {
    /// What `reference` points at: its digest, and the manifests of
    /// `platforms` (every platform when empty). Opens no database.
    pub async fn digest(&self, reference: &str, platforms: &[String]) -> Result<Digest, AppError> {
        let r = self.reference(reference)?;
        let wanted = parse_platforms(platforms)?;
        let resolved = self.client.resolve(&r).await?;
        let manifests = if wanted.is_empty() {
            resolved.manifests.clone()
        } else {
            self.client.select_platforms(&r, &resolved, &wanted)?
        };
        Ok(Digest {
            reference: r,
            resolved,
            manifests,
        })
    }

    /// Checks `references` once (default: every watch in the config), with
    /// `platforms` for references given here: records what they point at,
    /// delivers the triggers of what changed, then (unless deferred) the
    /// cascades. A reference also watched in the config keeps its
    /// platforms and triggers.
    pub async fn check(
        &self,
        references: &[String],
        platforms: &[String],
        flags: CheckFlags,
    ) -> Result<CheckReport, AppError> {
        let store = self.store().await?;
        let loaded = &self.loaded;
        let watches: Vec<Watch> = if references.is_empty() {
            if loaded.watches.is_empty() {
                return Err(AppError::Refused(
                    "nothing to check: name references, or give --config with watches".into(),
                ));
            }
            loaded.watches.clone()
        } else {
            let wanted = parse_platforms(platforms)?;
            references
                .iter()
                .map(|s| {
                    let r = self.reference(s)?;
                    let configured = loaded.watches.iter().find(|w| w.reference == r);
                    Ok(match configured {
                        Some(w) if wanted.is_empty() => w.clone(),
                        Some(w) => Watch {
                            platforms: wanted.clone(),
                            ..w.clone()
                        },
                        None => Watch::adhoc(
                            r,
                            if wanted.is_empty() {
                                loaded.default_platforms.clone()
                            } else {
                                wanted.clone()
                            },
                        ),
                    })
                })
                .collect::<Result<_, AppError>>()?
        };
        let concurrency = loaded.config.check_concurrency.unwrap_or(32);
        // Before anything is recorded: a trigger that can't be sent is said now.
        let triggers = self.deliverer(store)?;
        let checker = self.checker(self.client.clone(), store, concurrency);
        let results = checker.check_all(&watches, "poll").await?;
        let mut deliveries = triggers.deliver_due().await?;
        // Then the cascades (long: the triggers went out first), unless left
        // queued for the daemon; and what they queued: when a cascade
        // stopped to wait for an approval, its announcement; when runs or
        // roll-outs are told (`notify:`), their results.
        if !flags.defer_cascades
            && let Some(c) = self.cascades(store)?
        {
            let cascades = c.deliver_due().await?;
            let waiting = cascades.iter().any(|o| o.state == "waiting");
            let notify = &loaded.config.notify;
            let results = !(notify.rebuilds.is_empty() && notify.rollouts.is_empty());
            let told = results && !cascades.is_empty();
            deliveries.extend(cascades);
            if waiting || told {
                deliveries.extend(triggers.deliver_due().await?);
            }
        }
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (w, r) in watches.iter().zip(results) {
            match r {
                Ok(r) => ok.push(r),
                Err(e) => errors.push((w.reference.to_string(), e.to_string())),
            }
        }
        let mut registries: Vec<&str> = watches.iter().map(|w| w.reference.registry()).collect();
        registries.sort();
        registries.dedup();
        let rate_limits = registries
            .into_iter()
            .filter_map(|r| {
                checker
                    .client()
                    .rate_limit_remaining(r)
                    .map(|v| (r.to_string(), v))
            })
            .collect();
        Ok(CheckReport {
            results: ok,
            errors,
            deliveries,
            rate_limits,
        })
    }
}
