//! Why a call to Jenkins failed. Messages name Jenkins (its URL redacted),
//! the call and what to check; they never hold the token.

use std::fmt;

/// Why a call to Jenkins failed.
#[derive(Debug, thiserror::Error)]
pub enum JenkinsError {
    /// The HTTP client could not be set up.
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    /// Jenkins never answered the call.
    #[error("Jenkins {jenkins} {call}: {failure}")]
    NoAnswer {
        /// Jenkins' URL, redacted.
        jenkins: String,
        /// The call: `job <name>`, `queue item <id>`, ...
        call: String,
        /// What kind of failure.
        failure: NoAnswer,
    },
    /// Jenkins answered the call with an error status.
    #[error("Jenkins {jenkins} {call}: HTTP {status}{}", hint(*status))]
    Status {
        /// Jenkins' URL, redacted.
        jenkins: String,
        /// The call: `job <name>`, `queue item <id>`, ...
        call: String,
        /// The HTTP status.
        status: u16,
    },
    /// The crumb issuer answered with an error status.
    #[error("Jenkins {jenkins}: crumb issuer answered HTTP {status}{}", hint(*status))]
    CrumbStatus {
        /// Jenkins' URL, redacted.
        jenkins: String,
        /// The HTTP status.
        status: u16,
    },
    /// The crumb issuer answered something that is not a crumb.
    #[error("Jenkins {jenkins}: the crumb issuer's answer is not a crumb")]
    NotACrumb {
        /// Jenkins' URL, redacted.
        jenkins: String,
    },
    /// An answer that should be JSON is not.
    #[error("Jenkins {jenkins} {call}: the answer is not JSON")]
    NotJson {
        /// Jenkins' URL, redacted.
        jenkins: String,
        /// The call: `queue item <id>`, `job <name> build #<n>`.
        call: String,
    },
}

impl JenkinsError {
    /// The HTTP status Jenkins answered, if it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            JenkinsError::Status { status, .. } | JenkinsError::CrumbStatus { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// How a request Jenkins never answered failed. The reqwest error itself
/// is left out: its text can hold a URL with credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within the per-request timeout.
    TimedOut,
    /// No connection could be made.
    NoConnection,
    /// Anything else.
    Failed,
}

impl NoAnswer {
    /// The kind of `e`.
    pub(crate) fn of(e: &reqwest::Error) -> NoAnswer {
        if e.is_timeout() {
            NoAnswer::TimedOut
        } else if e.is_connect() {
            NoAnswer::NoConnection
        } else {
            NoAnswer::Failed
        }
    }
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoAnswer::TimedOut => "timed out",
            NoAnswer::NoConnection => "could not connect",
            NoAnswer::Failed => "request failed",
        })
    }
}

/// What to check, for a status Jenkins answered.
fn hint(status: u16) -> &'static str {
    match status {
        401 => " (check jenkins.user and jenkins.token)",
        403 => " (the user lacks Job/Build permission, or the crumb was refused)",
        404 => " (no such job)",
        302 | 303 => " (redirected: Jenkins wants a login; set jenkins.user and jenkins.token)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_and_what_to_check() {
        let e = JenkinsError::Status {
            jenkins: "http://j:8080/…".into(),
            call: "job images/app".into(),
            status: 401,
        };
        assert_eq!(
            e.to_string(),
            "Jenkins http://j:8080/… job images/app: HTTP 401 (check jenkins.user and jenkins.token)"
        );
        assert_eq!(e.status(), Some(401));
        let e = JenkinsError::CrumbStatus {
            jenkins: "http://j/…".into(),
            status: 500,
        };
        assert_eq!(
            e.to_string(),
            "Jenkins http://j/…: crumb issuer answered HTTP 500"
        );
        let e = JenkinsError::NoAnswer {
            jenkins: "http://j/…".into(),
            call: "queue item 4".into(),
            failure: NoAnswer::NoConnection,
        };
        assert_eq!(
            e.to_string(),
            "Jenkins http://j/… queue item 4: could not connect"
        );
        assert_eq!(e.status(), None);
    }
}
