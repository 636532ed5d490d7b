//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens
//! cached per scope, basic auth, and credentials from the docker config.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::error::RegistryError;

/// A credential for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// Username and password (or personal access token).
    Basic {
        /// The account name.
        username: String,
        /// The password or token; never logged.
        password: String,
    },
    /// An identity (refresh) token from `docker login` with an OAuth registry.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for basic auth, if this is a password.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// Looks a registry up in the docker config (`auths`, `credHelpers`,
/// `credsStore`). Docker Hub is stored under its historical v1 URL.
/// Blocking (it may run a helper program): call from `spawn_blocking`.
pub fn docker_config_credential(registry: &str) -> Result<Option<Credential>, RegistryError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    // No config file is the common case, not an error.
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    if !dir.is_some_and(|d| d.join("config.json").is_file()) {
        return Ok(None);
    }
    let server = if registry == freshen_reference::DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    match docker_credential::get_credential(server) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(t)) => Ok(Some(Credential::IdentityToken(t))),
        Err(E::NoCredentialConfigured | E::ConfigNotFound) => Ok(None),
        // Helper output can hold secrets: keep only the helper's name.
        Err(E::HelperFailure { helper, .. }) => Err(RegistryError::Credentials {
            host: registry.to_string(),
            detail: format!("credential helper docker-credential-{helper} failed"),
        }),
        Err(e) => Err(RegistryError::Credentials {
            host: registry.to_string(),
            detail: format!("docker config: {e}"),
        }),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Token auth: fetch a bearer token from `realm`.
    Bearer {
        /// The token endpoint's URL.
        realm: String,
        /// The `service` parameter to send back, when the challenge has one.
        service: Option<String>,
        /// The scope the refused request needed (`repository:x:pull`), if given.
        scope: Option<String>,
    },
    /// HTTP basic auth.
    Basic,
}

impl Challenge {
    /// Parses the header value; `None` for schemes we do not speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            "basic" => Some(Challenge::Basic),
            _ => None,
        }
    }
}

/// `key="value", key2=value2` with quoted commas kept.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

/// The token endpoint's answer (`token` per the docker spec, `access_token` per OAuth2).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// Turns the answer into a cached token; expires a little early so a
    /// token is never sent in its last seconds.
    pub(crate) fn into_token(self, now: Instant) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The spec's default lifetime is 60 s. The server's `expires_in` is
        // taken as given, with no floor: a floor (it was 10 s) made the
        // client keep sending tokens the server had already expired, each
        // use drawing a 401 and a second token fetch.
        let ttl = Duration::from_secs(self.expires_in.unwrap_or(60));
        Some(Token {
            value,
            expires: now + ttl - Duration::from_secs(5).min(ttl / 4),
        })
    }
}

/// The scope a request to `repository` needs when the challenge names none.
pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope a write to `repository` needs.
pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/debian:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(
            Challenge::parse("Bearer service=x"),
            None,
            "realm is required"
        );
    }

    #[test]
    fn token_lifetime() {
        let now = Instant::now();
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        let t = t.into_token(now).unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.expires > now + Duration::from_secs(290));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token(now).is_none());
        // Short lifetimes are honoured, not stretched.
        let t: TokenResponse = serde_json::from_str(r#"{"token":"t","expires_in":2}"#).unwrap();
        let t = t.into_token(now).unwrap();
        assert!(t.expires <= now + Duration::from_secs(2) && t.expires > now);
        let t: TokenResponse = serde_json::from_str(r#"{"token":"t"}"#).unwrap();
        assert!(t.into_token(now).unwrap().expires > now + Duration::from_secs(50));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
    }
}
