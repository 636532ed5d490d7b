//! `freshen`: the command line. It parses arguments, loads the config, wires
//! the layers together, and turns errors into one line and an exit code.

#[macro_use]
mod print;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use freshen_app::view::{DeliveryState, RunState};
use freshen_app::{
    App, CheckFlags, HarborSource, OnRolloutProgress, PlanRequest, RolloutRequest, ScanRequest,
};
use freshen_config::Loaded;

/// Exit status for "something changed" with `check --exit-code`.
const EXIT_CHANGED: u8 = 1;
/// Exit status for any error (as `git diff --exit-code`: above 1).
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "freshen",
    version,
    about = "Keep container images fresh: watch the images yours are built on, and act when they change."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Config file (YAML). See freshen.example.yaml.
    #[arg(long, short = 'c', global = true, env = "FRESHEN_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite:///path.db or postgres://... (overrides the config).
    #[arg(long, global = true, env = "FRESHEN_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Log filter, e.g. info or freshen_registry=debug (default: warn; info for `watch`).
    #[arg(long, global = true, env = "FRESHEN_LOG")]
    log: Option<String>,
    /// Log format: text (colored on a terminal only; NO_COLOR turns color
    /// off), or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FRESHEN_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, its fields at the top level.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print a tag's digest and its per-platform manifest digests.
    Digest {
        /// Image reference, docker-style (debian:bookworm, localhost:5000/app:1).
        reference: String,
        /// Only these platforms (os/arch[/variant]); default: every platform.
        #[arg(long = "platform", short = 'p')]
        platforms: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check tags once: record what they point at, report new/changed/unchanged,
    /// and deliver the triggers of what changed.
    Check {
        /// References to check; default: every watch in the config. A reference
        /// that is also watched in the config keeps its platforms and triggers.
        references: Vec<String>,
        /// Platforms for references given here (default: the config's default_platforms).
        #[arg(long = "platform", short = 'p')]
        platforms: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when anything changed, 0 when nothing did, 2 on error.
        #[arg(long)]
        exit_code: bool,
        /// Leave the rebuild cascades of what changed (`on_change: [cascade]`)
        /// queued for `freshen watch` instead of running them before exiting.
        #[arg(long)]
        defer_cascades: bool,
    },
    /// Run the watcher: check each watch on its schedule and deliver triggers
    /// until SIGTERM or Ctrl-C (in-flight work finishes first).
    Watch {
        /// Also serve the HTTP API and the webhook receivers
        /// (`receivers:`), on the config's server.listen or this address.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "config")]
        serve: Option<String>,
        /// Serve only /metrics, /healthz and /readyz on this address
        /// (`--serve` has them too).
        #[arg(long, value_name = "ADDR", conflicts_with = "serve")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Every digest seen for a tag, per platform, with first and last sight.
    History {
        reference: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recorded change events, newest first.
    Events {
        /// Only this reference's events.
        reference: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read images' layers into the inventory: packages, OS, and what each is built on.
    Scan {
        /// Image references to scan (tags or digests).
        references: Vec<String>,
        /// Only these platforms; default: every platform of the tag.
        #[arg(long = "platform", short = 'p')]
        platforms: Vec<String>,
        /// The Dockerfile the images were built from (lineage evidence).
        #[arg(long)]
        dockerfile: Option<PathBuf>,
        /// Build arguments for the Dockerfile's ARGs (NAME=VALUE).
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// The Dockerfile stage that was built (`docker build --target`).
        #[arg(long)]
        target: Option<String>,
        /// Scan every repository and tag of this registry (walks /v2/_catalog).
        #[arg(long, requires = "all")]
        registry: Option<String>,
        /// With --registry: every repository whose name starts with this.
        #[arg(long, requires = "registry")]
        repo_prefix: Option<String>,
        /// With --registry: scan everything it lists.
        #[arg(long)]
        all: bool,
        /// Scan every tag the inventory holds again (tags that moved are
        /// read anew), then judge the images again.
        #[arg(long, conflicts_with_all = ["references", "registry"])]
        inventory: bool,
        /// Images scanned at once with --all.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// An image's packages as an SBOM document (scans it if needed).
    Sbom {
        reference: String,
        #[arg(long, value_enum, default_value_t = SbomFormat::Cyclonedx)]
        format: SbomFormat,
        /// The platform (default: linux/amd64).
        #[arg(long, short = 'p')]
        platform: Option<String>,
    },
    /// Images in the inventory.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Which images hold a package (by package or source package name).
    Packages {
        name: String,
        #[arg(long)]
        ecosystem: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the inventory's HTTP API (OpenAPI at /openapi.json) until SIGTERM.
    Serve {
        /// Address to listen on (default: the config's server.listen, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Vulnerabilities: import OSV data and scanner reports, list an image's
    /// findings, or find every image a vulnerability affects.
    #[command(args_conflicts_with_subcommands = true)]
    Vulns {
        #[command(subcommand)]
        command: Option<VulnsCommand>,
        /// The image whose findings to list (`freshen vulns REF`).
        reference: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What changed from one image to another (a base's old and new tag or
    /// digest): packages, vulnerabilities fixed and introduced, and the
    /// children of the old one holding what the new one fixes.
    Diff {
        old: String,
        new: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the rebuild a change calls for, without running it: the
    /// affected builds in waves (parents first), each with its executor and
    /// the reason. Default: every build.
    Plan {
        /// A base image that changed: plan what is built on it.
        #[arg(long, conflicts_with_all = ["image", "event"])]
        base: Option<String>,
        /// An image to rebuild, with what is built on it.
        #[arg(long, conflicts_with = "event")]
        image: Option<String>,
        /// A change event (see `freshen events`): its tag is the base.
        #[arg(long)]
        event: Option<String>,
        /// The images vulnerable now, with what is built on them: those a
        /// vulnerability ID affects, or (no ID) every image whose policy
        /// acts on its findings.
        #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["base", "image", "event"])]
        vulnerable: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Graphviz output.
        #[arg(long, conflicts_with = "json")]
        dot: bool,
    },
    /// Rebuild what a change calls for, wave by wave: each image built and
    /// pushed under a new version, promoted to its tags, scanned into the
    /// inventory. Progress is stored: `--resume` finishes a run that died.
    Rebuild {
        /// A base image that changed: rebuild what is built on it.
        #[arg(long, conflicts_with_all = ["image", "event", "all", "resume"])]
        base: Option<String>,
        /// An image to rebuild, with what is built on it.
        #[arg(long, conflicts_with_all = ["event", "all", "resume"])]
        image: Option<String>,
        /// A change event: rebuild what its tag's change calls for (nothing
        /// if its policy said quiet).
        #[arg(long, conflicts_with_all = ["all", "resume"])]
        event: Option<String>,
        /// Every build, parents first.
        #[arg(long, conflicts_with = "resume")]
        all: bool,
        /// The images vulnerable now, with what is built on them: those a
        /// vulnerability ID affects, or (no ID) every image whose policy
        /// acts on its findings.
        #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["base", "image", "event", "all", "resume"])]
        vulnerable: Option<String>,
        /// Finish a run that died: this one, or the latest unfinished.
        #[arg(long, num_args = 0..=1, default_missing_value = "")]
        resume: Option<String>,
        /// Builds of one wave in flight at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild runs: the latest ones, or one run's images.
    Rebuilds {
        /// A run's id.
        run: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Policies: decide on images with the config's `policy`.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Copy an image's manifest, as its exact bytes (same digest), to other
    /// tags (`1.4-rc`, `latest`) or to other repositories and registries,
    /// without pulling its layers.
    Promote {
        /// The image to promote (a tag or digest).
        reference: String,
        /// A tag of the same repository, or a full reference elsewhere. Repeatable.
        #[arg(long = "to", value_name = "TAG", required = true)]
        to: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move the Kubernetes workloads that run an image (or what a rebuild
    /// run rebuilt) to its new digest, wave by wave: each watched until its
    /// rollout completes, and put back if it fails or times out; each
    /// `rollout.gitops` repository gets one commit. Needs `rollout.clusters`
    /// or `rollout.gitops` in the config.
    Rollout {
        /// The image: `repo:tag@sha256:…`, or `repo:tag` (its digest is read
        /// from the registry now).
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        image: Option<String>,
        /// A rebuild run (`freshen rebuilds`): roll out what it rebuilt and
        /// promoted, in its waves; a roll-out cut short is resumed.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
        /// Show the workloads that would move, and change nothing.
        #[arg(long)]
        plan: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll-outs: the latest ones, or one roll-out's workloads.
    Rollouts {
        /// A roll-out's id.
        id: Option<String>,
        /// How many roll-outs to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approvals a watch or policy asks for (`approve: [cascade, rollout]`):
    /// the pending ones, or all with `--all`.
    Approvals {
        /// Decided and expired ones too.
        #[arg(long)]
        all: bool,
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending approval: the held cascade or roll-out goes on.
    Approve {
        /// The approval's id (`freshen approvals`).
        id: String,
        /// Who approves; default $USER.
        #[arg(long)]
        by: Option<String>,
        /// A note kept with the decision.
        #[arg(long)]
        comment: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending approval: the held cascade or roll-out is not done.
    Reject {
        /// The approval's id (`freshen approvals`).
        id: String,
        /// Why; kept with the decision and shown where the work stopped.
        #[arg(long, required = true)]
        reason: String,
        /// Who rejects; default $USER.
        #[arg(long)]
        by: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trigger deliveries: list them, or put a failed one back in the queue.
    Outbox {
        #[command(subcommand)]
        command: Option<OutboxCommand>,
    },
    /// Print a shell completion script, e.g. `freshen completions bash >
    /// /etc/bash_completion.d/freshen` (zsh: into a directory of $fpath as
    /// `_freshen`; fish: ~/.config/fish/completions/freshen.fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: freshen.1 on stdout, or with --dir one page per
    /// command (freshen.1, freshen-check.1, freshen-images-show.1, ...).
    Man {
        /// The directory to write every page into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List deliveries, newest first.
    List {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry a failed delivery now.
    Retry { id: i64 },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Evaluate policies on images (default: every tag in the inventory):
    /// each image's group policy, or the one named by --policy. Each
    /// decision is stored with the policy version and data snapshot.
    Check {
        references: Vec<String>,
        /// Use this policy (a name under `policies:`, or `default`) for every image.
        #[arg(long)]
        policy: Option<String>,
        /// Exit 1 when the policy says act for any image, 0 when for none.
        #[arg(long)]
        exit_code: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a stored decision again: with the policy version that made it,
    /// on the vulnerability data of its snapshot, on its day; or with
    /// --now, with the config's policy and today's data.
    Replay {
        /// The decision's id (see `policy decisions`).
        id: String,
        /// Use the config's policy of that name and the data stored now.
        #[arg(long)]
        now: bool,
        /// Exit 1 when the replay comes out differently.
        #[arg(long)]
        exit_code: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stored decisions, newest first: of `policy check`, and of the
    /// watcher on each change (with the event they decided on).
    Decisions {
        /// Only decisions on this image reference.
        reference: Option<String>,
        /// Only decisions on this change event.
        #[arg(long)]
        event: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VulnsCommand {
    /// Import vulnerability data, recognised by content: OSV records (.json
    /// files, directories of them, OSV's all.zip exports; incremental:
    /// records are replaced only by newer ones), and Trivy (`trivy image -f
    /// json`) and Grype (`grype -o json`) reports, each stored for the image
    /// it names (a newer report of the same scanner replaces the older one).
    ///
    /// With --harbor URL --project P: the scan report of every scanned
    /// artifact of the project (or of --repository) in that Harbor, each
    /// stored for its digest (scanner `harbor`). Credentials (a robot
    /// account) come from FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD.
    Import {
        #[arg(required_unless_present = "harbor")]
        paths: Vec<PathBuf>,
        /// The image of the scanner reports given, for reports that don't
        /// name it (e.g. `trivy rootfs`); wins over what a report says.
        #[arg(long, value_name = "REF")]
        image: Option<String>,
        /// A Harbor to read scan reports from (https://harbor.example.com).
        #[arg(long, value_name = "URL", requires = "project")]
        harbor: Option<String>,
        /// With --harbor: the project whose artifacts to read.
        #[arg(long, requires = "harbor")]
        project: Option<String>,
        /// With --harbor: only this repository (`project/name` or `name`).
        #[arg(long, requires = "harbor")]
        repository: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every image affected by a vulnerability (by id or alias: CVE, DSA, GHSA…).
    Images {
        id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync the config's vulnerability feeds once (`feeds:`): each OSV
    /// archive is asked for with the validators of the copy imported last
    /// (a 304 costs one request), a new copy is read whole and imported
    /// incrementally. An archive that is truncated, corrupt or over
    /// `max_size` keeps the data imported before; the exit code is then 1.
    Sync {
        /// Only the feed of this name.
        #[arg(long, value_name = "NAME")]
        feed: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The feeds' archives: when each was last asked for and changed, the
    /// import in force, and the last attempt's error.
    Feeds {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// The inventory's tags, one row per platform, sorted by reference;
    /// a page at a time.
    List {
        /// Only references containing this text (any case).
        #[arg(long, short = 's')]
        search: Option<String>,
        /// Only images built on a digest their base tag no longer points at.
        #[arg(long)]
        outdated: bool,
        /// Only images a policy acts on now for their vulnerabilities.
        #[arg(long)]
        vulnerable: bool,
        /// Rows per page (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Rows to skip: the page after this one starts at offset + limit.
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Digest, platforms, OS, base and its evidence.
    Show {
        reference: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Images built on this one; with --recursive, every descendant with its depth.
    Children {
        reference: String,
        #[arg(long)]
        recursive: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The packages an image holds.
    Packages {
        reference: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SbomFormat {
    Cyclonedx,
    Spdx,
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    Delivered,
    Failed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        // Read nothing, log nothing.
        Command::Completions { shell } => completions(*shell),
        Command::Man { dir } => man(dir.as_deref()),
        _ => run_logged(cli),
    };
    // Output that could not be written (other than to a closed pipe) is an error.
    match print::failure() {
        Some(message) if code == ExitCode::SUCCESS => {
            eprintln!("freshen: error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
        _ => code,
    }
}

/// A command that uses the config, the database or the network: logging
/// set up, run on the async runtime, an error said on one line.
fn run_logged(cli: Cli) -> ExitCode {
    let default_level = match cli.command {
        Command::Watch { .. } => "info",
        // A cascade `check` runs is long and worth following.
        Command::Check { .. } => "warn,freshen_rebuild::cascade=info",
        _ => "warn",
    };
    init_logging(
        cli.global.log.as_deref().unwrap_or(default_level),
        cli.global.log_format,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("freshen: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("freshen: error: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error and its causes on one line, outermost first. A cause whose
/// text its error already ends with is said once (`cannot read config x:
/// No such file or directory`, not that twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.ends_with(&text) {
            parts.push(text.clone());
        }
        previous = text;
    }
    parts.join(": ")
}

/// `freshen completions SHELL`.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "freshen", &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

/// `freshen man [--dir DIR]`.
fn man(dir: Option<&std::path::Path>) -> ExitCode {
    let written = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map_err(|e| format!("cannot write man pages to {}: {e}", dir.display())),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map(|()| print!("{}", String::from_utf8_lossy(&page)))
                .map_err(|e| format!("cannot render the man page: {e}"))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("freshen: error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Color only for a person at a terminal: a file, a pipe or journald gets
    // plain text.
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Whether the command sends triggers, and so needs every `${ENV}` of
/// `triggers:` set. The others start without them (`freshen_config::Unset`).
fn sends_triggers(command: &Command) -> bool {
    matches!(command, Command::Check { .. } | Command::Watch { .. })
}

async fn run(cli: Cli) -> Result<u8> {
    let unset = if sends_triggers(&cli.command) {
        freshen_config::Unset::Error
    } else {
        freshen_config::Unset::DeferTriggers
    };
    let loaded = match &cli.global.config {
        Some(path) => freshen_config::load_with(path, unset)?,
        None => Loaded::defaults(),
    };
    // FRESHEN_DATABASE= (empty) counts as unset, as FRESHEN_DATA_DIR does.
    let database = cli.global.database.clone().filter(|d| !d.is_empty());
    let app = Arc::new(App::new(loaded, database));
    match cli.command {
        Command::Digest {
            reference,
            platforms,
            json,
        } => {
            let d = app.digest(&reference, &platforms).await?;
            output::digest(&d.reference, &d.resolved, &d.manifests, json);
            Ok(0)
        }
        Command::Check {
            references,
            platforms,
            json,
            exit_code,
            defer_cascades,
        } => {
            let report = app
                .check(&references, &platforms, CheckFlags { defer_cascades })
                .await?;
            output::check(&report, json);
            Ok(if report.has_errors() {
                EXIT_ERROR
            } else if exit_code && report.fired() {
                EXIT_CHANGED
            } else {
                0
            })
        }
        Command::Watch { serve, metrics } => {
            let listen = match serve.as_deref() {
                None => None,
                Some("config") => Some(app.loaded().config.server.listen),
                Some(addr) => Some(addr.parse().with_context(|| {
                    format!("--serve {addr:?} is not an address like 127.0.0.1:8080")
                })?),
            };
            let watcher = app.watcher(listen.is_some()).await?;
            let api = match (listen, metrics) {
                (Some(addr), _) => Some(bind(app, addr).await?),
                (None, Some(addr)) => {
                    let api = freshen_server::Bound::metrics(app, addr).await?;
                    eprintln!("freshen: serving metrics on http://{}", api.local_addr()?);
                    Some(api)
                }
                (None, None) => None,
            };
            freshen_server::run_daemon(watcher, api, shutdown_signal()).await?;
            Ok(0)
        }
        Command::History { reference, json } => {
            let h = app.history(&reference).await?;
            output::history(&h.reference, &h.rows, json);
            Ok(0)
        }
        Command::Events {
            reference,
            limit,
            json,
        } => {
            output::events(&app.events(reference.as_deref(), limit).await?, json);
            Ok(0)
        }
        Command::Scan {
            references,
            platforms,
            dockerfile,
            build_args,
            target,
            registry,
            repo_prefix,
            all: _,
            inventory,
            concurrency,
            json,
        } => {
            let progress = output::ScanProgress::new(json);
            let scanned = app
                .scan(
                    ScanRequest {
                        references,
                        platforms,
                        dockerfile,
                        build_args,
                        target,
                        registry,
                        repo_prefix,
                        inventory,
                        concurrency,
                    },
                    &progress,
                )
                .await?;
            progress.finish();
            output::scans(&scanned.reports, &scanned.errors, json);
            if json {
                for e in &scanned.events {
                    eprintln!("freshen: vulnerability event {} for {}", e.id, e.reference);
                }
            } else {
                output::vulnerability_events(&scanned.events);
            }
            Ok(if scanned.errors.is_empty() { 0 } else { 2 })
        }
        Command::Sbom {
            reference,
            format,
            platform,
        } => {
            let format = match format {
                SbomFormat::Cyclonedx => freshen_app::SbomFormat::Cyclonedx,
                SbomFormat::Spdx => freshen_app::SbomFormat::Spdx,
            };
            let doc = app.sbom(&reference, format, platform.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(0)
        }
        Command::Images { command } => {
            match command {
                ImagesCommand::List {
                    search,
                    outdated,
                    vulnerable,
                    limit,
                    offset,
                    json,
                } => {
                    let filter = freshen_app::view::ImageFilter {
                        search,
                        outdated,
                        vulnerable,
                    };
                    let page = app
                        .images(&filter, freshen_app::view::Page::new(limit, offset))
                        .await?;
                    output::image_list(&page, json);
                }
                ImagesCommand::Show { reference, json } => {
                    output::image(&app.image(&reference).await?, json);
                }
                ImagesCommand::Children {
                    reference,
                    recursive,
                    json,
                } => {
                    output::children(&app.children(&reference, recursive).await?, json);
                }
                ImagesCommand::Packages { reference, json } => {
                    output::image_packages(&app.image_packages(&reference).await?, json);
                }
            }
            Ok(0)
        }
        Command::Packages {
            name,
            ecosystem,
            version,
            json,
        } => {
            let found = app
                .packages(&name, ecosystem.as_deref(), version.as_deref())
                .await?;
            output::package_versions(&name, &found, json);
            Ok(0)
        }
        Command::Serve { listen } => {
            let receiving = !app.loaded().config.receivers.is_empty();
            let addr = listen.unwrap_or(app.loaded().config.server.listen);
            if receiving {
                eprintln!(
                    "freshen: receiving webhooks; their triggers are delivered by `freshen watch` (or run `freshen watch --serve` alone)"
                );
            }
            let api = bind(app, addr).await?;
            api.serve(shutdown_signal()).await?;
            Ok(0)
        }
        Command::Vulns {
            command,
            reference,
            json,
        } => {
            match (command, reference) {
                (
                    Some(VulnsCommand::Import {
                        paths,
                        image,
                        harbor,
                        project,
                        repository,
                        json,
                    }),
                    _,
                ) => {
                    let harbor = match (harbor, project) {
                        (Some(url), Some(project)) => Some(HarborSource {
                            url,
                            project,
                            repository,
                        }),
                        _ => None,
                    };
                    let done = app
                        .import_vulns(&paths, image.as_deref(), harbor, &mut |why| {
                            eprintln!("freshen: {why}: skipped")
                        })
                        .await?;
                    output::imports(&done, json);
                    // New data: the images whose policy now acts on it.
                    let events = app.rejudge().await?;
                    if json {
                        for e in &events {
                            eprintln!("freshen: vulnerability event {} for {}", e.id, e.reference);
                        }
                    } else {
                        output::vulnerability_events(&events);
                    }
                }
                (Some(VulnsCommand::Images { id, json }), _) => {
                    output::affected_images(&app.vulnerable_images(&id).await?, json);
                }
                (Some(VulnsCommand::Sync { feed, json }), _) => {
                    let synced = app.sync_feeds(feed.as_deref()).await?;
                    output::feed_syncs(&synced, json);
                    if synced.feeds.iter().any(|f| f.failed().next().is_some()) {
                        return Ok(1);
                    }
                }
                (Some(VulnsCommand::Feeds { json }), _) => {
                    output::feed_archives(&app.feed_archives().await?, json);
                }
                (None, Some(reference)) => {
                    let (r, list) = app.image_vulns(&reference).await?;
                    output::image_vulns(&r, &list, json);
                }
                (None, None) => {
                    bail!("name an image (`freshen vulns REF`), or `freshen vulns import PATH...`")
                }
            }
            Ok(0)
        }
        Command::Plan {
            base,
            image,
            event,
            vulnerable,
            json,
            dot,
        } => {
            let planned = app
                .plan(plan_request(base, image, event, vulnerable).unwrap_or(PlanRequest::All))
                .await?;
            if let Some(reason) = &planned.quiet {
                eprintln!("the policy kept this change quiet: {reason}");
            }
            output::plan(&planned.plan, json, dot);
            Ok(0)
        }
        Command::Rebuild {
            base,
            image,
            event,
            all,
            vulnerable,
            resume,
            parallel,
            json,
        } => {
            let progress = Arc::new(output::rebuild_progress);
            if let (None, Some(id)) = (&resume, &vulnerable) {
                let id = Some(id.as_str()).filter(|id| !id.is_empty());
                let (report, verified) = app.rebuild_vulnerable(id, parallel, progress).await?;
                output::rebuild_verified(&report, &verified, json);
                return Ok(if report.run.state == RunState::Done {
                    0
                } else {
                    EXIT_ERROR
                });
            }
            let report = match (resume, plan_request(base, image, event, vulnerable)) {
                (Some(id), _) => {
                    let id = Some(id.as_str()).filter(|id| !id.is_empty());
                    app.resume_rebuild(id, parallel, progress).await?
                }
                (None, Some(request)) => app.rebuild(request, parallel, progress).await?,
                (None, None) if all => app.rebuild(PlanRequest::All, parallel, progress).await?,
                (None, None) => bail!(
                    "say what to rebuild: --base REF, --image REF, --event ID, --vulnerable [ID], --all, or --resume (`freshen plan` shows it first)"
                ),
            };
            output::rebuild(&report, json);
            Ok(if report.run.state == RunState::Done {
                0
            } else {
                EXIT_ERROR
            })
        }
        Command::Rollout {
            image,
            run,
            plan,
            json,
        } => {
            let request = match (run, image) {
                (Some(id), _) => RolloutRequest::Run(id),
                (None, Some(image)) => RolloutRequest::Image(image),
                (None, None) => bail!("say what to roll out: an IMAGE or --run ID"),
            };
            if plan {
                output::rollout_plan(&app.rollout_plan(&request).await?, json);
                return Ok(0);
            }
            let progress: OnRolloutProgress = Arc::new(output::rollout_progress);
            let report = app.rollout(&request, Some(progress)).await?;
            output::rollout(&report, json);
            Ok(if report.rollout.state == RunState::Done {
                0
            } else {
                EXIT_ERROR
            })
        }
        Command::Approvals { all, limit, json } => {
            output::approvals(&app.approvals(!all, limit).await?, json);
            Ok(0)
        }
        Command::Approve {
            id,
            by,
            comment,
            json,
        } => {
            let by = by.unwrap_or_else(default_user);
            output::approvals(
                &[app.decide(&id, true, &by, comment.as_deref()).await?],
                json,
            );
            Ok(0)
        }
        Command::Reject {
            id,
            reason,
            by,
            json,
        } => {
            let by = by.unwrap_or_else(default_user);
            output::approvals(&[app.decide(&id, false, &by, Some(&reason)).await?], json);
            Ok(0)
        }
        Command::Rollouts { id, limit, json } => {
            match id {
                Some(id) => output::rollout(&app.rollout_report(&id).await?, json),
                None => output::rollouts(&app.rollouts(limit).await?, json),
            }
            Ok(0)
        }
        Command::Rebuilds { run, limit, json } => {
            match run {
                Some(id) => output::rebuild(&app.rebuild_run(&id).await?, json),
                None => output::rebuild_runs(&app.rebuilds(limit).await?, json),
            }
            Ok(0)
        }
        Command::Diff { old, new, json } => {
            output::diff(&app.diff(&old, &new).await?, json);
            Ok(0)
        }
        Command::Policy {
            command:
                PolicyCommand::Replay {
                    id,
                    now,
                    exit_code,
                    json,
                },
        } => {
            let replay = app.policy_replay(&id, now).await?;
            output::replay(&replay, json);
            Ok(if exit_code && !replay.same {
                EXIT_CHANGED
            } else {
                0
            })
        }
        Command::Policy {
            command:
                PolicyCommand::Decisions {
                    reference,
                    event,
                    limit,
                    json,
                },
        } => {
            let list = app
                .decisions(reference.as_deref(), event.as_deref(), limit)
                .await?;
            output::decisions(&list, json);
            Ok(0)
        }
        Command::Policy {
            command:
                PolicyCommand::Check {
                    references,
                    policy,
                    exit_code,
                    json,
                },
        } => {
            let checks = app.policy_check(&references, policy.as_deref()).await?;
            output::policy_checks(&checks, json);
            Ok(if exit_code && checks.iter().any(|c| c.verdict.act) {
                EXIT_CHANGED
            } else {
                0
            })
        }
        Command::Promote {
            reference,
            to,
            json,
        } => {
            let mut first = true;
            let promotion = app
                .promote(&reference, &to, &mut |source, target, report| {
                    // Printed as each target is done, so a failure shows
                    // what was promoted.
                    if !json {
                        output::promoted(first, source, target, report);
                    }
                    first = false;
                })
                .await?;
            if json {
                output::promotion(&promotion);
            }
            Ok(0)
        }
        Command::Outbox { command } => {
            match command.unwrap_or(OutboxCommand::List {
                state: None,
                limit: 50,
                json: false,
            }) {
                OutboxCommand::List { state, limit, json } => {
                    let state = state.map(|s| match s {
                        StateArg::Pending => DeliveryState::Pending,
                        StateArg::Delivered => DeliveryState::Delivered,
                        StateArg::Failed => DeliveryState::Failed,
                    });
                    output::deliveries(&app.deliveries(state, limit).await?, json);
                    Ok(0)
                }
                OutboxCommand::Retry { id } => {
                    app.retry_delivery(id).await?;
                    println!("delivery {id} queued again");
                    Ok(0)
                }
            }
        }
        Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("answered in main without the config")
        }
    }
}

/// What `plan` and `rebuild` were asked to start from; `None` for "every
/// build" (clap keeps the options exclusive).
/// The API bound to `addr`, said on stderr (tests and scripts read the
/// address from there).
async fn bind(app: Arc<App>, addr: std::net::SocketAddr) -> Result<freshen_server::Bound> {
    let api = freshen_server::Bound::new(app, addr).await?;
    eprintln!("freshen: serving on http://{}", api.local_addr()?);
    Ok(api)
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn plan_request(
    base: Option<String>,
    image: Option<String>,
    event: Option<String>,
    vulnerable: Option<String>,
) -> Option<PlanRequest> {
    match (base, image, event, vulnerable) {
        (Some(b), _, _, _) => Some(PlanRequest::Base(b)),
        (_, Some(i), _, _) => Some(PlanRequest::Image(i)),
        (_, _, Some(e), _) => Some(PlanRequest::Event(e)),
        (_, _, _, Some(v)) => Some(PlanRequest::Vulnerable(Some(v).filter(|v| !v.is_empty()))),
        _ => None,
    }
}

/// Who decides an approval from the command line: `$USER`, else `cli`.
fn default_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".into())
}
