//! Version tags that never repeat and never decrease.
//!
//! A scheme is a template: `{year}.{week}.{build}` (ISO year and week, the
//! default), `{date}.{build}` (`20261202.1`), `{tag}-{year}.{week}.{build}`,
//! or a SemVer bump (`semver-patch`, `semver-minor`, `semver-major`). The
//! repository's existing tags decide the next one: among tags the template
//! could have made, the new version's numbers must sort above every one, so
//! a reset counter or a clock set back can't produce a lower version (the
//! date fields of the highest existing tag are kept then, and its counter
//! continues).

use chrono::{DateTime, Datelike, Utc};

use crate::BuildError;

/// A version scheme, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// A template of literal text and `{field}`s.
    Template(Vec<Part>),
    /// Bump the highest SemVer tag (`v` prefix kept if the tags use it).
    Semver(Bump),
}

/// Which SemVer number to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bump {
    /// `1.2.3` -> `1.2.4`.
    Patch,
    /// `1.2.3` -> `1.3.0`.
    Minor,
    /// `1.2.3` -> `2.0.0`.
    Major,
}

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Text as written.
    Literal(String),
    /// ISO week-numbering year.
    Year,
    /// ISO week, 1 to 53.
    Week,
    /// Month, 1 to 12.
    Month,
    /// Day of the month.
    Day,
    /// `YYYYMMDD`.
    Date,
    /// The counter: the smallest that keeps versions increasing.
    Build,
    /// The build definition's own tag (`5.7.18` of `mysql:5.7.18`).
    Tag,
}

/// The default scheme.
pub const DEFAULT_SCHEME: &str = "{year}.{week}.{build}";

impl Default for Scheme {
    fn default() -> Scheme {
        Scheme::parse(DEFAULT_SCHEME).expect("the default scheme parses")
    }
}

impl Scheme {
    /// Parses a scheme; errors say what is wrong.
    pub fn parse(s: &str) -> Result<Scheme, BuildError> {
        let invalid = |m: String| BuildError::Invalid(format!("version scheme {s:?}: {m}"));
        match s {
            "semver-patch" => return Ok(Scheme::Semver(Bump::Patch)),
            "semver-minor" => return Ok(Scheme::Semver(Bump::Minor)),
            "semver-major" => return Ok(Scheme::Semver(Bump::Major)),
            _ => {}
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            if i > 0 {
                parts.push(Part::Literal(rest[..i].to_string()));
            }
            let end = rest[i..]
                .find('}')
                .ok_or_else(|| invalid("unclosed `{`".into()))?;
            let field = &rest[i + 1..i + end];
            parts.push(match field {
                "year" => Part::Year,
                "week" => Part::Week,
                "month" => Part::Month,
                "day" => Part::Day,
                "date" => Part::Date,
                "build" => Part::Build,
                "tag" => Part::Tag,
                other => {
                    return Err(invalid(format!(
                        "unknown field {{{other}}} (known: year, week, month, day, date, build, tag; or semver-patch|minor|major)"
                    )));
                }
            });
            rest = &rest[i + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if !parts.contains(&Part::Build) {
            return Err(invalid(
                "needs {build}, or two builds in one period would get the same version".into(),
            ));
        }
        for w in parts.windows(2) {
            if !matches!(w[0], Part::Literal(_)) && !matches!(w[1], Part::Literal(_)) {
                return Err(invalid(
                    "put a separator between two fields, or versions can't be read back".into(),
                ));
            }
        }
        let tag_chars = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        for p in &parts {
            if let Part::Literal(l) = p
                && !l.chars().all(tag_chars)
            {
                return Err(invalid(format!(
                    "{l:?}: a tag holds only letters, digits, `.`, `_` and `-`"
                )));
            }
        }
        Ok(Scheme::Template(parts))
    }

    /// The next version: above every existing tag this scheme could have
    /// made, and equal to none. `tag` is the build's own tag, for `{tag}`.
    pub fn next(
        &self,
        existing: &[String],
        tag: &str,
        now: DateTime<Utc>,
    ) -> Result<String, BuildError> {
        match self {
            Scheme::Semver(b) => Ok(semver_next(existing, *b)),
            Scheme::Template(parts) => {
                let iso = now.iso_week();
                let value = |p: &Part| -> Option<u64> {
                    Some(match p {
                        Part::Year => u64::try_from(iso.year()).ok()?,
                        Part::Week => u64::from(iso.week()),
                        Part::Month => u64::from(now.month()),
                        Part::Day => u64::from(now.day()),
                        Part::Date => {
                            u64::try_from(now.year()).ok()? * 10_000
                                + u64::from(now.month()) * 100
                                + u64::from(now.day())
                        }
                        _ => return None,
                    })
                };
                // Numbers of the new version, `{build}` = 0 for now.
                let mut key: Vec<u64> = parts
                    .iter()
                    .filter(|p| !matches!(p, Part::Literal(_) | Part::Tag))
                    .map(|p| value(p).unwrap_or(0))
                    .collect();
                let build_at = parts
                    .iter()
                    .filter(|p| !matches!(p, Part::Literal(_) | Part::Tag))
                    .position(|p| *p == Part::Build)
                    .expect("checked in parse");
                let made: Vec<Vec<u64>> = existing
                    .iter()
                    .filter_map(|t| read_back(parts, t, tag))
                    .collect();
                if let Some(max) = made.iter().max() {
                    let mut dated = key.clone();
                    dated[build_at] = u64::MAX;
                    if *max > dated {
                        // The highest tag is "in the future" (a clock set back):
                        // continue from it.
                        key = max.clone();
                    }
                    // Above every existing version with the same fields.
                    let mut floor = key.clone();
                    floor[build_at] = 0;
                    let top = made
                        .iter()
                        .filter(|m| {
                            m.iter()
                                .enumerate()
                                .all(|(i, v)| i == build_at || *v == floor[i])
                        })
                        .map(|m| m[build_at])
                        .max();
                    key[build_at] = top.map_or(1, |t| t + 1);
                } else {
                    key[build_at] = 1;
                }
                let mut numbers = key.into_iter();
                let mut out = String::new();
                for p in parts {
                    match p {
                        Part::Literal(l) => out.push_str(l),
                        Part::Tag => out.push_str(tag),
                        _ => out.push_str(&numbers.next().expect("one per field").to_string()),
                    }
                }
                if existing.contains(&out) {
                    return Err(BuildError::Invalid(format!(
                        "version {out} exists already (tags this scheme can't read back?)"
                    )));
                }
                Ok(out)
            }
        }
    }
}

/// The numbers of `tag` if the template could have made it.
fn read_back(parts: &[Part], text: &str, own_tag: &str) -> Option<Vec<u64>> {
    let mut rest = text;
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        match p {
            Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
            Part::Tag => rest = rest.strip_prefix(own_tag)?,
            _ => {
                let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 || (n > 1 && rest.starts_with('0')) {
                    return None;
                }
                // A field must end where the next literal starts.
                if let Some(Part::Literal(next)) = parts.get(i + 1)
                    && !rest[n..].starts_with(next.as_str())
                {
                    return None;
                }
                out.push(rest[..n].parse().ok()?);
                rest = &rest[n..];
            }
        }
    }
    rest.is_empty().then_some(out)
}

fn semver_next(existing: &[String], bump: Bump) -> String {
    let mut best: Option<(semver::Version, bool)> = None;
    for t in existing {
        let (v, text) = match t.strip_prefix('v') {
            Some(s) => (true, s),
            None => (false, t.as_str()),
        };
        // Releases only: a pre-release or build tag is not bumped from.
        let Ok(parsed) = semver::Version::parse(text) else {
            continue;
        };
        if !parsed.pre.is_empty() || !parsed.build.is_empty() {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| parsed > *b) {
            best = Some((parsed, v));
        }
    }
    let (mut v, prefix) = best.unwrap_or((semver::Version::new(0, 0, 0), false));
    match bump {
        Bump::Patch => v.patch += 1,
        Bump::Minor => {
            v.minor += 1;
            v.patch = 0;
        }
        Bump::Major => {
            v.major += 1;
            v.minor = 0;
            v.patch = 0;
        }
    }
    format!("{}{v}", if prefix { "v" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn year_week_build_counts_per_week_and_never_decreases() {
        let s = Scheme::parse(DEFAULT_SCHEME).unwrap();
        // 2026-12-02 is in ISO week 49 of 2026.
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        assert_eq!(s.next(&[], "1", now).unwrap(), "2026.49.1");
        let existing = tags(&["2026.49.1", "2026.49.2", "2026.48.7", "latest", "2026.49.x"]);
        assert_eq!(s.next(&existing, "1", now).unwrap(), "2026.49.3");
        // A new week starts at 1 again, and still sorts above.
        let later = Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap();
        assert_eq!(s.next(&existing, "1", later).unwrap(), "2026.50.1");
        // A clock set back continues the highest version instead.
        let earlier = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next(&existing, "1", earlier).unwrap(), "2026.49.3");
        // ISO years: 2027-01-01 is in week 53 of 2026.
        let newyear = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next(&existing, "1", newyear).unwrap(), "2026.53.1");
    }

    #[test]
    fn other_templates_and_semver() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        let s = Scheme::parse("{tag}-{date}.{build}").unwrap();
        let existing = tags(&["5.7.18-20261202.1", "5.7.17-20261202.9"]);
        assert_eq!(
            s.next(&existing, "5.7.18", now).unwrap(),
            "5.7.18-20261202.2"
        );
        let p = Scheme::parse("semver-patch").unwrap();
        assert_eq!(
            p.next(
                &tags(&["v1.2.3", "v1.10.0", "v2.0.0-rc.1", "latest"]),
                "",
                now
            )
            .unwrap(),
            "v1.10.1"
        );
        assert_eq!(
            Scheme::parse("semver-minor")
                .unwrap()
                .next(&tags(&["1.2.3"]), "", now)
                .unwrap(),
            "1.3.0"
        );
        assert_eq!(
            Scheme::parse("semver-major")
                .unwrap()
                .next(&[], "", now)
                .unwrap(),
            "1.0.0"
        );
        for (bad, why) in [
            ("{year}.{week}", "needs {build}"),
            ("{year}{build}", "separator"),
            ("{yr}.{build}", "unknown field {yr}"),
            ("v/{build}", "a tag holds only"),
            ("{build", "unclosed"),
        ] {
            let e = Scheme::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
