//! The OpenAPI v3 documents kubectl reads before `apply`, `replace` and
//! `create`: its validation asks whether the PATCH operation of the
//! object's group-version-kind takes the `fieldValidation` query parameter
//! (server-side validation); when it does not, or the documents are
//! missing, kubectl wants schemas to validate on its side and fails
//! ("failed to download openapi"). The double therefore serves the
//! discovery root `/openapi/v3` and one document per group-version with
//! every operation's `x-kubernetes-group-version-kind`, action and query
//! parameters, as the API server does, but no schemas: it accepts
//! `fieldValidation` and does not enforce it.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::resources::{RESOURCES, VERSION, groups};

fn param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

fn operation(id: &str, action: &str, res: &super::resources::Resource, extra: &[&str]) -> Value {
    let mut params = vec![param("pretty", "string")];
    for p in extra {
        let ty = match *p {
            "force" | "watch" | "allowWatchBookmarks" | "sendInitialEvents" => "boolean",
            "limit" | "timeoutSeconds" | "gracePeriodSeconds" => "integer",
            _ => "string",
        };
        params.push(param(p, ty));
    }
    json!({
        "operationId": id,
        "tags": [format!("{}_{VERSION}", res.group)],
        "parameters": params,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": res.group, "version": VERSION, "kind": res.kind},
    })
}

/// The OpenAPI v3 document of `apis/<group>/v1`.
pub(crate) fn group_version(group: &str) -> Value {
    let mut paths = Map::new();
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    for res in RESOURCES.iter().filter(|r| r.group == group) {
        let id = |verb: &str, namespaced: bool| {
            format!(
                "{verb}{}{}{}{}",
                cap(res.group),
                cap(VERSION),
                if namespaced { "Namespaced" } else { "" },
                res.kind
            )
        };
        let list = [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "sendInitialEvents",
            "timeoutSeconds",
            "watch",
            "allowWatchBookmarks",
        ];
        let write = ["dryRun", "fieldManager", "fieldValidation"];
        let base = format!("/apis/{group}/{VERSION}");
        paths.insert(
            format!("{base}/{}", res.plural),
            json!({"get": operation(&format!("{}ForAllNamespaces", id("list", false)), "list", res, &list)}),
        );
        paths.insert(
            format!("{base}/namespaces/{{namespace}}/{}", res.plural),
            json!({
                "get": operation(&id("list", true), "list", res, &list),
                "post": operation(&id("create", true), "post", res, &write),
            }),
        );
        let mut patch = write.to_vec();
        patch.push("force");
        paths.insert(
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", res.plural),
            json!({
                "get": operation(&id("read", true), "get", res, &[]),
                "put": operation(&id("replace", true), "put", res, &write),
                "patch": operation(&id("patch", true), "patch", res, &patch),
                "delete": operation(&id("delete", true), "delete", res, &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::KUBE_VERSION},
        "paths": paths,
        "components": {},
    })
}

/// `/openapi/v3`: each group-version's document, its URL carrying the
/// document's hash as the API server's does (clients cache by it).
pub(crate) fn root() -> Value {
    let mut paths = Map::new();
    for group in groups() {
        let doc = group_version(group).to_string();
        let hash = hex::encode_upper(Sha256::digest(doc.as_bytes()));
        paths.insert(
            format!("apis/{group}/{VERSION}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{VERSION}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}
