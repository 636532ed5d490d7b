//! The object store: resourceVersions, generations, the watch event log,
//! and the controller pass that writes roll-out status.

use std::sync::MutexGuard;
use std::time::Instant;

use serde_json::{Value, json};

use super::controller::{self, Phase, Run};
use super::resources::{self, Resource};
use super::server::ApiError;
use super::{Data, Event, Key, Rollout, Shared, now_rfc3339, resource, with_type, without_type};

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().expect("the Kubernetes double's lock")
    }

    /// Stores `object` under a new resourceVersion and tells watches.
    pub(super) fn store(
        &self,
        d: &mut Data,
        key: Key,
        mut object: Value,
        kind: &'static str,
    ) -> Value {
        d.rv += 1;
        object["metadata"]["resourceVersion"] = json!(d.rv.to_string());
        let res = resource(key.0);
        d.events.push(Event {
            rv: d.rv,
            kind,
            key: key.clone(),
            object: with_type(res, &object),
        });
        if kind == "DELETED" {
            d.objects.remove(&key);
        } else {
            d.objects.insert(key, object.clone());
        }
        self.changes.send_replace(d.rv);
        object
    }

    /// One controller pass: writes the status each running roll-out has now.
    pub(super) fn reconcile(&self) {
        let mut d = self.lock();
        let now = Instant::now();
        let keys: Vec<Key> = d.runs.keys().cloned().collect();
        for key in keys {
            let Some(object) = d.objects.get(&key).cloned() else {
                d.runs.remove(&key);
                continue;
            };
            let res = resource(key.0);
            let run = d.runs.get_mut(&key).expect("a run");
            let Some(phase) = run.phase(res, now) else {
                continue;
            };
            let mut next = object.clone();
            if !run.observed {
                run.observed = true;
                if res.kind == "Deployment" && run.template_changed {
                    let annotations = &mut next["metadata"]["annotations"];
                    let rev = annotations["deployment.kubernetes.io/revision"]
                        .as_str()
                        .and_then(|r| r.parse::<u64>().ok())
                        .unwrap_or(0);
                    annotations["deployment.kubernetes.io/revision"] = json!((rev + 1).to_string());
                }
            }
            let from = run.from_revision.clone();
            if phase != Phase::Progressing {
                d.runs.remove(&key);
            }
            next["status"] = controller::status(res, &next, phase, &from, &now_rfc3339());
            if next != object {
                self.store(&mut d, key, next, "MODIFIED");
            }
        }
    }
}

impl Shared {
    /// Stores a new object from a client (POST, or an apply that creates):
    /// server-set metadata, defaults, an empty status the controller fills.
    pub(super) fn insert_new(
        &self,
        d: &mut Data,
        res: &'static Resource,
        key: Key,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let meta = object
            .as_object_mut()
            .expect("an object")
            .entry("metadata")
            .or_insert(json!({}));
        meta["namespace"] = json!(key.1);
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(now_rfc3339());
        if let Value::Object(m) = meta {
            m.remove("resourceVersion");
        }
        object["status"] = json!({});
        let mut object = without_type(&object);
        resources::apply_defaults(res, &mut object);
        resources::validate(res, &object).map_err(|why| ApiError::invalid(res, &key.2, &why))?;
        if dry_run {
            return Ok(object);
        }
        if res.kind != "CronJob" {
            let rule = rule_for(d, &res.images(&object));
            d.runs.insert(
                key.clone(),
                Run {
                    started: Instant::now(),
                    rule,
                    template_changed: true,
                    from_revision: String::new(),
                    observed: false,
                },
            );
        }
        Ok(self.store(d, key, object, "ADDED"))
    }

    /// Stores `new` over `old` as the API server updates an object with a
    /// status subresource: the resourceVersion precondition, server-set
    /// metadata and the status kept, `generation` bumped when the spec
    /// changed, and a no-op write leaving the resourceVersion alone.
    pub(super) fn update(
        &self,
        d: &mut Data,
        res: &'static Resource,
        key: Key,
        old: &Value,
        new: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut new = without_type(&new);
        if !new.is_object() || !new.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request("the object has no metadata"));
        }
        let old_rv = &old["metadata"]["resourceVersion"];
        let sent_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !sent_rv.is_empty() && Some(sent_rv) != old_rv.as_str() {
            return Err(ApiError::conflict(res, &key.2));
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ] {
            new["metadata"][field] = old["metadata"][field].clone();
        }
        new["status"] = old["status"].clone();
        resources::apply_defaults(res, &mut new);
        resources::validate(res, &new).map_err(|why| ApiError::invalid(res, &key.2, &why))?;
        if new == *old {
            return Ok(old.clone());
        }
        let spec_changed = new.get("spec") != old.get("spec");
        let template_changed = new.pointer(res.template) != old.pointer(res.template);
        let generation =
            old["metadata"]["generation"].as_i64().unwrap_or(1) + i64::from(spec_changed);
        new["metadata"]["generation"] = json!(generation);
        if dry_run {
            return Ok(new);
        }
        if spec_changed && res.kind != "CronJob" {
            let from_revision = old
                .pointer("/status/currentRevision")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(&format!("{}-", key.2)))
                .map(str::to_string)
                .unwrap_or_else(|| controller::revision_hash(res, old));
            let rule = rule_for(d, &res.images(&new));
            d.runs.insert(
                key.clone(),
                Run {
                    started: Instant::now(),
                    rule,
                    template_changed,
                    from_revision,
                    observed: false,
                },
            );
        }
        Ok(self.store(d, key, new, "MODIFIED"))
    }
}

/// The rule for a template's images: the last `on_image` rule matching
/// any of them, else the default.
pub(super) fn rule_for(d: &Data, images: &[String]) -> Rollout {
    d.rules
        .iter()
        .rev()
        .find(|(sub, _)| images.iter().any(|i| i.contains(sub.as_str())))
        .map_or_else(Rollout::default, |(_, r)| *r)
}
