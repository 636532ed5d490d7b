//! Downloads vulnerability feed archives: one conditional `GET` per
//! archive, streamed into a scratch file with a size limit. Nothing here
//! parses the archive or stores anything; a download that fails leaves no
//! file behind, so the data imported before stays what is in force.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use tokio::io::AsyncWriteExt as _;

/// `url` as it may be shown and stored: scheme, host, port and path, with
/// any user info, query and fragment dropped (a token in them stays
/// secret). The path stays: it tells one ecosystem's archive from another.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

/// The validators of an archive's copy: sent back to ask "has it changed?".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` it came with.
    pub etag: Option<String>,
    /// The `Last-Modified` it came with.
    pub last_modified: Option<String>,
}

/// What asking for an archive gave.
#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`: the copy imported last is current.
    NotModified,
    /// A new copy, in a scratch file removed when this is dropped.
    New {
        /// The downloaded archive.
        file: tempfile::NamedTempFile,
        /// Bytes downloaded.
        bytes: u64,
        /// Its validators, to store once it is imported.
        validators: Validators,
    },
}

/// Why an archive could not be downloaded. URLs are shown redacted.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The request failed (connection, TLS, timeout) or the body broke off.
    #[error("{url}: {detail}")]
    Http {
        /// The archive's URL, redacted.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered {status}{hint}")]
    Status {
        /// The archive's URL, redacted.
        url: String,
        /// The status.
        status: u16,
        /// What it likely means.
        hint: &'static str,
    },
    /// The archive is larger than the feed allows.
    #[error("{url}: {detail} (the feed's max_size is {limit} bytes)")]
    TooLarge {
        /// The archive's URL, redacted.
        url: String,
        /// How that was seen.
        detail: String,
        /// The limit.
        limit: u64,
    },
    /// The body ended before its declared length.
    #[error("{url}: truncated: {got} of {declared} bytes arrived")]
    Truncated {
        /// The archive's URL, redacted.
        url: String,
        /// Bytes read.
        got: u64,
        /// `Content-Length`.
        declared: u64,
    },
    /// The scratch file could not be written.
    #[error("scratch file in {dir}: {source}")]
    Scratch {
        /// The scratch directory.
        dir: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Downloads archives over one connection pool.
#[derive(Clone, Debug)]
pub struct Fetcher {
    http: reqwest::Client,
}

impl Fetcher {
    /// A fetcher with freshen's user agent, a 10 s connect timeout and
    /// `timeout` for a whole download.
    pub fn new(timeout: Duration) -> Result<Fetcher, FeedError> {
        // rustls needs one process-wide crypto provider; ring is the one built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout)
            .build()
            .map_err(|e| FeedError::Http {
                url: String::new(),
                detail: format!("HTTP client: {e}"),
            })?;
        Ok(Fetcher { http })
    }

    /// Asks for `url` with the validators of the copy imported last
    /// (`prior`) and, when it changed, streams it into a file in
    /// `scratch`, failing past `max_bytes` or short of its length.
    pub async fn fetch(
        &self,
        url: &str,
        prior: &Validators,
        max_bytes: u64,
        scratch: &Path,
    ) -> Result<Fetched, FeedError> {
        let shown = shown_url(url);
        let http_err = |e: reqwest::Error| FeedError::Http {
            url: shown.clone(),
            // reqwest's message repeats the URL, with any secret in it.
            detail: e.without_url().to_string(),
        };
        let mut req = self.http.get(url);
        if let Some(e) = &prior.etag {
            req = req.header(IF_NONE_MATCH, e);
        }
        if let Some(m) = &prior.last_modified {
            req = req.header(IF_MODIFIED_SINCE, m);
        }
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FeedError::Status {
                url: shown,
                status: status.as_u16(),
                hint: match status.as_u16() {
                    404 => " (no archive there: is the ecosystem's name spelled as OSV spells it?)",
                    401 | 403 => " (the feed refuses this client)",
                    _ => "",
                },
            });
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let declared = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if let Some(d) = declared
            && d > max_bytes
        {
            return Err(FeedError::TooLarge {
                url: shown,
                detail: format!("Content-Length is {d} bytes"),
                limit: max_bytes,
            });
        }
        let scratch_err = |source| FeedError::Scratch {
            dir: scratch.display().to_string(),
            source,
        };
        let file = tempfile::Builder::new()
            .prefix("feed-")
            .suffix(".zip")
            .tempfile_in(scratch)
            .map_err(scratch_err)?;
        let mut out = tokio::fs::File::from_std(file.reopen().map_err(scratch_err)?);
        let mut got = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(http_err)?;
            got += chunk.len() as u64;
            if got > max_bytes {
                return Err(FeedError::TooLarge {
                    url: shown,
                    detail: format!("more than {max_bytes} bytes arrived"),
                    limit: max_bytes,
                });
            }
            out.write_all(&chunk).await.map_err(scratch_err)?;
        }
        out.flush().await.map_err(scratch_err)?;
        if let Some(d) = declared
            && got < d
        {
            return Err(FeedError::Truncated {
                url: shown,
                got,
                declared: d,
            });
        }
        Ok(Fetched::New {
            file,
            bytes: got,
            validators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_keep_the_path_and_drop_secrets() {
        assert_eq!(
            shown_url("https://u:p@osv.example:8443/Debian/all.zip?token=s3cret#x"),
            "https://osv.example:8443/Debian/all.zip"
        );
        assert_eq!(shown_url("not a url"), "<invalid url>");
    }
}
