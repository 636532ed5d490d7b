//! `freshen`: the command line. It parses arguments, loads the config, wires
//! the layers together, and turns errors into one line and an exit code.

mod cascade;
mod output;
mod promote;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use freshen_actions::Deliverer;
use freshen_config::Loaded;
use freshen_inventory::{DockerfileInput, Queries, ScanOptions, Scanner};
use freshen_judge::Vulns;
use freshen_reference::{Platform, Reference};
use freshen_registry::{Client, ClientOptions};
use freshen_store::{DeliveryState, Store};
use freshen_watch::{Checker, Daemon, DaemonSettings, Watch};

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
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
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
    },
    /// Every digest seen for a tag, per platform, with first and last sight.
    History {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Recorded change events, newest first.
    Events {
        /// Only this reference's events.
        reference: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
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
        /// Images scanned at once with --all.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
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
        #[arg(long)]
        json: bool,
    },
    /// What changed from one image to another (a base's old and new tag or
    /// digest): packages, vulnerabilities fixed and introduced, and the
    /// children of the old one holding what the new one fixes.
    Diff {
        old: String,
        new: String,
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
        /// Finish a run that died: this one, or the latest unfinished.
        #[arg(long, num_args = 0..=1, default_missing_value = "")]
        resume: Option<String>,
        /// Builds of one wave in flight at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild runs: the latest ones, or one run's images.
    Rebuilds {
        /// A run's id.
        run: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
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
        #[arg(long)]
        json: bool,
    },
    /// Trigger deliveries: list them, or put a failed one back in the queue.
    Outbox {
        #[command(subcommand)]
        command: Option<OutboxCommand>,
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
        #[arg(long)]
        json: bool,
    },
    /// Every image affected by a vulnerability (by id or alias: CVE, DSA, GHSA…).
    Images {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Digest, platforms, OS, base and its evidence.
    Show {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Images built on this one; with --recursive, every descendant with its depth.
    Children {
        reference: String,
        #[arg(long)]
        recursive: bool,
        #[arg(long)]
        json: bool,
    },
    /// The packages an image holds.
    Packages {
        reference: String,
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
    let default_level = match cli.command {
        Command::Watch { .. } => "info",
        // A cascade `check` runs is long and worth following.
        Command::Check { .. } => "warn,freshen_watch::cascade=info",
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
            // One line: the error and its causes, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("freshen: error: {}", msg.join(": "));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let loaded = match &cli.global.config {
        Some(path) => freshen_config::load(path)?,
        None => Loaded::defaults(),
    };
    match cli.command {
        Command::Digest {
            reference,
            platforms,
            json,
        } => digest(&loaded, &reference, &platforms, json).await,
        Command::Check {
            references,
            platforms,
            json,
            exit_code,
            defer_cascades,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            check(
                &loaded,
                store,
                &references,
                &platforms,
                CheckFlags {
                    json,
                    exit_code,
                    defer_cascades,
                },
            )
            .await
        }
        Command::Watch { serve } => {
            let store = open_store(&cli.global, &loaded).await?;
            let listen = match serve.as_deref() {
                None => None,
                Some("config") => Some(loaded.config.server.listen),
                Some(addr) => Some(addr.parse().with_context(|| {
                    format!("--serve {addr:?} is not an address like 127.0.0.1:8080")
                })?),
            };
            watch(&loaded, store, listen).await
        }
        Command::History { reference, json } => {
            let store = open_store(&cli.global, &loaded).await?;
            let r = parse_ref(&loaded, &reference)?;
            let rows = store.history(&r.to_string()).await?;
            if rows.is_empty() {
                bail!("no history for {r}: run `freshen check {reference}` first");
            }
            output::history(&r, &rows, json);
            Ok(0)
        }
        Command::Events {
            reference,
            limit,
            json,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            let r = reference.map(|s| parse_ref(&loaded, &s)).transpose()?;
            let events = store
                .events(r.map(|r| r.to_string()).as_deref(), limit)
                .await?;
            output::events(&events, json);
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
            concurrency,
            json,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            let opts = ScanOptions {
                platforms: parse_platforms(&platforms)?,
                dockerfile: dockerfile
                    .map(|p| read_dockerfile(&p, &build_args, target))
                    .transpose()?,
            };
            let scanner = Scanner::new(client(&loaded), store, loaded.defaults.clone());
            let refs = match registry {
                Some(host) => {
                    if !references.is_empty() {
                        bail!("give references or --registry HOST --all, not both");
                    }
                    list_registry(&client(&loaded), &host, repo_prefix.as_deref()).await?
                }
                None if references.is_empty() => {
                    bail!("nothing to scan: name references, or --registry HOST --all")
                }
                None => references
                    .iter()
                    .map(|s| parse_ref(&loaded, s))
                    .collect::<Result<_>>()?,
            };
            scan::run(&scanner, refs, &opts, concurrency, json).await
        }
        Command::Sbom {
            reference,
            format,
            platform,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            let r = parse_ref(&loaded, &reference)?;
            let platform = Platform::parse(platform.as_deref().unwrap_or("linux/amd64"))?;
            let scanner = Scanner::new(client(&loaded), store, loaded.defaults.clone());
            let opts = ScanOptions {
                platforms: vec![platform],
                dockerfile: None,
            };
            let (report, inv) = scanner
                .scan_sbom(&r, &opts)
                .await?
                .into_iter()
                .next()
                .context("the image has no such platform")?;
            let subject = format!("{}@{}", r.name(), report.digest);
            let doc = match format {
                SbomFormat::Cyclonedx => freshen_sbom::cyclonedx(&subject, &inv),
                SbomFormat::Spdx => {
                    freshen_sbom::spdx(&subject, &inv, &chrono::Utc::now().to_rfc3339())
                }
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(0)
        }
        Command::Images { command } => {
            let store = open_store(&cli.global, &loaded).await?;
            let q = Queries::new(store, loaded.defaults.clone());
            match command {
                ImagesCommand::Show { reference, json } => {
                    let view = q.show(&q.parse(&reference)?).await?;
                    output::image(&view, json);
                }
                ImagesCommand::Children {
                    reference,
                    recursive,
                    json,
                } => {
                    let kids = q.children(&q.parse(&reference)?, recursive).await?;
                    output::children(&kids, json);
                }
                ImagesCommand::Packages { reference, json } => {
                    let pkgs = q.packages_of(&q.parse(&reference)?).await?;
                    output::image_packages(&pkgs, json);
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
            let store = open_store(&cli.global, &loaded).await?;
            let q = Queries::new(store, loaded.defaults.clone());
            let found = q
                .package(&name, ecosystem.as_deref(), version.as_deref())
                .await?;
            output::package_versions(&name, &found, json);
            Ok(0)
        }
        Command::Serve { listen } => {
            let store = open_store(&cli.global, &loaded).await?;
            let settings = &loaded.config.server;
            let addr = listen.unwrap_or(settings.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            if !loaded.config.receivers.is_empty() {
                eprintln!(
                    "freshen: receiving webhooks; their triggers are delivered by `freshen watch` (or run `freshen watch --serve` alone)"
                );
            }
            let router = api_router(&loaded, &store, None)?;
            eprintln!("freshen: serving on http://{}", listener.local_addr()?);
            freshen_server::serve(listener, router, shutdown_signal()).await?;
            Ok(0)
        }
        Command::Vulns {
            command,
            reference,
            json,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
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
                    let q = Vulns::new(store.clone(), loaded.defaults.clone());
                    let mut done = q.import(&paths, image.as_deref()).await?;
                    if let (Some(url), Some(project)) = (harbor, project) {
                        done.extend(
                            import_harbor(&store, &url, &project, repository.as_deref()).await?,
                        );
                    }
                    output::imports(&done, json);
                }
                (Some(VulnsCommand::Images { id, json }), _) => {
                    let q = Vulns::new(store, loaded.defaults.clone());
                    output::affected_images(&q.affected_by(&id).await?, json);
                }
                (None, Some(reference)) => {
                    let q = Vulns::new(store, loaded.defaults.clone());
                    let r = q.parse(&reference)?;
                    output::image_vulns(&r, &q.vulnerabilities(&r).await?, json);
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
            json,
            dot,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            let (plan, _, _) = cascade::plan(&loaded, &store, base, image, event).await?;
            output::plan(&plan, json, dot);
            Ok(0)
        }
        Command::Rebuild {
            base,
            image,
            event,
            all,
            resume,
            parallel,
            json,
        } => {
            let store = open_store(&cli.global, &loaded).await?;
            let report = cascade::rebuild(
                &loaded,
                &store,
                cascade::RebuildArgs {
                    base,
                    image,
                    event,
                    all,
                    resume,
                    parallel,
                },
                client(&loaded),
            )
            .await?;
            output::rebuild(&report, json);
            Ok(if report.run.state == "done" {
                0
            } else {
                EXIT_ERROR
            })
        }
        Command::Rebuilds { run, limit, json } => {
            let store = open_store(&cli.global, &loaded).await?;
            match run {
                Some(id) => {
                    let r = store.rebuild(&id).await?.with_context(|| {
                        format!("no rebuild run {id:?} (see `freshen rebuilds`)")
                    })?;
                    let items = store.rebuild_items(&id).await?;
                    output::rebuild(&freshen_rebuild::RunReport { run: r, items }, json);
                }
                None => output::rebuild_runs(&store.rebuilds(false, limit).await?, json),
            }
            Ok(0)
        }
        Command::Diff { old, new, json } => {
            let store = open_store(&cli.global, &loaded).await?;
            let q = Vulns::new(store, loaded.defaults.clone());
            let diffs = q.diff(&q.parse(&old)?, &q.parse(&new)?).await?;
            output::diff(&diffs, json);
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
            let store = open_store(&cli.global, &loaded).await?;
            let q = Vulns::new(store, loaded.defaults.clone());
            let replay = q.replay(&id, now.then_some(&loaded.policies)).await?;
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
            let store = open_store(&cli.global, &loaded).await?;
            let subject = reference.map(|r| parse_ref(&loaded, &r)).transpose()?;
            let list = store
                .decisions(
                    subject.map(|r| r.to_string()).as_deref(),
                    event.as_deref(),
                    limit,
                )
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
            let store = open_store(&cli.global, &loaded).await?;
            let q = Vulns::new(store, loaded.defaults.clone());
            let refs = references
                .iter()
                .map(|r| q.parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            let checks = q
                .policy_check(&loaded.policies, policy.as_deref(), &refs)
                .await?;
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
            let source = parse_ref(&loaded, &reference)?;
            let targets = to
                .iter()
                .map(|t| promote::target(&source, t, &loaded.defaults))
                .collect::<Result<Vec<_>>>()?;
            promote::run(&client(&loaded), &source, &targets, json).await
        }
        Command::Outbox { command } => {
            let store = open_store(&cli.global, &loaded).await?;
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
                    output::deliveries(&store.deliveries(state, limit).await?, json);
                    Ok(0)
                }
                OutboxCommand::Retry { id } => {
                    if !store.retry_delivery(id, chrono::Utc::now()).await? {
                        bail!(
                            "delivery {id} is not a failed delivery (see `freshen outbox list --state failed`)"
                        );
                    }
                    println!("delivery {id} queued again");
                    Ok(0)
                }
            }
        }
    }
}

/// The scan report of every scanned artifact of a Harbor project (or one
/// repository of it), each stored for its digest. Artifacts not scanned
/// (successfully) are named on stderr and skipped.
/// The Harbor robot account in FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD.
fn harbor_credentials() -> Result<Option<freshen_harbor::Credentials>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (env("FRESHEN_HARBOR_USER"), env("FRESHEN_HARBOR_PASSWORD")) {
        (Some(username), Some(password)) => {
            Ok(Some(freshen_harbor::Credentials { username, password }))
        }
        (None, None) => Ok(None),
        _ => bail!(
            "set both FRESHEN_HARBOR_USER and FRESHEN_HARBOR_PASSWORD (a Harbor robot account), or neither"
        ),
    }
}

async fn import_harbor(
    store: &Store,
    url: &str,
    project: &str,
    repository: Option<&str>,
) -> Result<Vec<freshen_inventory::Imported>> {
    let client = freshen_harbor::Client::new(url, harbor_credentials()?)?;
    let repos = match repository {
        Some(r) if r.starts_with(&format!("{project}/")) => vec![r.to_string()],
        Some(r) => vec![format!("{project}/{r}")],
        None => client
            .repositories(project)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect(),
    };
    let mut out = Vec::new();
    for repo in &repos {
        let artifacts = client.artifacts(project, repo).await?;
        let done =
            freshen_inventory::import_harbor_artifacts(store, &client, project, repo, artifacts)
                .await?;
        for why in done.skipped {
            eprintln!("freshen: {why}: skipped");
        }
        out.extend(done.imported);
    }
    Ok(out)
}

pub(crate) fn parse_ref(loaded: &Loaded, s: &str) -> Result<Reference> {
    Ok(Reference::parse_with(s, &loaded.defaults)?)
}

fn parse_platforms(list: &[String]) -> Result<Vec<Platform>> {
    Ok(list
        .iter()
        .map(|p| Platform::parse(p))
        .collect::<Result<_, _>>()?)
}

fn client(loaded: &Loaded) -> Client {
    Client::new(ClientOptions {
        registries: loaded.config.registries.clone(),
        ..ClientOptions::default()
    })
}

/// The database URL: flag or env, then config, then a file in the data dir.
fn database_url(global: &Global, loaded: &Loaded) -> Result<String> {
    if let Some(db) = global
        .database
        .clone()
        .or_else(|| loaded.config.database.clone())
    {
        return Ok(db);
    }
    let dir = data_dir().context("no data directory: set FRESHEN_DATA_DIR, HOME, or --database")?;
    Ok(format!("sqlite://{}", dir.join("freshen.db").display()))
}

fn data_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("FRESHEN_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("freshen")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/freshen")))
}

async fn open_store(global: &Global, loaded: &Loaded) -> Result<Store> {
    let url = database_url(global, loaded)?;
    Ok(Store::open(&url).await?)
}

async fn digest(loaded: &Loaded, reference: &str, platforms: &[String], json: bool) -> Result<u8> {
    let r = parse_ref(loaded, reference)?;
    let wanted = parse_platforms(platforms)?;
    let client = client(loaded);
    let resolved = client.resolve(&r).await?;
    let manifests = if wanted.is_empty() {
        resolved.manifests.clone()
    } else {
        client.select_platforms(&r, &resolved, &wanted)?
    };
    output::digest(&r, &resolved, &manifests, json);
    Ok(0)
}

/// How `freshen check` reports and what it leaves for later.
struct CheckFlags {
    json: bool,
    exit_code: bool,
    defer_cascades: bool,
}

async fn check(
    loaded: &Loaded,
    store: Store,
    references: &[String],
    platforms: &[String],
    flags: CheckFlags,
) -> Result<u8> {
    let CheckFlags {
        json,
        exit_code,
        defer_cascades,
    } = flags;
    let watches: Vec<Watch> = if references.is_empty() {
        if loaded.watches.is_empty() {
            bail!("nothing to check: name references, or give --config with watches");
        }
        loaded.watches.clone()
    } else {
        let wanted = parse_platforms(platforms)?;
        references
            .iter()
            .map(|s| {
                let r = parse_ref(loaded, s)?;
                let configured = loaded.watches.iter().find(|w| w.reference == r);
                Ok(match configured {
                    Some(w) if wanted.is_empty() => w.clone(),
                    Some(w) => Watch {
                        platforms: wanted.clone(),
                        ..w.clone()
                    },
                    None => Watch::adhoc(
                        r,
                        if wanted.is_empty() {
                            loaded.default_platforms.clone()
                        } else {
                            wanted.clone()
                        },
                    ),
                })
            })
            .collect::<Result<_>>()?
    };
    let concurrency = loaded.config.check_concurrency.unwrap_or(32);
    let checker = checker(loaded, &store, concurrency);
    let results = checker.check_all(&watches, "poll").await?;
    let mut outcomes = deliverer(loaded, store.clone()).deliver_due().await?;
    // Then the cascades (long: the triggers went out first), unless left
    // queued for `freshen watch`.
    if !defer_cascades && let Some(c) = cascades(loaded, store)? {
        outcomes.extend(c.deliver_due().await?);
    }
    let report = output::CheckReport::new(&watches, results, outcomes, checker.client());
    report.print(json);
    Ok(if report.has_errors() {
        EXIT_ERROR
    } else if exit_code && report.fired() {
        EXIT_CHANGED
    } else {
        0
    })
}

fn read_dockerfile(
    path: &std::path::Path,
    build_args: &[String],
    target: Option<String>,
) -> Result<DockerfileInput> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read Dockerfile {}", path.display()))?;
    let mut args = std::collections::BTreeMap::new();
    for a in build_args {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("--build-arg {a:?}: expected NAME=VALUE"))?;
        args.insert(k.to_string(), v.to_string());
    }
    Ok(DockerfileInput {
        path: path.display().to_string(),
        text,
        build_args: args,
        target,
    })
}

/// Every tag of every repository of a registry (optionally under a prefix).
async fn list_registry(
    client: &Client,
    host: &str,
    prefix: Option<&str>,
) -> Result<Vec<Reference>> {
    let repos = client.catalog(host, 1000).await?;
    let mut refs = Vec::new();
    for repo in repos
        .iter()
        .filter(|r| prefix.is_none_or(|p| r.starts_with(p)))
    {
        let base = Reference::from_parts(host, repo, Some("latest"), None)?;
        for tag in client.list_tags(&base, 1000).await? {
            refs.push(base.with_tag(&tag)?);
        }
    }
    Ok(refs)
}

/// A checker whose changes are judged by the config's policies (which
/// costs nothing while every policy is `always`).
fn checker(loaded: &Loaded, store: &Store, concurrency: usize) -> Checker {
    let client = client(loaded);
    let judge = freshen_judge::Judge::new(
        Scanner::new(client.clone(), store.clone(), loaded.defaults.clone()),
        Queries::new(store.clone(), loaded.defaults.clone()),
        std::sync::Arc::new(loaded.policies.clone()),
    );
    Checker::new(client, store.clone(), concurrency).with_judge(judge)
}

fn deliverer(loaded: &Loaded, store: Store) -> Deliverer {
    Deliverer::new(
        store,
        loaded.config.triggers.clone(),
        loaded.config.outbox.clone(),
        loaded.base_dir.clone(),
    )
}

/// The deliverer of the rebuild cascades watches ask for
/// (`on_change: [cascade]`); `None` when no watch does.
fn cascades(loaded: &Loaded, store: Store) -> Result<Option<Deliverer>> {
    Ok(cascade::cascader(loaded, &store, client(loaded))?
        .map(|c| Deliverer::cascades(store, c, loaded.config.outbox.clone())))
}

/// The API's router, with the config's webhook receivers when it has any.
/// `wake` is notified when a webhook queues deliveries (the daemon's, in
/// `watch --serve`).
fn api_router(
    loaded: &Loaded,
    store: &Store,
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
) -> Result<axum::Router> {
    let settings = &loaded.config.server;
    if settings.write_tokens.is_empty() {
        tracing::warn!("no server.write_tokens in the config: POST/PUT/DELETE are refused");
    }
    let queries = Queries::new(store.clone(), loaded.defaults.clone());
    if loaded.config.receivers.is_empty() {
        return Ok(freshen_server::router(queries, settings));
    }
    let mut intake = freshen_watch::Intake::new(
        checker(loaded, store, 1),
        &loaded.watches,
        &loaded.config.receivers,
        loaded.defaults.clone(),
        &loaded.default_platforms,
    )?
    .with_harbor_credentials(harbor_credentials()?);
    if let Some(wake) = wake {
        intake = intake.with_wake(wake);
    }
    let hooks = freshen_server::Hooks::new(intake.specs(), std::sync::Arc::new(IntakeSink(intake)));
    Ok(freshen_server::router_with_hooks(queries, settings, hooks))
}

/// The watcher's intake behind the server's webhook endpoints.
struct IntakeSink(freshen_watch::Intake);

impl freshen_server::HookSink for IntakeSink {
    fn take<'a>(
        &'a self,
        receiver: &'a str,
        notice: freshen_receive::Notice,
    ) -> futures::future::BoxFuture<'a, freshen_server::HookAnswer> {
        Box::pin(async move {
            let taken = self.0.take(receiver, notice).await;
            freshen_server::HookAnswer {
                retry: taken.retry(),
                body: serde_json::to_value(&taken).expect("the answer serialises"),
            }
        })
    }
}

async fn watch(loaded: &Loaded, store: Store, serve: Option<std::net::SocketAddr>) -> Result<u8> {
    if loaded.watches.is_empty() && (serve.is_none() || loaded.config.receivers.is_empty()) {
        bail!("nothing to watch: the config has no watches (and no receivers to serve)");
    }
    let checker = checker(
        loaded,
        &store,
        loaded.config.check_concurrency.unwrap_or(32),
    );
    let settings = DaemonSettings {
        jitter: loaded
            .config
            .jitter
            .unwrap_or(DaemonSettings::default().jitter),
        ..DaemonSettings::default()
    };
    let mut daemon = Daemon::new(
        checker,
        deliverer(loaded, store.clone()),
        loaded.watches.clone(),
        settings,
    );
    if let Some(c) = cascades(loaded, store.clone())? {
        daemon = daemon.with_cascades(c);
    }
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    daemon = daemon.with_wake(wake.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = std::sync::Arc::new(tx);
    let server = match serve {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let router = api_router(loaded, &store, Some(wake.clone()))?;
            eprintln!("freshen: serving on http://{}", listener.local_addr()?);
            let mut stop = rx.clone();
            let failed = tx.clone();
            Some(tokio::spawn(async move {
                let served = freshen_server::serve(listener, router, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                // Without its server, `watch --serve` would miss every
                // webhook unnoticed: stop the daemon too.
                if let Err(e) = &served {
                    tracing::error!(error = %e, "the API server failed: stopping");
                    let _ = failed.send(true);
                }
                served
            }))
        }
        None => None,
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("signal received: finishing in-flight work");
        let _ = tx.send(true);
    });
    daemon.run(rx).await?;
    if let Some(server) = server {
        server.await??;
    }
    Ok(0)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
