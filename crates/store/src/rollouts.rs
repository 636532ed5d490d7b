//! Roll-outs and each of their workloads' outcomes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::stored_as_text;
use crate::outbox::{Notice, insert_keyed_delivery};
use crate::rebuilds::RunState;
use crate::sql::{from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// Where one workload of a roll-out stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Not started.
    Pending,
    /// Patched, its rollout being watched.
    Rolling,
    /// On the new digests and healthy.
    Done,
    /// Its rollout failed and the old images were put back.
    RolledBack,
    /// It failed and could not be put back, or could not be patched.
    Failed,
    /// Not touched: an earlier wave failed, or someone else changed it.
    Skipped,
}

stored_as_text!(RolloutState {
    Pending => "pending",
    Rolling => "rolling",
    Done => "done",
    RolledBack => "rolled_back",
    Failed => "failed",
    Skipped => "skipped",
});

impl RolloutState {
    /// Whether the workload's part is over (nothing to resume).
    pub fn is_final(self) -> bool {
        !matches!(self, RolloutState::Pending | RolloutState::Rolling)
    }
}

/// A roll-out: workloads moved to new digests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// UUID v7.
    pub id: String,
    /// What was rolled out: the rebuild run or the image, and the digests.
    pub trigger: serde_json::Value,
    /// The rebuild run it follows; at most one roll-out per run.
    pub run_id: Option<String>,
    /// Running, done or failed.
    pub state: RunState,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One workload of a roll-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutItem {
    /// `cluster/namespace/kind/name`.
    pub workload: String,
    /// The cluster's name in the config.
    pub cluster: String,
    /// Deployment, StatefulSet, DaemonSet or CronJob.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its wave, from 0.
    pub wave: i32,
    /// The containers moved: `[{container, init, old, new}]`.
    pub containers: serde_json::Value,
    /// Where it stands.
    pub state: RolloutState,
    /// What happened, or why not.
    pub detail: Option<String>,
    /// When it was patched.
    pub started_at: Option<DateTime<Utc>>,
    /// When its outcome was known.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct RolloutRow {
    id: String,
    trigger: String,
    run_id: Option<String>,
    state: String,
    created_at: i64,
    finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    workload: String,
    cluster: String,
    kind: String,
    namespace: String,
    name: String,
    wave: i32,
    containers: String,
    state: String,
    detail: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn corrupt(context: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        context,
        detail: detail.to_string(),
    }
}

impl RolloutRow {
    fn into_record(self) -> Result<RolloutRecord, StoreError> {
        Ok(RolloutRecord {
            trigger: serde_json::from_str(&self.trigger)
                .map_err(|e| corrupt("rollouts.trigger", e))?,
            state: RunState::parse(&self.state).ok_or_else(|| {
                corrupt("rollouts.state", format!("unknown state {:?}", self.state))
            })?,
            created_at: from_ms(self.created_at, "rollouts.created_at")?,
            finished_at: self
                .finished_at
                .map(|t| from_ms(t, "rollouts.finished_at"))
                .transpose()?,
            id: self.id,
            run_id: self.run_id,
        })
    }
}

impl ItemRow {
    fn into_item(self) -> Result<RolloutItem, StoreError> {
        Ok(RolloutItem {
            containers: serde_json::from_str(&self.containers)
                .map_err(|e| corrupt("rollout_items.containers", e))?,
            state: RolloutState::parse(&self.state).ok_or_else(|| {
                corrupt(
                    "rollout_items.state",
                    format!("unknown state {:?}", self.state),
                )
            })?,
            started_at: self
                .started_at
                .map(|t| from_ms(t, "rollout_items.started_at"))
                .transpose()?,
            finished_at: self
                .finished_at
                .map(|t| from_ms(t, "rollout_items.finished_at"))
                .transpose()?,
            workload: self.workload,
            cluster: self.cluster,
            kind: self.kind,
            namespace: self.namespace,
            name: self.name,
            wave: self.wave,
            detail: self.detail,
        })
    }
}

macro_rules! rollout_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, trigger, run_id, state, created_at, finished_at FROM rollouts ",
            $tail
        )
    };
}

impl Store {
    /// Stores a new roll-out and its workloads (all `pending`) in one
    /// transaction. A second roll-out of the same rebuild run is refused
    /// by the store (`run_id` is unique): read [`Store::rollout_for_run`].
    ///
    /// `owner` holds the roll-out's lease until `lease` from its creation:
    /// renew it with [`Store::claim_rollout`] while it runs. Answers false
    /// (nothing written) when the run has a roll-out already.
    pub async fn create_rollout(
        &self,
        rollout: &RolloutRecord,
        items: &[RolloutItem],
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "create a roll-out";
        let mut tx = self.db.begin_write(CTX).await?;
        let n = with_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO rollouts (id, trigger, run_id, state, created_at, lease_owner, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id) DO NOTHING")
            .bind(&rollout.id)
            .bind(rollout.trigger.to_string())
            .bind(rollout.run_id.as_deref())
            .bind(rollout.state.as_str())
            .bind(to_ms(rollout.created_at))
            .bind(owner)
            .bind(crate::sql::lease_until(rollout.created_at, lease))
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        if n == 0 {
            return Ok(false);
        }
        for item in items {
            with_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO rollout_items (rollout_id, workload, cluster, kind, namespace, name, wave, containers, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&rollout.id)
                .bind(&item.workload)
                .bind(&item.cluster)
                .bind(&item.kind)
                .bind(&item.namespace)
                .bind(&item.name)
                .bind(item.wave)
                .bind(item.containers.to_string())
                .bind(RolloutState::Pending.as_str())
                .execute(conn)
                .await
                .map(|x| x.rows_affected()))
            .map_err(query_err(CTX))?;
        }
        tx.commit(CTX).await?;
        Ok(true)
    }

    /// Takes (or renews) a running roll-out's lease for `owner` until
    /// `now + lease`. Answers `None` when taken, else the owner holding it.
    pub async fn claim_rollout(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let n = with_pool!(&self.db, pool => sqlx::query(
            "UPDATE rollouts SET lease_owner = $2, lease_until = $3 WHERE id = $1 AND state = $5 \
             AND (lease_until IS NULL OR lease_until <= $4 OR lease_owner = $2)")
            .bind(id)
            .bind(owner)
            .bind(crate::sql::lease_until(now, lease))
            .bind(to_ms(now))
            .bind(RunState::Running.as_str())
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("lease a roll-out"))?;
        if n == 1 {
            return Ok(None);
        }
        let holder: Option<(Option<String>,)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT lease_owner FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read a roll-out's lease"))?;
        Ok(Some(
            holder
                .and_then(|(o,)| o)
                .unwrap_or_else(|| "nobody (it ended)".into()),
        ))
    }

    /// A roll-out by id.
    pub async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        let row: Option<RolloutRow> =
            with_pool!(&self.db, pool => sqlx::query_as(rollout_sql!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await)
            .map_err(query_err("read a roll-out"))?;
        row.map(RolloutRow::into_record).transpose()
    }

    /// The roll-out that follows a rebuild run, if there is one.
    pub async fn rollout_for_run(&self, run_id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        let row: Option<RolloutRow> =
            with_pool!(&self.db, pool => sqlx::query_as(rollout_sql!("WHERE run_id = $1"))
            .bind(run_id)
            .fetch_optional(pool)
            .await)
            .map_err(query_err("read a rebuild run's roll-out"))?;
        row.map(RolloutRow::into_record).transpose()
    }

    /// The digests roll-outs of one image (`freshen rollout IMAGE`) moved
    /// workloads to: a workload pinned to one of them still follows it.
    pub async fn rolled_out_digests(&self, image: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT trigger FROM rollouts WHERE run_id IS NULL AND trigger LIKE $1")
            .bind(format!("%{image}%"))
            .fetch_all(pool)
            .await)
        .map_err(query_err("read an image's roll-outs"))?;
        // LIKE narrows; the JSON decides (`_` and `%` in names are wildcards).
        Ok(rows
            .into_iter()
            .filter_map(|(t,)| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|t| t["image"] == image)
            .filter_map(|t| t["digest"].as_str().map(String::from))
            .collect())
    }

    /// Roll-outs, newest first.
    pub async fn rollouts(
        &self,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<RolloutRecord>, StoreError> {
        let page = page.into();
        let rows: Vec<RolloutRow> = with_pool!(&self.db, pool => sqlx::query_as(rollout_sql!(
            "ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"))
            .bind(page.sql_limit())
            .bind(page.sql_offset())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list roll-outs"))?;
        rows.into_iter().map(RolloutRow::into_record).collect()
    }

    /// The workloads of a roll-out, by wave then workload.
    pub async fn rollout_items(&self, rollout_id: &str) -> Result<Vec<RolloutItem>, StoreError> {
        let rows: Vec<ItemRow> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT workload, cluster, kind, namespace, name, wave, containers, state, detail, started_at, finished_at \
             FROM rollout_items WHERE rollout_id = $1 ORDER BY wave, workload")
            .bind(rollout_id)
            .fetch_all(pool)
            .await)
        .map_err(query_err("read a roll-out's workloads"))?;
        rows.into_iter().map(ItemRow::into_item).collect()
    }

    /// Records a workload's progress: `rolling` stamps `started_at`, a
    /// final state `finished_at`.
    pub async fn set_rollout_item(
        &self,
        rollout_id: &str,
        workload: &str,
        state: RolloutState,
        detail: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let started = state == RolloutState::Rolling;
        let n = with_pool!(&self.db, pool => sqlx::query(
            "UPDATE rollout_items SET state = $3, detail = $4, \
             started_at = CASE WHEN $5 THEN $6 ELSE started_at END, \
             finished_at = CASE WHEN $5 THEN NULL ELSE $6 END WHERE rollout_id = $1 AND workload = $2")
            .bind(rollout_id)
            .bind(workload)
            .bind(state.as_str())
            .bind(detail)
            .bind(started)
            .bind(to_ms(at))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("record roll-out progress"))?;
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "roll-out {rollout_id} has no workload {workload}"
            )));
        }
        Ok(())
    }

    /// Ends a roll-out (or, with `Running`, opens it again to resume it).
    pub async fn finish_rollout(
        &self,
        id: &str,
        state: RunState,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.finish_rollout_telling(id, state, at, &[]).await
    }

    /// Ends a roll-out and, in the same transaction, queues `notices`
    /// (its result), each once per roll-out, state and trigger.
    pub async fn finish_rollout_telling(
        &self,
        id: &str,
        state: RunState,
        at: DateTime<Utc>,
        notices: &[Notice],
    ) -> Result<(), StoreError> {
        const CTX: &str = "finish a roll-out";
        let finished = (state != RunState::Running).then(|| to_ms(at));
        let mut tx = self.db.begin_write(CTX).await?;
        with_tx!(&mut tx, conn => sqlx::query(
            "UPDATE rollouts SET state = $2, finished_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(finished)
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        for n in notices {
            let key = format!("rollout:{id}:{}:{}", state.as_str(), n.trigger);
            insert_keyed_delivery(&mut tx, id, n, &key, at, CTX).await?;
        }
        tx.commit(CTX).await
    }
}
