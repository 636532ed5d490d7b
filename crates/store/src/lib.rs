//! freshen's store: digest history, change events, the delivery outbox and
//! the shared poll schedule, in SQLite (embedded default) or PostgreSQL
//! (several replicas), with one schema and one set of queries.
//!
//! Every query is a runtime query written once with `$N` placeholders, which
//! both drivers accept (sqlx-sqlite binds `$N` to the N-th argument); text only
//! differs where the dialects do, i.e. row locks (`FOR UPDATE [SKIP LOCKED]`)
//! that only PostgreSQL needs. Timestamps are stored as BIGINT unix
//! milliseconds.
//!
//! Concurrency: on SQLite every multi-statement write runs in `BEGIN
//! IMMEDIATE` (writers queue on the file lock, within `busy_timeout`, instead
//! of failing); on PostgreSQL, `record` row-locks the reference and the lease
//! queries claim with `FOR UPDATE SKIP LOCKED`, so replicas never take the same
//! row.

mod approvals;
mod error;
mod feeds;
mod health;
mod history;
mod inventory;
mod model;
mod open;
mod outbox;
mod page;
mod rebuilds;
mod reports;
mod rollouts;
mod schedule;
mod sql;
mod vulnerable;
mod vulns;

use std::sync::Arc;

pub use approvals::{Approval, ApprovalState};
pub use error::StoreError;
pub use feeds::{FeedArchive, InventoryEcosystems};
pub use inventory::{
    ChildEdge, ImageFilter, ImageRecord, ImageRef, ImageSummary, LineageEdge, PackageHolder,
    PackageRecord,
};
pub use model::{
    Backend, ChangeEvent, Delivery, DeliveryState, EventDecision, HistoryEntry, Judgement,
    Observation, PlatformChange, PlatformDigest, Recorded, Status, VulnerabilityCause,
};
pub use page::Page;
pub use vulnerable::Vulnerable;

pub use outbox::{Notice, TriggerFilter};
pub use rebuilds::{ItemState, RebuildItem, RebuildRun, RunState};
pub use reports::{ReportImport, ReportInput, ReportOutcome, StoredReport};
pub use rollouts::{RolloutItem, RolloutRecord, RolloutState};
pub use vulns::{AdvisoryInput, Decision, FleetPackage, ImportSummary};

use sql::Db;

/// A handle on the database; cheap to clone (clones share one pool).
#[derive(Clone)]
pub struct Store {
    db: Db,
    redacted_url: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("url", &self.redacted_url)
            .finish()
    }
}

impl Store {
    /// Connects to the database named by `url` and brings its schema up to date.
    ///
    /// Accepted: `sqlite:///abs/path.db`, `sqlite://relative/path.db` (file and
    /// parent directories are created), `sqlite::memory:` (one connection, gone
    /// when the store is dropped), `postgres://...` or `postgresql://...`.
    /// Errors name the URL with its password redacted.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        open::open(url).await
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL the store was opened with, password replaced by `***`: safe
    /// for logs and status pages.
    pub fn redacted_url(&self) -> String {
        self.redacted_url.to_string()
    }

    /// Closes all connections (waiting for those in use to come back), e.g.
    /// at shutdown so SQLite can checkpoint its WAL. Later calls on any clone fail.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
