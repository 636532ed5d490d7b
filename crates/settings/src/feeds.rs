//! `feeds:`: where vulnerability data comes from, by name: OSV archives
//! by URL (in the layout OSV publishes, `<base>/<Ecosystem>/all.zip`) or
//! a local directory, each refreshed on its schedule.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Schedule;

/// The default largest archive a feed downloads.
pub const DEFAULT_FEED_MAX_SIZE: u64 = 1 << 30;
/// How often the daemon refreshes a feed that names no schedule.
pub const DEFAULT_FEED_SCHEDULE: &str = "6h";

/// One feed, as written under `feeds.NAME`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FeedSpec {
    /// Base URL of an OSV export: `<url>/<Ecosystem>/all.zip` is read for
    /// each ecosystem, e.g. `https://osv-vulnerabilities.storage.googleapis.com`.
    #[serde(default)]
    pub url: Option<String>,
    /// A local directory (or file) of OSV records (`.json`, `.zip`),
    /// relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// OSV ecosystems to read (`Debian`, `Alpine`, `npm`, `PyPI`, …);
    /// default: those the inventory holds. Only with `url`.
    #[serde(default)]
    pub ecosystems: Vec<String>,
    /// How often the daemon refreshes it (`6h`, or a crontab line);
    /// default `6h`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The largest archive downloaded (`512MiB`, `2GiB`, or bytes);
    /// default `1GiB`. A larger one leaves the stored data as it is.
    #[serde(default)]
    pub max_size: Option<String>,
}

/// Where a feed reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedSource {
    /// An OSV export's base URL (no trailing `/`).
    Osv(String),
    /// A local directory or file, absolute.
    Path(PathBuf),
}

/// A checked feed.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Its name under `feeds:`.
    pub name: String,
    /// Where it reads from.
    pub source: FeedSource,
    /// The ecosystems to read; empty: those the inventory holds.
    pub ecosystems: Vec<String>,
    /// When the daemon refreshes it.
    pub schedule: Schedule,
    /// The largest archive downloaded, in bytes.
    pub max_size: u64,
}

impl Feed {
    /// Checks `spec`; relative paths resolve against `base_dir`. The
    /// error names the field (under `feeds.NAME`) and what is wrong.
    pub fn from_spec(
        name: &str,
        spec: &FeedSpec,
        base_dir: &Path,
    ) -> Result<Feed, (String, String)> {
        let source = match (&spec.url, &spec.path) {
            (Some(u), None) => {
                let parsed = url::Url::parse(u)
                    .map_err(|e| ("url".to_string(), format!("{u:?} is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err((
                        "url".into(),
                        format!("{u:?}: only http and https feeds are read"),
                    ));
                }
                FeedSource::Osv(u.trim_end_matches('/').to_string())
            }
            (None, Some(p)) => {
                if !spec.ecosystems.is_empty() {
                    return Err((
                        "ecosystems".into(),
                        "applies to `url` feeds only: a `path` feed reads every record under it"
                            .into(),
                    ));
                }
                FeedSource::Path(base_dir.join(p))
            }
            (Some(_), Some(_)) => {
                return Err((
                    "url".into(),
                    "give either `url` (an OSV export) or `path` (a local directory), not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err((
                    "url".into(),
                    "a feed needs `url` (an OSV export, e.g. https://osv-vulnerabilities.storage.googleapis.com) or `path` (a local directory)".into(),
                ));
            }
        };
        for (i, e) in spec.ecosystems.iter().enumerate() {
            if e.is_empty() || e.contains('/') || e.contains("..") {
                return Err((
                    format!("ecosystems[{i}]"),
                    format!("{e:?} is not an OSV ecosystem name (Debian, Alpine, npm, PyPI, …)"),
                ));
            }
        }
        let schedule = Schedule::parse(spec.schedule.as_deref().unwrap_or(DEFAULT_FEED_SCHEDULE))
            .map_err(|e| ("schedule".to_string(), e))?;
        let max_size = match &spec.max_size {
            Some(s) => parse_size(s).map_err(|e| ("max_size".to_string(), e))?,
            None => DEFAULT_FEED_MAX_SIZE,
        };
        Ok(Feed {
            name: name.to_string(),
            source,
            ecosystems: spec.ecosystems.clone(),
            schedule,
            max_size,
        })
    }
}

/// Parses `512MiB`, `2GiB`, `100MB`, `64KiB` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (512MiB, 2GiB, or bytes)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    n.checked_mul(scale)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is not a size above zero that fits in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1TiB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn a_feed_is_a_url_or_a_path() {
        let base = Path::new("/etc/freshen");
        let url = FeedSpec {
            url: Some("https://osv.example/".into()),
            ecosystems: vec!["Debian".into()],
            ..FeedSpec::default()
        };
        let f = Feed::from_spec("osv", &url, base).unwrap();
        assert_eq!(f.source, FeedSource::Osv("https://osv.example".into()));
        assert_eq!(f.max_size, DEFAULT_FEED_MAX_SIZE);
        let path = FeedSpec {
            path: Some("advisories".into()),
            ..FeedSpec::default()
        };
        let f = Feed::from_spec("local", &path, base).unwrap();
        assert_eq!(f.source, FeedSource::Path("/etc/freshen/advisories".into()));
        let err = |spec: FeedSpec| Feed::from_spec("x", &spec, base).unwrap_err();
        assert_eq!(err(FeedSpec::default()).0, "url");
        let both = FeedSpec {
            url: Some("https://a".into()),
            path: Some("b".into()),
            ..FeedSpec::default()
        };
        assert!(err(both).1.contains("not both"));
        let ftp = FeedSpec {
            url: Some("ftp://a".into()),
            ..FeedSpec::default()
        };
        assert!(err(ftp).1.contains("http and https"));
        let bad = FeedSpec {
            url: Some("https://a".into()),
            ecosystems: vec!["../etc".into()],
            ..FeedSpec::default()
        };
        assert_eq!(err(bad).0, "ecosystems[0]");
    }
}

/// `rescan:`: the daemon scans every tag of the inventory again on a
/// schedule (a nightly scan-all), so tags that moved are read anew and
/// the images are judged again without a push.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RescanSpec {
    /// When (`24h`, or a crontab line such as `0 3 * * *`).
    pub schedule: String,
    /// Images scanned at once; default 4.
    #[serde(default = "default_rescan_concurrency")]
    pub concurrency: usize,
}

fn default_rescan_concurrency() -> usize {
    4
}
