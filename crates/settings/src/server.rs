//! `server:`: how `freshen serve` listens and who may write.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// How `freshen serve` listens and who may write.
///
/// Reads (`GET`) are open to anyone who can reach the listener: keep the
/// default loopback address, or put the server behind a proxy that
/// authenticates. Writes (`POST`, `PUT`, `DELETE`) need
/// `Authorization: Bearer <token>` with one of [`write_tokens`](Self::write_tokens).
///
/// `Debug` never prints the tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSettings")]
pub struct ServerSettings {
    /// Address to listen on; default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Bearer tokens accepted for writes. Empty (the default) refuses every
    /// write with 403.
    pub write_tokens: Vec<String>,
    /// Largest request body accepted, in bytes; default 4 MiB. Larger
    /// bodies get 413.
    pub max_body_bytes: usize,
}

impl ServerSettings {
    /// `127.0.0.1:8080`.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
    /// 4 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

    /// Checks what serde cannot: each token can be sent in an HTTP header
    /// (visible ASCII, no spaces, not empty) and the body limit is positive.
    /// The error never contains a token, only its position.
    pub fn validate(&self) -> Result<(), String> {
        for (i, t) in self.write_tokens.iter().enumerate() {
            if let Some(reason) = token_problem(t) {
                return Err(format!("write_tokens[{i}]: {reason}"));
            }
        }
        if self.max_body_bytes == 0 {
            return Err("max_body_bytes: must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a token can never match a request, if it can't (the server
/// refuses such tokens at start-up too).
pub fn token_problem(t: &str) -> Option<&'static str> {
    if t.is_empty() {
        Some("is empty (an unset ${ENV} variable?)")
    } else if !t.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be visible ASCII without spaces (it is sent in an Authorization header)")
    } else {
        None
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: Self::DEFAULT_LISTEN,
            write_tokens: Vec::new(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSettings")
            .field("listen", &self.listen)
            .field(
                "write_tokens",
                &format_args!("[{} redacted]", self.write_tokens.len()),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// `server:` as written, before [`ServerSettings::validate`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    listen: SocketAddr,
    #[serde(default)]
    write_tokens: Vec<String>,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
}

/// `listen`, with an error that names the value given.
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an address to listen on: an IP address and a port, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080"
        ))
    })
}

fn default_listen() -> SocketAddr {
    ServerSettings::DEFAULT_LISTEN
}

fn default_max_body() -> usize {
    ServerSettings::DEFAULT_MAX_BODY_BYTES
}

impl TryFrom<RawSettings> for ServerSettings {
    type Error = String;

    fn try_from(r: RawSettings) -> Result<Self, String> {
        let s = ServerSettings {
            listen: r.listen,
            write_tokens: r.write_tokens,
            max_body_bytes: r.max_body_bytes,
        };
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ServerSettings, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bad_listen_address_is_named() {
        for bad in ["nope", "localhost:8080", "127.0.0.1"] {
            let e = parse(&format!(r#"{{"listen":"{bad}"}}"#)).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?} is not an address to listen on")),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults() {
        let s = parse("{}").unwrap();
        assert_eq!(s, ServerSettings::default());
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.max_body_bytes, 4 * 1024 * 1024);
        assert!(s.write_tokens.is_empty());
    }

    #[test]
    fn fields() {
        let s = parse(r#"{"listen":"0.0.0.0:9000","write_tokens":["abc"],"max_body_bytes":10}"#)
            .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.write_tokens, ["abc"]);
        assert_eq!(s.max_body_bytes, 10);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = parse(r#"{"write_token":["abc"]}"#).unwrap_err();
        assert!(e.contains("unknown field `write_token`"), "{e}");
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        let e = parse(r#"{"write_tokens":["good-one","with space"]}"#).unwrap_err();
        assert!(e.contains("write_tokens[1]"), "{e}");
        assert!(!e.contains("with space"), "{e}");
        let e = parse(r#"{"write_tokens":[""]}"#).unwrap_err();
        assert!(e.contains("write_tokens[0]: is empty"), "{e}");
        let e = parse(r#"{"max_body_bytes":0}"#).unwrap_err();
        assert!(e.contains("max_body_bytes"), "{e}");
    }

    #[test]
    fn debug_redacts_tokens() {
        let s = ServerSettings {
            write_tokens: vec!["s3cr3t-token".into(), "other".into()],
            ..ServerSettings::default()
        };
        let d = format!("{s:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(!d.contains("other"), "{d}");
        assert!(d.contains("[2 redacted]"), "{d}");
    }
}
