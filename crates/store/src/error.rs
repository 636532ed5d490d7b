//! The store's error type.

/// Everything that can go wrong in the store, with enough context for a user
/// to act on it. Database URLs in messages are always redacted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL {url}: expected sqlite:///absolute/path.db, \
         sqlite://relative/path.db, sqlite::memory: or postgres://user@host/database"
    )]
    UnsupportedUrl {
        /// The URL as given, password redacted.
        url: String,
    },

    /// Connecting to the database (or preparing its file) failed.
    #[error("cannot open database {url}: {reason}")]
    Open {
        /// The URL, password redacted.
        url: String,
        /// What went wrong, with any password scrubbed out.
        reason: String,
    },

    /// The schema could not be brought up to date.
    #[error("database migration failed on {url}: {reason}")]
    Migrate {
        /// The URL, password redacted.
        url: String,
        /// What went wrong, with any password scrubbed out.
        reason: String,
    },

    /// A query failed (lost connection, lock timeout, constraint, ...).
    #[error("database error while trying to {context}: {source}")]
    Query {
        /// The operation that failed, e.g. "record an observation".
        context: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A stored value could not be read back (e.g. malformed JSON), which
    /// means the row was written by something other than this crate.
    #[error("unreadable data in the database ({context}): {detail}")]
    Corrupt {
        /// Which table or column.
        context: &'static str,
        /// What was wrong with it.
        detail: String,
    },

    /// The caller passed something the store refuses to record.
    #[error("invalid input: {0}")]
    Invalid(String),

    /// A change event the caller referred to does not exist.
    #[error("no change event with id {0}")]
    UnknownEvent(String),
}
