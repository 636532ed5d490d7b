//! Docker Hub callbacks: which `callback_url`s may be called, and what is
//! posted there.

use serde::Serialize;

/// Where Docker Hub's `callback_url`s point.
pub const DOCKER_HUB_CALLBACKS: &str = "https://registry.hub.docker.com/";

/// What Docker Hub reads from a callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackBody {
    /// `success`, `failure` or `error`.
    pub state: &'static str,
    /// One line on the outcome.
    pub description: String,
    /// Who reports (the receiver's `callback.context`).
    pub context: String,
    /// Where to read more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// An allowlist entry as a URL prefix ending in `/`, so that
/// `https://hub.example/` does not admit `https://hub.example.evil/`.
pub(crate) fn prefix(entry: &str) -> Result<String, String> {
    let u = url::Url::parse(entry).map_err(|e| format!("{entry:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!("{entry:?}: only http and https URLs can be called"));
    }
    if u.host_str().is_none() || !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{entry:?}: needs a host and no user info"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{entry:?}: a prefix has no query or fragment"));
    }
    let mut s = u.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

/// The callback URL, parsed, when it starts with one of the `allow`
/// prefixes; else why not.
pub fn allowed_callback(callback_url: &str, allow: &[String]) -> Result<url::Url, String> {
    let u = url::Url::parse(callback_url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") || !u.username().is_empty() || u.password().is_some()
    {
        return Err("only http(s) URLs without user info are called".into());
    }
    let s = u.as_str();
    if allow
        .iter()
        .filter_map(|a| prefix(a).ok())
        .any(|p| s.starts_with(&p))
    {
        Ok(u)
    } else {
        Err(format!(
            "{} is not under an allowed prefix (receivers.*.callback.allow)",
            u.origin().ascii_serialization()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_prefixes() {
        let hub = [DOCKER_HUB_CALLBACKS.to_string()];
        let ok = "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/";
        assert!(allowed_callback(ok, &hub).is_ok());
        for bad in [
            "https://registry.hub.docker.com.evil.example/u/x/",
            "http://registry.hub.docker.com/u/x/",
            "https://169.254.169.254/latest/meta-data/",
            "https://user@registry.hub.docker.com/u/x/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(allowed_callback(bad, &hub).is_err(), "{bad}");
        }
        let local = ["http://127.0.0.1:9999/hooks".to_string()];
        assert!(allowed_callback("http://127.0.0.1:9999/hooks/1", &local).is_ok());
        assert!(allowed_callback("http://127.0.0.1:9999/hooksX", &local).is_err());
        assert!(allowed_callback("http://127.0.0.1:9998/hooks/1", &local).is_err());
    }

    #[test]
    fn the_body_is_docker_hubs() {
        let b = CallbackBody {
            state: "success",
            description: "2 triggers delivered".into(),
            context: "freshen".into(),
            target_url: None,
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"state": "success", "description": "2 triggers delivered", "context": "freshen"})
        );
    }
}
