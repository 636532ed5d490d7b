//! `watches:`: what a watch is, as written ([`WatchSpec`]) and checked
//! ([`Watch`]).

use freshen_reference::{Defaults, Platform, Reference};
use serde::Deserialize;

use crate::Schedule;

/// A watch as written under `watches:` in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// The tag to watch, docker-style: `debian:bookworm`, `localhost:5000/app:1`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Platforms whose manifest digests count; default: the config's `default_platforms`.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `15m`, `1h` or a crontab line; default: the config's `default_schedule`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Triggers to fire when a watched platform changes.
    #[serde(default)]
    pub on_change: Vec<String>,
    /// The policy that decides whether a change fires (a name under
    /// `policies:`, or `default`); without it, each image built on the
    /// watched tag is judged by the policy of its own group.
    #[serde(default)]
    pub policy: Option<String>,
    /// What waits for a person's approval when this tag changes: `cascade`
    /// (before anything is rebuilt), `rollout` (before what was rebuilt is
    /// rolled out).
    #[serde(default)]
    pub approve: Vec<crate::Stage>,
}

/// A validated watch, ready to check.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The tag watched, normalised.
    pub reference: Reference,
    /// Platforms whose manifest digests count (no duplicates).
    pub platforms: Vec<Platform>,
    /// When it is checked.
    pub schedule: Schedule,
    /// Triggers fired on a change (`cascade` included, when named).
    pub triggers: Vec<String>,
    /// The policy named by the watch, if any.
    pub policy: Option<String>,
    /// The stages that wait for approval after a change of this tag.
    pub approve: Vec<crate::Stage>,
}

impl Watch {
    /// Validates a spec; errors say which field is wrong and why.
    pub fn from_spec(
        spec: &WatchSpec,
        defaults: &Defaults,
        default_platforms: &[Platform],
        default_schedule: &Schedule,
    ) -> Result<Watch, (&'static str, String)> {
        let reference =
            Reference::parse_with(&spec.reference, defaults).map_err(|e| ("ref", e.to_string()))?;
        if reference.digest().is_some() {
            return Err((
                "ref",
                format!(
                    "{:?} pins a digest, which never changes: watch a tag",
                    spec.reference
                ),
            ));
        }
        let platforms = if spec.platforms.is_empty() {
            default_platforms.to_vec()
        } else {
            spec.platforms
                .iter()
                .map(|p| Platform::parse(p).map_err(|e| ("platforms", e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
        };
        let schedule = match &spec.schedule {
            Some(s) => Schedule::parse(s).map_err(|e| ("schedule", e))?,
            None => default_schedule.clone(),
        };
        Ok(Watch {
            reference,
            platforms: dedup(platforms),
            schedule,
            triggers: spec.on_change.clone(),
            policy: spec.policy.clone(),
            approve: spec.approve.clone(),
        })
    }

    /// A watch for a reference given on the command line (no triggers, default schedule).
    pub fn adhoc(reference: Reference, platforms: Vec<Platform>) -> Watch {
        Watch {
            reference,
            platforms: dedup(platforms),
            schedule: Schedule::Every(std::time::Duration::from_secs(900)),
            triggers: Vec::new(),
            policy: None,
            approve: Vec::new(),
        }
    }

    /// The key of this watch's schedule row.
    pub fn key(&self) -> String {
        self.reference.to_string()
    }
}

fn dedup(mut v: Vec<Platform>) -> Vec<Platform> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|p| seen.insert(p.clone()));
    v
}
