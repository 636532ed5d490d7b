//! Jenkins' URL as messages show it.

/// A URL safe to print: scheme, host and port only (a URL's user info,
/// path and query may carry secrets).
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(p) => {
            let host = p.host_str().unwrap_or("");
            match p.port() {
                Some(port) => format!("{}://{host}:{port}/…", p.scheme()),
                None => format!("{}://{host}/…", p.scheme()),
            }
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("http://u:p@j:8080/ci?token=1"),
            "http://j:8080/…"
        );
        assert_eq!(
            redact_url("https://jenkins.example/ci"),
            "https://jenkins.example/…"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }
}
