//! `builds:` and `discover:`: the images freshen can rebuild, as written,
//! and how each is rebuilt. Reading their Dockerfiles is the rebuild
//! layer's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How an image is rebuilt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// `buildah bud`, then push.
    #[default]
    Buildah,
    /// `docker buildx build --push`.
    Docker,
    /// `podman build`, then push.
    Podman,
    /// kaniko's executor.
    Kaniko,
    /// The image's Jenkins job, waited for.
    Jenkins,
    /// Swap the base layers at the manifest level, no build.
    Rebase,
}

impl Executor {
    /// The name used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::Buildah => "buildah",
            Executor::Docker => "docker",
            Executor::Podman => "podman",
            Executor::Kaniko => "kaniko",
            Executor::Jenkins => "jenkins",
            Executor::Rebase => "rebase",
        }
    }
}

/// Defines a spec struct with the fields every way of declaring builds
/// shares (how they are rebuilt, versioned and promoted) after its own.
/// Not `#[serde(flatten)]`: serde cannot flatten a struct that denies
/// unknown fields, and a typo in the config must be an error.
macro_rules! with_rebuild_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($own:tt)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($own)*
            /// `--build-arg`s (they also fill `ARG`s used in `FROM`).
            #[serde(default)]
            pub args: BTreeMap<String, String>,
            /// Platforms to build; default: the config's `default_platforms`.
            #[serde(default)]
            pub platforms: Vec<String>,
            /// How it is rebuilt; default `buildah`.
            #[serde(default)]
            pub executor: Executor,
            /// With `executor: rebase`, how to rebuild when a rebase is unsafe
            /// (old base not a layer prefix, base changed its platform); without
            /// it, such an image fails with the reason.
            #[serde(default)]
            pub fallback: Option<Executor>,
            /// With `executor: jenkins` (or `fallback: jenkins`): the job's full
            /// name with folders, `images/rebuild-base`.
            #[serde(default)]
            pub job: Option<String>,
            /// With a Jenkins job: parameters added to `IMAGE`, `VERSION` and `TARGET`.
            #[serde(default)]
            pub parameters: BTreeMap<String, String>,
            /// The version scheme; default `{year}.{week}.{build}`.
            #[serde(default)]
            pub version: Option<String>,
            /// Tags a new version is copied to; `{tag}` is the build's own tag,
            /// `{version}` the new version. Default `["{tag}"]`.
            #[serde(default)]
            pub promote: Vec<String>,
        }
    };
}

with_rebuild_fields! {
    /// A build as written under `builds:`.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BuildSpec {
        /// The image it produces, with the tag children build `FROM`:
        /// `localhost:5000/golden/base:bookworm`.
        pub image: String,
        /// The build context, relative to the config file.
        pub context: PathBuf,
        /// The Dockerfile, relative to the context; default `Dockerfile`.
        #[serde(default)]
        pub dockerfile: Option<PathBuf>,
        /// The stage to build (`--target`).
        #[serde(default)]
        pub target: Option<String>,
    }
}

with_rebuild_fields! {
    /// A tree laid out as `app/version/Dockerfile`, as written under
    /// `discover:`: one build per `app/version`, each with the fields
    /// below. In `job` and `parameters`' values, `{app}` and `{version}`
    /// are replaced (`images/{app}`).
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DiscoverSpec {
        /// The tree's root, relative to the config file.
        pub root: PathBuf,
        /// The image each `app/version` builds: `{app}` and `{version}` are
        /// replaced, e.g. `localhost:5000/library/{app}:{version}`.
        pub image: String,
    }
}
