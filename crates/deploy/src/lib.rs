//! The "roll out" station for Kubernetes: the workloads (Deployments,
//! StatefulSets, DaemonSets, CronJobs; containers and init containers)
//! that run an image freshen rebuilt are patched to its new digest, wave
//! by wave, each watched until its rollout completes (as `kubectl rollout
//! status` judges it) and put back to its old image if it fails or times
//! out.
//!
//! It knows clusters, workloads and references; it does not know the
//! store, rebuild runs or why an image moved: the caller hands it
//! [`Wanted`] images and records the outcomes through a [`Sink`].

mod cluster;
mod health;
mod matching;
mod rollout;
mod workload;

pub use cluster::Cluster;
pub use health::{Health, health};
pub use matching::{Change, ContainerChange, Current, Matched, Wanted, match_workloads};
pub use rollout::{Outcome, Rollout, Sink};
pub use workload::{ContainerImage, Workload, WorkloadId, image_patch};

/// What went wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Neither `rollout.clusters` nor `rollout.gitops` names anything.
    #[error(
        "nothing to roll out to: add a cluster under rollout.clusters or a repository under rollout.gitops in the config"
    )]
    NoClusters,
    /// The kubeconfig (or in-cluster account) could not be read.
    #[error("rollout.clusters.{cluster}: {detail}")]
    Config {
        /// The cluster's name.
        cluster: String,
        /// What was wrong.
        detail: String,
    },
    /// A call to the API server failed.
    #[error("cluster {cluster}: {what}: {detail}")]
    Api {
        /// The cluster's name.
        cluster: String,
        /// What freshen was doing.
        what: String,
        /// What the server (or the transport) said.
        detail: String,
    },
}
