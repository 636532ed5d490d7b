//! Bearer tokens for writes, compared in constant time.
//!
//! Only SHA-256 digests of the configured tokens are kept; a presented token
//! is hashed and compared with every digest (no early exit), so neither the
//! comparison time nor the number of tokens checked depends on which bytes
//! match. Tokens are never logged or echoed.

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::error::ApiError;
use crate::settings::token_problem;

pub(crate) struct WriteAuth {
    digests: Vec<[u8; 32]>,
}

impl WriteAuth {
    pub fn new(tokens: &[String]) -> WriteAuth {
        let mut digests = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if let Some(reason) = token_problem(t) {
                tracing::warn!("server.write_tokens[{i}] is ignored: it {reason}");
                continue;
            }
            digests.push(digest(t.as_bytes()));
        }
        WriteAuth { digests }
    }

    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Ok when the request carries one of the tokens.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.enabled() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "writes are disabled on this server: set server.write_tokens in the config \
                 and send Authorization: Bearer <token>",
            ));
        }
        let Some(presented) = bearer(headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this request needs a token: send Authorization: Bearer <token>",
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"freshen\""));
        };
        let d = digest(presented);
        let mut ok = Choice::from(0);
        for known in &self.digests {
            ok |= known.ct_eq(&d);
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the bearer token is not valid for writes",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"freshen\", error=\"invalid_token\"",
            ))
        }
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The token of `Authorization: Bearer <token>`, read as webhook receivers
/// read theirs.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    freshen_receive::bearer_token(headers.get(header::AUTHORIZATION)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn checks() {
        let a = WriteAuth::new(&["tok-1".into(), "tok-2".into()]);
        assert!(a.check(&headers("Bearer tok-1")).is_ok());
        assert!(a.check(&headers("bearer tok-2")).is_ok());
        assert!(a.check(&headers("BEARER  tok-2 ")).is_ok());
        for bad in [
            "Bearer tok-3",
            "Bearer tok-",
            "Bearer tok-11",
            "Basic dG9rLTE=",
            "Bearer ",
            "tok-1",
            "",
        ] {
            let e = a.check(&headers(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
            assert!(e.headers.iter().any(|(n, _)| n == header::WWW_AUTHENTICATE));
        }
        assert_eq!(
            a.check(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn no_tokens_means_writes_are_forbidden() {
        for tokens in [vec![], vec![String::new()]] {
            let a = WriteAuth::new(&tokens);
            let e = a.check(&headers("Bearer ")).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN);
            assert!(e.message.contains("server.write_tokens"), "{}", e.message);
        }
    }
}
