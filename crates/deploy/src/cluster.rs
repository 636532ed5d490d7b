//! One Kubernetes cluster: connecting as its kubeconfig (or the pod's
//! service account) says, finding workloads, patching their images and
//! reading their rollout state.

use std::path::Path;

use freshen_settings::{ClusterSpec, WorkloadKind};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use crate::DeployError;
use crate::health::{Health, health};
use crate::workload::{Workload, WorkloadId, image_patch};

/// A connected cluster and what of it freshen may touch.
#[derive(Clone)]
pub struct Cluster {
    name: String,
    spec: ClusterSpec,
    client: Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish()
    }
}

fn resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
    }
}

/// Kubernetes' own words for a failed call, without the client's Debug
/// dump: the status message and reason, or the transport error.
fn said(e: &kube::Error) -> String {
    match e {
        // An exec plugin's failure carries its command line, environment
        // and output, which hold credentials: say only what failed.
        kube::Error::Auth(_) => {
            "authentication failed (the kubeconfig's token, certificate or exec plugin); check it with `kubectl auth whoami`".to_string()
        }
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} ({} {})", s.message, s.code, s.reason)
        }
        other => other.to_string(),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// A write that the API server refused because the object changed since
/// it was read (HTTP 409): read it again and decide again.
#[derive(Debug)]
pub struct Conflict;

impl Cluster {
    /// Connects to the cluster `spec` names: its kubeconfig and context,
    /// else the in-cluster service account, else `$KUBECONFIG` or
    /// `~/.kube/config`. Nothing is sent yet.
    pub async fn connect(name: &str, spec: &ClusterSpec) -> Result<Cluster, DeployError> {
        let config_err = |detail: String| DeployError::Config {
            cluster: name.to_string(),
            detail,
        };
        let options = KubeConfigOptions {
            context: spec.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&spec.kubeconfig, &spec.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| config_err(format!("{}: {e}", shown(path))))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| config_err(format!("{}: {e}", shown(path))))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_err(e.to_string()))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| config_err(e.to_string()))?,
        };
        let client = Client::try_from(config).map_err(|e| config_err(said(&e)))?;
        Ok(Cluster {
            name: name.to_string(),
            spec: spec.clone(),
            client,
        })
    }

    /// The cluster's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn api(&self, kind: WorkloadKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = resource(kind);
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    fn api_err(&self, what: String, e: &kube::Error) -> DeployError {
        DeployError::Api {
            cluster: self.name.clone(),
            what,
            detail: said(e),
        }
    }

    /// Every workload of the configured kinds, in the configured
    /// namespaces, that the configured selector selects.
    pub async fn workloads(&self) -> Result<Vec<Workload>, DeployError> {
        let mut params = ListParams::default();
        if let Some(sel) = &self.spec.selector {
            params = params.labels(sel);
        }
        let namespaces: Vec<Option<&str>> = if self.spec.namespaces.is_empty() {
            vec![None]
        } else {
            self.spec
                .namespaces
                .iter()
                .map(|n| Some(n.as_str()))
                .collect()
        };
        let mut out = Vec::new();
        for kind in self.spec.kinds() {
            for ns in &namespaces {
                let list = self.api(kind, *ns).list(&params).await.map_err(|e| {
                    let place =
                        ns.map_or("every namespace".to_string(), |n| format!("namespace {n}"));
                    self.api_err(format!("list {kind}s in {place}"), &e)
                })?;
                for item in list.items {
                    out.push(Workload::from_object(&self.name, kind, &to_json(&item)));
                }
            }
        }
        Ok(out)
    }

    /// The workload as it is now, with its full object.
    pub async fn read(&self, id: &WorkloadId) -> Result<(Workload, Value), DeployError> {
        let object = self
            .api(id.kind, Some(&id.namespace))
            .get(&id.name)
            .await
            .map_err(|e| self.api_err(format!("read {id}"), &e))?;
        let json = to_json(&object);
        Ok((Workload::from_object(&self.name, id.kind, &json), json))
    }

    /// Sets the named containers' images (`(name, init, image)`) with a
    /// strategic-merge patch guarded by `resource_version`. Answers the
    /// object as patched, or [`Conflict`] when the workload changed since
    /// it was read.
    pub async fn set_images(
        &self,
        id: &WorkloadId,
        images: &[(&str, bool, &str)],
        resource_version: &str,
    ) -> Result<Result<Value, Conflict>, DeployError> {
        let patch = image_patch(id.kind, images, Some(resource_version));
        let params = PatchParams {
            field_manager: Some("freshen".into()),
            ..PatchParams::default()
        };
        match self
            .api(id.kind, Some(&id.namespace))
            .patch(&id.name, &params, &Patch::Strategic(&patch))
            .await
        {
            Ok(o) => Ok(Ok(to_json(&o))),
            Err(e) if is_conflict(&e) => Ok(Err(Conflict)),
            Err(e) => Err(self.api_err(format!("patch {id}"), &e)),
        }
    }

    /// The rollout state of the workload now.
    pub async fn health(&self, id: &WorkloadId) -> Result<Health, DeployError> {
        let (_, object) = self.read(id).await?;
        Ok(health(id.kind, &object))
    }
}

fn to_json(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}
