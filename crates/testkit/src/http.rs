//! HTTP plumbing the parts share: clients, free ports, basic auth and
//! percent-encoding of path segments.

use std::net::TcpListener;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;

/// Builds a plain-HTTP capable reqwest client (the ring crypto provider is
/// installed first, since the workspace builds reqwest without one).
pub(crate) fn http_client(timeout: Option<Duration>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder
        .build()
        .expect("freshen-testkit: building the HTTP client failed")
}

/// A default reqwest client (redirects followed, proxies from the
/// environment) for tests that talk to a server as any client would; the
/// ring crypto provider is installed first, since the workspace builds
/// reqwest without one.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Finds a free TCP port on 127.0.0.1 (there is a small window in which
/// another process could take it; callers that spawn servers retry).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 failed");
    l.local_addr().expect("local_addr").port()
}

/// Decodes an `Authorization: Basic` header into (user, password).
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Percent-decodes one URL path segment (no `+` handling: that is for forms).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved).
pub(crate) fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_header_decodes() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic dTpwOnE=".parse().unwrap());
        assert_eq!(basic_credentials(&h), Some(("u".into(), "p:q".into())));
    }

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_encode_segment("a b/c"), "a%20b%2Fc");
    }
}
