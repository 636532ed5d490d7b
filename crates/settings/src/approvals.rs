//! `approvals:`: how long a request for approval waits, who hears of it,
//! and the stages a watch or policy can hold (`approve: [cascade, rollout]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A stage that can wait for a person's approval.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Before a change's rebuild cascade starts.
    Cascade,
    /// Before what a cascade rebuilt is rolled out.
    Rollout,
}

impl Stage {
    /// The stage's name, as written and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Cascade => "cascade",
            Stage::Rollout => "rollout",
        }
    }
}

/// `approvals:` as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// How long a request waits for a decision before it expires (and the
    /// held work is not done).
    #[serde(with = "humantime_serde")]
    pub expire: Duration,
    /// How often a held cascade looks at its approval again (a decision
    /// made through this process's API or CLI wakes it at once).
    #[serde(with = "humantime_serde")]
    pub recheck: Duration,
    /// Triggers told of each request (through the outbox), with a link.
    pub announce: Vec<String>,
    /// The console's address, for the link in announcements
    /// (`<url>/approvals/<id>`).
    pub url: Option<String>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            expire: Duration::from_secs(24 * 3600),
            recheck: Duration::from_secs(30),
            announce: Vec::new(),
            url: None,
        }
    }
}

impl ApprovalSettings {
    /// The checks that need no I/O; the error is the key and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.expire.is_zero() {
            return Err(("approvals.expire".into(), "must be more than 0s".into()));
        }
        if self.recheck.is_zero() {
            return Err(("approvals.recheck".into(), "must be more than 0s".into()));
        }
        Ok(())
    }
}
