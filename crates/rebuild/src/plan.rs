//! A rebuild plan: the builds a change concerns, in waves, each with its
//! executor and the reason it is there. Printing one is a dry run.

use std::collections::BTreeMap;

use freshen_lineage::{Graph, Node};
use serde::{Deserialize, Serialize};

use crate::{Build, BuildError};

/// What a plan starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Trigger {
    /// A base image changed (`--base`, or a change event's tag): rebuild
    /// what is built on it.
    Base {
        /// The normalised reference.
        reference: String,
    },
    /// Rebuild this image, and what is built on it (`--image`).
    Image {
        /// The normalised reference.
        reference: String,
    },
    /// Images vulnerable now (`--vulnerable`): rebuild each one freshen
    /// can build, and what is built on them.
    Vulnerable {
        /// The normalised references, each with why (the findings).
        images: BTreeMap<String, String>,
    },
    /// Every build, parents first.
    All,
}

/// One build in a plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedBuild {
    /// The image to rebuild.
    pub image: String,
    /// How.
    pub executor: String,
    /// What puts it in the plan: the changed or rebuilt images it builds from.
    pub because: Vec<String>,
    /// One line.
    pub reason: String,
    /// Its definition (`builds[1]`, `discover[0] mysql/5.7.18`).
    pub origin: String,
}

/// The waves of a rebuild: each wave's images don't build on each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// What it starts from.
    pub trigger: Trigger,
    /// Parents first.
    pub waves: Vec<Vec<PlannedBuild>>,
    /// Images known (from the inventory's lineage) to be built on what
    /// changed, that no build definition produces: freshen can't rebuild
    /// them. Filled by the caller, which knows the inventory.
    #[serde(default)]
    pub not_buildable: Vec<String>,
}

impl Plan {
    /// Images in the plan.
    pub fn len(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }

    /// True when nothing is to be rebuilt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The plan as a Graphviz digraph: images as nodes ranked by wave,
    /// edges from what each is rebuilt because of.
    pub fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph freshen_plan {\n  rankdir=LR;\n  node [shape=box];\n");
        for (i, wave) in self.waves.iter().enumerate() {
            out.push_str(&format!("  subgraph wave_{i} {{ rank=same;"));
            for b in wave {
                out.push_str(&format!(" {};", q(&b.image)));
            }
            out.push_str(" }\n");
        }
        for wave in &self.waves {
            for b in wave {
                out.push_str(&format!(
                    "  {} [label={}];\n",
                    q(&b.image),
                    q(&format!("{}\n{}", b.image, b.executor))
                ));
                for from in &b.because {
                    if *from != b.image {
                        out.push_str(&format!("  {} -> {};\n", q(from), q(&b.image)));
                    }
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

/// Plans the rebuild `trigger` calls for over `builds`. A cycle among the
/// builds, or two builds of one image, is an error naming them.
pub fn plan(builds: &[Build], trigger: Trigger) -> Result<Plan, BuildError> {
    let graph = Graph::new(
        &builds
            .iter()
            .map(|b| Node {
                image: b.image.clone(),
                bases: b.bases.clone(),
            })
            .collect::<Vec<_>>(),
    )?;
    let by_image: BTreeMap<&str, &Build> = builds.iter().map(|b| (b.image.as_str(), b)).collect();
    let (changed, include) = match &trigger {
        Trigger::Base { reference } => (vec![reference.clone()], false),
        Trigger::Image { reference } => {
            if !graph.contains(reference) {
                return Err(BuildError::Invalid(format!(
                    "no build produces {reference}: define it under `builds:` or `discover:`"
                )));
            }
            (vec![reference.clone()], true)
        }
        // The images no definition builds are the caller's to report.
        Trigger::Vulnerable { images } => (
            images
                .keys()
                .filter(|r| graph.contains(r))
                .cloned()
                .collect(),
            true,
        ),
        // Every build whose bases are all outside the graph is a root.
        Trigger::All => (
            builds
                .iter()
                .filter(|b| !b.bases.iter().any(|x| graph.contains(x)))
                .map(|b| b.image.clone())
                .collect(),
            true,
        ),
    };
    let waves = graph.waves(&changed, include);
    let mut wave_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, w) in waves.iter().enumerate() {
        for p in w {
            wave_of.insert(p.image.clone(), i);
        }
    }
    let waves = waves
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|p| {
                    let b = by_image[p.image.as_str()];
                    let reason = if p.because == [p.image.clone()] {
                        match &trigger {
                            Trigger::All => "a root of the build graph".to_string(),
                            Trigger::Vulnerable { images } => format!(
                                "vulnerable: {}",
                                images.get(&p.image).map(String::as_str).unwrap_or("")
                            ),
                            _ => "asked for".to_string(),
                        }
                    } else {
                        p.because
                            .iter()
                            .map(|from| match wave_of.get(from) {
                                Some(w) => format!("FROM {from} (rebuilt in wave {})", w + 1),
                                None => format!("FROM {from} (changed)"),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    PlannedBuild {
                        image: p.image,
                        executor: match b.fallback {
                            Some(f) => format!("{}, else {}", b.executor.as_str(), f.as_str()),
                            None => b.executor.as_str().to_string(),
                        },
                        because: p.because,
                        reason,
                        origin: b.origin.clone(),
                    }
                })
                .collect()
        })
        .collect();
    Ok(Plan {
        trigger,
        waves,
        not_buildable: Vec::new(),
    })
}
