//! The values the store takes and returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A state enum stored as text: its stored (and displayed) names, read
/// back with `parse`, and compared with a name as a string (`state ==
/// "done"`), as the columns and the JSON answers spell them.
macro_rules! stored_as_text {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored (and displayed) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The state a stored name stands for; `None` for no state.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
pub(crate) use stored_as_text;

/// Which database a [`Store`](crate::Store) talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An embedded SQLite file (the single-instance default).
    Sqlite,
    /// A PostgreSQL server (several replicas share it).
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The digest one platform of a reference points at. Platform `""` stands for
/// the tag's top-level digest (an index or a single manifest).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlatformDigest {
    /// `""` for the top level, else e.g. `linux/amd64` or `linux/arm64/v8`.
    pub platform: String,
    /// `sha256:...`.
    pub digest: String,
}

/// One look at a reference: what its tag and watched platforms point at now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Normalised reference, e.g. `docker.io/library/debian:bookworm`.
    pub reference: String,
    /// What the tag points at now (index or single manifest); stored under platform `""`.
    pub top_digest: String,
    /// Manifest digests of the *watched* platforms (platform like `linux/arm64/v8`).
    pub manifests: Vec<PlatformDigest>,
    /// Where the observation came from: `poll`, `webhook:registry`, ...
    pub source: String,
    /// When it was observed.
    pub seen_at: DateTime<Utc>,
    /// Triggers to enqueue a delivery for if this observation creates a change event.
    pub triggers: Vec<String>,
    /// The policy's judgement of the change this observation shows, made
    /// before recording it. `None`: no policy judged it, and triggers fire.
    /// With `act: false`, the event is recorded with its reason and fires
    /// nothing; either way the decisions are stored with the event's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// When the reference was never observed before, count its watched
    /// platforms as changed (from nothing) instead of as a baseline: a
    /// registry's push notification is news even for a tag seen first.
    #[serde(default)]
    pub first_sight_fires: bool,
    /// Deliveries `(trigger, payload)` added to the change event this
    /// observation creates, whether it fires or the policy keeps it quiet
    /// (a Docker Hub callback reports either), in the same transaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_event: Vec<(String, serde_json::Value)>,
}

/// A policy's judgement of a change: whether to fire, why, and the
/// decisions (one per image judged) that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// True when the change should fire the watch's triggers.
    pub act: bool,
    /// One line: which images and vulnerabilities decided.
    pub reason: String,
    /// Each image's decision (their `event_id` is set when recorded).
    pub decisions: Vec<crate::Decision>,
}

/// What the policy said of a change event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDecision {
    /// True when the event fired the watch's triggers.
    pub act: bool,
    /// Why.
    pub reason: String,
}

/// How one digest of an observation compares with what was stored before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    /// First sight of this platform: a baseline (a change only when the
    /// observation says first sights fire).
    New,
    /// Same digest as the current one.
    Unchanged,
    /// The digest moved away from `old`.
    Changed {
        /// The previous current digest.
        old: String,
    },
}

/// The outcome of [`Store::record`](crate::Store::record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Status of the top-level digest.
    pub top: Status,
    /// Status per watched platform, in the order of [`Observation::manifests`].
    pub platforms: Vec<(String, Status)>,
    /// The change event created, if a watched platform changed.
    pub event: Option<ChangeEvent>,
}

/// One run of a digest on one platform of a reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `""` for the top-level digest.
    pub platform: String,
    /// The digest of this run.
    pub digest: String,
    /// First observation of this run.
    pub first_seen: DateTime<Utc>,
    /// Latest observation of this run.
    pub last_seen: DateTime<Utc>,
}

/// A persisted change of a reference: at least one watched platform moved.
/// Sent to receivers as the delivery payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// UUID v7, stable: receivers use it to drop duplicates.
    pub id: String,
    /// Normalised reference.
    pub reference: String,
    /// The previous top-level digest (`None` if the top level was new).
    pub old_digest: Option<String>,
    /// The top-level digest now.
    pub new_digest: String,
    /// The watched platforms whose manifest digest moved.
    pub changes: Vec<PlatformChange>,
    /// Source of the observation that found the change.
    pub source: String,
    /// When that observation was made.
    pub observed_at: DateTime<Utc>,
    /// What the policy said, when one judged the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<EventDecision>,
    /// For source `vulnerability`: the data that made the image's policy
    /// act (nothing moved: `old_digest` and `new_digest` are the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerability: Option<VulnerabilityCause>,
}

/// Why a `vulnerability` event was made: new data, judged by a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnerabilityCause {
    /// The policy's name.
    pub policy: String,
    /// Its version (a digest of its rules).
    pub policy_version: String,
    /// The data judged, e.g. `{"vuln_import": 7, "records": 5}`.
    pub snapshot: serde_json::Value,
    /// The platform (`linux/amd64`) of the image judged.
    pub platform: String,
    /// The findings that made the policy act, as the judge reports them.
    pub findings: serde_json::Value,
}

/// One platform's digest move inside a [`ChangeEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformChange {
    /// e.g. `linux/amd64`.
    pub platform: String,
    /// Digest before the change; `None` when the change is the tag's first
    /// sight and the observation counted it as a change (a webhook's push).
    #[serde(default)]
    pub old_digest: Option<String>,
    /// Digest after the change.
    pub new_digest: String,
}

/// Where an outbox delivery stands. Stored as lowercase text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    /// Acknowledged by the target.
    Delivered,
    /// Given up; [`Store::retry_delivery`](crate::Store::retry_delivery) puts it back.
    Failed,
}

stored_as_text!(DeliveryState {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// One outbox row: a change event to hand to one trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Row id, used to report the outcome.
    pub id: i64,
    /// The change event this delivers.
    pub event_id: String,
    /// Name of the trigger (from config) to call.
    pub trigger: String,
    /// What to send: the event as JSON.
    pub payload: serde_json::Value,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts completed so far (failed ones, plus the successful one once delivered).
    pub attempts: i32,
    /// When it is due next (pending), or was last due.
    pub next_attempt_at: DateTime<Utc>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// What the target answered on success, e.g. a Jenkins queue item URL.
    pub response: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it was acknowledged.
    pub delivered_at: Option<DateTime<Utc>>,
}
