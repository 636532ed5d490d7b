//! What the store remembers: a tag's digest history, change events, policy
//! decisions, and the outbox of trigger deliveries.

use freshen_reference::Reference;
use freshen_store::{ChangeEvent, Decision, Delivery, DeliveryState, HistoryEntry};

use crate::{App, AppError};

/// A tag's digest history.
#[derive(Debug, Clone)]
pub struct History {
    /// The reference, normalised.
    pub reference: Reference,
    /// Every digest seen, per platform, with first and last sight.
    pub rows: Vec<HistoryEntry>,
}

impl App {
    /// Every digest seen for `reference`, per platform. A tag never
    /// checked is an error saying how to check it.
    pub async fn history(&self, reference: &str) -> Result<History, AppError> {
        let store = self.store().await?;
        let r = self.reference(reference)?;
        let rows = store.history(&r.to_string()).await?;
        if rows.is_empty() {
            return Err(AppError::Refused(format!(
                "no history for {r}: run `freshen check {reference}` first"
            )));
        }
        Ok(History { reference: r, rows })
    }

    /// Recorded change events, newest first; only `reference`'s if given.
    pub async fn events(
        &self,
        reference: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ChangeEvent>, AppError> {
        let store = self.store().await?;
        let r = reference.map(|s| self.reference(s)).transpose()?;
        Ok(store
            .events(r.map(|r| r.to_string()).as_deref(), limit)
            .await?)
    }

    /// One change event and the policy decisions made on it; `None` when
    /// there is no such event.
    pub async fn event(&self, id: &str) -> Result<Option<(ChangeEvent, Vec<Decision>)>, AppError> {
        Ok(self.queries().await?.event(id).await?)
    }

    /// Stored policy decisions, newest first: on `reference`'s image, on
    /// the change event `event`, or all.
    pub async fn decisions(
        &self,
        reference: Option<&str>,
        event: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Decision>, AppError> {
        let store = self.store().await?;
        let subject = reference.map(|r| self.reference(r)).transpose()?;
        Ok(store
            .decisions(subject.map(|r| r.to_string()).as_deref(), event, limit)
            .await?)
    }

    /// Trigger deliveries, newest first, in `state` if given.
    pub async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<Delivery>, AppError> {
        Ok(self.store().await?.deliveries(state, limit).await?)
    }

    /// Puts failed delivery `id` back in the queue, due now.
    pub async fn retry_delivery(&self, id: i64) -> Result<(), AppError> {
        if !self
            .store()
            .await?
            .retry_delivery(id, chrono::Utc::now())
            .await?
        {
            let store = self.store().await?;
            return Err(AppError::Refused(match store.delivery(id).await? {
                None => format!("no delivery {id} (see `freshen outbox list`)"),
                Some(d) => format!(
                    "delivery {id} is {}, not failed: only a failed delivery is retried{}",
                    d.state.as_str(),
                    match d.state {
                        DeliveryState::Pending => " (a pending one is tried again when it is due)",
                        _ => "",
                    }
                ),
            }));
        }
        Ok(())
    }
}
