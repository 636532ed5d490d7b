//! A roll-out: workloads moved to new digests wave by wave, each watched
//! until it is healthy and put back if it is not.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use freshen_settings::RolloutSettings;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::DeployError;
use crate::cluster::Cluster;
use crate::health::Health;
use crate::matching::{Change, Matched, Wanted, match_workloads};

/// How one workload's roll-out ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// It runs the new digests and is healthy.
    Done(String),
    /// Its rollout failed or timed out, and it was put back.
    RolledBack(String),
    /// It failed and could not be put back, or could not be patched.
    Failed(String),
    /// Not touched: an earlier wave failed, or someone else changed it.
    Skipped(String),
}

impl Outcome {
    /// Whether the workload ended on the new digests.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }

    /// What happened, in words.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Done(d)
            | Outcome::RolledBack(d)
            | Outcome::Failed(d)
            | Outcome::Skipped(d) => d,
        }
    }
}

/// Where a roll-out reports each workload's start and end (the store, a
/// progress line).
pub trait Sink: Sync {
    /// The workload is about to be patched.
    fn started(&self, change: &Change) -> impl Future<Output = ()> + Send;
    /// The workload's rollout failed and its old images are about to be
    /// put back (recorded first, so a roll-out resumed after a crash
    /// puts them back rather than rolling the failed digest out again).
    fn putting_back(&self, change: &Change, why: &str) -> impl Future<Output = ()> + Send;
    /// The workload's roll-out ended.
    fn finished(&self, change: &Change, outcome: &Outcome) -> impl Future<Output = ()> + Send;
}

/// The configured clusters, connected, and how to roll out on them.
#[derive(Debug, Clone)]
pub struct Rollout {
    clusters: BTreeMap<String, Cluster>,
    settings: RolloutSettings,
}

/// How many times a patch is retried after the workload changed under it.
const CONFLICT_RETRIES: usize = 5;

impl Rollout {
    /// Connects to every configured cluster; an error names the cluster.
    pub async fn connect(settings: &RolloutSettings) -> Result<Rollout, DeployError> {
        if settings.clusters.is_empty() {
            return Err(DeployError::NoClusters);
        }
        let mut clusters = BTreeMap::new();
        for (name, spec) in &settings.clusters {
            clusters.insert(name.clone(), Cluster::connect(name, spec).await?);
        }
        Ok(Rollout {
            clusters,
            settings: settings.clone(),
        })
    }

    /// The workloads `wanted` moves, read from every cluster now.
    pub async fn plan(&self, wanted: &[Wanted]) -> Result<Matched, DeployError> {
        let mut workloads = Vec::new();
        for cluster in self.clusters.values() {
            workloads.extend(cluster.workloads().await?);
        }
        Ok(match_workloads(&workloads, wanted))
    }

    /// Rolls `changes` out, wave by wave, `parallel` workloads at a time;
    /// once a workload of a wave ends other than done, the later waves are
    /// skipped. Answers each change's outcome, in the order given.
    pub async fn run<S: Sink>(&self, changes: &[Change], sink: &S) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; changes.len()];
        let mut waves: Vec<usize> = changes.iter().map(|c| c.wave).collect();
        waves.sort_unstable();
        waves.dedup();
        let mut failed_wave: Option<usize> = None;
        for wave in waves {
            let members: Vec<usize> = (0..changes.len())
                .filter(|&i| changes[i].wave == wave)
                .collect();
            if let Some(f) = failed_wave {
                for i in members {
                    let outcome =
                        Outcome::Skipped(format!("a workload of wave {} did not roll out", f + 1));
                    sink.finished(&changes[i], &outcome).await;
                    outcomes[i] = Some(outcome);
                }
                continue;
            }
            let done: Vec<(usize, Outcome)> = futures::stream::iter(members)
                .map(|i| async move {
                    sink.started(&changes[i]).await;
                    let outcome = self.roll_one(&changes[i], sink).await;
                    sink.finished(&changes[i], &outcome).await;
                    (i, outcome)
                })
                .buffer_unordered(self.settings.parallel.max(1))
                .collect()
                .await;
            for (i, outcome) in done {
                // A workload left alone (someone else changed it) is no
                // failure of the roll-out: later waves go on.
                if matches!(outcome, Outcome::RolledBack(_) | Outcome::Failed(_)) {
                    failed_wave = Some(wave);
                }
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Skipped("not reached".into())))
            .collect()
    }

    fn timeout(&self, cluster: &str) -> Duration {
        self.settings
            .clusters
            .get(cluster)
            .and_then(|c| c.timeout)
            .unwrap_or(self.settings.timeout)
    }

    /// Puts a workload's old images back, as a failed rollout does: for a
    /// roll-out resumed after a crash that came while it was doing so.
    pub async fn put_back_after_crash(&self, change: &Change, why: &str) -> Outcome {
        let Some(cluster) = self.clusters.get(&change.workload.cluster) else {
            return Outcome::Failed(format!(
                "cluster {} is not in rollout.clusters",
                change.workload.cluster
            ));
        };
        let timeout = self.timeout(&change.workload.cluster);
        self.put_back(cluster, change, why.to_string(), timeout)
            .await
    }

    async fn roll_one<S: Sink>(&self, change: &Change, sink: &S) -> Outcome {
        let id = &change.workload;
        let Some(cluster) = self.clusters.get(&id.cluster) else {
            return Outcome::Failed(format!("cluster {} is not in rollout.clusters", id.cluster));
        };
        let to: Vec<(&str, bool, &str)> = change
            .containers
            .iter()
            .map(|c| (c.container.as_str(), c.init, c.new.as_str()))
            .collect();
        // Each container must still run what the plan saw (or already the
        // new image, when a roll-out is resumed): anything else is someone
        // else's change, and is left alone.
        let expect = |w: &crate::Workload| -> Result<(), String> {
            for c in &change.containers {
                match w.image_of(&c.container, c.init) {
                    Some(now) if now == c.old || now == c.new => {}
                    Some(now) => {
                        return Err(format!(
                            "container {} now runs {now}, not {}: left alone",
                            c.container, c.old
                        ));
                    }
                    None => return Err(format!("container {} is gone: left alone", c.container)),
                }
            }
            Ok(())
        };
        match self.patch(cluster, change, &to, &expect).await {
            Ok(()) => {}
            Err(Patched::Skip(why)) => return Outcome::Skipped(why),
            Err(Patched::Fail(why)) => return Outcome::Failed(why),
        }
        let timeout = self.timeout(&id.cluster);
        match self.wait(cluster, change, timeout, Side::New).await {
            Ok(()) => Outcome::Done(format!(
                "rolled out: {}",
                change
                    .containers
                    .iter()
                    .map(|c| format!("{} -> {}", c.container, c.new))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(why) => {
                sink.putting_back(change, &why).await;
                self.put_back(cluster, change, why, timeout).await
            }
        }
    }

    /// Patches `images` in, re-reading and re-checking the workload when
    /// the API server says it changed under the patch.
    async fn patch(
        &self,
        cluster: &Cluster,
        change: &Change,
        images: &[(&str, bool, &str)],
        expect: &(dyn Fn(&crate::Workload) -> Result<(), String> + Sync),
    ) -> Result<(), Patched> {
        let id = &change.workload;
        for _ in 0..=CONFLICT_RETRIES {
            let (now, _) = cluster
                .read(id)
                .await
                .map_err(|e| Patched::Fail(e.to_string()))?;
            expect(&now).map_err(Patched::Skip)?;
            match cluster.set_images(id, images, &now.resource_version).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_conflict)) => {
                    tracing::info!(workload = %id, "changed while being patched; reading it again");
                }
                Err(e) => return Err(Patched::Fail(e.to_string())),
            }
        }
        Err(Patched::Fail(format!(
            "{id} kept changing: {} patches met a conflict",
            CONFLICT_RETRIES + 1
        )))
    }

    /// Waits until the workload's rollout of the `side` images is done;
    /// the error says why not. A container changed to anything else
    /// meanwhile ends the wait: that rollout is someone else's.
    async fn wait(
        &self,
        cluster: &Cluster,
        change: &Change,
        timeout: Duration,
        side: Side,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let read = cluster.read(&change.workload).await;
            if let Ok((w, _)) = &read
                && let Err(changed) = runs(w, change, side)
            {
                return Err(changed);
            }
            let last = match read.map(|(_, o)| crate::health::health(change.workload.kind, &o)) {
                Ok(Health::Done) => return Ok(()),
                Ok(Health::Failed(why)) => return Err(why),
                Ok(Health::Waiting(what)) => what,
                // A read that fails is retried until the deadline: the
                // API server may be restarting.
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= timeout {
                return Err(format!(
                    "not rolled out after {}: {last}",
                    humantime::format_duration(timeout)
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Puts the old images back after a failed rollout, and waits for
    /// that rollout too.
    async fn put_back(
        &self,
        cluster: &Cluster,
        change: &Change,
        why: String,
        timeout: Duration,
    ) -> Outcome {
        let back: Vec<(&str, bool, &str)> = change
            .containers
            .iter()
            .map(|c| (c.container.as_str(), c.init, c.old.as_str()))
            .collect();
        // Only what freshen set is put back: a container someone else
        // changed meanwhile (or removed) is left as they made it.
        let accept = |w: &crate::Workload| -> Result<(), String> {
            for c in &change.containers {
                match w.image_of(&c.container, c.init) {
                    Some(now) if now == c.new || now == c.old => {}
                    Some(now) => {
                        return Err(format!(
                            "container {} now runs {now} (changed by someone else): left alone",
                            c.container
                        ));
                    }
                    None => {
                        return Err(format!(
                            "container {} is gone (changed by someone else): left alone",
                            c.container
                        ));
                    }
                }
            }
            Ok(())
        };
        tracing::warn!(workload = %change.workload, reason = %why, "rollout failed; putting the old images back");
        if let Err(e) = self.patch(cluster, change, &back, &accept).await {
            let e = match e {
                Patched::Skip(s) | Patched::Fail(s) => s,
            };
            return Outcome::Failed(format!("{why}; not put back: {e}"));
        }
        let olds = change
            .containers
            .iter()
            .map(|c| format!("{} -> {}", c.container, c.old))
            .collect::<Vec<_>>()
            .join(", ");
        match self.wait(cluster, change, timeout, Side::Old).await {
            Ok(()) => Outcome::RolledBack(format!("{why}; put back: {olds}")),
            Err(e) => Outcome::Failed(format!(
                "{why}; put back ({olds}) but that rollout did not finish either: {e}"
            )),
        }
    }
}

/// Which images a wait expects the containers to run.
#[derive(Clone, Copy)]
enum Side {
    New,
    Old,
}

/// Whether every container of `change` runs its `side` image.
fn runs(w: &crate::Workload, change: &Change, side: Side) -> Result<(), String> {
    for c in &change.containers {
        let want = match side {
            Side::New => &c.new,
            Side::Old => &c.old,
        };
        match w.image_of(&c.container, c.init) {
            Some(now) if now == want => {}
            Some(now) => {
                return Err(format!(
                    "container {} was changed to {now} by someone else meanwhile",
                    c.container
                ));
            }
            None => {
                return Err(format!(
                    "container {} was removed by someone else meanwhile",
                    c.container
                ));
            }
        }
    }
    Ok(())
}

enum Patched {
    Skip(String),
    Fail(String),
}
