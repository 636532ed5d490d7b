//! `{{name}}` templates rendered from an event, for Jenkins parameters,
//! webhook headers and command arguments.

use std::collections::BTreeMap;

use serde_json::Value;

/// Defined with the trigger specs they check (`freshen-settings`).
pub use freshen_settings::template::{VARIABLES, validate};

/// The variables of one event payload.
pub fn variables(payload: &Value) -> BTreeMap<&'static str, String> {
    let s = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let reference = s("reference");
    let (registry, repository, tag) = reference_parts(&reference).unwrap_or_default();
    let platforms = payload
        .get("changes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("platform").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    BTreeMap::from([
        ("ref", reference.clone()),
        ("registry", registry),
        ("repository", repository),
        ("tag", tag),
        ("old_digest", s("old_digest")),
        ("new_digest", s("new_digest")),
        ("platforms", platforms),
        ("event_id", s("id")),
        ("source", s("source")),
        ("observed_at", s("observed_at")),
    ])
}

/// `registry/repository:tag` split without re-validating (it was validated when stored).
fn reference_parts(r: &str) -> Option<(String, String, String)> {
    let (registry, rest) = r.split_once('/')?;
    let rest = rest.split('@').next().unwrap_or(rest);
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) => (repo, tag),
        None => (rest, ""),
    };
    Some((registry.to_string(), repo.to_string(), tag.to_string()))
}

/// Renders a (validated) template; unknown names render empty.
pub fn render(template: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Some(v) = vars.get(after[..end].trim()) {
                    out.push_str(v);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_event_fields() {
        let payload = serde_json::json!({
            "id": "e1", "reference": "docker.io/library/debian:bookworm",
            "old_digest": "sha256:a", "new_digest": "sha256:b", "source": "poll",
            "changes": [{"platform": "linux/amd64"}, {"platform": "linux/arm64"}]
        });
        let vars = variables(&payload);
        assert_eq!(
            render(
                "{{ref}} {{ new_digest }} {{platforms}} {{repository}}:{{tag}} {{event_id}}",
                &vars
            ),
            "docker.io/library/debian:bookworm sha256:b linux/amd64,linux/arm64 library/debian:bookworm e1"
        );
        let vars = variables(&serde_json::json!({"reference": "localhost:5000/app:1"}));
        assert_eq!(
            render("{{registry}}|{{repository}}|{{tag}}", &vars),
            "localhost:5000|app|1"
        );
    }
}
