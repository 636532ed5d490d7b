//! Docker Hub callbacks' allowlist as receivers configure it: the default
//! entry, and what an entry means (a URL prefix). Whether a `callback_url`
//! is called, and what is posted there, is decided in `freshen-actions`
//! (`callback`).

/// Where Docker Hub's `callback_url`s point.
pub const DOCKER_HUB_CALLBACKS: &str = "https://registry.hub.docker.com/";

/// An allowlist entry as a URL prefix ending in `/`, so that
/// `https://hub.example/` does not admit `https://hub.example.evil/`.
pub fn prefix(entry: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_prefixes_ending_in_a_slash() {
        assert_eq!(
            prefix(DOCKER_HUB_CALLBACKS).unwrap(),
            "https://registry.hub.docker.com/"
        );
        assert_eq!(
            prefix("http://127.0.0.1:9999/hooks").unwrap(),
            "http://127.0.0.1:9999/hooks/"
        );
        assert!(prefix("ftp://h/").is_err());
        assert!(prefix("https://u@h/").is_err());
        assert!(prefix("https://h/?q").is_err());
    }
}
