//! Rebuild runs and the progress of each of their images.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::stored_as_text;
use crate::outbox::{Notice, insert_keyed_delivery};
use crate::sql::{from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// Where a rebuild run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Being carried out (or interrupted, and resumable).
    Running,
    /// Every image was built and pushed.
    Done,
    /// It ended with an image failed or skipped.
    Failed,
}

stored_as_text!(RunState {
    Running => "running",
    Done => "done",
    Failed => "failed",
});

/// Where one image of a rebuild run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    /// Not started.
    Pending,
    /// Being built.
    Running,
    /// Built and pushed.
    Done,
    /// Its build or push failed.
    Failed,
    /// Not built, because an image it is built on failed.
    Skipped,
}

stored_as_text!(ItemState {
    Pending => "pending",
    Running => "running",
    Done => "done",
    Failed => "failed",
    Skipped => "skipped",
});

/// A rebuild run: a plan being carried out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RebuildRun {
    /// UUID v7.
    pub id: String,
    /// What the plan started from.
    pub trigger: serde_json::Value,
    /// Why it ran: the change event, the policy decision, the data snapshot.
    pub cause: serde_json::Value,
    /// The plan as made.
    pub plan: serde_json::Value,
    /// Running, done or failed.
    pub state: RunState,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The change event whose cascade this run is (`on_change: [cascade]`);
    /// `None` for runs started by hand. At most one run per event.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// One image of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildItem {
    /// The build's image.
    pub image: String,
    /// Its wave, from 0.
    pub wave: i32,
    /// Pending, running, done, failed or skipped.
    pub state: ItemState,
    /// The version tag it was pushed as.
    pub version: Option<String>,
    /// The digest pushed.
    pub digest: Option<String>,
    /// Why it failed or was skipped.
    pub detail: Option<String>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    trigger: String,
    cause: String,
    plan: String,
    state: String,
    created_at: i64,
    finished_at: Option<i64>,
    event_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    image: String,
    wave: i32,
    state: String,
    version: Option<String>,
    digest: Option<String>,
    detail: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn state<T>(s: &str, parse: fn(&str) -> Option<T>, what: &'static str) -> Result<T, StoreError> {
    parse(s).ok_or_else(|| StoreError::Corrupt {
        context: what,
        detail: format!("unknown state {s:?}"),
    })
}

fn json(s: &str, what: &'static str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        context: what,
        detail: e.to_string(),
    })
}

impl RunRow {
    fn into_run(self) -> Result<RebuildRun, StoreError> {
        Ok(RebuildRun {
            trigger: json(&self.trigger, "rebuild_runs.trigger")?,
            cause: json(&self.cause, "rebuild_runs.cause")?,
            plan: json(&self.plan, "rebuild_runs.plan")?,
            created_at: from_ms(self.created_at, "rebuild_runs.created_at")?,
            finished_at: self
                .finished_at
                .map(|t| from_ms(t, "rebuild_runs.finished_at"))
                .transpose()?,
            state: state(&self.state, RunState::parse, "rebuild_runs.state")?,
            id: self.id,
            event_id: self.event_id,
        })
    }
}

impl ItemRow {
    fn into_item(self) -> Result<RebuildItem, StoreError> {
        Ok(RebuildItem {
            started_at: self
                .started_at
                .map(|t| from_ms(t, "rebuild_items.started_at"))
                .transpose()?,
            finished_at: self
                .finished_at
                .map(|t| from_ms(t, "rebuild_items.finished_at"))
                .transpose()?,
            state: state(&self.state, ItemState::parse, "rebuild_items.state")?,
            image: self.image,
            wave: self.wave,
            version: self.version,
            digest: self.digest,
            detail: self.detail,
        })
    }
}

macro_rules! run_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, trigger, cause, plan, state, created_at, finished_at, event_id FROM rebuild_runs ",
            $tail
        )
    };
}

impl Store {
    /// Stores a new run and its images (all `pending`) in one transaction.
    pub async fn create_rebuild(
        &self,
        run: &RebuildRun,
        items: &[(String, i32)],
    ) -> Result<(), StoreError> {
        const CTX: &str = "create a rebuild run";
        let mut tx = self.db.begin_write(CTX).await?;
        with_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO rebuild_runs (id, trigger, cause, plan, state, created_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&run.id)
            .bind(run.trigger.to_string())
            .bind(run.cause.to_string())
            .bind(run.plan.to_string())
            .bind(run.state.as_str())
            .bind(to_ms(run.created_at))
            .bind(run.event_id.as_deref())
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        for (image, wave) in items {
            with_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO rebuild_items (run_id, image, wave, state) VALUES ($1, $2, $3, $4)")
                .bind(&run.id)
                .bind(image)
                .bind(*wave)
                .bind(ItemState::Pending.as_str())
                .execute(conn)
                .await
                .map(|x| x.rows_affected()))
            .map_err(query_err(CTX))?;
        }
        tx.commit(CTX).await
    }

    /// A run by id.
    pub async fn rebuild(&self, id: &str) -> Result<Option<RebuildRun>, StoreError> {
        let row: Option<RunRow> =
            with_pool!(&self.db, pool => sqlx::query_as(run_sql!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await)
            .map_err(query_err("read a rebuild run"))?;
        row.map(RunRow::into_run).transpose()
    }

    /// The run started for a change event's cascade, if there is one.
    pub async fn rebuild_for_event(
        &self,
        event_id: &str,
    ) -> Result<Option<RebuildRun>, StoreError> {
        let row: Option<RunRow> =
            with_pool!(&self.db, pool => sqlx::query_as(run_sql!("WHERE event_id = $1"))
            .bind(event_id)
            .fetch_optional(pool)
            .await)
            .map_err(query_err("read an event's rebuild run"))?;
        row.map(RunRow::into_run).transpose()
    }

    /// Runs, newest first; with `unfinished`, only those still `running`.
    pub async fn rebuilds(
        &self,
        unfinished: bool,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<RebuildRun>, StoreError> {
        let page = page.into();
        let rows: Vec<RunRow> = with_pool!(&self.db, pool => sqlx::query_as(run_sql!(
            "WHERE ($1 = FALSE OR state = $3) ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $4"))
            .bind(unfinished)
            .bind(page.sql_limit())
            .bind(RunState::Running.as_str())
            .bind(page.sql_offset())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list rebuild runs"))?;
        rows.into_iter().map(RunRow::into_run).collect()
    }

    /// The images of a run, by wave then image.
    pub async fn rebuild_items(&self, run_id: &str) -> Result<Vec<RebuildItem>, StoreError> {
        let rows: Vec<ItemRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT image, wave, state, version, digest, detail, started_at, finished_at \
             FROM rebuild_items WHERE run_id = $1 ORDER BY wave, image")
            .bind(run_id)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read a rebuild run's images"))?;
        rows.into_iter().map(ItemRow::into_item).collect()
    }

    /// Every digest a build of `image` was pushed as, oldest first: the
    /// digests a workload may still be pinned to.
    pub async fn rebuilt_digests(&self, image: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT digest FROM rebuild_items WHERE image = $1 AND digest IS NOT NULL \
             GROUP BY digest ORDER BY MIN(finished_at)")
            .bind(image)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read an image's rebuilt digests"))?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Records an image's progress. `started` stamps `started_at`, else
    /// `finished_at` is stamped.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_rebuild_item(
        &self,
        run_id: &str,
        image: &str,
        state: ItemState,
        version: Option<&str>,
        digest: Option<&str>,
        detail: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let started = state == ItemState::Running;
        let n = with_pool!(&self.db, pool => sqlx::query(
            "UPDATE rebuild_items SET state = $3, version = COALESCE($4, version), digest = COALESCE($5, digest), \
             detail = $6, started_at = CASE WHEN $7 THEN $8 ELSE started_at END, \
             finished_at = CASE WHEN $7 THEN NULL ELSE $8 END WHERE run_id = $1 AND image = $2")
            .bind(run_id)
            .bind(image)
            .bind(state.as_str())
            .bind(version)
            .bind(digest)
            .bind(detail)
            .bind(started)
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("record rebuild progress"))?;
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "rebuild run {run_id} has no image {image}"
            )));
        }
        Ok(())
    }

    /// Marks an ended run running again, as it is resumed.
    pub async fn reopen_rebuild(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "UPDATE rebuild_runs SET state = $2, finished_at = NULL WHERE id = $1")
            .bind(id)
            .bind(RunState::Running.as_str())
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("reopen a rebuild run"))?;
        Ok(())
    }

    /// Ends a run.
    pub async fn finish_rebuild(
        &self,
        id: &str,
        state: RunState,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.finish_rebuild_telling(id, state, at, &[]).await
    }

    /// Ends a run and, in the same transaction, queues `notices` (its
    /// result, to the triggers told of runs), each once per run, state and
    /// trigger: a run that fails again when retried tells nothing new, and
    /// a crash loses nothing (the run is then still running, and ends again
    /// when resumed).
    pub async fn finish_rebuild_telling(
        &self,
        id: &str,
        state: RunState,
        at: DateTime<Utc>,
        notices: &[Notice],
    ) -> Result<(), StoreError> {
        const CTX: &str = "finish a rebuild run";
        let mut tx = self.db.begin_write(CTX).await?;
        with_tx!(&mut tx, conn => sqlx::query(
            "UPDATE rebuild_runs SET state = $2, finished_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(to_ms(at))
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        for n in notices {
            let key = format!("rebuild:{id}:{}:{}", state.as_str(), n.trigger);
            insert_keyed_delivery(&mut tx, id, n, &key, at, CTX).await?;
        }
        tx.commit(CTX).await
    }
}
