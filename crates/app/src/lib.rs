//! The application layer: what a user can ask of freshen, one method per
//! action, for the CLI, the HTTP API and the daemon alike.
//!
//! An [`App`] is built once from the loaded config and the `--database`
//! override. It owns the store (opened on first use, so actions that need
//! no database never open one), the registry client and the services over
//! them. Its methods return typed results and [`AppError`]; printing and
//! exit codes are the caller's.

mod approvals;
mod check;
mod database;
mod error;
mod feeds;
mod harbor;
mod inventory;
mod notify;
mod promote;
mod rebuild;
mod records;
mod rollout;
mod telemetry;
mod vulns;
mod watching;

use std::sync::Arc;

use freshen_actions::Deliverer;
use freshen_config::Loaded;
use freshen_inventory::{Queries, Scanner};
use freshen_reference::{Platform, Reference};
use freshen_registry::{Client, ClientOptions};
use freshen_store::Store;
use freshen_watch::Checker;
use tokio::sync::{Notify, OnceCell};

pub use check::{CheckFlags, CheckReport, Digest};
pub use database::{data_dir, database_url};
pub use error::AppError;
pub use feeds::FeedsSynced;
pub use freshen_deploy::DeployError;
pub use harbor::harbor_credentials;
pub use inventory::{ImagePage, MAX_PAGE, SbomFormat, ScanObserver, ScanRequest, Scanned};
pub use promote::{Promoted, Promotion};
pub use rebuild::{PlanRequest, Planned, RebuildProgress, Verified};
pub use records::History;
pub use rollout::{
    OnRolloutProgress, RolloutPlan, RolloutProgress, RolloutReport, RolloutRequest, WantedImage,
};
pub use telemetry::{metric_names, register_metrics};
pub use vulns::HarborSource;
pub use watching::Watcher;

/// What the actions answer with, as the layers that make it define it,
/// so that a front end needs no crate but this one to print an answer.
pub mod view {
    pub use freshen_actions::callback::shown_payload;
    pub use freshen_deploy::{Change, ContainerChange, Current, Matched, Outcome, WorkloadId};
    pub use freshen_inventory::{ChildView, ImageView, PackageVersion, Registration, ScanReport};
    pub use freshen_judge::{
        AffectedImage, ArchiveOutcome, ArchiveSync, BaseDiff, FeedSync, FindingOutcome, ImageVulns,
        Imported, PolicyCheck, Replay,
    };
    pub use freshen_rebuild::{Plan, Progress, RunReport, Trigger};
    pub use freshen_reference::Reference;
    pub use freshen_registry::{CopyReport, PlatformManifest, Resolved};
    pub use freshen_store::{
        Approval, ApprovalState, ChangeEvent, Decision, Delivery, DeliveryState, FeedArchive,
        HistoryEntry, ImageFilter, ImageSummary, ImportSummary, PackageRecord, Page, RebuildRun,
        RolloutItem, RolloutRecord, RolloutState, RunState, Status,
    };
    pub use freshen_vuln::Finding;
}

/// The application: the config, the store, the registry client, and the
/// services over them.
pub struct App {
    loaded: Loaded,
    /// `--database`: wins over the config's `database:`.
    database: Option<String>,
    client: Client,
    store: OnceCell<Store>,
    /// Poked when a webhook queues deliveries, so the daemon in this
    /// process delivers them now rather than after its idle wait.
    wake: Arc<Notify>,
    /// The webhook intake, built on first use (it validates receivers).
    intake: OnceCell<freshen_intake::Intake>,
}

impl App {
    /// An application over `loaded`, with `database` (the `--database`
    /// flag or `FRESHEN_DATABASE`) overriding the config's database.
    /// Opens nothing yet.
    pub fn new(loaded: Loaded, database: Option<String>) -> App {
        let client = new_client(&loaded);
        App {
            loaded,
            database,
            client,
            store: OnceCell::new(),
            wake: Arc::new(Notify::new()),
            intake: OnceCell::new(),
        }
    }

    /// An application over `loaded` and a store already open (a test's,
    /// or an embedder's); the config's database is then not used.
    pub fn with_store(loaded: Loaded, store: Store) -> App {
        let app = App::new(loaded, None);
        app.store
            .set(store)
            .unwrap_or_else(|_| unreachable!("a new app has no store yet"));
        app
    }

    /// A user's image reference, normalised by the config's
    /// `default_registry` (`debian` is `docker.io/library/debian:latest`);
    /// the error names the input.
    pub fn reference(&self, s: &str) -> Result<Reference, AppError> {
        Ok(Reference::parse_with(s, &self.loaded.defaults)?)
    }

    /// The loaded config.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The store, opened on first use.
    async fn store(&self) -> Result<&Store, AppError> {
        self.store
            .get_or_try_init(|| async {
                let url = database::database_url_to_open(self.database.as_deref(), &self.loaded)?;
                Ok::<_, AppError>(Store::open(&url).await?)
            })
            .await
    }

    /// Opens the store now (the first action would otherwise), so that an
    /// unreachable database is said before anything else is started.
    pub async fn open(&self) -> Result<(), AppError> {
        self.store().await.map(|_| ())
    }

    /// The inventory's queries, over the store (opened if need be).
    pub(crate) async fn queries(&self) -> Result<Queries, AppError> {
        Ok(Queries::new(
            self.store().await?.clone(),
            self.loaded.defaults.clone(),
        ))
    }

    /// The "judge" service over the store: findings, imports, policies.
    pub(crate) async fn vulns(&self) -> Result<freshen_judge::Vulns, AppError> {
        Ok(freshen_judge::Vulns::new(
            self.store().await?.clone(),
            self.loaded.defaults.clone(),
        ))
    }

    fn scanner(&self, store: &Store) -> Scanner {
        Scanner::new(
            self.client.clone(),
            store.clone(),
            self.loaded.defaults.clone(),
        )
    }

    /// A checker whose changes are judged by the config's policies (which
    /// costs nothing while every policy is `always`) and reach the
    /// inventory, over `client`.
    fn checker(&self, client: Client, store: &Store, concurrency: usize) -> Checker {
        // One scanner for the judge and the inventory's upkeep, so a layer
        // both want is read once.
        let scanner = Scanner::new(client.clone(), store.clone(), self.loaded.defaults.clone());
        let judge = freshen_judge::Judge::new(
            scanner.clone(),
            Queries::new(store.clone(), self.loaded.defaults.clone()),
            Arc::new(self.loaded.policies.clone()),
        );
        Checker::new(client, store.clone(), scanner, concurrency).with_judge(judge)
    }

    /// The deliverer of the configured triggers (cascades excepted); an
    /// error when a trigger's `${ENV}` was left unset
    /// (`freshen_config::Unset::DeferTriggers`).
    fn deliverer(&self, store: &Store) -> Result<Deliverer, AppError> {
        self.loaded.check_triggers()?;
        Ok(Deliverer::new(
            store.clone(),
            self.loaded.config.triggers.clone(),
            self.loaded.config.outbox.clone(),
            self.loaded.base_dir.clone(),
        ))
    }
}

/// A registry client configured by the config's `registries:`. Long-lived
/// parts (the daemon's checker, cascades, the webhook intake) each get
/// their own, as before: their per-registry request limits are then not
/// shared with one another.
fn new_client(loaded: &Loaded) -> Client {
    Client::new(ClientOptions {
        registries: loaded.config.registries.clone(),
        ..ClientOptions::default()
    })
}

fn parse_platforms(list: &[String]) -> Result<Vec<Platform>, AppError> {
    Ok(list
        .iter()
        .map(|p| Platform::parse(p))
        .collect::<Result<_, _>>()?)
}
