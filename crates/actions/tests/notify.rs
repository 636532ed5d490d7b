//! Chat and email notifications against real receivers: a loopback HTTP
//! receiver for the chat webhooks (bodies checked against each service's
//! documented shape) and a real SMTP server (aiosmtpd) with STARTTLS on a
//! certificate made by openssl, and the ways SMTP fails.

use std::time::Duration;

use freshen_actions::chat;
use freshen_actions::email::deliver_email;
use freshen_actions::{DiscordSpec, EmailSpec, MattermostSpec, SlackSpec, TeamsSpec};
use freshen_settings::message::{Kind, sample};
use freshen_testkit::{SmtpOptions, SmtpServer, SmtpTls, WebhookReceiver};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cret-smtp-pass";

fn spec<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("spec")
}

fn email(server: &SmtpServer, extra: Value) -> EmailSpec {
    let mut v = json!({
        "host": "127.0.0.1",
        "port": server.port(),
        "username": "freshen",
        "password": PASSWORD,
        "from": "freshen <freshen@example.test>",
        "to": ["ops@example.test", "Dev Team <dev@example.test>"],
        "ca_file": server.ca_file(),
        "timeout": "10s",
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    spec(v)
}

fn auth() -> SmtpOptions {
    SmtpOptions {
        tls: SmtpTls::RequireStarttls,
        auth: Some(("freshen".into(), PASSWORD.into())),
    }
}

/// A change event's email goes over STARTTLS, authenticated, to every
/// recipient, with the rendered subject and body; a per-kind template
/// gives a rebuild's result its own.
#[tokio::test]
async fn email_over_starttls_reaches_a_real_smtp_server() {
    let server = SmtpServer::start(auth());
    let e = email(&server, json!({}));
    let payload = sample(Kind::Change);
    let ack = deliver_email(&e, &payload, 41)
        .await
        .unwrap_or_else(|err| panic!("{}: {}", err.message, server.log()));
    assert!(
        ack.unwrap().starts_with("250"),
        "the server's answer is kept"
    );
    let m = &server.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(m.tls, "sent after STARTTLS");
    assert_eq!(m.auth_user.as_deref(), Some("freshen"));
    assert_eq!(m.mail_from, "freshen@example.test");
    assert_eq!(m.rcpt_tos, ["ops@example.test", "dev@example.test"]);
    assert_eq!(
        m.subject,
        "[freshen] registry.example/library/debian:bookworm changed"
    );
    assert_eq!(
        m.body,
        "registry.example/library/debian:bookworm moved from sha256:111111111111 to sha256:222222222222 (linux/amd64).\n\
         Seen by poll at 2024-07-01T12:00:00Z; event 0190a5d2-7c4e-7000-8000-000000000001.\n"
    );
    assert_eq!(
        m.header("Message-ID"),
        Some("<freshen.delivery.41@example.test>")
    );
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert_eq!(
        m.header("X-Freshen-Event-Id"),
        Some("0190a5d2-7c4e-7000-8000-000000000001")
    );
    assert!(m.header("Content-Type").unwrap().starts_with("text/plain"));

    let e = email(
        &server,
        json!({"subject": {"rebuild": "Run {{ run.id }}: {{ run.state }} – {{ counts.failed }} failed"},
               "body": "{{ title }}\n{% for i in items %}{{ i.image }} {{ i.state }}\n{% endfor %}"}),
    );
    deliver_email(&e, &sample(Kind::Rebuild), 42).await.unwrap();
    let m = &server.wait_for(2, Duration::from_secs(10)).await[1];
    assert_eq!(
        m.subject,
        "Run 0190a5d2-7c4e-7000-8000-000000000003: failed – 1 failed"
    );
    assert_eq!(
        m.body,
        "Rebuild failed: 1 of 2 image(s) rebuilt\nregistry.example/team/app:1 done\nregistry.example/team/api:1 failed\n"
    );
}

/// SMTP failures say what failed and where, never the password: a wrong
/// port and a server without STARTTLS are retried, a refused login is not.
#[tokio::test]
async fn smtp_failures_are_clear_and_keep_the_password_out() {
    let server = SmtpServer::start(auth());
    let payload = sample(Kind::Change);
    let check = |message: &str| {
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(message.starts_with("email smtp 127.0.0.1:"), "{message}");
    };

    // Nothing listens on this port.
    let closed = freshen_testkit::free_port();
    let err = deliver_email(&email(&server, json!({"port": closed})), &payload, 1)
        .await
        .unwrap_err();
    check(&err.message);
    assert!(
        err.message.contains(&format!(":{closed}:")),
        "{}",
        err.message
    );
    assert!(
        err.message.to_lowercase().contains("connect"),
        "{}",
        err.message
    );
    assert!(err.retryable);

    // A server that offers no STARTTLS, which freshen requires.
    let plain = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::None,
        auth: None,
    });
    let err = deliver_email(&email(&plain, json!({})), &payload, 2)
        .await
        .unwrap_err();
    check(&err.message);
    assert!(err.message.contains("STARTTLS"), "{}", err.message);
    assert!(err.retryable);
    assert!(plain.messages().is_empty());

    // A certificate freshen does not trust (no ca_file).
    let mut untrusted = email(&server, json!({}));
    untrusted.ca_file = None;
    let err = deliver_email(&untrusted, &payload, 3).await.unwrap_err();
    check(&err.message);
    assert!(
        err.message.contains("invalid peer certificate"),
        "{}",
        err.message
    );

    // A wrong password: refused for good (5xx), not retried.
    let err = deliver_email(
        &email(&server, json!({"password": "wrong-pass"})),
        &payload,
        4,
    )
    .await
    .unwrap_err();
    check(&err.message);
    assert!(!err.message.contains("wrong-pass"), "{}", err.message);
    assert!(err.message.contains("535"), "{}", err.message);
    assert!(!err.retryable);
    assert!(server.messages().is_empty());
}

/// Each chat service gets its documented body, as JSON, at the webhook's
/// URL; a 4xx answer fails at once (and says what the service said), a
/// 429 or 5xx is retried, and errors show the URL without its secret path.
#[tokio::test]
async fn chat_bodies_reach_the_webhook_in_each_services_shape() {
    let rx = WebhookReceiver::start("unused").await;
    let url = |path: &str| format!("{}/{path}", rx.base_url());

    let slack: SlackSpec = spec(json!({"url": url("services/T0/B0/tok3n")}));
    chat::deliver_slack(&slack, &sample(Kind::Vulnerability))
        .await
        .unwrap();
    let teams: TeamsSpec = spec(json!({"url": url("workflows/abc/triggers/manual?sig=tok3n")}));
    chat::deliver_teams(&teams, &sample(Kind::Approval))
        .await
        .unwrap();
    let mm: MattermostSpec = spec(json!({"url": url("hooks/tok3n"), "username": "freshen"}));
    chat::deliver_mattermost(&mm, &sample(Kind::Rebuild))
        .await
        .unwrap();
    let discord: DiscordSpec =
        spec(json!({"url": url("api/webhooks/1/tok3n"), "mentions": ["<@&42>"]}));
    chat::deliver_discord(&discord, &sample(Kind::Rollout))
        .await
        .unwrap();

    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    for r in &got {
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
        );
    }
    // Slack: text + blocks (header, mrkdwn sections, fields, context).
    assert_eq!(got[0].path, "/services/T0/B0/tok3n");
    let s = &got[0].body;
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .contains("*CVE-2023-5363* (critical)"),
        "{s}"
    );
    let types: Vec<&str> = s["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["header", "section", "section", "context"]);
    assert_eq!(
        s["blocks"][0]["text"]["text"],
        "registry.example/library/debian:bookworm is vulnerable (1 finding(s))"
    );
    // Teams (Workflows): a message with one Adaptive Card attachment.
    let t = &got[1].body;
    assert_eq!(t["type"], "message");
    assert_eq!(
        t["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &t["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(
        card["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains("`freshen approve 0190a5d2-7c4e-7000-8000-000000000002`")
    );
    // Mattermost: text, username, an attachment with fields.
    let m = &got[2].body;
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .starts_with("Rebuild run `0190a5d2-7c4e-7000-8000-000000000003` **failed**")
    );
    assert_eq!(m["username"], "freshen");
    assert_eq!(
        m["attachments"][0]["fields"][1],
        json!({"short": true, "title": "State", "value": "failed"})
    );
    // Discord: the mention in content, an embed, only that role pinged.
    let d = &got[3].body;
    assert_eq!(d["content"], "<@&42>");
    assert_eq!(d["allowed_mentions"], json!({"parse": [], "roles": ["42"]}));
    assert_eq!(
        d["embeds"][0]["title"],
        "Roll-out done: 1 of 1 workload(s) done"
    );
    assert_eq!(d["embeds"][0]["color"], 0x2eb67d);

    // Slack's documented refusals: a 4xx is not retried, a 429 is.
    rx.fail_next(1, 404);
    let err = chat::deliver_slack(&slack, &sample(Kind::Change))
        .await
        .unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message.starts_with("slack http://127.0.0.1:"),
        "{}",
        err.message
    );
    assert!(err.message.contains("HTTP 404"), "{}", err.message);
    assert!(!err.message.contains("tok3n"), "{}", err.message);
    rx.fail_next(1, 429);
    let err = chat::deliver_discord(&discord, &sample(Kind::Change))
        .await
        .unwrap_err();
    assert!(err.retryable, "{}", err.message);
    assert!(!err.message.contains("tok3n"), "{}", err.message);
}
