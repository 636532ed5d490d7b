//! Rebuild waves: given which images build on which (by reference), what a
//! change concerns and in which order to rebuild it. Parents come before
//! children; the images of one wave don't depend on each other, so they can
//! be built in parallel.

use std::collections::{BTreeMap, BTreeSet};

/// One image that can be rebuilt, and the images it is built from (every
/// stage's base: a builder stage's image matters as much as the final one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The image it produces (normalised reference).
    pub image: String,
    /// The images it is built from (normalised references).
    pub bases: Vec<String>,
}

/// One image of a plan, and why it is in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    /// The image to rebuild.
    pub image: String,
    /// The changed images (or rebuilt ones of earlier waves) it is built
    /// from: what puts it in the plan.
    pub because: Vec<String>,
}

/// Why a plan can't be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Images that build on each other in a ring.
    #[error("the builds form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Two definitions produce one image.
    #[error("{0} is built by two definitions")]
    Duplicate(String),
}

/// The build graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// image -> every image it is built from.
    nodes: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// A graph of `nodes`; a cycle among them is an error naming it.
    pub fn new(nodes: &[Node]) -> Result<Graph, PlanError> {
        let mut g = Graph::default();
        for n in nodes {
            if n.bases.contains(&n.image) {
                return Err(PlanError::Cycle(vec![n.image.clone(), n.image.clone()]));
            }
            let bases: BTreeSet<String> = n.bases.iter().cloned().collect();
            if g.nodes.insert(n.image.clone(), bases).is_some() {
                return Err(PlanError::Duplicate(n.image.clone()));
            }
        }
        if let Some(cycle) = g.find_cycle() {
            return Err(PlanError::Cycle(cycle));
        }
        Ok(g)
    }

    /// True when `image` is one of the graph's buildable images.
    pub fn contains(&self, image: &str) -> bool {
        self.nodes.contains_key(image)
    }

    /// The images to rebuild when `changed` images change, in waves: every
    /// node built (transitively) on one of them, each in the wave after
    /// the last of its bases in the plan. A changed image that is itself a
    /// node is not rebuilt (it already changed); `include_changed` puts
    /// such nodes in the first wave instead (a rebuild asked for by name).
    pub fn waves(&self, changed: &[String], include_changed: bool) -> Vec<Vec<Planned>> {
        let changed: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
        // Which nodes are affected, to a fixed point (the graph is acyclic
        // and small next to the cost of one build, so this stays simple).
        let mut affected: BTreeSet<&str> = BTreeSet::new();
        if include_changed {
            affected.extend(changed.iter().copied().filter(|c| self.contains(c)));
        }
        loop {
            let before = affected.len();
            for (image, bases) in &self.nodes {
                if affected.contains(image.as_str()) {
                    continue;
                }
                if bases
                    .iter()
                    .any(|b| changed.contains(b.as_str()) || affected.contains(b.as_str()))
                {
                    affected.insert(image);
                }
            }
            if affected.len() == before {
                break;
            }
        }
        // Wave of each affected node: 0 without affected bases, else one
        // after its deepest affected base.
        let mut wave: BTreeMap<&str, usize> = BTreeMap::new();
        while wave.len() < affected.len() {
            for image in &affected {
                if wave.contains_key(image) {
                    continue;
                }
                let bases = &self.nodes[*image];
                let inner: Vec<&str> = bases
                    .iter()
                    .map(String::as_str)
                    .filter(|b| affected.contains(b) && *b != *image)
                    .collect();
                if inner.iter().all(|b| wave.contains_key(b)) {
                    let w = inner.iter().map(|b| wave[b] + 1).max().unwrap_or(0);
                    wave.insert(image, w);
                }
            }
        }
        let depth = wave.values().copied().max().map_or(0, |m| m + 1);
        let mut out: Vec<Vec<Planned>> = vec![Vec::new(); depth];
        for (image, w) in wave {
            let because = self.nodes[image]
                .iter()
                .filter(|b| changed.contains(b.as_str()) || affected.contains(b.as_str()))
                .cloned()
                .collect::<Vec<_>>();
            let because = if because.is_empty() {
                vec![image.to_string()]
            } else {
                because
            };
            out[w].push(Planned {
                image: image.to_string(),
                because,
            });
        }
        out
    }

    /// A cycle, as the images around it (first repeated at the end).
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit<'a>(
            g: &'a Graph,
            n: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match marks.get(n) {
                Some(Mark::Done) => return None,
                Some(Mark::Open) => {
                    let start = path.iter().position(|p| *p == n).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(n.to_string());
                    return Some(cycle);
                }
                None => {}
            }
            marks.insert(n, Mark::Open);
            path.push(n);
            if let Some(bases) = g.nodes.get(n) {
                for b in bases {
                    if g.nodes.contains_key(b)
                        && let Some(c) = visit(g, b, marks, path)
                    {
                        return Some(c);
                    }
                }
            }
            path.pop();
            marks.insert(n, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for n in self.nodes.keys() {
            let mut path = Vec::new();
            if let Some(c) = visit(self, n, &mut marks, &mut path) {
                return Some(c);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(image: &str, bases: &[&str]) -> Node {
        Node {
            image: image.into(),
            bases: bases.iter().map(|b| b.to_string()).collect(),
        }
    }

    fn names(waves: &[Vec<Planned>]) -> Vec<Vec<&str>> {
        waves
            .iter()
            .map(|w| w.iter().map(|p| p.image.as_str()).collect())
            .collect()
    }

    #[test]
    fn three_levels_parents_first() {
        let g = Graph::new(&[
            node("app1", &["mid"]),
            node("app2", &["mid", "golang"]),
            node("app3", &["mid"]),
            node("mid", &["base"]),
            node("tool", &["alpine"]),
            // Built on mid and on app1: must wait for both.
            node("bundle", &["app1", "mid"]),
        ])
        .unwrap();
        let w = g.waves(&["base".into()], false);
        assert_eq!(
            names(&w),
            [vec!["mid"], vec!["app1", "app2", "app3"], vec!["bundle"]]
        );
        assert_eq!(w[0][0].because, ["base"]);
        assert_eq!(w[2][0].because, ["app1", "mid"]);
        assert!(g.waves(&["debian".into()], false).is_empty());
        assert_eq!(names(&g.waves(&["golang".into()], false)), [vec!["app2"]]);
        // Asked for by name: mid itself, then what is built on it.
        assert_eq!(names(&g.waves(&["mid".into()], true))[0], vec!["mid"]);
        assert_eq!(names(&g.waves(&["mid".into()], false))[0].len(), 3);
    }

    #[test]
    fn cycles_and_duplicates_are_named() {
        let e = Graph::new(&[node("a", &["b"]), node("b", &["c"]), node("c", &["a"])]).unwrap_err();
        assert_eq!(
            e,
            PlanError::Cycle(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(e.to_string(), "the builds form a cycle: a -> b -> c -> a");
        assert!(matches!(
            Graph::new(&[node("a", &["a"])]),
            Err(PlanError::Cycle(_))
        ));
        assert_eq!(
            Graph::new(&[node("a", &["x"]), node("a", &["y"])]).unwrap_err(),
            PlanError::Duplicate("a".into())
        );
    }
}
