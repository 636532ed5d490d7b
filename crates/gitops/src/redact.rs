//! Keeping credentials out of errors and logs.
//!
//! Two layers: any `scheme://userinfo@` in a text loses its userinfo, and
//! the secrets known from the spec (the URL's user and password, as
//! written and percent-decoded, their HTTP Basic form, the credential
//! helper) are replaced wherever they appear, for git or a server may
//! echo them in another shape.

use base64::Engine as _;

/// What replaces a secret.
const MASK: &str = "***";

/// `url` (or any text) with the user info of every `scheme://user:pass@`
/// replaced by `***`.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "'\"?#<>".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` escapes (invalid ones are kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Words after which git or a server prints a credential: the word that
/// follows is masked whatever it is.
const CREDENTIAL_WORDS: [&str; 6] = [
    "authorization: ",
    "bearer ",
    "basic ",
    "password=",
    "token=",
    "access_token=",
];

/// Masks the word after each of [`CREDENTIAL_WORDS`] (case-insensitive).
fn mask_credential_words(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let next = CREDENTIAL_WORDS
            .iter()
            .filter_map(|w| lower[at..].find(w).map(|i| (at + i, w.len())))
            .min();
        let Some((i, len)) = next else {
            break;
        };
        let start = i + len;
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || "'\";,)".contains(c))
            .map_or(text.len(), |e| start + e);
        out.push_str(&text[at..start]);
        if matches!(&lower[start..end], "bearer" | "basic") {
            // `Authorization: Bearer x`: the scheme stays, `x` goes.
            at = start;
            continue;
        }
        if end > start {
            out.push_str(MASK);
        }
        at = end;
    }
    out.push_str(&text[at.min(text.len())..]);
    out
}

/// The secrets of one repository spec, to take out of any text.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// The secrets in `url` and the credential helper.
    pub fn new(url: &str, credential_helper: Option<&str>) -> Redactor {
        let mut r = Redactor::default();
        if let Some(i) = url.find("://") {
            let scheme = url[..i].to_ascii_lowercase();
            let tail = &url[i + 3..];
            let end = tail.find('/').unwrap_or(tail.len());
            if let Some(at) = tail[..end].rfind('@') {
                let userinfo = &tail[..at];
                match userinfo.split_once(':') {
                    Some((user, password)) => r.learn(Some(user), Some(password)),
                    // An ssh user name (`git@`) is no secret; over HTTP a
                    // lone user name is usually a token.
                    None if !scheme.contains("ssh") => r.learn(Some(userinfo), None),
                    None => {}
                }
            }
        }
        if let Some(h) = credential_helper {
            r.add(h.to_string());
        }
        r
    }

    /// A user name and password (as written in a URL, or from a
    /// credential helper): the password, in every form it may be shown
    /// in; the user name only when it stands alone (then it is a token).
    pub fn learn(&mut self, user: Option<&str>, password: Option<&str>) {
        match (user, password) {
            (user, Some(p)) => {
                self.add(p.to_string());
                self.add(percent_decode(p));
                let user = percent_decode(user.unwrap_or_default());
                let basic = format!("{user}:{}", percent_decode(p));
                self.add(base64::engine::general_purpose::STANDARD.encode(basic));
            }
            (Some(u), None) => {
                self.add(u.to_string());
                self.add(percent_decode(u));
                let basic = format!("{}:", percent_decode(u));
                self.add(base64::engine::general_purpose::STANDARD.encode(basic));
            }
            (None, None) => {}
        }
    }

    fn add(&mut self, secret: String) {
        // Too short to be a secret: masking it would only garble text.
        if secret.len() < 4 || self.secrets.contains(&secret) {
            return;
        }
        self.secrets.push(secret);
        // Longest first, so a secret inside another goes with it.
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    }

    /// `text` with user info in URLs, known secrets and the words after
    /// `Authorization:`, `Bearer`, `password=` and the like masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = redact_url(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        mask_credential_words(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(
            redact_url("https://user:s3cret@git.example.com/org/repo.git"),
            "https://***@git.example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("fatal: unable to access 'https://tok3n@h:8443/r/': 403"),
            "fatal: unable to access 'https://***@h:8443/r/': 403"
        );
        assert_eq!(redact_url("file:///srv/repo.git"), "file:///srv/repo.git");
        assert_eq!(
            redact_url("git@github.com:org/r.git"),
            "git@github.com:org/r.git"
        );
        assert_eq!(
            redact_url("a https://u:p@x b ssh://git@y/z"),
            "a https://***@x b ssh://***@y/z"
        );
    }

    #[test]
    fn known_secrets_are_masked_in_any_form() {
        let r = Redactor::new("https://bot:s3cr%40t-token@git.example.com/r.git", None);
        let basic = base64::engine::general_purpose::STANDARD.encode("bot:s3cr@t-token");
        let text = format!(
            "remote: denied for s3cr@t-token (s3cr%40t-token) Authorization: Basic {basic}"
        );
        let shown = r.text(&text);
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(!shown.contains(&basic), "{shown}");
        assert!(shown.starts_with("remote: denied for *** (***)"), "{shown}");
        // Words that announce a credential hide the one after them.
        let r = Redactor::default();
        assert_eq!(
            r.text("Authorization: Bearer abc.def, password=xyz; token=t0k later"),
            "Authorization: Bearer ***, password=***; token=*** later"
        );
        // A token as the user name.
        let r = Redactor::new("https://ghp_abcdef123456@github.com/o/r", None);
        assert_eq!(r.text("bad token ghp_abcdef123456"), "bad token ***");
        // ssh user names stay readable.
        let r = Redactor::new("ssh://git@host/r.git", None);
        assert_eq!(
            r.text("git@host: Permission denied"),
            "git@host: Permission denied"
        );
        let r = Redactor::new("file:///r", Some("!f() { echo password=hunter22; }; f"));
        assert_eq!(
            r.text("helper '!f() { echo password=hunter22; }; f' failed"),
            "helper '***' failed"
        );
    }
}
