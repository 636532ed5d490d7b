//! The double's stand-in for the Deployment, StatefulSet and DaemonSet
//! controllers: after a spec change it writes the status a real controller
//! would, phase by phase, per the [`Rollout`] rule of the new pod
//! template's images.
//!
//! The model: the controller notices a new generation [`OBSERVE_DELAY`]
//! after the write (until then `status.observedGeneration` lags). While a
//! roll-out is in progress one replica (pod, for a DaemonSet) is neither
//! updated nor ready; once it completes every replica is updated, ready and
//! available. A DaemonSet runs on [`NODES`] nodes. A spec change that
//! leaves the pod template alone (replicas, say) completes as soon as it is
//! observed.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::Rollout;
use super::resources::Resource;

/// How long after a spec change the controller observes it.
pub(crate) const OBSERVE_DELAY: Duration = Duration::from_millis(50);

/// The nodes a DaemonSet's pods are scheduled on.
pub(crate) const NODES: i64 = 3;

/// What a roll-out looks like at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// One replica behind, Progressing=True ReplicaSetUpdated.
    Progressing,
    /// Done: Progressing=True NewReplicaSetAvailable.
    Complete,
    /// Progressing=False ProgressDeadlineExceeded (Deployments only).
    Failed,
}

/// A roll-out the controller is driving.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// When that generation was written.
    pub(crate) started: Instant,
    /// How it goes.
    pub(crate) rule: Rollout,
    /// The pod template changed (else there is nothing to roll out).
    pub(crate) template_changed: bool,
    /// The revision pods run before the roll-out (a StatefulSet's
    /// `currentRevision` until it completes).
    pub(crate) from_revision: String,
    /// The controller has noticed this generation.
    pub(crate) observed: bool,
}

impl Run {
    /// The phase at `now`, or None while the controller has not observed
    /// the generation yet.
    pub(crate) fn phase(&self, res: &Resource, now: Instant) -> Option<Phase> {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < OBSERVE_DELAY {
            return None;
        }
        Some(match self.rule {
            _ if !self.template_changed => Phase::Complete,
            Rollout::Complete { after } if elapsed >= after => Phase::Complete,
            Rollout::Fail { after } if elapsed >= after && res.kind == "Deployment" => {
                Phase::Failed
            }
            _ => Phase::Progressing,
        })
    }
}

/// The pod template's hash, in the alphabet Kubernetes uses for
/// `pod-template-hash` and controller revisions (10 characters).
pub(crate) fn revision_hash(res: &Resource, object: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let template = object.pointer(res.template).cloned().unwrap_or_default();
    let digest = Sha256::digest(canonical(&template).as_bytes());
    digest[..10]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// JSON with object keys sorted, so equal templates hash alike.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// A `maxUnavailable`-style value (an integer or a percentage of `of`,
/// rounded down).
fn scaled(v: Option<&Value>, of: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| of * p / 100),
        _ => 0,
    }
}

/// Keeps a condition's transition time (and update time, when nothing
/// else changed) from the previous status, as controllers do.
fn condition(
    old: &Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let prev = old
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let same_status = prev.is_some_and(|p| p["status"] == status);
    let same_all =
        same_status && prev.is_some_and(|p| p["reason"] == reason && p["message"] == message);
    let at = |field: &str, keep: bool| {
        if keep {
            prev.and_then(|p| p.get(field))
                .cloned()
                .unwrap_or(json!(now))
        } else {
            json!(now)
        }
    };
    json!({
        "type": kind,
        "status": status,
        "lastUpdateTime": at("lastUpdateTime", same_all),
        "lastTransitionTime": at("lastTransitionTime", same_status),
        "reason": reason,
        "message": message,
    })
}

/// Drops the zero counts Go's `omitempty` leaves out, keeping `required`.
fn omit_zeros(mut status: Value, required: &[&str]) -> Value {
    if let Value::Object(m) = &mut status {
        m.retain(|k, v| required.contains(&k.as_str()) || v.as_i64() != Some(0));
    }
    status
}

/// The status a controller writes for `object` in `phase`.
/// `from_revision` is the revision pods ran before (StatefulSets).
pub(crate) fn status(
    res: &Resource,
    object: &Value,
    phase: Phase,
    from_revision: &str,
    now: &str,
) -> Value {
    let old = object
        .get("status")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let generation = int(object, "/metadata/generation");
    let done = phase == Phase::Complete;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hash = revision_hash(res, object);
    match res.kind {
        "Deployment" => {
            let n = int(object, "/spec/replicas");
            let behind = if done { 0 } else { n.min(1) };
            let available = n - behind;
            let max_unavailable = scaled(
                object.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                n,
            );
            let rs = format!("ReplicaSet \"{name}-{hash}\"");
            let (available_cond, progressing) = (
                if available >= n - max_unavailable {
                    condition(
                        &old,
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        now,
                    )
                } else {
                    condition(
                        &old,
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        now,
                    )
                },
                match phase {
                    Phase::Complete => condition(
                        &old,
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("{rs} has successfully progressed."),
                        now,
                    ),
                    Phase::Progressing => condition(
                        &old,
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        &format!("{rs} is progressing."),
                        now,
                    ),
                    Phase::Failed => condition(
                        &old,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("{rs} has timed out progressing."),
                        now,
                    ),
                },
            );
            omit_zeros(
                json!({
                    "observedGeneration": generation,
                    "replicas": n,
                    "updatedReplicas": n - behind,
                    "readyReplicas": available,
                    "availableReplicas": available,
                    "unavailableReplicas": behind,
                    "conditions": [available_cond, progressing],
                }),
                &[],
            )
        }
        "StatefulSet" => {
            let n = int(object, "/spec/replicas");
            let behind = if done { 0 } else { n.min(1) };
            let update = format!("{name}-{hash}");
            let current = if done || from_revision.is_empty() {
                update.clone()
            } else {
                format!("{name}-{from_revision}")
            };
            omit_zeros(
                json!({
                    "observedGeneration": generation,
                    "replicas": n,
                    "readyReplicas": n - behind,
                    "availableReplicas": n - behind,
                    "currentReplicas": if done || current == update { n - behind } else { behind },
                    "updatedReplicas": n - behind,
                    "currentRevision": current,
                    "updateRevision": update,
                    "collisionCount": 0,
                }),
                &["replicas", "availableReplicas"],
            )
        }
        "DaemonSet" => {
            let behind = if done { 0 } else { 1 };
            omit_zeros(
                json!({
                    "observedGeneration": generation,
                    "desiredNumberScheduled": NODES,
                    "currentNumberScheduled": NODES,
                    "numberMisscheduled": 0,
                    "numberReady": NODES - behind,
                    "updatedNumberScheduled": NODES - behind,
                    "numberAvailable": NODES - behind,
                    "numberUnavailable": behind,
                }),
                &[
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "numberMisscheduled",
                    "numberReady",
                ],
            )
        }
        _ => old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::resources::RESOURCES;

    fn deployment(image: &str) -> Value {
        json!({"metadata": {"name": "web", "generation": 2},
               "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxUnavailable": "25%"}},
                        "template": {"spec": {"containers": [{"name": "a", "image": image}]}}}})
    }

    #[test]
    fn deployment_phases_read_as_kubectl_reads_them() {
        let d = &RESOURCES[0];
        let s = status(d, &deployment("a:1"), Phase::Progressing, "", "t");
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["updatedReplicas"], 2);
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        let s = status(d, &deployment("a:1"), Phase::Complete, "", "t");
        assert_eq!(
            (s["updatedReplicas"].clone(), s["availableReplicas"].clone()),
            (json!(3), json!(3))
        );
        assert!(s.get("unavailableReplicas").is_none());
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        let s = status(d, &deployment("a:1"), Phase::Failed, "", "t");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    }

    #[test]
    fn template_hash_follows_the_template() {
        let d = &RESOURCES[0];
        let a = revision_hash(d, &deployment("a:1"));
        assert_eq!(a.len(), 10);
        assert_eq!(a, revision_hash(d, &deployment("a:1")));
        assert_ne!(a, revision_hash(d, &deployment("a:2")));
    }
}
