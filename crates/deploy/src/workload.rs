//! Workloads as freshen reads them: where each kind keeps its pod
//! template, its containers' images, and the patch that moves them.

use std::fmt;

use freshen_settings::WorkloadKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A workload in a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadId {
    /// The cluster's name in the config.
    pub cluster: String,
    /// Deployment, StatefulSet, DaemonSet or CronJob.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.cluster,
            self.namespace,
            self.kind.as_str().to_lowercase(),
            self.name
        )
    }
}

/// A container (or init container) and the image it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerImage {
    /// The container's name.
    pub name: String,
    /// An init container.
    pub init: bool,
    /// Its image, as written in the pod spec.
    pub image: String,
}

/// A workload as read: its identity, version and containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Which workload.
    pub id: WorkloadId,
    /// `metadata.generation`.
    pub generation: i64,
    /// `metadata.resourceVersion`, for writes that must not overwrite
    /// someone else's.
    pub resource_version: String,
    /// Its containers, then its init containers.
    pub containers: Vec<ContainerImage>,
}

/// The path from an object's root to its pod spec.
fn pod_spec_path(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    }
}

impl Workload {
    /// Reads a workload of `kind` from its JSON object.
    pub fn from_object(cluster: &str, kind: WorkloadKind, object: &Value) -> Workload {
        let meta = &object["metadata"];
        let mut spec = object;
        for key in pod_spec_path(kind) {
            spec = &spec[*key];
        }
        let mut containers = Vec::new();
        for (field, init) in [("containers", false), ("initContainers", true)] {
            for c in spec[field].as_array().into_iter().flatten() {
                if let (Some(name), Some(image)) = (c["name"].as_str(), c["image"].as_str()) {
                    containers.push(ContainerImage {
                        name: name.to_string(),
                        init,
                        image: image.to_string(),
                    });
                }
            }
        }
        Workload {
            id: WorkloadId {
                cluster: cluster.to_string(),
                kind,
                namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
                name: meta["name"].as_str().unwrap_or_default().to_string(),
            },
            generation: meta["generation"].as_i64().unwrap_or(0),
            resource_version: meta["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            containers,
        }
    }

    /// The image container `name` (an init container if `init`) runs now.
    pub fn image_of(&self, name: &str, init: bool) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| c.name == name && c.init == init)
            .map(|c| c.image.as_str())
    }
}

/// A strategic-merge patch setting the images of the named containers
/// (`(name, init, image)`), guarded by `resource_version` when given: the
/// API server answers 409 if the workload changed since it was read.
pub fn image_patch(
    kind: WorkloadKind,
    images: &[(&str, bool, &str)],
    resource_version: Option<&str>,
) -> Value {
    let list = |init: bool| -> Vec<Value> {
        images
            .iter()
            .filter(|(_, i, _)| *i == init)
            .map(|(name, _, image)| json!({"name": name, "image": image}))
            .collect()
    };
    let mut pod = serde_json::Map::new();
    let containers = list(false);
    if !containers.is_empty() {
        pod.insert("containers".into(), Value::Array(containers));
    }
    let init = list(true);
    if !init.is_empty() {
        pod.insert("initContainers".into(), Value::Array(init));
    }
    let mut patch = Value::Object(pod);
    for key in pod_spec_path(kind).iter().rev() {
        patch = json!({ *key: patch });
    }
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_patches_each_kind_where_it_keeps_its_pods() {
        let cron = json!({
            "metadata": {"name": "nightly", "namespace": "ops", "generation": 3, "resourceVersion": "42"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job", "image": "app:1"}],
                "initContainers": [{"name": "setup", "image": "tool:2"}]
            }}}}}
        });
        let w = Workload::from_object("prod", WorkloadKind::CronJob, &cron);
        assert_eq!(w.id.to_string(), "prod/ops/cronjob/nightly");
        assert_eq!(w.generation, 3);
        assert_eq!(w.image_of("setup", true), Some("tool:2"));
        assert_eq!(w.image_of("setup", false), None);
        let p = image_patch(
            WorkloadKind::CronJob,
            &[("setup", true, "tool:3")],
            Some("42"),
        );
        assert_eq!(
            p,
            json!({
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "initContainers": [{"name": "setup", "image": "tool:3"}]
                }}}}},
                "metadata": {"resourceVersion": "42"}
            })
        );
        let d = image_patch(WorkloadKind::Deployment, &[("app", false, "app:2")], None);
        assert_eq!(
            d,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}})
        );
    }
}
