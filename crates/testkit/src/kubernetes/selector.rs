//! Label selectors (`labelSelector=`) and the one field selector clients
//! use on workloads (`fieldSelector=metadata.name=…`), parsed like
//! `k8s.io/apimachinery/pkg/labels` and `…/fields` do.

use std::collections::BTreeMap;

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requirement {
    /// `a=b`, `a==b`: the label is present with that value.
    Equals(String, String),
    /// `a!=b`: the label is absent or has another value.
    NotEquals(String, String),
    /// `a in (x,y)`.
    In(String, Vec<String>),
    /// `a notin (x)`: absent, or not one of the values.
    NotIn(String, Vec<String>),
    /// `a`: present.
    Exists(String),
    /// `!a`: absent.
    DoesNotExist(String),
    /// `a>3`, `a<3`: present, an integer, and greater (less) than the bound.
    Gt(String, i64),
    /// See [`Requirement::Gt`].
    Lt(String, i64),
}

/// A label selector: every requirement must hold (an empty one matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(pub(crate) Vec<Requirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query parameter's syntax; the error reads
    /// like the API server's.
    pub(crate) fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut out = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            out.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(out))
    }

    /// Whether `labels` satisfy every requirement.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Gt(k, n) => int_label(labels, k).is_some_and(|l| l > *n),
            Requirement::Lt(k, n) => int_label(labels, k).is_some_and(|l| l < *n),
        })
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub(crate) fn matches_object(&self, object: &Value) -> bool {
        self.matches(&labels_of(object))
    }
}

fn int_label(labels: &BTreeMap<String, String>, k: &str) -> Option<i64> {
    labels.get(k)?.parse().ok()
}

/// An object's `metadata.labels` as a map (non-string values ignored).
pub(crate) fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two parts).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = |why: &str| format!("unable to parse requirement: {why}: {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(valid_key(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(make(valid_key(k.trim())?, valid_value(v.trim())?));
        }
    }
    for (op, gt) in [('>', true), ('<', false)] {
        if let Some((k, v)) = part.split_once(op) {
            let n: i64 = v.trim().parse().map_err(|_| bad("not an integer"))?;
            let k = valid_key(k.trim())?;
            return Ok(if gt {
                Requirement::Gt(k, n)
            } else {
                Requirement::Lt(k, n)
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = valid_key(words.next().unwrap_or_default())?;
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    let (op, set) = rest
        .split_once(|c: char| c.is_whitespace() || c == '(')
        .map(|(op, _)| (op, &rest[op.len()..]))
        .ok_or_else(|| bad("found '', expected: in, notin, =, ==, !=, gt, lt"))?;
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("found '', expected: '('"))?;
    let values = inner
        .split(',')
        .map(|v| valid_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    match op {
        "in" => Ok(Requirement::In(key, values)),
        "notin" => Ok(Requirement::NotIn(key, values)),
        other => Err(bad(&format!(
            "found '{other}', expected: in, notin, =, ==, !=, gt, lt"
        ))),
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of
/// alphanumerics, `-`, `_`, `.` (at most 63).
fn valid_key(k: &str) -> Result<String, String> {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {k:?}"
        ))
    }
}

fn valid_value(v: &str) -> Result<String, String> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: {v:?}"
        ))
    }
}

/// A field selector on the fields workloads support (`metadata.name`,
/// `metadata.namespace`), with `=`, `==` and `!=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `fieldSelector`; an unsupported field is the API server's
    /// `field label not supported: <field>`.
    pub(crate) fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether the object's fields satisfy every term.
    pub(crate) fn matches_object(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let ptr = format!("/{}", field.replace('.', "/"));
            let actual = object.pointer(&ptr).and_then(Value::as_str).unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn equality_requirements() {
        let l = labels(&[("tier", "web"), ("env", "prod")]);
        assert!(sel("tier=web").matches(&l));
        assert!(sel("tier==web,env=prod").matches(&l));
        assert!(!sel("tier=db").matches(&l));
        assert!(sel("tier!=db").matches(&l));
        assert!(!sel("tier!=web").matches(&l));
        assert!(sel("missing!=x").matches(&l), "!= matches an absent label");
        assert!(sel("").matches(&l));
    }

    #[test]
    fn set_based_requirements() {
        let l = labels(&[("tier", "web"), ("app.kubernetes.io/name", "shop")]);
        assert!(sel("tier in (web,db)").matches(&l));
        assert!(sel("tier in (web)").matches(&l));
        assert!(!sel("tier in (db, cache)").matches(&l));
        assert!(sel("tier notin (db)").matches(&l));
        assert!(!sel("tier notin (web)").matches(&l));
        assert!(
            sel("other notin (x)").matches(&l),
            "notin matches an absent label"
        );
        assert!(sel("tier").matches(&l));
        assert!(sel("app.kubernetes.io/name").matches(&l));
        assert!(!sel("!tier").matches(&l));
        assert!(sel("!canary").matches(&l));
        assert!(sel("tier in (web,db),!canary,app.kubernetes.io/name=shop").matches(&l));
        assert!(!sel("tier in (web,db),canary").matches(&l));
    }

    #[test]
    fn numeric_requirements() {
        let l = labels(&[("weight", "5")]);
        assert!(sel("weight>3").matches(&l));
        assert!(!sel("weight<3").matches(&l));
        assert!(!sel("absent>3").matches(&l));
    }

    #[test]
    fn parse_errors() {
        assert!(LabelSelector::parse("tier in web").is_err());
        assert!(LabelSelector::parse("tier within (a)").is_err());
        assert!(LabelSelector::parse("ti er=x").is_err());
        assert!(LabelSelector::parse("tier=a b").is_err());
    }

    #[test]
    fn field_selector_on_name() {
        let o = serde_json::json!({"metadata": {"name": "web", "namespace": "apps"}});
        assert!(
            FieldSelector::parse("metadata.name=web")
                .unwrap()
                .matches_object(&o)
        );
        assert!(
            FieldSelector::parse("metadata.name==web,metadata.namespace=apps")
                .unwrap()
                .matches_object(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=web")
                .unwrap()
                .matches_object(&o)
        );
        assert_eq!(
            FieldSelector::parse("spec.replicas=1").unwrap_err(),
            "field label not supported: spec.replicas"
        );
    }
}
