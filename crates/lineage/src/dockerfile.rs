//! The bases a Dockerfile builds on: every `FROM`, with `ARG` defaults and
//! `--build-arg` values substituted, stage aliases followed, `--platform` kept.

use std::collections::BTreeMap;

use crate::LineageError;

/// What one `FROM` starts from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum StageBase {
    /// An image from a registry, as written after substitution (`debian:bookworm`).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
    /// `FROM scratch`: no base at all.
    Scratch,
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stage {
    /// The `AS` name, if any (lowercased, as BuildKit compares them).
    pub name: Option<String>,
    /// What the stage's `FROM` starts from.
    pub base: StageBase,
    /// `--platform=...` after substitution, if given.
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
}

/// A parsed Dockerfile's stages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dockerfile {
    /// Every stage in file order (a `StageBase::Stage` indexes into it); never empty.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// Parses `text`; `build_args` override `ARG` defaults declared before
    /// the first `FROM` (the only ones a `FROM` can use).
    pub fn parse(
        text: &str,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Dockerfile, LineageError> {
        let parsed =
            parse_dockerfile::parse(text).map_err(|e| LineageError::Dockerfile(e.to_string()))?;
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for arg in parsed.global_args() {
            for (name, default) in arg_pairs(&arg.arguments.value) {
                let value = build_args.get(&name).cloned().or(default);
                if let Some(v) = value {
                    vars.insert(name, v);
                }
            }
        }
        let mut stages: Vec<Stage> = Vec::new();
        for st in parsed.stages() {
            let line = line_of(text, st.from.from.span.start);
            let image = substitute(&st.from.image.value, &vars)
                .map_err(|e| LineageError::Dockerfile(format!("line {line}: {e}")))?;
            let platform = st
                .from
                .options
                .iter()
                .find(|f| f.name.value == "platform")
                .and_then(|f| f.value.as_ref())
                .map(|v| substitute(&v.value, &vars))
                .transpose()
                .map_err(|e| LineageError::Dockerfile(format!("line {line}: {e}")))?;
            let name = st
                .from
                .as_
                .as_ref()
                .map(|(_, n)| n.value.to_ascii_lowercase());
            let lower = image.to_ascii_lowercase();
            let base = if lower == "scratch" {
                StageBase::Scratch
            } else if let Some(i) = stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                StageBase::Stage(i)
            } else if image.is_empty() {
                return Err(LineageError::Dockerfile(format!(
                    "line {line}: FROM names no image (an ARG without a value?)"
                )));
            } else {
                StageBase::Image(image)
            };
            stages.push(Stage {
                name,
                base,
                platform,
                line,
            });
        }
        if stages.is_empty() {
            return Err(LineageError::Dockerfile("no FROM instruction".into()));
        }
        Ok(Dockerfile { stages })
    }

    /// The image the final stage is built on, following stage aliases;
    /// `None` when it is built `FROM scratch`. With `target`, that stage
    /// instead of the last (`docker build --target`).
    pub fn final_base(&self, target: Option<&str>) -> Result<Option<&str>, LineageError> {
        let mut i = match target {
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .ok_or_else(|| LineageError::Dockerfile(format!("no stage named {t:?}")))?,
            None => self.stages.len() - 1,
        };
        loop {
            match &self.stages[i].base {
                StageBase::Image(r) => return Ok(Some(r)),
                StageBase::Scratch => return Ok(None),
                StageBase::Stage(j) => i = *j,
            }
        }
    }

    /// Every external image any stage uses (builder stages included), in order, without repeats.
    pub fn external_images(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.stages {
            if let StageBase::Image(r) = &s.base
                && !out.contains(&r.as_str())
            {
                out.push(r);
            }
        }
        out
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `ARG A=1 B` -> [("A", Some("1")), ("B", None)]; quotes around values removed.
fn arg_pairs(s: &str) -> Vec<(String, Option<String>)> {
    s.split_whitespace()
        .map(|tok| match tok.split_once('=') {
            Some((k, v)) => (
                k.to_string(),
                Some(v.trim_matches('"').trim_matches('\'').to_string()),
            ),
            None => (tok.to_string(), None),
        })
        .collect()
}

/// Dockerfile variable substitution: `$V`, `${V}`, `${V:-default}`,
/// `${V-default}`, `${V:+alt}`, `${V+alt}`; `\$` is a literal `$`. Unset
/// variables expand to nothing, as BuildKit does.
///
/// Fails, with a phrase naming the text, on an unclosed `${`, a `${}` that
/// names no variable, or another modifier (`${V:?err}`, `${V#x}`, ...).
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some((_, '$'))) => {
                chars.next();
                out.push('$');
            }
            '$' => match chars.peek().map(|(_, c)| *c) {
                Some('{') => {
                    chars.next();
                    let mut body = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        body.push(c);
                    }
                    if !closed {
                        return Err(format!("unclosed ${{ in {s:?}"));
                    }
                    out.push_str(&expand(&body, vars)?);
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                    let mut name = String::new();
                    while let Some((_, c)) = chars.peek() {
                        if c.is_ascii_alphanumeric() || *c == '_' {
                            name.push(*c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn expand(body: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_end);
    if name.is_empty() {
        return Err(format!("${{{body}}} names no variable"));
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    Ok(match rest {
        "" => value.cloned().unwrap_or_default(),
        r if r.starts_with(":-") => {
            if set_nonempty {
                value.cloned().unwrap_or_default()
            } else {
                r[2..].to_string()
            }
        }
        r if r.starts_with('-') => value.cloned().unwrap_or_else(|| r[1..].to_string()),
        r if r.starts_with(":+") => {
            if set_nonempty {
                r[2..].to_string()
            } else {
                String::new()
            }
        }
        r if r.starts_with('+') => {
            if value.is_some() {
                r[1..].to_string()
            } else {
                String::new()
            }
        }
        r => return Err(format!("${{{body}}}: modifier {r:?} is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn final_stage_follows_aliases_and_args() {
        let df = r#"
ARG BASE=debian
ARG TAG=bookworm
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
RUN go build ./...

FROM ${BASE}:${TAG:-stable} AS runtime
COPY --from=build /app /app

FROM runtime
"#;
        let d = Dockerfile::parse(df, &BTreeMap::new()).unwrap();
        assert_eq!(d.stages.len(), 3);
        assert_eq!(d.final_base(None).unwrap(), Some("debian:bookworm"));
        assert_eq!(d.external_images(), vec!["golang:1.22", "debian:bookworm"]);
        assert_eq!(d.stages[0].platform.as_deref(), Some(""));
        assert_eq!(d.stages[1].line, 7, "the text starts with a newline");
        let d = Dockerfile::parse(
            df,
            &args(&[("TAG", "trixie"), ("BASE", "localhost:5000/golden")]),
        )
        .unwrap();
        assert_eq!(
            d.final_base(None).unwrap(),
            Some("localhost:5000/golden:trixie")
        );
        assert_eq!(d.final_base(Some("build")).unwrap(), Some("golang:1.22"));
        assert!(d.final_base(Some("nope")).is_err());
    }

    #[test]
    fn scratch_and_errors() {
        let d = Dockerfile::parse("FROM scratch\nCOPY x /\n", &BTreeMap::new()).unwrap();
        assert_eq!(d.final_base(None).unwrap(), None);
        assert!(Dockerfile::parse("RUN true\n", &BTreeMap::new()).is_err());
        let e = Dockerfile::parse("ARG X\nFROM $X\n", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn substitution_forms() {
        let v = args(&[("A", "1"), ("E", "")]);
        assert_eq!(
            substitute("$A-${A}-${B:-d}-${E:-d}-${E-d}-${A:+x}-${B+y}-\\$A", &v).unwrap(),
            "1-1-d-d--x--$A"
        );
        assert!(substitute("${A", &v).is_err());
        assert!(substitute("${A?err}", &v).is_err());
    }
}
