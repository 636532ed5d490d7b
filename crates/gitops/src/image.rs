//! Image references as written in a file, and which update applies to one.

use freshen_reference::{DEFAULT_TAG, Reference};

use crate::ImageUpdate;

/// A reference split the way the docker CLI splits it, each part as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written<'a> {
    /// `[registry/]repository`, e.g. `nginx` or `localhost:5000/app`.
    pub name: &'a str,
    /// The tag, if written.
    pub tag: Option<&'a str>,
    /// The digest (`sha256:…`), if written.
    pub digest: Option<&'a str>,
}

/// Splits `s` into name, tag and digest: the digest follows the first
/// `@`, the tag the last `:` after the last `/` before it, so
/// `host:5000/app` keeps its port.
pub(crate) fn split(s: &str) -> Written<'_> {
    let (rest, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => Written {
            name: &rest[..slash + i],
            tag: Some(&rest[slash + i + 1..]),
            digest,
        },
        None => Written {
            name: rest,
            tag: None,
            digest,
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
    /// Several updates apply, with different digests, and the field says
    /// nothing more to choose by.
    Ambiguous(Vec<&'a ImageUpdate>),
}

/// The update for a field that names an image the runtime pulls (a
/// container's `image:`, a marked field): of the updates of `repository`,
/// the ones the field runs, decided as the cluster side decides which
/// containers run a wanted image (`freshen-deploy`'s matching):
///
/// - a field that names a tag (pinned to a digest or not) follows that
///   tag: the updates of the same tag;
/// - a field that names neither tag nor digest is `:latest` (the runtime's
///   default): the updates of the tag `latest`;
/// - a field pinned to a digest without a tag runs whatever image had that
///   digest: the updates whose [`ImageUpdate::old_digests`] hold it. When
///   it is already an update's new digest there is nothing to change.
///
/// Several that disagree on the digest are [`Pick::Ambiguous`].
pub(crate) fn pick_runs<'a>(
    updates: &'a [ImageUpdate],
    repository: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Pick<'a> {
    let candidates = || updates.iter().filter(|u| u.image.name() == repository);
    let same_tag = |t: &str| -> Vec<&ImageUpdate> {
        candidates()
            .filter(|u| u.tag.as_deref() == Some(t))
            .collect()
    };
    let matching = match (tag, digest) {
        (Some(t), _) => same_tag(t),
        (None, None) => same_tag(DEFAULT_TAG),
        (None, Some(d)) => {
            if candidates().any(|u| u.digest == d) {
                return Pick::None;
            }
            candidates()
                .filter(|u| u.old_digests.iter().any(|o| o == d))
                .collect()
        }
    };
    agreed(matching)
}

/// The one update of `all` when they agree on the digest.
fn agreed(all: Vec<&ImageUpdate>) -> Pick<'_> {
    match all.first() {
        None => Pick::None,
        Some(first) if all.iter().all(|u| u.digest == first.digest) => Pick::One(first),
        Some(_) => Pick::Ambiguous(all),
    }
}

/// The update for a kustomize `images:` entry of `repository` whose
/// `newTag` (or the tag in its name) is `tag`, if any.
///
/// An entry is not an image the runtime pulls: it tells kustomize to
/// retag every container image of the repository in the resources it
/// renders, whatever tag each names, and its `digest:` pins them all. So
/// it follows the repository rather than a tag of its own: with no tag,
/// the repository's update applies (when the updates agree on the digest,
/// or the one that names no tag); with a tag, an update of that tag (or
/// one that names no tag), so a rebuild of `app:1.4` does not re-pin an
/// overlay that retags to `app:1.3`.
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

    fn digest(hex: char) -> String {
        format!("sha256:{}", hex.to_string().repeat(64))
    }

    fn update(image: &str, tag: Option<&str>, hex: char) -> ImageUpdate {
        ImageUpdate {
            image: Reference::parse(image).unwrap(),
            tag: tag.map(str::to_string),
            digest: digest(hex),
            old_digests: Vec::new(),
        }
    }

    #[test]
    fn splits_as_written() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            split("nginx"),
            Written {
                name: "nginx",
                tag: None,
                digest: None,
            }
        );
        assert_eq!(
            split(&format!("nginx:1.27@{d}")),
            Written {
                name: "nginx",
                tag: Some("1.27"),
                digest: Some(&d),
            }
        );
        assert_eq!(
            split(&format!("localhost:5000/app@{d}")),
            Written {
                name: "localhost:5000/app",
                tag: None,
                digest: Some(&d),
            }
        );
        assert_eq!(
            split("localhost:5000/app:1"),
            Written {
                name: "localhost:5000/app",
                tag: Some("1"),
                digest: None,
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
    fn a_field_with_a_tag_takes_the_update_of_that_tag_only() {
        let ups = [
            update("nginx", Some("1.27"), 'a'),
            update("nginx", Some("1.26"), 'b'),
            update("nginx", None, 'c'),
        ];
        let n = "docker.io/library/nginx";
        let d = digest('0');
        for pinned in [None, Some(d.as_str())] {
            assert!(
                matches!(pick_runs(&ups, n, Some("1.27"), pinned), Pick::One(u) if u.digest == digest('a'))
            );
            assert!(
                matches!(pick_runs(&ups, n, Some("1.26"), pinned), Pick::One(u) if u.digest == digest('b'))
            );
            // Another tag, even with an update that names none: left alone.
            assert!(matches!(
                pick_runs(&ups, n, Some("1.25"), pinned),
                Pick::None
            ));
        }
        assert!(matches!(
            pick_runs(&ups, "docker.io/library/redis", Some("1.27"), None),
            Pick::None
        ));
    }

    #[test]
    fn a_field_with_neither_tag_nor_digest_is_latest() {
        let mut ups = vec![update("web", Some("1"), 'a'), update("web", None, 'c')];
        let n = "docker.io/library/web";
        // `web` is `web:latest`: an update of `web:1` is another image.
        assert!(matches!(pick_runs(&ups, n, None, None), Pick::None));
        ups.push(update("web:latest", Some("latest"), 'b'));
        assert!(matches!(pick_runs(&ups, n, None, None), Pick::One(u) if u.digest == digest('b')));
        assert!(
            matches!(pick_runs(&ups, n, Some("latest"), None), Pick::One(u) if u.digest == digest('b'))
        );
        // Two updates of `latest` that disagree: nothing to choose by.
        ups.push(update("web:latest", Some("latest"), 'd'));
        assert!(matches!(pick_runs(&ups, n, None, None), Pick::Ambiguous(v) if v.len() == 2));
    }

    #[test]
    fn a_field_pinned_without_a_tag_takes_the_update_that_had_its_digest() {
        let mut one = update("web", Some("1"), 'a');
        one.old_digests = vec![digest('0'), digest('1')];
        let mut two = update("web", Some("2"), 'b');
        two.old_digests = vec![digest('2')];
        let ups = [one, two];
        let n = "docker.io/library/web";
        let at = |c: char| pick_runs(&ups, n, None, Some(&digest(c)));
        assert!(matches!(at('0'), Pick::One(u) if u.digest == digest('a')));
        assert!(matches!(at('1'), Pick::One(u) if u.digest == digest('a')));
        assert!(matches!(at('2'), Pick::One(u) if u.digest == digest('b')));
        // A digest freshen never saw for the image: someone chose it.
        assert!(matches!(at('9'), Pick::None));
        // Already on a new digest: nothing to change.
        assert!(matches!(at('a'), Pick::None));
        // A digest two updates both had, moving to different digests.
        let mut three = update("web", Some("3"), 'c');
        three.old_digests = vec![digest('0')];
        let ups = [ups[0].clone(), three];
        assert!(matches!(
            pick_runs(&ups, n, None, Some(&digest('0'))),
            Pick::Ambiguous(v) if v.len() == 2
        ));
    }

    #[test]
    fn kustomize_entries_pick_by_repository_then_tag() {
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
