//! Why an action failed: one error type for the whole application layer.
//!
//! A layer's error is wrapped transparently, so its message (and its
//! causes) read exactly as the layer wrote them; the CLI prints the chain on
//! one line, outermost first. The application's own refusals carry the
//! text the user reads.

use freshen_reference::ReferenceError;

/// Why an application action failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// What was asked can't be done as asked (nothing to check, no such
    /// run, ...); the message says what to do instead.
    #[error("{0}")]
    Refused(String),
    /// No `--database`, no `database:` in the config, and no directory to
    /// keep the default SQLite file in.
    #[error("no data directory: set FRESHEN_DATA_DIR, HOME, or --database")]
    NoDataDir,
    /// The default data directory can't be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why it can't be created.
        #[source]
        source: std::io::Error,
    },
    /// The config can't serve this action (a trigger's `${ENV}` is not set).
    #[error(transparent)]
    Config(#[from] freshen_config::ConfigError),
    /// Only one of the Harbor robot account's variables is set.
    #[error(
        "set both FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD (a Harbor robot account), or neither"
    )]
    HarborCredentials,
    /// The Dockerfile given as lineage evidence can't be read.
    #[error("cannot read Dockerfile {path}")]
    Dockerfile {
        /// The path as given.
        path: String,
        /// Why it can't be read.
        #[source]
        source: std::io::Error,
    },
    /// A build argument is not `NAME=VALUE`.
    #[error("--build-arg {0:?}: expected NAME=VALUE")]
    BuildArg(String),
    /// A promotion target with `/`, `:` or `@` is no valid reference.
    #[error("--to {to}: not a tag or a reference")]
    PromoteReference {
        /// The target as given.
        to: String,
        /// Why it is not a reference.
        #[source]
        source: ReferenceError,
    },
    /// A promotion target is no valid tag.
    #[error("--to {to}: not a valid tag")]
    PromoteTag {
        /// The target as given.
        to: String,
        /// Why it is not a tag.
        #[source]
        source: ReferenceError,
    },
    /// A watch or receiver asks for cascades, and the build definitions
    /// can't be loaded.
    #[error("a watch or receiver has `on_change: [cascade]`")]
    CascadeBuilds(#[source] freshen_rebuild::BuildError),
    /// A reference or platform is malformed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] freshen_registry::RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] freshen_store::StoreError),
    /// The inventory could not answer or record.
    #[error(transparent)]
    Inventory(#[from] freshen_inventory::InventoryError),
    /// Vulnerability data could not be imported or judged.
    #[error(transparent)]
    Judge(#[from] freshen_judge::JudgeError),
    /// Planning or running a rebuild failed.
    #[error(transparent)]
    Build(#[from] freshen_rebuild::BuildError),
    /// A promotion failed (boxed: it is the largest, and rare).
    #[error(transparent)]
    Promote(Box<freshen_rebuild::PromoteError>),
    /// Harbor could not be asked.
    #[error(transparent)]
    Harbor(#[from] freshen_harbor::HarborError),
    /// The feed downloader could not be set up.
    #[error(transparent)]
    Feed(#[from] freshen_feeds::FeedError),
    /// A cluster could not be reached or refused a call.
    #[error(transparent)]
    Deploy(#[from] freshen_deploy::DeployError),
    /// A webhook receiver in the config is unusable.
    #[error(transparent)]
    Receiver(#[from] freshen_intake::ReceiverError),
}

impl From<freshen_rebuild::PromoteError> for AppError {
    fn from(e: freshen_rebuild::PromoteError) -> AppError {
        AppError::Promote(Box::new(e))
    }
}
