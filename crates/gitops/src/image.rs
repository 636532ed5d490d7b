//! Image references as written in a file, and which update applies to one.

use freshen_reference::Reference;

use crate::ImageUpdate;

/// A reference split the way the docker CLI splits it, each part as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written<'a> {
    /// `[registry/]repository`, e.g. `nginx` or `localhost:5000/app`.
    pub name: &'a str,
    /// The tag, if written.
    pub tag: Option<&'a str>,
}

/// Splits `s` into name and tag (a digest is dropped): the tag follows the
/// last `:` after the last `/`, so `host:5000/app` keeps its port.
pub(crate) fn split(s: &str) -> Written<'_> {
    let rest = s.split_once('@').map_or(s, |(n, _)| n);
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => Written {
            name: &rest[..slash + i],
            tag: Some(&rest[slash + i + 1..]),
        },
        None => Written {
            name: rest,
            tag: None,
        },
    }
}

/// The normalised repository (`docker.io/library/nginx`) of `s`, if `s` is
/// an image reference at all (a template like `{{ .Values.image }}` is not).
pub(crate) fn repository(s: &str) -> Option<String> {
    Reference::parse(s).ok().map(|r| r.name())
}

/// `s` pinned to `digest`: `<name as written>[:tag as written]@digest`.
pub(crate) fn pin(s: &str, digest: &str) -> String {
    let w = split(s);
    match w.tag {
        Some(t) => format!("{}:{t}@{digest}", w.name),
        None => format!("{}@{digest}", w.name),
    }
}

/// Which update applies to a field.
#[derive(Debug)]
pub(crate) enum Pick<'a> {
    /// None: the field stays.
    None,
    /// This one.
    One(&'a ImageUpdate),
    /// Several updates of the repository with different digests, and the
    /// field names no tag to choose by.
    Ambiguous(Vec<&'a ImageUpdate>),
}

/// The update for a field of `repository` that names `tag` (or none): of
/// the updates of that repository, one of the same tag, else one that
/// names no tag. A field that names no tag takes the repository's update
/// when they all agree on the digest, or the one update that names no tag.
pub(crate) fn pick<'a>(
    updates: &'a [ImageUpdate],
    repository: &str,
    tag: Option<&str>,
) -> Pick<'a> {
    let candidates: Vec<&ImageUpdate> = updates
        .iter()
        .filter(|u| u.image.name() == repository)
        .collect();
    let untagged = || candidates.iter().copied().filter(|u| u.tag.is_none());
    if let Some(t) = tag {
        return candidates
            .iter()
            .copied()
            .find(|u| u.tag.as_deref() == Some(t))
            .or_else(|| untagged().next())
            .map_or(Pick::None, Pick::One);
    }
    let Some(first) = candidates.first() else {
        return Pick::None;
    };
    if candidates.iter().all(|u| u.digest == first.digest) {
        return Pick::One(first);
    }
    let mut no_tag = untagged();
    match (no_tag.next(), no_tag.next()) {
        (Some(u), None) => Pick::One(u),
        _ => Pick::Ambiguous(candidates),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(image: &str, tag: Option<&str>, hex: char) -> ImageUpdate {
        ImageUpdate {
            image: Reference::parse(image).unwrap(),
            tag: tag.map(str::to_string),
            digest: format!("sha256:{}", hex.to_string().repeat(64)),
        }
    }

    #[test]
    fn splits_as_written() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            split("nginx"),
            Written {
                name: "nginx",
                tag: None
            }
        );
        assert_eq!(
            split(&format!("nginx:1.27@{d}")),
            Written {
                name: "nginx",
                tag: Some("1.27")
            }
        );
        assert_eq!(
            split("localhost:5000/app"),
            Written {
                name: "localhost:5000/app",
                tag: None
            }
        );
        assert_eq!(
            split("localhost:5000/app:1"),
            Written {
                name: "localhost:5000/app",
                tag: Some("1")
            }
        );
        assert_eq!(
            pin(&format!("nginx:1.27@{d}"), "sha256:x"),
            "nginx:1.27@sha256:x"
        );
        assert_eq!(
            pin("localhost:5000/app", "sha256:x"),
            "localhost:5000/app@sha256:x"
        );
        assert_eq!(
            repository("nginx:1.27").as_deref(),
            Some("docker.io/library/nginx")
        );
        assert_eq!(repository("{{ .Values.image }}"), None);
    }

    #[test]
    fn picks_by_repository_then_tag() {
        let ups = [
            update("docker.io/library/nginx", Some("1.27"), 'a'),
            update("nginx:whatever", Some("1.26"), 'b'),
            update("localhost:5000/app", None, 'c'),
        ];
        let n = "docker.io/library/nginx";
        assert!(matches!(pick(&ups, n, Some("1.27")), Pick::One(u) if u.digest.ends_with('a')));
        assert!(matches!(pick(&ups, n, Some("1.26")), Pick::One(u) if u.digest.ends_with('b')));
        assert!(matches!(pick(&ups, n, Some("1.25")), Pick::None));
        assert!(matches!(pick(&ups, n, None), Pick::Ambiguous(v) if v.len() == 2));
        // An update that names no tag matches any tag.
        assert!(matches!(
            pick(&ups, "localhost:5000/app", Some("9")),
            Pick::One(_)
        ));
        assert!(matches!(
            pick(&ups, "docker.io/library/redis", None),
            Pick::None
        ));
    }
}
