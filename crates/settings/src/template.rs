//! `{{name}}` templates in trigger specs (Jenkins parameters, webhook
//! headers, command arguments): which variables exist, and the check that
//! a template uses only those. Rendering is the actions layer's.

/// The variables a template may use, with what each holds.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "ref",
        "the image reference, e.g. docker.io/library/debian:bookworm",
    ),
    ("registry", "the registry, e.g. docker.io"),
    ("repository", "the repository, e.g. library/debian"),
    ("tag", "the tag, e.g. bookworm"),
    (
        "old_digest",
        "the tag's previous digest (index or manifest)",
    ),
    ("new_digest", "the tag's digest now"),
    (
        "platforms",
        "the platforms whose manifest changed, comma-separated",
    ),
    ("event_id", "the event's stable id, for deduplication"),
    ("source", "what saw the change: poll, webhook:..."),
    ("observed_at", "when the change was seen (RFC 3339)"),
];

/// Checks that a template names only known variables and closes its braces.
pub fn validate(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template {template:?} opens '{{{{' without closing it"))?;
        let name = after[..end].trim();
        if !VARIABLES.iter().any(|(v, _)| *v == name) {
            let known: Vec<&str> = VARIABLES.iter().map(|(v, _)| *v).collect();
            return Err(format!(
                "template {template:?} uses unknown variable {name:?} (known: {})",
                known.join(", ")
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("{{ref}}-{{new_digest}}").is_ok());
        assert!(validate("plain").is_ok());
        assert!(validate("{{nope}}").unwrap_err().contains("\"nope\""));
        assert!(validate("{{ref").unwrap_err().contains("without closing"));
    }
}
