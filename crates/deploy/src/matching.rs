//! Which containers run an image that moved, and what they are moved to.
//!
//! Images in pod specs are normalised as the container runtime does
//! (`nginx` is `docker.io/library/nginx:latest`), never by freshen's own
//! `default_registry`: the kubelet is what pulls them.

use freshen_reference::Reference;
use serde::{Deserialize, Serialize};

use crate::workload::{ContainerImage, Workload, WorkloadId};

/// An image that moved to a new digest: the workloads running it are to
/// follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The image as freshen knows it (`registry/repo:tag`).
    pub image: Reference,
    /// The digest to roll out (`sha256:…`).
    pub digest: String,
    /// Digests the image had before: a container pinned to one of them
    /// runs this image too.
    pub old_digests: Vec<String>,
    /// Its wave in the rebuild plan (0 for an image rolled out alone).
    pub wave: usize,
}

/// One container moved to a new image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerChange {
    /// The container's name.
    pub container: String,
    /// An init container.
    #[serde(default)]
    pub init: bool,
    /// Its image now, as written in the pod spec.
    pub old: String,
    /// The image it is moved to: the same repository as written, the same
    /// tag if it had one, pinned to the new digest.
    pub new: String,
}

/// A workload to roll out: the containers that change, and its wave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The workload.
    pub workload: WorkloadId,
    /// The latest wave among its images: it goes once they are all rebuilt.
    pub wave: usize,
    /// The containers whose image moves.
    pub containers: Vec<ContainerChange>,
}

/// A workload that already runs every wanted digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// The workload.
    pub workload: WorkloadId,
    /// The containers already pinned to the new digest.
    pub containers: Vec<String>,
}

/// What a set of wanted images asks of a set of workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    /// Workloads to roll out, by wave then name.
    pub changes: Vec<Change>,
    /// Workloads already on the new digests.
    pub current: Vec<Current>,
}

/// The changes `wanted` asks of `workloads`.
pub fn match_workloads(workloads: &[Workload], wanted: &[Wanted]) -> Matched {
    let mut out = Matched::default();
    for w in workloads {
        let mut containers = Vec::new();
        let mut current = Vec::new();
        let mut wave = 0;
        for c in &w.containers {
            let Some(want) = wanted.iter().find(|want| runs(c, want)) else {
                continue;
            };
            let Some(new) = moved_to(&c.image, &want.digest) else {
                continue;
            };
            if new == c.image || pinned_to(&c.image, &want.digest) {
                current.push(c.name.clone());
                continue;
            }
            wave = wave.max(want.wave);
            containers.push(ContainerChange {
                container: c.name.clone(),
                init: c.init,
                old: c.image.clone(),
                new,
            });
        }
        if !containers.is_empty() {
            out.changes.push(Change {
                workload: w.id.clone(),
                wave,
                containers,
            });
        } else if !current.is_empty() {
            out.current.push(Current {
                workload: w.id.clone(),
                containers: current,
            });
        }
    }
    out.changes
        .sort_by(|a, b| (a.wave, &a.workload).cmp(&(b.wave, &b.workload)));
    out.current.sort_by(|a, b| a.workload.cmp(&b.workload));
    out
}

/// Whether container `c` runs `want`'s image: the same repository, and
/// the same tag (pinned to a digest or not: the tag says what it
/// follows), or, written without a tag, a digest the image had.
fn runs(c: &ContainerImage, want: &Wanted) -> bool {
    let Ok(r) = Reference::parse(&c.image) else {
        return false;
    };
    if r.name() != want.image.name() {
        return false;
    }
    let known = |d: &str| d == want.digest || want.old_digests.iter().any(|o| o == d);
    match (r.digest(), r.tag(), want.image.tag()) {
        (_, Some(t), Some(wt)) if t == wt => true,
        (Some(d), None, _) => known(d),
        // Another tag, or pinned without a tag to a digest freshen never
        // saw for this image: someone chose it; leave it alone.
        _ => false,
    }
}

fn pinned_to(image: &str, digest: &str) -> bool {
    image.rsplit_once('@').is_some_and(|(_, d)| d == digest)
}

/// `image` (as written) pinned to `digest`: the repository as the user
/// wrote it, its tag kept for readers, the digest what runs.
fn moved_to(image: &str, digest: &str) -> Option<String> {
    let name = image.split_once('@').map_or(image, |(n, _)| n);
    if name.is_empty() {
        return None;
    }
    Some(format!("{name}@{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshen_settings::WorkloadKind;

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const OTHER: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn workload(name: &str, images: &[(&str, bool, &str)]) -> Workload {
        Workload {
            id: WorkloadId {
                cluster: "c".into(),
                kind: WorkloadKind::Deployment,
                namespace: "ns".into(),
                name: name.into(),
            },
            generation: 1,
            resource_version: "1".into(),
            containers: images
                .iter()
                .map(|(n, init, image)| ContainerImage {
                    name: n.to_string(),
                    init: *init,
                    image: image.to_string(),
                })
                .collect(),
        }
    }

    fn wanted(image: &str, wave: usize) -> Wanted {
        Wanted {
            image: Reference::parse(image).unwrap(),
            digest: NEW.into(),
            old_digests: vec![OLD.into()],
            wave,
        }
    }

    #[test]
    fn matches_by_tag_or_known_digest_as_the_runtime_normalises() {
        let ws = [
            workload("short", &[("app", false, "nginx:1.27")]),
            workload("full", &[("app", false, "docker.io/library/nginx:1.27")]),
            workload("pinned-old", &[("app", false, &format!("nginx@{OLD}"))]),
            workload(
                "tag-and-old",
                &[("app", false, &format!("nginx:1.27@{OLD}"))],
            ),
            workload("chosen", &[("app", false, &format!("nginx@{OTHER}"))]),
            workload(
                "followed",
                &[("app", false, &format!("nginx:1.27@{OTHER}"))],
            ),
            workload("other-tag", &[("app", false, "nginx:1.26")]),
            workload("latest", &[("app", false, "nginx")]),
            workload("done", &[("app", false, &format!("nginx:1.27@{NEW}"))]),
            workload(
                "init",
                &[("side", false, "busybox:1"), ("setup", true, "nginx:1.27")],
            ),
        ];
        let m = match_workloads(&ws, &[wanted("nginx:1.27", 0)]);
        let names: Vec<&str> = m.changes.iter().map(|c| c.workload.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "followed",
                "full",
                "init",
                "pinned-old",
                "short",
                "tag-and-old"
            ]
        );
        let short = m
            .changes
            .iter()
            .find(|c| c.workload.name == "short")
            .unwrap();
        assert_eq!(short.containers[0].new, format!("nginx:1.27@{NEW}"));
        let pinned = m
            .changes
            .iter()
            .find(|c| c.workload.name == "pinned-old")
            .unwrap();
        assert_eq!(pinned.containers[0].new, format!("nginx@{NEW}"));
        let init = m
            .changes
            .iter()
            .find(|c| c.workload.name == "init")
            .unwrap();
        assert_eq!(init.containers.len(), 1);
        assert!(init.containers[0].init);
        assert_eq!(m.current.len(), 1);
        assert_eq!(m.current[0].workload.name, "done");
    }

    #[test]
    fn a_workload_goes_in_the_latest_wave_of_its_images() {
        let ws = [workload(
            "both",
            &[
                ("base", false, "localhost:5000/base:1"),
                ("app", false, "localhost:5000/app:1"),
            ],
        )];
        let m = match_workloads(
            &ws,
            &[
                wanted("localhost:5000/base:1", 0),
                wanted("localhost:5000/app:1", 2),
            ],
        );
        assert_eq!(m.changes.len(), 1);
        assert_eq!(m.changes[0].wave, 2);
        assert_eq!(m.changes[0].containers.len(), 2);
    }
}
