//! Approvals: a cascade or a roll-out held until a person decides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::stored_as_text;
use crate::outbox::insert_delivery;
use crate::sql::{from_ms, query_err, to_ms, with_pool, with_tx};
use crate::{Store, StoreError};

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a decision.
    Pending,
    /// Approved: the held work goes on.
    Approved,
    /// Rejected: the held work is not done.
    Rejected,
    /// Nobody decided in time: treated as rejected.
    Expired,
}

stored_as_text!(ApprovalState {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Expired => "expired",
});

/// An approval, asked for or decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// UUID v7.
    pub id: String,
    /// `cascade` or `rollout`.
    pub stage: String,
    /// What is held: the change event (cascade) or the rebuild run (rollout).
    pub subject: String,
    /// The change event behind it.
    pub event_id: String,
    /// The image that changed.
    pub reference: String,
    /// Who asks for it (the watch or policy, by name).
    pub reason: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
    /// When a pending approval expires.
    pub expires_at: DateTime<Utc>,
    /// When it was decided (or expired).
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Why (a rejection's reason, an approval's note).
    pub comment: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    stage: String,
    subject: String,
    event_id: String,
    reference: String,
    reason: String,
    state: String,
    requested_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    comment: Option<String>,
}

impl Row {
    fn into_approval(self) -> Result<Approval, StoreError> {
        Ok(Approval {
            state: ApprovalState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
                context: "approvals.state",
                detail: format!("unknown state {:?}", self.state),
            })?,
            requested_at: from_ms(self.requested_at, "approvals.requested_at")?,
            expires_at: from_ms(self.expires_at, "approvals.expires_at")?,
            decided_at: self
                .decided_at
                .map(|t| from_ms(t, "approvals.decided_at"))
                .transpose()?,
            id: self.id,
            stage: self.stage,
            subject: self.subject,
            event_id: self.event_id,
            reference: self.reference,
            reason: self.reason,
            decided_by: self.decided_by,
            comment: self.comment,
        })
    }
}

macro_rules! approval_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, stage, subject, event_id, reference, reason, state, requested_at, expires_at, decided_at, decided_by, comment FROM approvals ",
            $tail
        )
    };
}

impl Store {
    /// Asks for `approval` unless one is stored for its stage and subject
    /// already, and in the same transaction queues its announcement to
    /// `announce` (deliveries of its event with `payload`). Answers the
    /// stored approval, new or not.
    pub async fn request_approval(
        &self,
        approval: &Approval,
        announce: &[String],
        payload: &serde_json::Value,
    ) -> Result<Approval, StoreError> {
        const CTX: &str = "ask for an approval";
        let mut tx = self.db.begin_write(CTX).await?;
        let inserted = with_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO approvals (id, stage, subject, event_id, reference, reason, state, requested_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (stage, subject) DO NOTHING")
            .bind(&approval.id)
            .bind(&approval.stage)
            .bind(&approval.subject)
            .bind(&approval.event_id)
            .bind(&approval.reference)
            .bind(&approval.reason)
            .bind(ApprovalState::Pending.as_str())
            .bind(to_ms(approval.requested_at))
            .bind(to_ms(approval.expires_at))
            .execute(conn)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err(CTX))?;
        if inserted == 1 {
            for trigger in announce {
                insert_delivery(
                    &mut tx,
                    &approval.event_id,
                    trigger,
                    payload,
                    approval.requested_at,
                    approval.requested_at,
                    CTX,
                )
                .await?;
            }
        }
        tx.commit(CTX).await?;
        self.approval_for(&approval.stage, &approval.subject)
            .await?
            .ok_or_else(|| StoreError::Invalid("an approval asked for is not stored".into()))
    }

    /// Marks pending approvals past their expiry `expired`.
    pub async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "UPDATE approvals SET state = $1, decided_at = expires_at WHERE state = $2 AND expires_at <= $3")
            .bind(ApprovalState::Expired.as_str())
            .bind(ApprovalState::Pending.as_str())
            .bind(to_ms(now))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("expire approvals"))
    }

    /// The approval of a stage's subject, if asked for.
    pub async fn approval_for(
        &self,
        stage: &str,
        subject: &str,
    ) -> Result<Option<Approval>, StoreError> {
        let row: Option<Row> = with_pool!(&self.db, pool => sqlx::query_as(approval_sql!("WHERE stage = $1 AND subject = $2"))
            .bind(stage)
            .bind(subject)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read an approval"))?;
        row.map(Row::into_approval).transpose()
    }

    /// An approval by id.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let row: Option<Row> =
            with_pool!(&self.db, pool => sqlx::query_as(approval_sql!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await)
            .map_err(query_err("read an approval"))?;
        row.map(Row::into_approval).transpose()
    }

    /// Approvals, newest first; with `pending`, only those waiting.
    pub async fn approvals(
        &self,
        pending: bool,
        page: impl Into<crate::Page>,
    ) -> Result<Vec<Approval>, StoreError> {
        let page = page.into();
        let rows: Vec<Row> = with_pool!(&self.db, pool => sqlx::query_as(approval_sql!(
            "WHERE ($1 = FALSE OR state = $2) ORDER BY requested_at DESC, id DESC LIMIT $3 OFFSET $4"))
            .bind(pending)
            .bind(ApprovalState::Pending.as_str())
            .bind(page.sql_limit())
            .bind(page.sql_offset())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list approvals"))?;
        rows.into_iter().map(Row::into_approval).collect()
    }

    /// Decides a pending approval; false when it is not pending (decided,
    /// or expired) or unknown.
    pub async fn decide_approval(
        &self,
        id: &str,
        state: ApprovalState,
        by: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(&self.db, pool => sqlx::query(
            "UPDATE approvals SET state = $2, decided_by = $3, comment = $4, decided_at = $5 \
             WHERE id = $1 AND state = $6 AND expires_at > $5")
            .bind(id)
            .bind(state.as_str())
            .bind(by)
            .bind(comment)
            .bind(to_ms(now))
            .bind(ApprovalState::Pending.as_str())
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("decide an approval"))?;
        Ok(n == 1)
    }

    /// Makes the held cascade delivery of `event_id` due now (a decision
    /// was made: it need not wait for its next look). Other triggers keep
    /// their backoff.
    pub async fn wake_deliveries(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $2 WHERE event_id = $1 AND trigger_name = 'cascade' AND state = 'pending' AND next_attempt_at > $2")
            .bind(event_id)
            .bind(to_ms(now))
            .execute(pool)
            .await
            .map(|x| x.rows_affected()))
        .map_err(query_err("wake an event's deliveries"))?;
        Ok(())
    }
}
