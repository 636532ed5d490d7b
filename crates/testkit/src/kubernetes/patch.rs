//! The four PATCH bodies the API server takes: strategic merge patch,
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and server-side
//! apply (approximated as a merge, see [`apply`]).
//!
//! A strategic merge patch needs each list's merge key from the Go types'
//! `patchMergeKey` tags; the double knows them by field name (the pod
//! spec's lists are all it patches), see [`merge_key`].

use serde_json::{Map, Value};

/// The merge key of a list field in a strategic merge patch, as the
/// `patchMergeKey` tags of `k8s.io/api` give it; lists not named here are
/// replaced whole.
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "hostAliases" => "ip",
        "conditions" => "type",
        _ => return None,
    })
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes,
/// anything else (lists included) replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A strategic merge patch (`application/strategic-merge-patch+json`):
/// objects merge recursively and `null` deletes a key; lists with a merge
/// key ([`merge_key`]) merge item by item on it, others are replaced.
/// Directives: `$patch: replace|delete|merge` on objects and list items,
/// `$retainKeys`, `$setElementOrder/<list>` (the merged list is put in that
/// order, items it does not name last) and `$deleteFromPrimitiveList/<list>`.
pub(crate) fn strategic_merge(target: &Value, patch: &Value) -> Result<Value, String> {
    let mut out = target.clone();
    match (&mut out, patch) {
        (Value::Object(t), Value::Object(p)) => {
            if merge_map(t, p, true)? {
                return Ok(Value::Object(Map::new()));
            }
            Ok(out)
        }
        (_, Value::Object(_)) => Ok(strip(patch)),
        _ => Err("a strategic merge patch must be a JSON object".to_string()),
    }
}

/// Server-side apply, approximated: the applied configuration is merged
/// into the live object like a strategic merge patch without directives
/// (maps recursively, keyed lists by their merge key, other lists
/// replaced). Field ownership and conflicts between managers are not
/// modelled: fields another manager set are kept, and fields this manager
/// applied before and now leaves out are kept too.
pub(crate) fn apply(target: &Value, applied: &Value) -> Result<Value, String> {
    let mut out = target.clone();
    match (&mut out, applied) {
        (Value::Object(t), Value::Object(p)) => {
            merge_map(t, p, false)?;
            Ok(out)
        }
        _ => Err("an applied configuration must be an object".to_string()),
    }
}

/// Merges `patch` into `target`; returns true when the map itself is to be
/// deleted (`$patch: delete`).
fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    directives: bool,
) -> Result<bool, String> {
    if directives {
        match patch.get("$patch").and_then(Value::as_str) {
            Some("replace") => {
                *target = strip_map(patch);
                return Ok(false);
            }
            Some("delete") => return Ok(true),
            Some("merge") | None => {}
            Some(other) => return Err(format!("unknown patch type: {other}")),
        }
        if let Some(keys) = patch.get("$retainKeys").and_then(Value::as_array) {
            let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
            target.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    let mut orders = Vec::new();
    for (k, pv) in patch {
        if directives && k.starts_with('$') {
            if let Some(list) = k.strip_prefix("$setElementOrder/") {
                orders.push((list.to_string(), pv.clone()));
            } else if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                let gone = pv.as_array().cloned().unwrap_or_default();
                if let Some(Value::Array(t)) = target.get_mut(list) {
                    t.retain(|v| !gone.contains(v));
                }
            }
            continue;
        }
        if pv.is_null() {
            target.remove(k);
            continue;
        }
        match (target.get_mut(k), pv) {
            (Some(Value::Object(t)), Value::Object(p)) => {
                if merge_map(t, p, directives)? {
                    target.remove(k);
                }
            }
            (Some(Value::Array(t)), Value::Array(p)) if merge_key(k).is_some() => {
                merge_list(t, p, merge_key(k).expect("a key"), directives)?;
            }
            (_, Value::Array(p)) if merge_key(k).is_some() => {
                let mut t = Vec::new();
                merge_list(&mut t, p, merge_key(k).expect("a key"), directives)?;
                target.insert(k.clone(), Value::Array(t));
            }
            (_, v) => {
                target.insert(k.clone(), if directives { strip(v) } else { v.clone() });
            }
        }
    }
    for (list, order) in orders {
        let (Some(Value::Array(items)), Some(key)) = (target.get_mut(&list), merge_key(&list))
        else {
            continue;
        };
        let order: Vec<&Value> = order
            .as_array()
            .map(|o| o.iter().filter_map(|i| i.get(key)).collect())
            .unwrap_or_default();
        let rank = |v: &Value| {
            v.get(key)
                .and_then(|k| order.iter().position(|o| *o == k))
                .unwrap_or(usize::MAX)
        };
        items.sort_by_key(rank);
    }
    Ok(false)
}

fn merge_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    key: &str,
    directives: bool,
) -> Result<(), String> {
    if directives
        && patch
            .iter()
            .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip)
            .collect();
        return Ok(());
    }
    for item in patch {
        let Some(p) = item.as_object() else {
            return Err(format!("a list merged by {key:?} holds a non-object"));
        };
        let Some(id) = p.get(key) else {
            return Err(format!(
                "map: {item} does not contain declared merge key: {key}"
            ));
        };
        let found = target.iter().position(|t| t.get(key) == Some(id));
        if directives && p.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = found {
                target.remove(i);
            }
            continue;
        }
        match found {
            Some(i) => {
                if let Value::Object(t) = &mut target[i]
                    && merge_map(t, p, directives)?
                {
                    target.remove(i);
                }
            }
            None => target.push(if directives {
                strip(item)
            } else {
                item.clone()
            }),
        }
    }
    Ok(())
}

/// A patch value with its directives (and `null`s, which delete nothing in
/// a new value) removed, for inserting where the target had nothing.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_map(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

fn strip_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .map(|(k, v)| (k.clone(), strip(v)))
        .collect()
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy` and
/// `test`, with RFC 6901 pointers (`~0`, `~1`, `-` to append).
pub(crate) fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).ok_or("missing op")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing path in {name} operation"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("missing value in {name} operation"))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("missing from in {name} operation"))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                let slot = doc.pointer_mut(&check_pointer(path)?).ok_or_else(|| {
                    format!("replace operation does not apply: doc is missing key: {path}")
                })?;
                *slot = value()?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(&check_pointer(from()?)?)
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "copy operation does not apply: doc is missing from path: {}",
                            from().unwrap_or_default()
                        )
                    })?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                let want = value()?;
                if doc.pointer(&check_pointer(path)?) != Some(&want) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(doc)
}

fn check_pointer(path: &str) -> Result<String, String> {
    if path.is_empty() || path.starts_with('/') {
        Ok(path.to_string())
    } else {
        Err(format!("invalid JSON pointer {path:?}"))
    }
}

/// Splits a pointer into its parent pointer and its unescaped last token.
fn parent_and_token(path: &str) -> Result<(String, String), String> {
    let path = check_pointer(path)?;
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| "cannot address the whole document".to_string())?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, token) = parent_and_token(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(token, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if token == "-" {
                a.len()
            } else {
                token
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| {
                        format!("add operation does not apply: index out of range: {path}")
                    })?
            };
            a.insert(i, v);
            Ok(())
        }
        _ => Err(format!(
            "add operation does not apply: doc is missing path: \"{path}\": missing value"
        )),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, token) = parent_and_token(path)?;
    let missing = || format!("remove operation does not apply: doc is missing path: \"{path}\"");
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&token).ok_or_else(missing),
        Some(Value::Array(a)) => {
            let i = token
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"tier": "web", "team": "a"}},
            "spec": {"replicas": 2, "template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [
                    {"name": "app", "image": "app:1",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "name": "http"}],
                     "args": ["--a", "--b"]},
                    {"name": "side", "image": "side:1"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }}}
        })
    }

    #[test]
    fn strategic_merge_of_one_container_keeps_the_others() {
        // What `kubectl set image deployment/web app=app:2` sends.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "app", "image": "app:2"}]
        }}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "app:2");
        assert_eq!(spec["containers"][0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["containers"][1],
            json!({"name": "side", "image": "side:1"})
        );
        assert_eq!(
            spec["initContainers"],
            deployment()["spec"]["template"]["spec"]["initContainers"]
        );
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn strategic_merge_keyed_lists_nulls_and_replaced_lists() {
        let patch = json!({
            "metadata": {"labels": {"team": null, "new": "x"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app",
                 "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "args": ["--c"]},
                {"name": "extra", "image": "extra:1"}
            ], "volumes": [{"name": "data", "$patch": "delete"}]}}}
        });
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"tier": "web", "new": "x"})
        );
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
        );
        assert_eq!(
            c[0]["args"],
            json!(["--c"]),
            "a list without merge key is replaced"
        );
        assert_eq!(c[0]["image"], "app:1");
        assert_eq!(c[2]["name"], "extra");
        assert_eq!(out["spec"]["template"]["spec"]["volumes"], json!([]));
    }

    #[test]
    fn strategic_merge_directives() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "containers": [{"name": "side", "image": "side:2"}],
            "initContainers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]
        }}, "selector": {"$patch": "replace", "matchLabels": {"a": "b"}}}});
        let mut target = deployment();
        target["spec"]["selector"] = json!({"matchLabels": {"x": "y"}, "matchExpressions": []});
        let out = strategic_merge(&target, &patch).unwrap();
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["name"], "side");
        assert_eq!(spec["containers"][0]["image"], "side:2");
        assert_eq!(spec["containers"][1]["name"], "app");
        assert_eq!(
            spec["initContainers"],
            json!([{"name": "only", "image": "o:1"}])
        );
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
        assert!(
            strategic_merge(
                &target,
                &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
            )
            .is_err()
        );
    }

    #[test]
    fn merge_patch_replaces_lists() {
        let mut t = deployment();
        merge_patch(
            &mut t,
            &json!({"metadata": {"labels": {"team": null}}, "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:3"}]}}}}),
        );
        assert_eq!(t["metadata"]["labels"], json!({"tier": "web"}));
        assert_eq!(
            t["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "app:3"}])
        );
        assert_eq!(t["spec"]["replicas"], 2);
    }

    #[test]
    fn json_patch_operations() {
        let ops = json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "app"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:4"},
            {"op": "add", "path": "/metadata/labels/a~1b", "value": "c"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "z", "image": "z"}},
            {"op": "remove", "path": "/spec/template/spec/volumes"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/minReadySeconds"},
            {"op": "move", "from": "/metadata/labels/team", "path": "/metadata/labels/owner"}
        ]);
        let out = json_patch(&deployment(), &ops).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:4"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][2]["name"],
            "z"
        );
        assert_eq!(
            out["metadata"]["labels"],
            json!({"tier": "web", "a/b": "c", "owner": "a"})
        );
        assert!(out["spec"]["template"]["spec"].get("volumes").is_none());
        assert_eq!(out["spec"]["minReadySeconds"], 2);
        let failing = json!([{"op": "test", "path": "/spec/replicas", "value": 3}]);
        assert!(
            json_patch(&deployment(), &failing)
                .unwrap_err()
                .contains("test failed")
        );
        let missing = json!([{"op": "replace", "path": "/nope/x", "value": 1}]);
        assert!(json_patch(&deployment(), &missing).is_err());
    }

    #[test]
    fn apply_merges_named_lists() {
        let applied = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:5"}]}}}});
        let out = apply(&deployment(), &applied).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "app:5");
        assert_eq!(c[0]["env"][0]["name"], "A");
        assert_eq!(c[1]["name"], "side");
    }
}
