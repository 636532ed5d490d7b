//! Acting on events: the durable outbox and its targets (Jenkins, webhooks,
//! commands, chat webhooks, email). Every call carries the event's stable
//! id so receivers can deduplicate; delivery is at least once, retried
//! until acknowledged.

pub mod callback;
pub mod chat;
pub mod email;
pub mod outbox;
pub mod results;
pub mod targets;
pub mod telemetry;
pub mod template;

pub use callback::{CallbackPayload, HUB_CALLBACK, HubCallback, PushedTag, Settled};
pub use outbox::{CASCADE, Deliverer, Local, LocalTarget, OutboxSettings, Outcome};
pub use targets::{
    CommandSpec, DeliveryError, DiscordSpec, EmailSpec, EmailTls, JenkinsSpec, MattermostSpec,
    SlackSpec, TeamsFormat, TeamsSpec, TriggerSpec, WebhookFormat, WebhookSpec, redact_url,
    signature,
};
