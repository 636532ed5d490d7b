//! `rollout:`: the Kubernetes clusters whose workloads freshen moves to
//! the digests it rebuilt, and how it goes about it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The workload kinds freshen can roll out.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob: patched; there is no rollout to wait for.
    CronJob,
}

impl WorkloadKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
    ];

    /// The kind as Kubernetes names it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// The kind from its Kubernetes name.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cluster, as written under `rollout.clusters.<name>`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// A kubeconfig file; relative to the config file. Unset: the
    /// in-cluster service account when freshen runs in a pod, else
    /// `$KUBECONFIG` or `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; unset: its current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Namespaces to look in; empty: every namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// A label selector (`app=web,tier!=batch`, `env in (prod)`): only
    /// workloads it selects are rolled out.
    #[serde(default)]
    pub selector: Option<String>,
    /// The kinds to roll out; empty: all four.
    #[serde(default)]
    pub kinds: Vec<WorkloadKind>,
    /// How long one workload's rollout may take before it is put back;
    /// default `rollout.timeout`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl ClusterSpec {
    /// The kinds this cluster rolls out.
    pub fn kinds(&self) -> Vec<WorkloadKind> {
        if self.kinds.is_empty() {
            WorkloadKind::ALL.to_vec()
        } else {
            self.kinds.clone()
        }
    }
}

/// A GitOps repository, as written under `rollout.gitops.<name>`: where
/// new digests are committed for Argo CD or Flux to apply.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitopsSpec {
    /// Any URL git accepts (`https://`, `ssh://`, `file://`); a token may
    /// come from `${ENV}` in the URL or from `credential_helper`.
    pub url: String,
    /// The branch to edit; default `main`.
    #[serde(default = "main_branch")]
    pub branch: String,
    /// Push to a new branch for review instead, e.g. `freshen/{event}`
    /// (`{event}`, `{date}`).
    #[serde(default)]
    pub push_branch: Option<String>,
    /// Files or directories to edit, relative to the repository root;
    /// default the whole repository.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Flux `$imagepolicy` markers: `"namespace:policy": image`.
    #[serde(default)]
    pub markers: BTreeMap<String, String>,
    /// The commits' author; default `freshen <freshen@localhost>`.
    #[serde(default)]
    pub author_name: Option<String>,
    /// The commits' author's email.
    #[serde(default)]
    pub author_email: Option<String>,
    /// Pushes tried when the branch moved meanwhile; default 3.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// A git credential helper program (`store`, a path).
    #[serde(default)]
    pub credential_helper: Option<String>,
    /// How long one git command may take; default 5m.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

fn main_branch() -> String {
    "main".into()
}

// The URL may carry a token: shown without it.
impl std::fmt::Debug for GitopsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitopsSpec")
            .field("url", &crate::redact_url(&self.url))
            .field("branch", &self.branch)
            .field("push_branch", &self.push_branch)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// `rollout:` as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSettings {
    /// Clusters by name.
    pub clusters: BTreeMap<String, ClusterSpec>,
    /// GitOps repositories by name: each roll-out commits the new digests
    /// to each (one commit per roll-out).
    pub gitops: BTreeMap<String, GitopsSpec>,
    /// Workloads of one wave rolled out at once.
    pub parallel: usize,
    /// How long one workload's rollout may take before it is put back.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often a rollout's progress is read.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a running roll-out is its process's alone: renewed every
    /// third of it; a roll-out whose process died is resumed once it lapses.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Roll out what a cascade rebuilt and promoted, once it has
    /// (`on_change: [cascade]`, `on_vulnerable: [cascade]`).
    pub after_cascade: bool,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            clusters: BTreeMap::new(),
            gitops: BTreeMap::new(),
            parallel: 4,
            timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            after_cascade: true,
        }
    }
}

impl RolloutSettings {
    /// The checks that need no I/O; the error is the key and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.parallel == 0 {
            return Err(("rollout.parallel".into(), "must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(("rollout.timeout".into(), "must be more than 0s".into()));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(("rollout.lease".into(), "must be at least 1s".into()));
        }
        if self.poll_interval.is_zero() {
            return Err((
                "rollout.poll_interval".into(),
                "must be more than 0s".into(),
            ));
        }
        for (name, cluster) in &self.clusters {
            if name.is_empty() {
                return Err(("rollout.clusters".into(), "a cluster needs a name".into()));
            }
            if cluster.timeout.is_some_and(|t| t.is_zero()) {
                return Err((
                    format!("rollout.clusters.{name}.timeout"),
                    "must be more than 0s".into(),
                ));
            }
            if cluster.namespaces.iter().any(|n| n.is_empty()) {
                return Err((
                    format!("rollout.clusters.{name}.namespaces"),
                    "a namespace can't be empty".into(),
                ));
            }
            if cluster
                .selector
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err((
                    format!("rollout.clusters.{name}.selector"),
                    "empty; leave it out to select every workload".into(),
                ));
            }
        }
        for (name, repo) in &self.gitops {
            let at = |k: &str| format!("rollout.gitops.{name}.{k}");
            if repo.url.trim().is_empty() {
                return Err((at("url"), "empty".into()));
            }
            if repo.branch.trim().is_empty() {
                return Err((at("branch"), "empty".into()));
            }
            if repo.attempts == Some(0) {
                return Err((at("attempts"), "must be at least 1".into()));
            }
            if repo.paths.iter().any(|p| {
                let p = std::path::Path::new(p);
                p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir)
            }) {
                return Err((
                    at("paths"),
                    "paths are relative to the repository root and stay inside it".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether anything is configured to roll out to.
    pub fn has_targets(&self) -> bool {
        !self.clusters.is_empty() || !self.gitops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let s: RolloutSettings = serde_json::from_str(
            r#"{"clusters": {"prod": {"context": "prod", "namespaces": ["web"], "kinds": ["Deployment"]}}}"#,
        )
        .unwrap();
        assert_eq!(s.parallel, 4);
        assert_eq!(s.clusters["prod"].kinds(), vec![WorkloadKind::Deployment]);
        assert!(s.validate().is_ok());
        let bad: RolloutSettings = serde_json::from_str(r#"{"parallel": 0}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().0, "rollout.parallel");
        let err = serde_json::from_str::<RolloutSettings>(
            r#"{"clusters": {"prod": {"kinds": ["Pod"]}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Pod"), "{err}");
    }
}
