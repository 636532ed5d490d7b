//! The "plan" and "execute" stations: what freshen can rebuild (build
//! definitions from the config and from a repository tree laid out as
//! `app/version/Dockerfile`), and in which order a change calls for it
//! (rebuild waves, parents first).

mod cascade;
mod definition;
mod discover;
mod executor;
mod plan;
mod promote;
mod rebase;
mod run;
pub mod telemetry;
mod version;

pub use cascade::{
    CascadeDone, CascadeError, Cascader, EventPlan, mark_not_buildable, plan_cascade, plan_event,
};
pub use definition::{Build, BuildSpec, DiscoverSpec, Executor, load};
pub use executor::{
    BuildPush, BuildahSettings, BuilderSettings, ContainersBuildPush, ContainersSettings,
    ContainersTool, DockerSettings, JenkinsBuildPush, JenkinsSettings, KanikoSettings,
    PodmanSettings, PushTarget,
};
pub use plan::{Plan, PlannedBuild, Trigger, plan};
pub use promote::{PromoteError, promote};
pub use rebase::{Rebased, rebase};
pub use run::{GateVerdict, Progress, PromoteGate, RunEnd, RunReport, Runner};
pub use version::{Bump, DEFAULT_SCHEME, Part, Scheme};

/// Why a build definition or a plan is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A definition is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A Dockerfile can't be read or parsed.
    #[error("{path}: {message}")]
    Dockerfile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A builder failed; the message names the image and the step.
    #[error("{0}")]
    Executor(String),
    /// A Jenkins build failed, was cancelled or timed out, or Jenkins
    /// could not be asked; the message names the build and its URL.
    #[error("{image}: Jenkins job {job}: {message}")]
    Jenkins {
        /// The build's image.
        image: String,
        /// The job.
        job: String,
        /// What happened.
        message: String,
    },
    /// A rebase would be unsafe; the message names the image and why. A
    /// build with a `fallback` is built by that instead.
    #[error("rebase refused: {0}")]
    Refused(String),
    /// The build graph is not a DAG, or two definitions build one image.
    #[error(transparent)]
    Graph(#[from] freshen_lineage::PlanError),
    /// A registry request failed (listing tags, promoting).
    #[error(transparent)]
    Registry(#[from] freshen_registry::RegistryError),
    /// Progress could not be stored.
    #[error(transparent)]
    Store(#[from] freshen_store::StoreError),
    /// A reference could not be made (a version that is no valid tag).
    #[error(transparent)]
    Reference(#[from] freshen_reference::ReferenceError),
    /// The inventory could not answer (what is built on a base).
    #[error(transparent)]
    Inventory(#[from] freshen_inventory::InventoryError),
}
