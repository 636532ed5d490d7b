//! Email notifications over SMTP (lettre): STARTTLS (required) by
//! default, or TLS from the first byte, or none for a local relay;
//! rustls with the system's roots plus a configured CA file. The subject
//! and the plain-text body are the payload's message templates.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use freshen_settings::message::{self, Markup, Part};
use freshen_settings::{EmailSpec, EmailTls};

use crate::targets::{Ack, DeliveryError};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A subject's length at most: longer ones are cut (RFC 5322 asks lines
/// of at most 998 characters; mail clients show far fewer).
const SUBJECT: usize = 250;

/// What an email says: its subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// One line.
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// The subject and body of `payload`'s email: the configured templates,
/// else `[freshen] ` and the built-in title, and the built-in message.
pub fn compose(spec: &EmailSpec, payload: &Value) -> Email {
    let subject = match &spec.subject {
        Some(t) => message::render(Some(t), Part::Title, payload, Markup::Plain),
        None => {
            let mut r = message::render(None, Part::Title, payload, Markup::Plain);
            r.text = format!("[freshen] {}", r.text);
            r
        }
    };
    let body = message::render(spec.body.as_ref(), Part::Body, payload, Markup::Plain);
    for why in [&subject.fell_back, &body.fell_back].into_iter().flatten() {
        tracing::warn!(error = %why, "an email template failed on this payload; the built-in one was used");
    }
    Email {
        subject: crate::chat::truncate(&subject.text, SUBJECT),
        body: body.text,
    }
}

/// `host:port` as errors show it (never the user or password).
fn shown(spec: &EmailSpec) -> String {
    format!("email smtp {}:{}", spec.host, spec.port())
}

/// A failure that retrying can't fix (the config is wrong).
fn refused(spec: &EmailSpec, what: String) -> DeliveryError {
    DeliveryError {
        message: format!("{}: {what}", shown(spec)),
        retryable: false,
    }
}

/// Sends `payload`'s email to every recipient in one SMTP transaction.
/// `id` (the delivery's) makes its `Message-ID`, the same on every retry.
/// The server's permanent refusal (5xx) fails the delivery at once;
/// anything else (connection refused, STARTTLS missing, a 4xx, a
/// timeout) is retried.
pub async fn deliver_email(
    spec: &EmailSpec,
    payload: &Value,
    id: i64,
) -> Result<Ack, DeliveryError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mail = compose(spec, payload);
    let from: Mailbox = spec
        .from
        .parse()
        .map_err(|e| refused(spec, format!("from {:?}: {e}", spec.from)))?;
    let domain = from.email.domain().to_string();
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject)
        .message_id(Some(format!("<freshen.delivery.{id}@{domain}>")))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .header(ContentType::TEXT_PLAIN);
    if let Some(event) = payload.get("id").and_then(Value::as_str) {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Freshen-Event-Id"),
            event.to_string(),
        ));
    }
    for to in &spec.to {
        let mbox: Mailbox = to
            .parse()
            .map_err(|e| refused(spec, format!("to {to:?}: {e}")))?;
        builder = builder.to(mbox);
    }
    let email = builder
        .body(mail.body)
        .map_err(|e| refused(spec, format!("the message can't be built: {e}")))?;
    let transport = transport(spec)?;
    match transport.send(email).await {
        Ok(response) => Ok(Some(
            response
                .message()
                .next()
                .map(|m| format!("{} {m}", response.code()))
                .unwrap_or_else(|| response.code().to_string()),
        )),
        Err(e) => Err(DeliveryError {
            message: format!("{}: {e}", shown(spec)),
            retryable: !e.is_permanent(),
        }),
    }
}

/// The SMTP transport of `spec`: its TLS mode, CA file, credentials,
/// `EHLO` name and timeout.
fn transport(spec: &EmailSpec) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
    let tls = match spec.tls {
        EmailTls::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(spec.host.clone());
            if let Some(path) = &spec.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| refused(spec, format!("ca_file {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| refused(spec, format!("ca_file {}: {e}", path.display())))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| refused(spec, format!("TLS: {e}")))?;
            match mode {
                EmailTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            }
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(spec.host.clone())
        .port(spec.port())
        .tls(tls)
        .timeout(Some(spec.timeout.unwrap_or(DEFAULT_TIMEOUT)));
    if let Some(name) = &spec.helo_name {
        b = b.hello_name(ClientId::Domain(name.clone()));
    }
    if let (Some(user), Some(password)) = (&spec.username, &spec.password) {
        b = b.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshen_settings::message::{Kind, sample};

    #[test]
    fn subject_and_body_by_default_and_by_template() {
        let spec: EmailSpec = serde_json::from_value(serde_json::json!({
            "host": "smtp.example", "from": "freshen@example.com", "to": ["ops@example.com"]
        }))
        .unwrap();
        let m = compose(&spec, &sample(Kind::Rebuild));
        assert_eq!(
            m.subject,
            "[freshen] Rebuild failed: 1 of 2 image(s) rebuilt"
        );
        assert!(
            m.body
                .starts_with("Rebuild run 0190a5d2-7c4e-7000-8000-000000000003 failed")
        );
        let spec: EmailSpec = serde_json::from_value(serde_json::json!({
            "host": "smtp.example", "from": "freshen@example.com", "to": ["ops@example.com"],
            "subject": "{{ kind }}\n{{ ref }}", "body": {"change": "{{ ref }} is {{ new_digest }}"}
        }))
        .unwrap();
        let m = compose(&spec, &sample(Kind::Change));
        assert_eq!(m.subject, "change registry.example/library/debian:bookworm");
        assert_eq!(
            m.body,
            "registry.example/library/debian:bookworm is sha256:2222222222222222222222222222222222222222222222222222222222222222"
        );
        // Kinds the per-kind body leaves out get the built-in one.
        assert!(
            compose(&spec, &sample(Kind::Rollout))
                .body
                .starts_with("Roll-out ")
        );
    }
}
