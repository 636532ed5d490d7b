//! The workload kinds the double serves, their API-server defaults, the
//! discovery documents that describe them, and the server-side `Table`
//! rendering `kubectl get` asks for.

use serde_json::{Map, Value, json};

/// A served resource.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resource {
    /// `Deployment`.
    pub(crate) kind: &'static str,
    /// `deployments`, the path segment.
    pub(crate) plural: &'static str,
    /// `deployment`.
    pub(crate) singular: &'static str,
    /// `apps`.
    pub(crate) group: &'static str,
    /// `deploy`.
    pub(crate) short: &'static str,
    /// JSON pointer of the pod template.
    pub(crate) template: &'static str,
}

/// Every resource is served at version `v1` of its group.
pub(crate) const VERSION: &str = "v1";

pub(crate) static RESOURCES: [Resource; 4] = [
    Resource {
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        group: "apps",
        short: "deploy",
        template: "/spec/template",
    },
    Resource {
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        group: "apps",
        short: "sts",
        template: "/spec/template",
    },
    Resource {
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        group: "apps",
        short: "ds",
        template: "/spec/template",
    },
    Resource {
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        group: "batch",
        short: "cj",
        template: "/spec/jobTemplate/spec/template",
    },
];

impl Resource {
    /// `apps/v1`.
    pub(crate) fn api_version(&self) -> String {
        format!("{}/{VERSION}", self.group)
    }

    /// `deployments.apps`, as error messages name it.
    pub(crate) fn group_resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The pod template's containers and init containers' images.
    pub(crate) fn images(&self, object: &Value) -> Vec<String> {
        let spec = object.pointer(&format!("{}/spec", self.template));
        ["initContainers", "containers"]
            .iter()
            .filter_map(|l| spec?.get(*l)?.as_array())
            .flatten()
            .filter_map(|c| c.get("image")?.as_str().map(str::to_string))
            .collect()
    }
}

/// The resource served at `/apis/<group>/v1/<plural>`.
pub(crate) fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && version == VERSION && r.plural == plural)
}

/// The resource a test names by kind, plural, singular or short name.
pub(crate) fn by_name(name: &str) -> Option<&'static Resource> {
    let n = name.to_ascii_lowercase();
    RESOURCES.iter().find(|r| {
        r.kind.eq_ignore_ascii_case(&n) || r.plural == n || r.singular == n || r.short == n
    })
}

/// The resource whose `apiVersion` and `kind` an object carries.
pub(crate) fn by_object(object: &Value) -> Option<&'static Resource> {
    let kind = object.get("kind")?.as_str()?;
    let api_version = object.get("apiVersion")?.as_str()?;
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

fn set_default(m: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = m
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

fn child<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
        .expect("an object")
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
}

/// Fills in what the API server defaults for `apps/v1` and `batch/v1`
/// (`k8s.io/kubernetes/pkg/apis/*/v1/defaults.go`), for the fields a
/// roll-out reads: replicas, update strategies (a StatefulSet's
/// `rollingUpdate.partition: 0`, which kubectl's rollout status reads), the
/// progress deadline, and the pod template's usual defaults.
pub(crate) fn apply_defaults(res: &Resource, object: &mut Value) {
    let spec = child(object, "spec");
    match res.kind {
        "Deployment" => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
        "StatefulSet" => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            // As apps/v1 does: `rollingUpdate` is created only along with a
            // defaulted type, so a client may remove it (and kubectl's
            // rollout status then compares revisions instead of counting
            // against a partition).
            let strategy = child(spec, "updateStrategy");
            if strategy.get("type").is_none_or(Value::is_null) {
                strategy["type"] = json!("RollingUpdate");
                child(strategy, "rollingUpdate");
            }
            if strategy["type"] == "RollingUpdate"
                && let Some(ru) = strategy.get_mut("rollingUpdate").filter(|r| r.is_object())
            {
                set_default(ru, "partition", json!(0));
            }
            let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
            set_default(retention, "whenDeleted", json!("Retain"));
            set_default(retention, "whenScaled", json!("Retain"));
        }
        "DaemonSet" => {
            set_default(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
        "CronJob" => {
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
    let Some(pod) = object.pointer_mut(&format!("{}/spec", res.template)) else {
        return;
    };
    if res.kind != "CronJob" {
        set_default(pod, "restartPolicy", json!("Always"));
    }
    set_default(pod, "terminationGracePeriodSeconds", json!(30));
    set_default(pod, "dnsPolicy", json!("ClusterFirst"));
    set_default(pod, "schedulerName", json!("default-scheduler"));
    set_default(pod, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = pod.get_mut(list) else {
            continue;
        };
        for c in containers {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            // Always for `:latest` or no tag, as the API server defaults it.
            let last = image.rsplit('/').next().unwrap_or(image);
            let latest =
                !image.contains('@') && last.split_once(':').is_none_or(|t| t.1 == "latest");
            set_default(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
        }
    }
}

/// Checks what the API server would reject with 422 Invalid before a
/// roll-out could start: a name, and containers with names and images.
pub(crate) fn validate(res: &Resource, object: &Value) -> Result<(), String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        return Err("metadata.name: Required value: name or generateName is required".into());
    }
    let containers = object
        .pointer(&format!("{}/spec/containers", res.template))
        .and_then(Value::as_array);
    let field = format!(
        "{}.spec.containers",
        res.template.trim_start_matches('/').replace('/', ".")
    );
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(format!("{field}: Required value"));
    };
    for (i, c) in containers.iter().enumerate() {
        for key in ["name", "image"] {
            if c.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("{field}[{i}].{key}: Required value"));
            }
        }
    }
    Ok(())
}

/// `GET /apis/<group>/v1`: the group's resources with their verbs and short
/// names, as kubectl's discovery reads them.
pub(crate) fn resource_list(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": true,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": [r.short],
                "categories": ["all"],
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{VERSION}"),
        "resources": resources,
    })
}

/// `GET /api/v1`: only what kubectl touches around workloads (namespaces,
/// and pods, which `rollout status` lists for warnings).
pub(crate) fn core_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "namespaces", "singularName": "namespace", "namespaced": false,
             "kind": "Namespace", "verbs": ["get", "list"], "shortNames": ["ns"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
        ],
    })
}

/// One group in `GET /apis` or `GET /apis/<group>`.
pub(crate) fn api_group(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{VERSION}"), "version": VERSION});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// The groups served under `/apis`.
pub(crate) fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = RESOURCES.iter().map(|r| r.group).collect();
    g.dedup();
    g
}

/// kubectl's `HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`).
pub(crate) fn human_duration(secs: i64) -> String {
    let (m, h) = (secs / 60, secs / 3600);
    match secs {
        s if s < 0 => "0s".into(),
        s if s < 120 => format!("{s}s"),
        s if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h % 24 != 0 => format!("{}d{}h", h / 24, h % 24),
        _ => format!("{}d", h / 24),
    }
}

fn column(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

/// The columns `kubectl get` prints for a kind (`-o wide` adds those of
/// priority 1), as the API server's printers define them.
fn columns(res: &Resource) -> Vec<Value> {
    let name = column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let containers = column(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    );
    let images = column(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    );
    let selector = column("Selector", "string", 1, "Label selector for pods.");
    match res.kind {
        "Deployment" => vec![
            name,
            column("Ready", "string", 0, "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "StatefulSet" => vec![
            name,
            column("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            containers,
            images,
        ],
        "DaemonSet" => vec![
            name,
            column(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            column(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod.",
            ),
            column(
                "Ready",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            column(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            column(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            column(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        _ => vec![
            name,
            column("Schedule", "string", 0, "The schedule in Cron format."),
            column(
                "Timezone",
                "string",
                0,
                "The time zone name for the given schedule.",
            ),
            column(
                "Suspend",
                "boolean",
                0,
                "This flag tells the controller to suspend subsequent executions.",
            ),
            column(
                "Active",
                "integer",
                0,
                "A list of pointers to currently running jobs.",
            ),
            column(
                "Last Schedule",
                "string",
                0,
                "Information when was the last time the job was successfully scheduled.",
            ),
            age,
            containers,
            images,
            selector,
        ],
    }
}

fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn selector_string(o: &Value) -> String {
    let mut parts: Vec<String> = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(exprs) = o
        .pointer("/spec/selector/matchExpressions")
        .and_then(Value::as_array)
    {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let vals: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", vals.join(",")),
                "NotIn" => format!("{key} notin ({})", vals.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            });
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn cells(res: &Resource, o: &Value, age: String) -> Vec<Value> {
    let name = o.pointer("/metadata/name").cloned().unwrap_or_default();
    let tpl = o
        .pointer(&format!("{}/spec/containers", res.template))
        .and_then(Value::as_array);
    let join = |key: &str| {
        tpl.map(|cs| {
            cs.iter()
                .filter_map(|c| c.get(key)?.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
    };
    let (containers, images) = (json!(join("name")), json!(join("image")));
    match res.kind {
        "Deployment" => vec![
            name,
            json!(format!(
                "{}/{}",
                int_at(o, "/status/readyReplicas"),
                int_at(o, "/spec/replicas")
            )),
            json!(int_at(o, "/status/updatedReplicas")),
            json!(int_at(o, "/status/availableReplicas")),
            json!(age),
            containers,
            images,
            json!(selector_string(o)),
        ],
        "StatefulSet" => vec![
            name,
            json!(format!(
                "{}/{}",
                int_at(o, "/status/readyReplicas"),
                int_at(o, "/spec/replicas")
            )),
            json!(age),
            containers,
            images,
        ],
        "DaemonSet" => {
            let node_selector = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(int_at(o, "/status/desiredNumberScheduled")),
                json!(int_at(o, "/status/currentNumberScheduled")),
                json!(int_at(o, "/status/numberReady")),
                json!(int_at(o, "/status/updatedNumberScheduled")),
                json!(int_at(o, "/status/numberAvailable")),
                json!(node_selector),
                json!(age),
                containers,
                images,
                json!(selector_string(o)),
            ]
        }
        _ => vec![
            name,
            o.pointer("/spec/schedule").cloned().unwrap_or_default(),
            json!(
                o.pointer("/spec/timeZone")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
            ),
            json!(
                o.pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(
                o.pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            json!("<none>"),
            json!(age),
            containers,
            images,
            json!(selector_string(o)),
        ],
    }
}

/// A `meta.k8s.io/v1` `Table` of `objects`, each row carrying the object
/// as `includeObject` asks (`Object`, `None`, or by default its
/// `PartialObjectMetadata`).
pub(crate) fn table(
    res: &Resource,
    objects: &[Value],
    resource_version: &str,
    include: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let created = o
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let age = created.map_or("<unknown>".to_string(), |c| {
                human_duration((now - c.with_timezone(&chrono::Utc)).num_seconds())
            });
            let object = match include {
                "Object" => o.clone(),
                "None" => Value::Null,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_default(),
                }),
            };
            json!({"cells": cells(res, o, age), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns(res),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        assert_eq!(by_name("deploy").unwrap().kind, "Deployment");
        assert_eq!(by_name("Deployment").unwrap().plural, "deployments");
        assert_eq!(by_name("statefulsets").unwrap().short, "sts");
        assert_eq!(by_name("cj").unwrap().group, "batch");
        assert!(by_path("apps", "v1", "daemonsets").is_some());
        assert!(by_path("apps", "v1beta1", "daemonsets").is_none());
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(130), "2m10s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }

    #[test]
    fn statefulset_defaults_partition_zero() {
        let mut o = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
        apply_defaults(&RESOURCES[1], &mut o);
        assert_eq!(
            o["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(o["spec"]["replicas"], 1);
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}
