//! What a readiness probe and a metrics scrape ask of the store: cheap
//! queries only.

use crate::sql::{Db, query_err, with_pool};
use crate::{DeliveryState, Store, StoreError};

impl Store {
    /// Answers when the database takes a trivial query and holds every
    /// migration this build knows; the error says which is not so. The
    /// caller bounds how long it waits.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let applied: Option<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        })
        .map_err(query_err("check that the database is ready"))?;
        let known = crate::open::latest_migration(matches!(self.db, Db::Postgres(_)));
        match applied {
            Some(v) if v >= known => Ok(()),
            v => Err(StoreError::Migrate {
                url: self.redacted_url(),
                reason: format!(
                    "migrations applied up to {}, this build needs {known}",
                    v.map_or("none".to_string(), |v| v.to_string())
                ),
            }),
        }
    }

    /// Outbox rows waiting (`pending`) or given up (`failed`), by state;
    /// delivered rows are not counted (the deliveries' counter has them).
    pub async fn outbox_depth(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT state, COUNT(*) FROM deliveries WHERE state IN ('pending', 'failed') GROUP BY state",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("count the outbox's deliveries"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| Some((DeliveryState::parse(&s)?, u64::try_from(n).unwrap_or(0))))
            .collect())
    }
}
