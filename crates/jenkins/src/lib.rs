//! A small client of Jenkins' remote access API, shared by the Jenkins
//! trigger (start a job, don't wait), the Docker Hub callback (follow a
//! started job to its result) and the Jenkins build executor (start a job
//! and follow it to its result): basic auth with an API token, a CSRF
//! crumb bound to the session cookie, redirects treated as failures.
//!
//! The token is a secret: it is sent, never shown (not in `Debug`, logs or
//! errors); Jenkins' URL is shown by scheme, host and port only.

mod error;
mod job;
mod queue;
mod session;

pub use error::{JenkinsError, NoAnswer};
pub use job::job_path;
pub use queue::{BuildState, QueueItem, QueueState};
pub use session::{Endpoint, Session};
