//! Who may call a receiver: the path's key picks the receiver, then its
//! token and signature, if configured, must match. Keys and tokens are kept
//! as SHA-256 digests and compared in constant time against every receiver
//! of the kind (no early exit), so timing tells nothing of which bytes
//! matched or which receivers exist.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::spec::{Kind, ReceiverSpec};

/// Why a request was refused. The server answers every one with the same
/// 401; the reason is for the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No receiver of the kind has this key.
    UnknownKey,
    /// The receiver needs `Authorization: Bearer`, and there was none.
    MissingToken,
    /// The bearer token is not the receiver's.
    WrongToken,
    /// The receiver needs a signature header, and there was none.
    MissingSignature,
    /// The signature does not match the body.
    WrongSignature,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denied::UnknownKey => "no receiver has this key",
            Denied::MissingToken => "no bearer token",
            Denied::WrongToken => "wrong bearer token",
            Denied::MissingSignature => "no signature header",
            Denied::WrongSignature => "the signature does not match the body",
        })
    }
}

/// What a request presented, besides its path key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header's value.
    pub authorization: Option<&'a [u8]>,
    /// `X-Freshen-Signature` or `X-Hub-Signature-256`.
    pub signature: Option<&'a [u8]>,
}

struct Entry {
    name: String,
    kind: Kind,
    key: [u8; 32],
    token: Option<[u8; 32]>,
    hmac_secret: Option<Vec<u8>>,
}

/// The configured receivers' secrets, ready to check requests against.
pub struct Gate {
    entries: Vec<Entry>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("receivers", &self.entries.len())
            .finish()
    }
}

impl Gate {
    /// A gate over `receivers` (name -> spec), validated beforehand.
    pub fn new(receivers: &BTreeMap<String, ReceiverSpec>) -> Gate {
        Gate {
            entries: receivers
                .iter()
                .map(|(name, s)| Entry {
                    name: name.clone(),
                    kind: s.kind,
                    key: digest(s.key.as_bytes()),
                    token: s.token.as_deref().map(|t| digest(t.as_bytes())),
                    hmac_secret: s.hmac_secret.as_ref().map(|s| s.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    /// The name of the receiver a request for `kind` with path `key` is
    /// for, when what it presents (token, signature over `body`) is what
    /// that receiver requires.
    pub fn admit(
        &self,
        kind: Kind,
        key: &str,
        presented: Presented<'_>,
        body: &[u8],
    ) -> Result<&str, Denied> {
        let d = digest(key.as_bytes());
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            let hit = e.key.ct_eq(&d) & Choice::from(u8::from(e.kind == kind));
            if bool::from(hit) && found.is_none() {
                found = Some(e);
            }
        }
        let e = found.ok_or(Denied::UnknownKey)?;
        if let Some(want) = &e.token {
            let got = presented
                .authorization
                .and_then(bearer_token)
                .ok_or(Denied::MissingToken)?;
            if !bool::from(want.ct_eq(&digest(got))) {
                return Err(Denied::WrongToken);
            }
        }
        if let Some(secret) = &e.hmac_secret {
            let sig = presented.signature.ok_or(Denied::MissingSignature)?;
            let hex_sig = sig
                .trim_ascii()
                .strip_prefix(b"sha256=")
                .ok_or(Denied::WrongSignature)?;
            let raw = hex::decode(hex_sig).map_err(|_| Denied::WrongSignature)?;
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(body);
            // verify_slice compares in constant time.
            mac.verify_slice(&raw).map_err(|_| Denied::WrongSignature)?;
        }
        Ok(&e.name)
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The token of an `Authorization: Bearer <token>` header's value (scheme
/// case-insensitive, blanks around the token trimmed); `None` for another
/// scheme or an empty token. The server's write tokens are read with it too.
pub fn bearer_token(v: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = v.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        let specs: BTreeMap<String, ReceiverSpec> = serde_json::from_str(
            r#"{
                "hub": {"kind":"dockerhub","key":"hub-key-0123456789"},
                "reg": {"kind":"registry","key":"reg-key","token":"reg-token"},
                "gen": {"kind":"generic","key":"gen-key","hmac_secret":"s3cret"}
            }"#,
        )
        .unwrap();
        Gate::new(&specs)
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn the_key_picks_a_receiver_of_its_kind() {
        let g = gate();
        let none = Presented::default();
        assert_eq!(
            g.admit(Kind::Dockerhub, "hub-key-0123456789", none, b"{}"),
            Ok("hub")
        );
        assert_eq!(
            g.admit(Kind::Registry, "hub-key-0123456789", none, b"{}"),
            Err(Denied::UnknownKey)
        );
        assert_eq!(
            g.admit(Kind::Dockerhub, "hub-key-012345678", none, b"{}"),
            Err(Denied::UnknownKey)
        );
    }

    #[test]
    fn tokens_are_required_where_configured() {
        let g = gate();
        let with = |a: &'static [u8]| Presented {
            authorization: Some(a),
            signature: None,
        };
        assert_eq!(
            g.admit(Kind::Registry, "reg-key", with(b"Bearer reg-token"), b""),
            Ok("reg")
        );
        assert_eq!(
            g.admit(Kind::Registry, "reg-key", Presented::default(), b""),
            Err(Denied::MissingToken)
        );
        assert_eq!(
            g.admit(Kind::Registry, "reg-key", with(b"Bearer reg-tokeN"), b""),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            g.admit(Kind::Registry, "reg-key", with(b"Basic cmVnLXRva2Vu"), b""),
            Err(Denied::MissingToken)
        );
    }

    #[test]
    fn signatures_cover_the_body() {
        let g = gate();
        let body = br#"{"ref":"localhost:5000/app:1"}"#;
        let good = sign("s3cret", body);
        assert_eq!(
            g.admit(Kind::Generic, "gen-key", p(good.as_bytes()), body),
            Ok("gen")
        );
        assert_eq!(
            g.admit(Kind::Generic, "gen-key", p(good.as_bytes()), b"{}"),
            Err(Denied::WrongSignature)
        );
        assert_eq!(
            g.admit(
                Kind::Generic,
                "gen-key",
                p(sign("other", body).as_bytes()),
                body
            ),
            Err(Denied::WrongSignature)
        );
        assert_eq!(
            g.admit(Kind::Generic, "gen-key", p(b"sha256=zz"), body),
            Err(Denied::WrongSignature)
        );
        assert_eq!(
            g.admit(Kind::Generic, "gen-key", Presented::default(), body),
            Err(Denied::MissingSignature)
        );
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer tok"), Some(&b"tok"[..]));
        assert_eq!(bearer_token(b"bearer  tok "), Some(&b"tok"[..]));
        for none in [&b"Bearer "[..], b"Bearer", b"Basic dG9r", b"tok", b""] {
            assert_eq!(
                bearer_token(none),
                None,
                "{:?}",
                String::from_utf8_lossy(none)
            );
        }
    }

    fn p(signature: &[u8]) -> Presented<'_> {
        Presented {
            authorization: None,
            signature: Some(signature),
        }
    }
}
