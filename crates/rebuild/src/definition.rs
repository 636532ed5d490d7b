//! Build definitions: `builds:` in the config, and trees of
//! `app/version/Dockerfile` found by `discover:`. Loading one reads its
//! Dockerfile, so the build graph knows every image's bases before
//! anything is built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freshen_lineage::Dockerfile;
use freshen_reference::{Defaults, Platform, Reference};
use serde::Serialize;

use crate::BuildError;

/// How an image is rebuilt, and builds as written under `builds:` and
/// `discover:`: defined with the other settings types
/// (`freshen-settings`), so the config layer can read them without this
/// crate's runtime.
pub use freshen_settings::{BuildSpec, DiscoverSpec, Executor};

/// A build definition, checked, with its Dockerfile read.
#[derive(Clone, Debug, Serialize)]
pub struct Build {
    /// The image it produces (normalised).
    pub image: String,
    /// The same, parsed.
    #[serde(skip)]
    pub reference: Reference,
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// `--build-arg`s.
    pub args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// Platforms to build.
    pub platforms: Vec<String>,
    /// How it is rebuilt.
    pub executor: Executor,
    /// How it is rebuilt when a rebase is refused as unsafe.
    pub fallback: Option<Executor>,
    /// The Jenkins job that builds it (Jenkins builds only).
    pub job: Option<String>,
    /// Its parameters besides `IMAGE`, `VERSION` and `TARGET`.
    pub parameters: BTreeMap<String, String>,
    /// Every image its stages build from (normalised), builder stages included.
    pub bases: Vec<String>,
    /// The image its final stage builds on, if not `scratch`.
    pub final_base: Option<String>,
    /// Where it was defined: `builds[2]`, `discover[0] mysql/5.7.18`.
    pub origin: String,
    /// How new versions are named.
    #[serde(skip)]
    pub scheme: crate::Scheme,
    /// Tags each new version is copied to (`{tag}`, `{version}` unexpanded).
    pub promote: Vec<String>,
}

/// Loads every definition: `builds` in order, then each `discover` tree
/// (apps and versions in name order). Paths are relative to `base_dir`.
/// Errors name the definition and the file.
pub fn load(
    builds: &[BuildSpec],
    discover: &[DiscoverSpec],
    base_dir: &Path,
    defaults: &Defaults,
    default_platforms: &[Platform],
) -> Result<Vec<Build>, BuildError> {
    let mut out = Vec::new();
    for (i, spec) in builds.iter().enumerate() {
        let origin = format!("builds[{i}]");
        let context = base_dir.join(&spec.context);
        let dockerfile = context.join(
            spec.dockerfile
                .as_deref()
                .unwrap_or(Path::new("Dockerfile")),
        );
        out.push(one(
            &origin,
            &spec.image,
            context,
            dockerfile,
            Common {
                args: spec.args.clone(),
                target: spec.target.clone(),
                platforms: &spec.platforms,
                executor: spec.executor,
                fallback: spec.fallback,
                job: spec.job.clone(),
                parameters: spec.parameters.clone(),
                version: spec.version.as_deref(),
                promote: &spec.promote,
            },
            defaults,
            default_platforms,
        )?);
    }
    for (i, d) in discover.iter().enumerate() {
        let root = base_dir.join(&d.root);
        for (app, version, dir) in crate::discover::tree(&root)
            .map_err(|e| BuildError::Invalid(format!("discover[{i}].root: {e}")))?
        {
            let fill = |t: &str| t.replace("{app}", &app).replace("{version}", &version);
            let image = fill(&d.image);
            out.push(one(
                &format!("discover[{i}] {app}/{version}"),
                &image,
                dir.clone(),
                dir.join("Dockerfile"),
                Common {
                    args: d.args.clone(),
                    target: None,
                    platforms: &d.platforms,
                    executor: d.executor,
                    fallback: d.fallback,
                    job: d.job.as_deref().map(fill),
                    parameters: d
                        .parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), fill(v)))
                        .collect(),
                    version: d.version.as_deref(),
                    promote: &d.promote,
                },
                defaults,
                default_platforms,
            )?);
        }
    }
    Ok(out)
}

/// What `builds` and `discover` entries share.
struct Common<'a> {
    args: BTreeMap<String, String>,
    target: Option<String>,
    platforms: &'a [String],
    executor: Executor,
    fallback: Option<Executor>,
    job: Option<String>,
    parameters: BTreeMap<String, String>,
    version: Option<&'a str>,
    promote: &'a [String],
}

fn one(
    origin: &str,
    image: &str,
    context: PathBuf,
    dockerfile: PathBuf,
    common: Common<'_>,
    defaults: &Defaults,
    default_platforms: &[Platform],
) -> Result<Build, BuildError> {
    let Common {
        args,
        target,
        platforms,
        executor,
        fallback,
        job,
        parameters,
        version,
        promote,
    } = common;
    let invalid = |key: &str, m: String| BuildError::Invalid(format!("{origin}.{key}: {m}"));
    let reference =
        Reference::parse_with(image, defaults).map_err(|e| invalid("image", e.to_string()))?;
    if reference.digest().is_some() {
        return Err(invalid(
            "image",
            format!("{image:?} pins a digest: name the tag the build pushes"),
        ));
    }
    if !context.is_dir() {
        return Err(invalid(
            "context",
            format!("{} is not a directory", context.display()),
        ));
    }
    let text = std::fs::read_to_string(&dockerfile).map_err(|e| BuildError::Dockerfile {
        path: dockerfile.display().to_string(),
        message: format!("{origin}: cannot read it: {e}"),
    })?;
    let parsed = Dockerfile::parse(&text, &args).map_err(|e| BuildError::Dockerfile {
        path: dockerfile.display().to_string(),
        message: format!("{origin}: {e}"),
    })?;
    let normalise = |s: &str| -> Result<String, BuildError> {
        Reference::parse_with(s, defaults)
            .map(|r| r.to_string())
            .map_err(|e| BuildError::Dockerfile {
                path: dockerfile.display().to_string(),
                message: format!("{origin}: FROM {s:?}: {e}"),
            })
    };
    let bases = parsed
        .external_images()
        .into_iter()
        .map(normalise)
        .collect::<Result<Vec<_>, _>>()?;
    let final_base = parsed
        .final_base(target.as_deref())
        .map_err(|e| BuildError::Dockerfile {
            path: dockerfile.display().to_string(),
            message: format!("{origin}: {e}"),
        })?
        .map(normalise)
        .transpose()?;
    let platforms: Vec<String> = if platforms.is_empty() {
        default_platforms.iter().map(Platform::to_string).collect()
    } else {
        platforms
            .iter()
            .map(|p| {
                Platform::parse(p)
                    .map(|p| p.to_string())
                    .map_err(|e| invalid("platforms", e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    match fallback {
        Some(_) if executor != Executor::Rebase => {
            return Err(invalid(
                "fallback",
                format!(
                    "only a rebase falls back to another executor; this build uses {}",
                    executor.as_str()
                ),
            ));
        }
        Some(Executor::Rebase) => {
            return Err(invalid(
                "fallback",
                "a rebase cannot fall back to a rebase: name a builder (buildah, ...)".into(),
            ));
        }
        _ => {}
    }
    let builders = [Some(executor), fallback];
    if builders.contains(&Some(Executor::Jenkins)) {
        match &job {
            None => {
                return Err(invalid(
                    "job",
                    "a Jenkins build needs the job that builds it (`job: images/rebuild-x`)".into(),
                ));
            }
            Some(j) if j.trim_matches('/').is_empty() => {
                return Err(invalid("job", "is empty".into()));
            }
            Some(_) => {}
        }
        for k in parameters.keys() {
            if ["IMAGE", "VERSION", "TARGET"].contains(&k.as_str()) {
                return Err(invalid(
                    &format!("parameters.{k}"),
                    "freshen sets IMAGE, VERSION and TARGET itself".into(),
                ));
            }
        }
    } else if job.is_some() || !parameters.is_empty() {
        return Err(invalid(
            if job.is_some() { "job" } else { "parameters" },
            format!(
                "only a Jenkins build has a job and parameters; this build uses {}",
                executor.as_str()
            ),
        ));
    }
    if builders.contains(&Some(Executor::Kaniko)) && platforms.len() > 1 {
        return Err(invalid(
            "platforms",
            format!(
                "kaniko builds one platform per run; this build has {} ({}): \
                 build one per definition, or use buildah, podman or docker",
                platforms.len(),
                platforms.join(", ")
            ),
        ));
    }
    if executor == Executor::Rebase && final_base.is_none() {
        return Err(invalid(
            "executor",
            "rebase needs a base, and the final stage builds FROM scratch".into(),
        ));
    }
    let scheme = crate::Scheme::parse(version.unwrap_or(crate::DEFAULT_SCHEME))
        .map_err(|e| invalid("version", e.to_string()))?;
    let promote = if promote.is_empty() {
        vec!["{tag}".to_string()]
    } else {
        promote.to_vec()
    };
    for p in &promote {
        let t = p.replace("{tag}", "t").replace("{version}", "v");
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "promote",
                format!(
                    "{p:?} is not a tag (letters, digits, `.`, `_`, `-`, {{tag}}, {{version}})"
                ),
            ));
        }
    }
    Ok(Build {
        scheme,
        promote,
        image: reference.to_string(),
        reference,
        context,
        dockerfile,
        args,
        target,
        platforms,
        executor,
        fallback,
        job,
        parameters,
        bases,
        final_base,
        origin: origin.to_string(),
    })
}
