//! Where the database is: the `--database` flag (or `FRESHEN_DATABASE`),
//! then the config's `database:`, then a SQLite file in the data directory.

use std::path::PathBuf;

use freshen_config::Loaded;

use crate::AppError;

/// The database URL: `flag` (`--database` or its env), then the config,
/// then `freshen.db` in the [`data_dir`].
pub fn database_url(flag: Option<&str>, loaded: &Loaded) -> Result<String, AppError> {
    if let Some(db) = flag
        .map(str::to_string)
        .or_else(|| loaded.config.database.clone())
    {
        return Ok(db);
    }
    let dir = data_dir().ok_or(AppError::NoDataDir)?;
    Ok(format!("sqlite://{}", dir.join("freshen.db").display()))
}

/// [`database_url`], ready to open: the default SQLite file's data
/// directory is created here. A database the flag or the config names is
/// taken as given, and the store refuses a file whose directory is missing
/// (a mistyped path is said, not made).
pub(crate) fn database_url_to_open(
    flag: Option<&str>,
    loaded: &Loaded,
) -> Result<String, AppError> {
    let url = database_url(flag, loaded)?;
    if flag.is_none() && loaded.config.database.is_none() {
        let dir = data_dir().ok_or(AppError::NoDataDir)?;
        std::fs::create_dir_all(&dir).map_err(|source| AppError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(url)
}

/// The directory for freshen's own data: `FRESHEN_DATA_DIR`, else
/// `$XDG_DATA_HOME/freshen`, else `~/.local/share/freshen` (empty
/// variables count as unset).
pub fn data_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("FRESHEN_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("freshen")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/freshen")))
}
