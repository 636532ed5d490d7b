//! The configuration file: YAML, `${ENV}` interpolation for secrets, and
//! validation whose errors name the file and the key to fix.
//!
//! Each layer owns the shape of its own section (`registries:` is the
//! registry layer's, `triggers:` the actions layer's, `watches:` the watch
//! layer's); this crate puts them together and checks how they refer to
//! each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use freshen_reference::{Defaults, Platform};
use freshen_settings::{
    BuildSpec, BuilderSettings, CascadeSettings, DiscoverSpec, Executor, OutboxSettings,
    RegistrySettings, Schedule, ServerSettings, TriggerSpec, Watch, WatchSpec,
};
use serde::Deserialize;

/// A configuration error: where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid YAML, or a key is missing, unknown or wrong.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file, as given.
        path: String,
        /// The key to fix, e.g. `watches[0].ref` (or `(top)`, or a line
        /// and column when the YAML itself is broken).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite:///path/freshen.db` or `postgres://...`; default: `freshen.db` in the data dir.
    #[serde(default)]
    pub database: Option<String>,
    /// Registry for references that name none; default `docker.io`.
    #[serde(default)]
    pub default_registry: Option<String>,
    /// Platforms watched when a watch names none; default `[linux/amd64]`.
    #[serde(default)]
    pub default_platforms: Vec<String>,
    /// Schedule for watches that name none; default `15m`.
    #[serde(default)]
    pub default_schedule: Option<String>,
    /// Random delay added to each scheduled check; default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    /// Checks in flight at once in a `check` pass; default 32.
    #[serde(default)]
    pub check_concurrency: Option<usize>,
    /// Per-registry transport settings.
    #[serde(default)]
    pub registries: Vec<RegistrySettings>,
    /// The tags to watch.
    #[serde(default)]
    pub watches: Vec<WatchSpec>,
    /// Named triggers that watches fire.
    #[serde(default)]
    pub triggers: BTreeMap<String, TriggerSpec>,
    /// Delivery retries and leases.
    #[serde(default)]
    pub outbox: OutboxSettings,
    /// `freshen serve`: where it listens and who may write.
    #[serde(default)]
    pub server: ServerSettings,
    /// When vulnerabilities call for action: `mode` (`always`,
    /// `security-only`, `thresholds`), `thresholds`, `fixable_only`, `ignore`.
    /// The default policy: it governs every image no group of `policies` matches.
    #[serde(default)]
    pub policy: freshen_vuln::PolicySpec,
    /// Named policies for groups of images (`images:` patterns), and for
    /// watches that name one (`watches[].policy`).
    #[serde(default)]
    pub policies: BTreeMap<String, freshen_vuln::GroupSpec>,
    /// Images freshen can rebuild: image, context, Dockerfile, args, executor.
    #[serde(default)]
    pub builds: Vec<BuildSpec>,
    /// Trees of `app/version/Dockerfile` whose every Dockerfile is a build.
    #[serde(default)]
    pub discover: Vec<DiscoverSpec>,
    /// How builders are run: buildah, podman, docker, kaniko, and the
    /// Jenkins that runs `executor: jenkins` builds.
    #[serde(default)]
    pub builders: BuilderSettings,
    /// The rebuild cascades the watcher runs on its own (`on_change: [cascade]`).
    #[serde(default)]
    pub cascade: CascadeSettings,
    /// Registry webhooks `freshen serve` (and `freshen watch --serve`)
    /// accepts at `POST /hooks/{kind}/{key}`, by name.
    #[serde(default)]
    pub receivers: BTreeMap<String, freshen_receive::ReceiverSpec>,
    /// Vulnerability feeds by name: OSV exports (`url`) or local
    /// directories (`path`), synced by `freshen vulns sync` and, on their
    /// schedules, by the daemon.
    #[serde(default)]
    pub feeds: BTreeMap<String, freshen_settings::FeedSpec>,
    /// The daemon's scan of every inventory tag again: `schedule`,
    /// `concurrency`.
    #[serde(default)]
    pub rescan: Option<freshen_settings::RescanSpec>,
    /// Kubernetes clusters whose workloads are moved to rebuilt digests:
    /// `clusters`, `parallel`, `timeout`, `poll_interval`, `after_cascade`.
    #[serde(default)]
    pub rollout: freshen_settings::RolloutSettings,
    /// How approvals wait and are announced: `expire`, `recheck`,
    /// `announce`, `url`.
    #[serde(default)]
    pub approvals: freshen_settings::ApprovalSettings,
    /// The triggers told when a rebuild run or a roll-out ends:
    /// `rebuilds`, `rollouts`, `failures_only`.
    #[serde(default)]
    pub notify: freshen_settings::NotifySettings,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file as written, `${ENV}` interpolated; relative `ca_file`s
    /// resolved against `base_dir`.
    pub config: Config,
    /// The config file's directory: relative paths (commands, CA files) resolve here.
    pub base_dir: PathBuf,
    /// How references that name no registry are completed (`default_registry`).
    pub defaults: Defaults,
    /// `default_platforms`, parsed; `[linux/amd64]` when unset.
    pub default_platforms: Vec<Platform>,
    /// `default_schedule`, parsed; every 15 minutes when unset.
    pub default_schedule: Schedule,
    /// `watches`, checked and completed with the defaults, in file order.
    pub watches: Vec<Watch>,
    /// The checked `policy` and `policies`.
    pub policies: freshen_vuln::PolicySet,
    /// `feeds`, checked, by name.
    pub feeds: Vec<freshen_settings::Feed>,
    /// `rescan.schedule`, parsed, and how many images at once.
    pub rescan: Option<(Schedule, usize)>,
    /// The `${NAME}`s under `triggers:` that [`Unset::DeferTriggers`] left
    /// as written because their variables are not set; empty otherwise.
    pub unresolved: Vec<Unresolved>,
}

/// What [`load_with`] does with a `${NAME}` whose variable is not set (and
/// that has no `:-default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unset {
    /// It is an error, anywhere in the file ([`load`]).
    Error,
    /// Under `triggers:` it is left as written and listed in
    /// [`Loaded::unresolved`]: for commands that send no trigger, which
    /// then need none of the triggers' secrets. Elsewhere it is an error.
    DeferTriggers,
}

/// A `${NAME}` under `triggers:` left as written ([`Unset::DeferTriggers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The config file, as given.
    pub path: String,
    /// The key holding it, e.g. `triggers.notify.webhook.secret`.
    pub key: String,
    /// The variable that is not set.
    pub variable: String,
}

impl Unresolved {
    /// The error [`Unset::Error`] would have given.
    pub fn error(&self) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: self.key.clone(),
            message: unset_message(&self.variable),
        }
    }
}

fn unset_message(variable: &str) -> String {
    format!("environment variable {variable} is not set")
}

impl Loaded {
    /// The defaults alone, for running without a config file.
    pub fn defaults() -> Loaded {
        validate(
            Config::default(),
            Path::new("<defaults>"),
            PathBuf::from("."),
            Vec::new(),
        )
        .expect("the defaults are valid")
    }

    /// Whether the triggers can be sent: an error naming the first
    /// `${NAME}` under `triggers:` whose variable was not set when the
    /// file was loaded with [`Unset::DeferTriggers`].
    pub fn check_triggers(&self) -> Result<(), ConfigError> {
        match self.unresolved.first() {
            Some(u) => Err(u.error()),
            None => Ok(()),
        }
    }
}

/// Reads, interpolates, parses and validates a config file; every
/// `${NAME}` must be set.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_with(path, Unset::Error)
}

/// [`load`], with `unset` saying what a `${NAME}` whose variable is not set does.
pub fn load_with(path: &Path, unset: Unset) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    parse_with(
        &text,
        path,
        base_dir,
        &|name| std::env::var(name).ok(),
        unset,
    )
}

/// Parses config text; `env` resolves `${NAME}`, and each must be set.
pub fn parse(
    text: &str,
    path: &Path,
    base_dir: PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    parse_with(text, path, base_dir, env, Unset::Error)
}

/// [`parse`], with `unset` saying what a `${NAME}` whose variable is not set does.
pub fn parse_with(
    text: &str,
    path: &Path,
    base_dir: PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
    unset: Unset,
) -> Result<Loaded, ConfigError> {
    let shown = path.display().to_string();
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: shown.clone(),
        key,
        message,
    };
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "(top)".into());
        invalid(at, format!("not valid YAML: {e}"))
    })?;
    if value.is_null() {
        value = serde_yaml_ng::Value::Mapping(Default::default());
    }
    let mut unresolved = Vec::new();
    let defer = |key: &str| unset == Unset::DeferTriggers && key.starts_with("triggers.");
    interpolate(&mut value, String::new(), env, &mut |key, variable| {
        if !defer(&key) {
            return Err((key, unset_message(&variable)));
        }
        unresolved.push(Unresolved {
            path: shown.clone(),
            key,
            variable,
        });
        Ok(())
    })
    .map_err(|(k, m)| invalid(k, m))?;
    // Through JSON's data model: YAML's own deserializer wants `!tags` for
    // enums, where users write `jenkins: {...}`.
    let json = serde_json::to_value(&value).map_err(|e| invalid("(top)".into(), e.to_string()))?;
    let config: Config = serde_path_to_error::deserialize(json).map_err(|e| {
        let key = e.path().to_string();
        invalid(
            if key == "." { "(top)".into() } else { key },
            e.inner().to_string(),
        )
    })?;
    validate(config, path, base_dir, unresolved)
}

/// Called with the key and the variable of a `${NAME}` that is not set:
/// `Ok` leaves the string as written, `Err` is the key and the message.
type OnUnset<'a> = dyn FnMut(String, String) -> Result<(), (String, String)> + 'a;

/// Replaces `${NAME}` and `${NAME:-default}` in every string value; `$${` is a literal `${`.
fn interpolate(
    v: &mut serde_yaml_ng::Value,
    key: String,
    env: &dyn Fn(&str) -> Option<String>,
    on_unset: &mut OnUnset<'_>,
) -> Result<(), (String, String)> {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(Expand::Unset(variable)) => on_unset(key, variable)?,
            Err(Expand::Syntax(m)) => return Err((key, m)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, format!("{key}[{i}]"), env, on_unset)?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let name = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                interpolate(item, child, env, on_unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why a string can't be interpolated.
#[derive(Debug, PartialEq)]
enum Expand {
    /// `${NAME}` names a variable that is not set.
    Unset(String),
    /// The string is malformed; the message says how.
    Syntax(String),
}

impl std::fmt::Display for Expand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expand::Unset(v) => f.write_str(&unset_message(v)),
            Expand::Syntax(m) => f.write_str(m),
        }
    }
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Expand> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| Expand::Syntax(format!("unclosed ${{ in {s:?}")))?;
        let expr = &body[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Expand::Syntax(format!(
                "${{{expr}}} is not a variable name"
            )));
        }
        match (env(name), default) {
            (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (None, None) => return Err(Expand::Unset(name.to_string())),
            (Some(v), None) => out.push_str(&v),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn validate(
    config: Config,
    path: &Path,
    base_dir: PathBuf,
    unresolved: Vec<Unresolved>,
) -> Result<Loaded, ConfigError> {
    let shown = path.display().to_string();
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: shown.clone(),
        key,
        message,
    };
    let defaults = Defaults {
        registry: config
            .default_registry
            .clone()
            .unwrap_or_else(|| freshen_reference::DOCKER_HUB.to_string()),
    };
    if let Some(db) = &config.database
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| db.starts_with(p))
    {
        return Err(invalid(
            "database".into(),
            "expected sqlite:///path/to/file.db or postgres://user@host/db".into(),
        ));
    }
    let default_platforms = if config.default_platforms.is_empty() {
        vec![Platform::new("linux", "amd64", None)]
    } else {
        config
            .default_platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Platform::parse(p)
                    .map_err(|e| invalid(format!("default_platforms[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    let default_schedule = Schedule::parse(config.default_schedule.as_deref().unwrap_or("15m"))
        .map_err(|e| invalid("default_schedule".into(), e))?;

    let mut hosts = std::collections::HashSet::new();
    for (i, r) in config.registries.iter().enumerate() {
        if r.host.is_empty() || r.host.contains('/') {
            return Err(invalid(
                format!("registries[{i}].host"),
                format!("{:?} is not a registry host (host or host:port)", r.host),
            ));
        }
        if !hosts.insert(r.host.clone()) {
            return Err(invalid(
                format!("registries[{i}].host"),
                format!("{} is listed twice", r.host),
            ));
        }
        if r.max_concurrency == 0 {
            return Err(invalid(
                format!("registries[{i}].max_concurrency"),
                "must be at least 1".into(),
            ));
        }
        if r.password.is_some() && r.username.is_none() {
            return Err(invalid(
                format!("registries[{i}].username"),
                "a password needs a username".into(),
            ));
        }
    }
    let mut config = config;
    for r in &mut config.registries {
        if let Some(ca) = &r.ca_file
            && ca.is_relative()
        {
            r.ca_file = Some(base_dir.join(ca));
        }
    }
    for t in config.triggers.values_mut() {
        if let TriggerSpec::Email(e) = t
            && let Some(ca) = &e.ca_file
            && ca.is_relative()
        {
            e.ca_file = Some(base_dir.join(ca));
        }
    }
    for c in config.rollout.clusters.values_mut() {
        if let Some(k) = &c.kubeconfig
            && k.is_relative()
        {
            c.kubeconfig = Some(base_dir.join(k));
        }
    }

    if let Some(j) = &config.builders.jenkins {
        j.validate()
            .map_err(|e| invalid("builders.jenkins".into(), e))?;
    } else {
        // Said now, not when a run reaches the image.
        use Executor::Jenkins;
        let uses = |e: Executor, f: Option<Executor>| e == Jenkins || f == Some(Jenkins);
        let first = config
            .builds
            .iter()
            .enumerate()
            .find(|(_, b)| uses(b.executor, b.fallback))
            .map(|(i, _)| format!("builds[{i}]"))
            .or_else(|| {
                config
                    .discover
                    .iter()
                    .enumerate()
                    .find(|(_, d)| uses(d.executor, d.fallback))
                    .map(|(i, _)| format!("discover[{i}]"))
            });
        if let Some(at) = first {
            return Err(invalid(
                at,
                "is built by Jenkins, and builders.jenkins (url, user, token) is not configured"
                    .into(),
            ));
        }
    }
    for (name, t) in &config.triggers {
        if name.is_empty() {
            return Err(invalid("triggers".into(), "a trigger needs a name".into()));
        }
        if name == freshen_settings::CASCADE {
            return Err(invalid(
                format!("triggers.{name}"),
                "\"cascade\" is reserved: `on_change: [cascade]` makes freshen rebuild what is built on the watched tag itself; name this trigger otherwise".into(),
            ));
        }
        if name == freshen_settings::HUB_CALLBACK {
            return Err(invalid(
                format!("triggers.{name}"),
                format!(
                    "{name:?} is reserved for Docker Hub callbacks; name this trigger otherwise"
                ),
            ));
        }
        // A trigger holding a `${NAME}` left as written can't be sent and
        // is not checked; its name still counts.
        let prefix = format!("triggers.{name}.");
        if unresolved.iter().any(|u| u.key.starts_with(&prefix)) {
            continue;
        }
        t.validate()
            .map_err(|e| invalid(format!("triggers.{name}"), e))?;
    }
    let mut watches = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, spec) in config.watches.iter().enumerate() {
        let w = Watch::from_spec(spec, &defaults, &default_platforms, &default_schedule)
            .map_err(|(field, e)| invalid(format!("watches[{i}].{field}"), e))?;
        known_triggers(&config, &spec.on_change, &format!("watches[{i}]"))
            .map_err(|(k, m)| invalid(k, m))?;
        known_policy(&config, spec.policy.as_deref(), &format!("watches[{i}]"))
            .map_err(|(k, m)| invalid(k, m))?;
        if let Some(first) = seen.insert(w.key(), i) {
            return Err(invalid(
                format!("watches[{i}].ref"),
                format!(
                    "{} is already watched by watches[{first}]; merge their platforms and triggers",
                    w.key()
                ),
            ));
        }
        watches.push(w);
    }
    let mut keys = std::collections::HashMap::new();
    for (name, r) in &config.receivers {
        let at = format!("receivers.{name}");
        if name.is_empty() {
            return Err(invalid(
                "receivers".into(),
                "a receiver needs a name".into(),
            ));
        }
        r.validate()
            .map_err(|(field, e)| invalid(format!("{at}.{field}"), e))?;
        for (i, p) in r.platforms.iter().enumerate() {
            Platform::parse(p)
                .map_err(|e| invalid(format!("{at}.platforms[{i}]"), e.to_string()))?;
        }
        known_triggers(&config, &r.on_change, &at).map_err(|(k, m)| invalid(k, m))?;
        known_policy(&config, r.policy.as_deref(), &at).map_err(|(k, m)| invalid(k, m))?;
        if let Some(other) = keys.insert((r.kind, r.key.clone()), name) {
            return Err(invalid(
                format!("{at}.key"),
                format!("receivers.{other} has the same kind and key: give each its own key"),
            ));
        }
    }
    config
        .server
        .validate()
        .map_err(|e| invalid("server".into(), e))?;
    config.rollout.validate().map_err(|(k, m)| invalid(k, m))?;
    config
        .approvals
        .validate()
        .map_err(|(k, m)| invalid(k, m))?;
    let told = [
        ("approvals.announce", &config.approvals.announce),
        ("notify.rebuilds", &config.notify.rebuilds),
        ("notify.rollouts", &config.notify.rollouts),
    ];
    for (at, list) in told {
        for (i, t) in list.iter().enumerate() {
            if t == freshen_settings::CASCADE || !config.triggers.contains_key(t) {
                let known: Vec<&str> = config.triggers.keys().map(String::as_str).collect();
                return Err(invalid(
                    format!("{at}[{i}]"),
                    format!("{t:?} is not a trigger (triggers: {})", known.join(", ")),
                ));
            }
        }
    }
    if config.outbox.max_attempts == 0 || config.outbox.concurrency == 0 {
        return Err(invalid(
            "outbox".into(),
            "max_attempts and concurrency must be at least 1".into(),
        ));
    }
    if config.cascade.parallel == 0 {
        return Err(invalid(
            "cascade.parallel".into(),
            "must be at least 1".into(),
        ));
    }
    for (i, d) in config.discover.iter().enumerate() {
        if !d.image.contains("{app}") {
            return Err(invalid(
                format!("discover[{i}].image"),
                format!(
                    "{:?} must use {{app}} (and usually {{version}}), e.g. \"localhost:5000/{{app}}:{{version}}\"",
                    d.image
                ),
            ));
        }
    }
    let groups = config
        .policies
        .iter()
        .map(|(n, g)| (format!("policies.{n}"), &g.policy));
    for (at, spec) in std::iter::once(("policy".to_string(), &config.policy)).chain(groups) {
        let Some(on) = &spec.on_vulnerable else {
            continue;
        };
        known_triggers(&config, on, &at)
            .map_err(|(k, m)| invalid(k.replace(".on_change", ".on_vulnerable"), m))?;
    }
    let policies = freshen_vuln::PolicySet::new(config.policy.clone(), &config.policies)
        .map_err(|(k, m)| invalid(k, m))?;
    let feeds = config
        .feeds
        .iter()
        .map(|(name, spec)| {
            freshen_settings::Feed::from_spec(name, spec, &base_dir)
                .map_err(|(field, e)| invalid(format!("feeds.{name}.{field}"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rescan = match &config.rescan {
        Some(r) => {
            let schedule =
                Schedule::parse(&r.schedule).map_err(|e| invalid("rescan.schedule".into(), e))?;
            if r.concurrency == 0 {
                return Err(invalid(
                    "rescan.concurrency".into(),
                    "must be at least 1".into(),
                ));
            }
            Some((schedule, r.concurrency))
        }
        None => None,
    };
    Ok(Loaded {
        config,
        base_dir,
        defaults,
        default_platforms,
        default_schedule,
        watches,
        policies,
        feeds,
        rescan,
        unresolved,
    })
}

/// Each of `on_change` (under `at`) names a trigger, or `cascade`; else
/// the key and the message.
fn known_triggers(config: &Config, on_change: &[String], at: &str) -> Result<(), (String, String)> {
    for (j, t) in on_change.iter().enumerate() {
        if t != freshen_settings::CASCADE && !config.triggers.contains_key(t) {
            let known: Vec<&str> = config.triggers.keys().map(String::as_str).collect();
            return Err((
                format!("{at}.on_change[{j}]"),
                format!(
                    "no trigger named {t:?} (defined: {}; and `cascade` rebuilds what is built on the tag)",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// `policy` (under `at`), when set, is `default` or a defined policy.
fn known_policy(config: &Config, policy: Option<&str>, at: &str) -> Result<(), (String, String)> {
    if let Some(p) = policy
        && p != freshen_vuln::DEFAULT_POLICY
        && !config.policies.contains_key(p)
    {
        let known: Vec<&str> = config.policies.keys().map(String::as_str).collect();
        return Err((
            format!("{at}.policy"),
            format!(
                "no policy named {p:?} (defined: default{}{})",
                if known.is_empty() { "" } else { ", " },
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Loaded, ConfigError> {
        let env = |n: &str| match n {
            "JENKINS_TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        parse(
            text,
            Path::new("freshen.yaml"),
            PathBuf::from("/etc/freshen"),
            &env,
        )
    }

    fn err(text: &str) -> String {
        load_str(text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_loads() {
        let text = include_str!("../../../freshen.example.yaml");
        // Long enough to be a receiver's only secret.
        let env = |_: &str| Some("x-from-the-environment".to_string());
        let l = parse(
            text,
            Path::new("freshen.example.yaml"),
            PathBuf::from("."),
            &env,
        )
        .unwrap();
        assert!(!l.watches.is_empty());
        assert_eq!(l.config.receivers.len(), 2);
    }

    #[test]
    fn the_readmes_notifications_example_loads() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("### Notifications").unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let text = &section[start..start + section[start..].find("```").unwrap()];
        let env = |_: &str| Some("https://hooks.example/from-the-environment".to_string());
        let l = parse(text, Path::new("README.md"), PathBuf::from("."), &env)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(l.config.triggers.len(), 5);
        assert_eq!(l.config.notify.rebuilds, ["team-slack", "ops-mail"]);
    }

    #[test]
    fn receivers_are_checked() {
        let ok = load_str(
            "triggers:\n  notify:\n    webhook: {url: \"https://hooks.example/x\"}\n\
             receivers:\n  reg: {kind: registry, key: abc, token: t0k, registry: \"r.example\", on_change: [notify, cascade]}\n\
             \x20 hub: {kind: dockerhub, key: a-key-of-sixteen-chars}\n",
        )
        .unwrap();
        assert_eq!(ok.config.receivers.len(), 2);
        let cases = [
            (
                "receivers:\n  r: {kind: registry, key: abc, token: t, registry: r.example, on_change: [nope]}\n",
                "receivers.r.on_change[0]: no trigger named \"nope\"",
            ),
            (
                "receivers:\n  r: {kind: registry, key: short}\n",
                "receivers.r.key: is the only secret",
            ),
            (
                "receivers:\n  r: {kind: quay, key: a-key-of-sixteen-chars}\n",
                "receivers.r.kind",
            ),
            (
                "receivers:\n  r: {kind: registry, key: abc, token: t, policy: strict}\n",
                "receivers.r.policy: no policy named \"strict\"",
            ),
            (
                "triggers:\n  n:\n    webhook: {url: \"https://x.example/\"}\n\
                 receivers:\n  r: {kind: registry, key: abc, token: t, on_change: [n]}\n",
                "receivers.r.on_change: needs registry or images",
            ),
            (
                "receivers:\n  r: {kind: registry, key: abc, token: t, platforms: [linux]}\n",
                "receivers.r.platforms[0]",
            ),
            (
                "receivers:\n  a: {kind: registry, key: same-key-for-both, token: t}\n\
                 \x20 b: {kind: registry, key: same-key-for-both, token: u}\n",
                "receivers.b.key: receivers.a has the same kind and key",
            ),
            (
                "triggers:\n  dockerhub-callback:\n    webhook: {url: \"https://x.example/\"}\n",
                "triggers.dockerhub-callback: \"dockerhub-callback\" is reserved",
            ),
        ];
        for (yaml, want) in cases {
            let e = err(yaml);
            assert!(e.contains(want), "{yaml}\n=> {e}");
        }
    }

    #[test]
    fn rollout_and_approvals_are_checked() {
        let cases = [
            (
                "rollout: {parallel: 0}\n",
                "rollout.parallel: must be at least 1",
            ),
            ("rollout:\n  clusters:\n    prod: {kinds: [Pod]}\n", "Pod"),
            (
                "rollout:\n  gitops:\n    infra: {url: \"file:///x\", paths: [\"../up\"]}\n",
                "rollout.gitops.infra.paths: paths are relative to the repository root",
            ),
            (
                "watches:\n  - {ref: \"debian:12\", approve: [deploy]}\n",
                "deploy",
            ),
            (
                "policy: {approve: [merge]}\n",
                "approve: \"merge\" is not a stage",
            ),
            (
                "approvals: {announce: [nobody]}\n",
                "approvals.announce[0]: \"nobody\" is not a trigger",
            ),
            (
                "approvals: {expire: 0s}\n",
                "approvals.expire: must be more than 0s",
            ),
        ];
        for (yaml, want) in cases {
            let e = err(yaml);
            assert!(e.contains(want), "{yaml}\n=> {e}");
        }
        let l =
            load_str("rollout:\n  clusters:\n    prod: {kubeconfig: kube/prod.yaml}\n").unwrap();
        // Relative to the config file's directory, like ca_file.
        let k = l.config.rollout.clusters["prod"]
            .kubeconfig
            .clone()
            .unwrap();
        assert_eq!(k, l.base_dir.join("kube/prod.yaml"));
    }

    #[test]
    fn notifications_are_checked() {
        let cases = [
            (
                "notify: {rebuilds: [nobody]}\n",
                "notify.rebuilds[0]: \"nobody\" is not a trigger",
            ),
            (
                "triggers:\n  c: {slack: {url: \"https://hooks.example/x\"}}\nnotify: {rollouts: [c, cascade]}\n",
                "notify.rollouts[1]: \"cascade\" is not a trigger",
            ),
            (
                "triggers:\n  chat:\n    slack:\n      url: \"https://hooks.example/T/B/s3cret\"\n      template: \"{{ ref }}\\n{% if kind %}\"\n",
                "triggers.chat: slack.template: line 2: syntax error",
            ),
            (
                "triggers:\n  chat:\n    discord: {url: \"https://discord.example/api/webhooks/1/t\", title: \"{{ refrence }}\"}\n",
                "triggers.chat: discord.title: unknown variable \"refrence\"",
            ),
            (
                "triggers:\n  chat:\n    teams: {url: \"https://x.example/w\", template: {rebuilt: \"x\"}}\n",
                "triggers.chat: teams.template: \"rebuilt\" is not a kind of payload",
            ),
            (
                "triggers:\n  mail:\n    email: {host: smtp.example, from: me, to: [ops@example.com]}\n",
                "triggers.mail: email.from: \"me\" is not an address",
            ),
            (
                "triggers:\n  mail:\n    email: {host: smtp.example, tls: none, username: u, password: p, from: a@b.c, to: [ops@example.com]}\n",
                "triggers.mail: email.tls: none would send the password in clear",
            ),
            (
                "triggers:\n  mail:\n    email: {host: smtp.example, from: a@b.c, to: [ops@example.com], body: \"{{ items | nofilter }}\"}\n",
                "triggers.mail: email.body: rendering a change payload: line 1: unknown filter",
            ),
            (
                "triggers:\n  chat:\n    discord: {url: \"https://discord.example/api/webhooks/1/t\", mentions: [\"@all\"]}\n",
                "discord.mentions[0]",
            ),
        ];
        for (yaml, want) in cases {
            let e = err(yaml);
            assert!(e.contains(want), "{yaml}\n=> {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let l = load_str(
            "triggers:\n  mail:\n    email: {host: smtp.example, from: \"freshen <f@example.com>\", to: [ops@example.com], ca_file: ca/smtp.pem}\n  chat:\n    mattermost: {url: \"https://chat.example/hooks/k\"}\nnotify: {rebuilds: [chat], rollouts: [mail], failures_only: true}\n",
        )
        .unwrap();
        match &l.config.triggers["mail"] {
            TriggerSpec::Email(e) => {
                assert_eq!(e.ca_file.clone().unwrap(), l.base_dir.join("ca/smtp.pem"));
                assert_eq!(e.port(), 587);
            }
            other => panic!("{other:?}"),
        }
        assert!(l.config.notify.failures_only);
        assert_eq!(
            format!("{:?}", l.config.triggers["chat"]),
            "Mattermost(https://chat.example/…)"
        );
    }

    #[test]
    fn full_shape() {
        let l = load_str(
            r#"
default_registry: docker.io
registries:
  - {host: "localhost:5000", insecure: true, max_concurrency: 8}
watches:
  - ref: debian:bookworm
    platforms: [linux/amd64, linux/arm64]
    schedule: "*/15 * * * *"
    on_change: [rebuild-app, notify]
  - ref: localhost:5000/app:1
triggers:
  rebuild-app:
    jenkins: {url: "http://jenkins:8080", job: "images/rebuild-app", user: ci, token: "${JENKINS_TOKEN}",
              parameters: {BASE_IMAGE: "{{ref}}", NEW_DIGEST: "{{new_digest}}"}}
  notify:
    webhook: {url: "https://hooks.example/freshen", secret: "${HOOK_SECRET:-fallback}"}
  local:
    command: ["./rebuild.sh"]
"#,
        )
        .unwrap();
        assert_eq!(l.watches.len(), 2);
        assert_eq!(
            l.watches[0].reference.to_string(),
            "docker.io/library/debian:bookworm"
        );
        assert_eq!(l.watches[0].platforms.len(), 2);
        assert_eq!(l.watches[1].platforms[0].to_string(), "linux/amd64");
        match &l.config.triggers["rebuild-app"] {
            TriggerSpec::Jenkins(j) => assert_eq!(j.token.as_deref(), Some("s3cret")),
            other => panic!("{other:?}"),
        }
        match &l.config.triggers["notify"] {
            TriggerSpec::Webhook(w) => assert_eq!(w.secret.as_deref(), Some("fallback")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jenkins_builds_need_builders_jenkins_and_its_token_stays_hidden() {
        let e = err("builds:\n  - {image: r/a:1, context: a, executor: jenkins, job: x}\n");
        assert!(
            e.contains("builds[0]")
                && e.contains("builders.jenkins (url, user, token) is not configured"),
            "{e}"
        );
        let e = err(
            "discover:\n  - {root: t, image: \"r/{app}:{version}\", executor: rebase, fallback: jenkins, job: x}\n",
        );
        assert!(e.contains("discover[0]"), "{e}");
        let l = load_str(
            "builds:\n  - {image: r/a:1, context: a, executor: jenkins, job: x}\n\
             builders:\n  jenkins: {url: \"http://j:8080\", user: ci, token: \"${JENKINS_TOKEN}\", timeout: 30m}\n",
        )
        .unwrap();
        let j = l.config.builders.jenkins.as_ref().unwrap();
        assert_eq!(j.token.as_deref(), Some("s3cret"));
        assert_eq!(j.timeout, std::time::Duration::from_secs(1800));
        assert!(!format!("{l:?}").contains("s3cret"));
        let e = err("builders:\n  jenkins: {url: \"http://j\", user: ci}\n");
        assert!(
            e.contains("builders.jenkins") && e.contains("user and token go together"),
            "{e}"
        );
        let e = err("builders:\n  kaniko: {command: x, flags: y}\n");
        assert!(e.contains("unknown field `flags`"), "{e}");
    }

    #[test]
    fn errors_point_at_the_key() {
        assert!(
            err("watches:\n  - ref: Debian\n")
                .contains("watches[0].ref: invalid image reference \"Debian\"")
        );
        assert!(
            err("watches:\n  - ref: debian\n    schedule: sometimes\n")
                .contains("watches[0].schedule")
        );
        assert!(
            err("watches:\n  - ref: debian\n    platforms: [linux]\n")
                .contains("watches[0].platforms")
        );
        assert!(
            err("watches:\n  - ref: debian\n    on_change: [nope]\n")
                .contains("watches[0].on_change[0]: no trigger named \"nope\"")
        );
        assert!(
            err("watches:\n  - ref: debian\n    tags: [x]\n")
                .contains("watches[0].tags: unknown field `tags`")
        );
        assert!(
            err("triggers:\n  t:\n    webhook: {url: \"${HOOK}\"}\n")
                .contains("triggers.t.webhook.url: environment variable HOOK is not set")
        );
        assert!(err("triggers:\n  t:\n    carrier_pigeon: {}\n").contains("triggers.t"));
        assert!(err("registries:\n  - {host: a}\n  - {host: a}\n").contains("registries[1].host"));
        assert!(err("watches: [\n").contains("not valid YAML"));
        assert!(err("database: mysql://x\n").contains("database"));
        assert!(
            err("watches:\n  - ref: debian\n  - ref: docker.io/library/debian:latest\n")
                .contains("already watched")
        );
        let d = format!("watches:\n  - ref: debian@sha256:{}\n", "a".repeat(64));
        assert!(err(&d).contains("pins a digest"));
    }

    #[test]
    fn unset_trigger_secrets_can_wait() {
        let text = "watches:\n  - {ref: debian, on_change: [hook]}\n\
                    triggers:\n  hook:\n    webhook: {url: \"${HOOK_URL}\", secret: \"${HOOK_SECRET}\"}\n";
        let strict = err(text);
        assert!(
            strict.contains("triggers.hook.webhook.url: environment variable HOOK_URL is not set"),
            "{strict}"
        );
        let env = |_: &str| None;
        let l = parse_with(
            text,
            Path::new("freshen.yaml"),
            PathBuf::from("."),
            &env,
            Unset::DeferTriggers,
        )
        .unwrap();
        let keys: Vec<&str> = l.unresolved.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(
            keys,
            ["triggers.hook.webhook.url", "triggers.hook.webhook.secret"]
        );
        assert_eq!(
            l.check_triggers().unwrap_err().to_string(),
            "config freshen.yaml: triggers.hook.webhook.url: environment variable HOOK_URL is not set"
        );
        assert_eq!(l.watches[0].triggers, ["hook"]);
        // Elsewhere an unset variable is still an error.
        let e = parse_with(
            "database: \"${DB_URL}\"\n",
            Path::new("freshen.yaml"),
            PathBuf::from("."),
            &env,
            Unset::DeferTriggers,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("database: environment variable DB_URL is not set"),
            "{e}"
        );
        // Everything set: nothing waits.
        assert!(load_str("triggers:\n  j:\n    jenkins: {url: \"http://j\", job: x, user: ci, token: \"${JENKINS_TOKEN}\"}\n")
            .unwrap()
            .check_triggers()
            .is_ok());
    }

    #[test]
    fn interpolation_rules() {
        let env = |n: &str| (n == "A").then(|| "1".to_string());
        assert_eq!(expand("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand("$${A}", &env).unwrap(), "${A}");
        assert_eq!(expand("${B:-d}", &env).unwrap(), "d");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert!(expand("${A", &env).is_err());
        assert_eq!(expand("${B}", &env), Err(Expand::Unset("B".into())));
        assert_eq!(
            expand("${B}", &env).unwrap_err().to_string(),
            "environment variable B is not set"
        );
    }

    #[test]
    fn policies_by_group_and_by_watch() {
        let l = load_str(
            r#"
policy: {mode: thresholds, thresholds: "high > 0"}
policies:
  team-a:
    images: ["localhost:5000/team-a/*"]
    mode: security-only
watches:
  - {ref: debian:bookworm, policy: team-a}
  - {ref: alpine:3, policy: default}
"#,
        )
        .unwrap();
        assert_eq!(l.watches[0].policy.as_deref(), Some("team-a"));
        assert_eq!(
            l.policies.for_image(&["localhost:5000/team-a/app:1"]).0,
            "team-a"
        );
        assert!(
            err("watches:\n  - {ref: debian, policy: nope}\n")
                .contains("watches[0].policy: no policy named \"nope\" (defined: default)")
        );
        assert!(
            err("policies:\n  x:\n    mode: thresholds\n")
                .contains("policies.x: mode thresholds needs a `thresholds` expression")
        );
        assert!(err("policies:\n  x:\n    imgs: [a]\n").contains("policies.x"));
    }

    #[test]
    fn cascade_is_a_reserved_trigger() {
        let l = load_str(
            r#"
watches:
  - {ref: debian:bookworm, on_change: [cascade, notify]}
  - {ref: alpine:3, on_change: [cascade]}
triggers:
  notify:
    webhook: {url: "https://hooks.example/freshen"}
cascade: {parallel: 3}
"#,
        )
        .unwrap();
        assert_eq!(l.watches[0].triggers, ["cascade", "notify"]);
        assert_eq!(l.watches[1].triggers, ["cascade"]);
        assert_eq!(l.config.cascade.parallel, 3);
        assert_eq!(load_str("").unwrap().config.cascade.parallel, 2);
        let e = err("triggers:\n  cascade:\n    command: [./x.sh]\n");
        assert!(
            e.contains("triggers.cascade: \"cascade\" is reserved"),
            "{e}"
        );
        assert!(err("cascade: {parallel: 0}\n").contains("cascade.parallel: must be at least 1"));
        assert!(err("cascade: {paralel: 2}\n").contains("cascade.paralel: unknown field"));
        let e = err("watches:\n  - ref: debian\n    on_change: [cascades]\n");
        assert!(
            e.contains("watches[0].on_change[0]: no trigger named \"cascades\" (defined: none; and `cascade` rebuilds"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_is_defaults() {
        let l = load_str("").unwrap();
        assert!(l.watches.is_empty());
        assert_eq!(l.defaults.registry, "docker.io");
    }
}
