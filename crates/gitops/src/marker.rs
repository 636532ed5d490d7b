//! Setter markers in line comments: Flux's
//! `# {"$imagepolicy": "<namespace>:<policy>[:tag|:name|:digest]"}` and
//! freshen's `# {"$freshen": "<image>[:tag|:name|:digest]"}`.

use std::collections::BTreeMap;

use crate::image;

/// Which part of an image a marked field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// The whole reference: `repo[:tag][@digest]`.
    Image,
    /// The tag alone.
    Tag,
    /// The repository alone.
    Name,
    /// The digest alone.
    Digest,
}

/// A marker, resolved to the image it follows.
#[derive(Debug, Clone)]
pub(crate) struct Marker {
    /// The part of the image the field holds.
    pub field: Field,
    /// The image as written (in the marker, or in the policy mapping).
    pub image: String,
    /// Its repository, normalised.
    pub repository: String,
    /// Its tag, if one was written.
    pub tag: Option<String>,
}

const SUFFIXES: [(&str, Field); 3] = [
    (":tag", Field::Tag),
    (":name", Field::Name),
    (":digest", Field::Digest),
];

/// What a comment holds.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    /// A marker freshen follows.
    Marker(Marker),
    /// An `$imagepolicy` marker that the policies don't map: the line is
    /// Flux's, and freshen leaves it alone.
    Foreign,
}

/// Reads the marker in a comment (the text after `#`), if there is one.
/// `Ok(None)`: no marker. `Err`: a marker that is malformed.
pub(crate) fn parse(
    comment: &str,
    policies: &BTreeMap<String, String>,
) -> Result<Option<Parsed>, String> {
    let text = comment.trim();
    if !text.starts_with('{') {
        return Ok(None);
    }
    let named = text.contains("\"$freshen\"") || text.contains("\"$imagepolicy\"");
    let value = match serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .next()
    {
        Some(Ok(v)) => v,
        Some(Err(e)) if named => return Err(format!("{text} is not valid JSON: {e}")),
        _ => return Ok(None),
    };
    let Some(obj) = value.as_object() else {
        return Ok(None);
    };
    let (image, field) = if let Some(v) = obj.get("$freshen") {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{text}: \"$freshen\" must be a string"))?;
        let (image, field) = SUFFIXES
            .iter()
            .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|rest| (rest, *f)))
            .unwrap_or((s, Field::Image));
        (image.to_string(), field)
    } else if let Some(v) = obj.get("$imagepolicy") {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{text}: \"$imagepolicy\" must be a string"))?;
        let parts: Vec<&str> = s.split(':').collect();
        let field = match parts.as_slice() {
            [_, _] => Field::Image,
            [_, _, suffix] => SUFFIXES
                .iter()
                .find(|(x, _)| &x[1..] == *suffix)
                .map(|(_, f)| *f)
                .ok_or_else(|| format!("{s:?}: the suffix must be tag, name or digest"))?,
            _ => {
                return Err(format!(
                    "{s:?}: expected <namespace>:<policy>[:tag|:name|:digest]"
                ));
            }
        };
        let policy = format!("{}:{}", parts[0], parts[1]);
        match policies.get(&policy) {
            Some(image) => (image.clone(), field),
            None => {
                tracing::debug!(
                    policy,
                    "image policy marker not mapped to an image; left alone"
                );
                return Ok(Some(Parsed::Foreign));
            }
        }
    } else {
        return Ok(None);
    };
    let repository = image::repository(&image)
        .ok_or_else(|| format!("{image:?} (from {text}) is not an image reference"))?;
    let tag = image::split(&image).tag.map(str::to_string);
    Ok(Some(Parsed::Marker(Marker {
        field,
        image,
        repository,
        tag,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(comment: &str) -> Marker {
        match parse(comment, &policies()).unwrap() {
            Some(Parsed::Marker(m)) => m,
            other => panic!("{comment}: {other:?}"),
        }
    }

    fn policies() -> BTreeMap<String, String> {
        [(
            "flux-system:app".to_string(),
            "localhost:5000/app".to_string(),
        )]
        .into()
    }

    #[test]
    fn reads_both_conventions() {
        let m = marker(r#" {"$imagepolicy": "flux-system:app:digest"}"#);
        assert_eq!(m.field, Field::Digest);
        assert_eq!(m.repository, "localhost:5000/app");
        assert_eq!(m.tag, None);
        let m = marker(r#"{"$imagepolicy": "flux-system:app"}"#);
        assert_eq!(m.field, Field::Image);
        assert!(matches!(
            parse(r#"{"$imagepolicy": "other:app"}"#, &policies()),
            Ok(Some(Parsed::Foreign))
        ));
        let m = marker(r#" {"$freshen": "nginx:1.27:tag"}"#);
        assert_eq!((m.field, m.tag.as_deref()), (Field::Tag, Some("1.27")));
        assert_eq!(m.repository, "docker.io/library/nginx");
        let m = marker(r#"{"$freshen": "localhost:5000/app"}"#);
        assert_eq!((m.field, m.tag), (Field::Image, None));
        assert!(parse(" just a comment", &policies()).unwrap().is_none());
        assert!(parse(r#" {"other": 1}"#, &policies()).unwrap().is_none());
    }

    #[test]
    fn malformed_markers_are_errors() {
        assert!(parse(r#" {"$freshen": nginx}"#, &policies()).is_err());
        assert!(parse(r#" {"$freshen": "Not An Image"}"#, &policies()).is_err());
        assert!(parse(r#" {"$imagepolicy": "flux-system:app:size"}"#, &policies()).is_err());
        assert!(parse(r#" {"$imagepolicy": "app"}"#, &policies()).is_err());
    }
}
