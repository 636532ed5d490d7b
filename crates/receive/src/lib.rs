//! Incoming registry webhooks: who may call (a secret key in the path, a
//! bearer token, an HMAC signature), and what a call says (the tags pushed,
//! the scans completed, where to report back).
//!
//! Four formats, one per receiver kind:
//!
//! | kind | sender | what counts |
//! | --- | --- | --- |
//! | `dockerhub` | Docker Hub repository webhooks | `push_data.tag` of `repository.repo_name`; `callback_url` |
//! | `registry` | CNCF Distribution notifications | `push` events of manifests with a tag |
//! | `harbor` | Harbor webhooks, default and CloudEvents formats | `PUSH_ARTIFACT` resources with a tag; `SCANNING_COMPLETED` |
//! | `generic` | anything | a CloudEvent whose data (or `subject`) names a `ref`, or `{"ref", "digest"}` |
//!
//! Nothing here talks to the network or a store: the server authenticates
//! and parses with this crate, and the watcher turns each push into a check
//! of the tag, so a webhook and a poll of the same digest are one change.

mod auth;
mod callback;
mod formats;
mod spec;

pub use auth::{Denied, Gate, Presented, bearer_token};
pub use callback::{DOCKER_HUB_CALLBACKS, prefix as callback_prefix};
pub use formats::{Headers, Notice, ParseError, Push, Scan, parse};
pub use spec::{CallbackSpec, Kind, ReceiverSpec};
