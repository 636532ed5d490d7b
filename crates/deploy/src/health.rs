//! Whether a workload's rollout has finished, read from its status the
//! way `kubectl rollout status` reads it.

use freshen_settings::WorkloadKind;
use serde_json::Value;

/// Where a rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Every replica runs the new template and is available.
    Done,
    /// Still going; what it waits for.
    Waiting(String),
    /// It can't finish: the controller gave up (`ProgressDeadlineExceeded`).
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The rollout state of `object`, a workload of `kind`.
pub fn health(kind: WorkloadKind, object: &Value) -> Health {
    let generation = int(&object["metadata"]["generation"]);
    let spec = &object["spec"];
    let status = &object["status"];
    let observed = int(&status["observedGeneration"]);
    match kind {
        // A CronJob's next Job takes the new template; nothing to wait for.
        WorkloadKind::CronJob => Health::Done,
        WorkloadKind::Deployment => {
            if generation > observed {
                return Health::Waiting("waiting for the spec update to be observed".into());
            }
            let progressing = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing");
            if let Some(c) = progressing
                && c["reason"] == "ProgressDeadlineExceeded"
            {
                let message = c["message"].as_str().unwrap_or_default();
                return Health::Failed(if message.is_empty() {
                    "exceeded its progress deadline".to_string()
                } else {
                    format!("exceeded its progress deadline: {message}")
                });
            }
            let updated = int(&status["updatedReplicas"]);
            if let Some(want) = spec["replicas"].as_i64()
                && updated < want
            {
                return Health::Waiting(format!(
                    "{updated} of {want} new replicas have been updated"
                ));
            }
            let replicas = int(&status["replicas"]);
            if replicas > updated {
                return Health::Waiting(format!(
                    "{} old replicas are pending termination",
                    replicas - updated
                ));
            }
            let available = int(&status["availableReplicas"]);
            if available < updated {
                return Health::Waiting(format!(
                    "{available} of {updated} updated replicas are available"
                ));
            }
            Health::Done
        }
        WorkloadKind::DaemonSet => {
            if !rolling(spec) {
                return Health::Done;
            }
            if generation > observed {
                return Health::Waiting("waiting for the spec update to be observed".into());
            }
            let desired = int(&status["desiredNumberScheduled"]);
            let updated = int(&status["updatedNumberScheduled"]);
            if updated < desired {
                return Health::Waiting(format!(
                    "{updated} of {desired} updated pods are scheduled"
                ));
            }
            let available = int(&status["numberAvailable"]);
            if available < desired {
                return Health::Waiting(format!(
                    "{available} of {desired} updated pods are available"
                ));
            }
            Health::Done
        }
        WorkloadKind::StatefulSet => {
            if !rolling(spec) {
                return Health::Done;
            }
            if observed == 0 || generation > observed {
                return Health::Waiting("waiting for the spec update to be observed".into());
            }
            let ready = int(&status["readyReplicas"]);
            if let Some(want) = spec["replicas"].as_i64()
                && ready < want
            {
                return Health::Waiting(format!("{ready} of {want} pods are ready"));
            }
            if let Some(partition) = spec["updateStrategy"]["rollingUpdate"]["partition"].as_i64() {
                let want = spec["replicas"].as_i64().unwrap_or(1);
                let updated = int(&status["updatedReplicas"]);
                if updated < want - partition {
                    return Health::Waiting(format!(
                        "{updated} of {} pods updated (partition {partition})",
                        want - partition
                    ));
                }
                return Health::Done;
            }
            let update = status["updateRevision"].as_str().unwrap_or_default();
            let current = status["currentRevision"].as_str().unwrap_or_default();
            if update != current {
                return Health::Waiting(format!(
                    "{} pods at revision {update}",
                    int(&status["updatedReplicas"])
                ));
            }
            Health::Done
        }
    }
}

/// Whether the workload rolls its pods itself (`RollingUpdate`, the
/// default) rather than waiting for them to be deleted (`OnDelete`), when
/// there is nothing to wait for.
fn rolling(spec: &Value) -> bool {
    spec["updateStrategy"]["type"]
        .as_str()
        .is_none_or(|t| t == "RollingUpdate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_as_kubectl_reads_it() {
        let d = |gen_: i64, status: Value| json!({"metadata": {"generation": gen_}, "spec": {"replicas": 3}, "status": status});
        assert!(matches!(
            health(
                WorkloadKind::Deployment,
                &d(2, json!({"observedGeneration": 1}))
            ),
            Health::Waiting(_)
        ));
        assert_eq!(
            health(
                WorkloadKind::Deployment,
                &d(
                    2,
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1})
                )
            ),
            Health::Waiting("1 of 3 new replicas have been updated".into())
        );
        assert_eq!(
            health(
                WorkloadKind::Deployment,
                &d(
                    2,
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3})
                )
            ),
            Health::Waiting("1 old replicas are pending termination".into())
        );
        assert_eq!(
            health(
                WorkloadKind::Deployment,
                &d(
                    2,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})
                )
            ),
            Health::Done
        );
        let failed = d(
            2,
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-2\" has timed out progressing."}]}),
        );
        assert!(
            matches!(health(WorkloadKind::Deployment, &failed), Health::Failed(m) if m.contains("timed out progressing"))
        );
    }

    #[test]
    fn statefulset_and_daemonset() {
        let sts = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 1,
                       "currentRevision": "a", "updateRevision": "b"}});
        assert!(matches!(
            health(WorkloadKind::StatefulSet, &sts),
            Health::Waiting(_)
        ));
        let on_delete = json!({"metadata": {"generation": 2}, "spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert_eq!(health(WorkloadKind::StatefulSet, &on_delete), Health::Done);
        let ds = json!({"metadata": {"generation": 5}, "spec": {},
            "status": {"observedGeneration": 5, "desiredNumberScheduled": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 3}});
        assert_eq!(health(WorkloadKind::DaemonSet, &ds), Health::Done);
    }
}
