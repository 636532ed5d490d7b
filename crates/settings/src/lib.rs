//! The settings and spec types of freshen's runtime layers, as the config
//! file writes them: serde types with the checks that need no I/O, and
//! nothing that runs. The config layer reads and cross-checks them; each
//! runtime layer (registry, server, actions, watch, rebuild) re-exports
//! its own under its old path and acts on them.

mod approvals;
mod builders;
mod cascade;
mod definition;
mod feeds;
pub mod message;
mod notify;
mod outbox;
mod registry;
mod rollout;
mod schedule;
pub mod server;
pub mod template;
mod triggers;
mod watch;

pub use approvals::{ApprovalSettings, Stage};
pub use builders::{
    BuildahSettings, BuilderSettings, ContainersSettings, DockerSettings, JenkinsSettings,
    KanikoSettings, PodmanSettings,
};
pub use cascade::CascadeSettings;
pub use definition::{BuildSpec, DiscoverSpec, Executor};
pub use feeds::{
    DEFAULT_FEED_MAX_SIZE, DEFAULT_FEED_SCHEDULE, Feed, FeedSource, FeedSpec, RescanSpec,
    parse_size,
};
pub use notify::NotifySettings;
pub use outbox::OutboxSettings;
pub use registry::RegistrySettings;
pub use rollout::{ClusterSpec, GitopsSpec, RolloutSettings, WorkloadKind};
pub use schedule::Schedule;
pub use server::ServerSettings;
pub use triggers::{
    CASCADE, CommandSpec, DiscordSpec, EmailSpec, EmailTls, HUB_CALLBACK, JenkinsSpec,
    MattermostSpec, SlackSpec, TeamsFormat, TeamsSpec, TriggerSpec, WebhookFormat, WebhookSpec,
    mention_id, redact_url,
};
pub use watch::{Watch, WatchSpec};
