//! The Harbor robot account, from the environment (never from the config
//! file, so the secret is not written down beside it).

use crate::AppError;

/// The Harbor robot account in `FRESHEN_HARBOR_USER` and
/// `FRESHEN_HARBOR_PASSWORD`; `None` when neither is set.
pub fn harbor_credentials() -> Result<Option<freshen_harbor::Credentials>, AppError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (env("FRESHEN_HARBOR_USER"), env("FRESHEN_HARBOR_PASSWORD")) {
        (Some(username), Some(password)) => {
            Ok(Some(freshen_harbor::Credentials { username, password }))
        }
        (None, None) => Ok(None),
        _ => Err(AppError::HarborCredentials),
    }
}
