//! Notifications end to end: `freshen check` delivers a real change on a
//! real registry to a Slack-format webhook (a loopback receiver) and by
//! email to a real SMTP server (aiosmtpd, STARTTLS with an openssl-made
//! certificate, a password from `${ENV}`); `freshen rebuild` tells
//! `notify.rebuilds` of its result; an SMTP server that refuses STARTTLS
//! leaves the delivery retrying with an error that names the server and
//! keeps the password out, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::Env;
use freshen_testkit::{
    Db, KubeApi, Pusher, Registry, SmtpOptions, SmtpServer, SmtpTls, WebhookReceiver, both_stores,
};
use serde_json::json;

const PASSWORD: &str = "smtp-s3cret-pw";

fn config(r: &str, hook: &str, smtp: &SmtpServer) -> String {
    format!(
        r#"
watches:
  - ref: {r}
    on_change: [chat, mail]
triggers:
  chat:
    slack:
      url: "{hook}"
      username: freshen
  mail:
    email:
      host: 127.0.0.1
      port: {port}
      username: freshen
      password: ${{SMTP_PASSWORD}}
      from: "freshen <freshen@example.test>"
      to: [ops@example.test]
      ca_file: {ca}
      timeout: 10s
      body: |
        {{{{ text }}}}
        Digest: {{{{ new_digest }}}}
notify:
  rebuilds: [chat]
outbox:
  initial_backoff: 1ms
"#,
        port = smtp.port(),
        ca = smtp.ca_file().display(),
    )
}

/// A re-pushed tag reaches Slack and the mailbox, rendered, in one check.
async fn a_change_reaches_slack_and_email(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("unused").await;
    let smtp = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::RequireStarttls,
        auth: Some(("freshen".into(), PASSWORD.into())),
    });
    let mut env = Env::new(db).await;
    env.env("SMTP_PASSWORD", PASSWORD);
    let r = format!("{}/app:1", reg.host());
    let secret_hook = format!("{}/services/T0/B0/xoxb-secret", hook.base_url());
    let cfg = env.config(&config(&r, &secret_hook, &smtp));
    let cfg = cfg.to_str().unwrap();

    push.push_image("app", "1", "linux/amd64", "one").await;
    env.run(&["check", "--config", cfg]).await.expect(0);
    assert!(hook.received().is_empty(), "a baseline tells nobody");
    let new = push.push_image("app", "1", "linux/amd64", "two").await;
    let run = env.run(&["check", "--config", cfg, "--json"]).await;
    run.expect(0);
    let json = run.json();
    let event = json["results"][0]["event_id"].as_str().unwrap().to_string();
    let states: Vec<(String, String)> = json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["trigger"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&("chat".into(), "delivered".into())),
        "{run}"
    );
    assert!(
        states.contains(&("mail".into(), "delivered".into())),
        "{run}"
    );

    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/services/T0/B0/xoxb-secret");
    let body = &got[0].body;
    let short = &new["sha256:".len().."sha256:".len() + 12];
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("`{r}` moved from `sha256:")),
        "{body}"
    );
    assert!(
        text.contains(&format!("to `sha256:{short}` (linux/amd64)")),
        "{body}"
    );
    assert!(text.contains(&event), "{body}");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["text"], format!("{r} changed"));
    assert_eq!(body["username"], "freshen");

    let mail = &smtp.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(mail.tls);
    assert_eq!(mail.auth_user.as_deref(), Some("freshen"));
    assert_eq!(mail.rcpt_tos, ["ops@example.test"]);
    assert_eq!(mail.subject, format!("[freshen] {r} changed"));
    assert!(
        mail.body.starts_with(&format!("{r} moved from sha256:")),
        "{}",
        mail.body
    );
    assert!(
        mail.body.contains(&format!("\nDigest: {new}")),
        "{}",
        mail.body
    );
    assert_eq!(mail.header("X-Freshen-Event-Id"), Some(event.as_str()));

    // A rebuild by hand (nothing is built on the tag: an empty run) tells
    // notify.rebuilds of its end, delivered before the command returns.
    let run = env.rebuild(cfg, &["--base", &r]).await;
    run.expect(0);
    let got = hook.wait_for(2, Duration::from_secs(10)).await;
    let text = got[1].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Rebuild run `") && text.contains("` *done*: 0 of 0 image(s) rebuilt."),
        "{}",
        got[1].body
    );
    let outbox = env.run(&["outbox", "list", "--json"]).await;
    outbox.expect(0);
    let list = outbox.json();
    let rebuild = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["payload"]["kind"] == "rebuild")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(rebuild["state"], "delivered");
    assert_eq!(rebuild["trigger"], "chat");
    let run_id = rebuild["event_id"].as_str().unwrap();
    assert_eq!(rebuild["payload"]["id"], format!("{run_id}:done"));
    assert_eq!(smtp.messages().len(), 1, "mail is not told of rebuilds");
    for out in [&run.stdout, &run.stderr, &outbox.stdout] {
        assert!(!out.contains("xoxb-secret") && !out.contains(PASSWORD));
    }
}

/// freshen requires STARTTLS; a server that doesn't offer it gets no
/// mail, and the delivery is retried with an error naming the server,
/// never the password; the chat trigger of the same event goes out.
async fn smtp_without_starttls_keeps_retrying(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("unused").await;
    let smtp = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::None,
        auth: None,
    });
    let mut env = Env::new(db).await;
    env.env("SMTP_PASSWORD", PASSWORD);
    let r = format!("{}/app:1", reg.host());
    let cfg = env.config(&config(&r, &hook.url(), &smtp));
    let cfg = cfg.to_str().unwrap();
    push.push_image("app", "1", "linux/amd64", "one").await;
    env.run(&["check", "--config", cfg]).await.expect(0);
    push.push_image("app", "1", "linux/amd64", "two").await;
    let run = env
        .run(&["check", "--config", cfg, "--json", "--log", "debug"])
        .await;
    run.expect(0);
    let mail = run.json()["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["trigger"] == "mail")
        .cloned()
        .unwrap();
    assert_eq!(mail["state"], "retrying", "{run}");
    let detail = mail["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("email smtp 127.0.0.1:{}: ", smtp.port()))
            && detail.contains("STARTTLS"),
        "{detail}"
    );
    assert!(smtp.messages().is_empty());
    assert_eq!(hook.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let outbox = env
        .run(&["outbox", "list", "--state", "pending", "--json"])
        .await;
    outbox.expect(0);
    assert!(outbox.stdout.contains("STARTTLS"), "{outbox}");
    for out in [&run.stdout, &run.stderr, &outbox.stdout, &outbox.stderr] {
        assert!(!out.contains(PASSWORD), "{out}");
    }
}

/// `freshen rollout` against the Kubernetes API double tells
/// `notify.rollouts` (a Teams Workflows webhook) how it ended.
async fn a_rollout_tells_teams(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = Pusher::new(&host, None);
    let web = format!("{host}/apps/web");
    push.push_image("apps/web", "1", "linux/amd64", "v0").await;
    let api = KubeApi::start().await;
    api.create(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": format!("{web}:1")}]}}}
    }));
    let hook = WebhookReceiver::start("unused").await;
    let env = Env::new(db).await;
    let kubeconfig = api.kubeconfig_https(env.path(), "prod", "apps");
    let cfg = env.config(&format!(
        "rollout:\n  timeout: 20s\n  poll_interval: 100ms\n  clusters:\n    prod: {{kubeconfig: {}}}\n\
         triggers:\n  team:\n    teams: {{url: \"{}/workflows/x/triggers/manual/paths/invoke?sig=s1g\"}}\n\
         notify:\n  rollouts: [team]\n",
        kubeconfig.display(),
        hook.base_url()
    ));
    push.push_image("apps/web", "1", "linux/amd64", "v1").await;
    let run = env
        .run(&[
            "rollout",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            &format!("{web}:1"),
        ])
        .await;
    run.expect(0);
    let id = run.json()["rollout"]["id"].as_str().unwrap().to_string();
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    let card = &got[0].body["attachments"][0]["content"];
    assert_eq!(got[0].body["type"], "message", "{}", got[0].body);
    assert_eq!(
        card["body"][0]["text"],
        "Roll-out done: 1 of 1 workload(s) done"
    );
    let text = card["body"][1]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Roll-out `{id}` **done**: 1 workload(s), 1 done.")),
        "{text}"
    );
    assert!(
        text.contains("- `prod/apps/deployment/web`: done (rolled out: web -> "),
        "{text}"
    );
}

/// A cascade whose build fails tells `notify.rebuilds` (Mattermost) once:
/// `check` delivers the result after the cascade, and the cascade's retry,
/// failing the same way, tells nothing new.
async fn a_failed_cascade_is_told_once(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("unused").await;
    let env = Env::new(db).await;
    let watched = format!("{}/upstream/os:1", reg.host());
    let app = format!("{}/apps/app:1", reg.host());
    common::write(
        &env.path().join("app/Dockerfile"),
        &format!("FROM {watched}\nRUN true\n"),
    );
    let cfg = env.config(&format!(
        "watches:\n  - ref: {watched}\n    on_change: [cascade]\n\
         builds:\n  - {{image: {app}, context: app}}\n\
         builders:\n  buildah: {{command: /bin/false}}\n\
         triggers:\n  chat:\n    mattermost: {{url: \"{}/hooks/k3y\", channel: builds}}\n\
         notify: {{rebuilds: [chat], failures_only: true}}\n\
         outbox: {{initial_backoff: 1ms, max_backoff: 1ms}}\n",
        hook.base_url()
    ));
    let cfg = cfg.to_str().unwrap();
    push.push_image("upstream/os", "1", "linux/amd64", "a")
        .await;
    env.run(&["check", "--config", cfg]).await.expect(0);
    push.push_image("upstream/os", "1", "linux/amd64", "b")
        .await;
    let run = env.run(&["check", "--config", cfg, "--json"]).await;
    run.expect(0);
    let deliveries = run.json()["deliveries"].clone();
    let of = |t: &str| {
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["trigger"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} delivery: {run}"))
    };
    assert_eq!(of("cascade")["state"], "retrying", "{run}");
    assert_eq!(of("chat")["state"], "delivered", "{run}");
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    let body = &got[0].body;
    assert_eq!(body["channel"], "builds");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "**failed** after a change of `{watched}`: 0 of 1 image(s) rebuilt, 1 failed."
        )),
        "{text}"
    );
    assert!(text.contains(&format!("- `{app}`: failed (")), "{text}");
    assert_eq!(body["attachments"][0]["color"], "#e01e5a");

    // The cascade is retried and fails again: no second result.
    let again = env.run(&["check", "--config", cfg, "--json"]).await;
    again.expect(0);
    let states: Vec<&str> = again.json()["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| if t == "cascade" { "cascade" } else { "other" })
        .collect();
    assert_eq!(states, ["cascade"], "{again}");
    assert_eq!(hook.received().len(), 1);
}

both_stores!(
    a_failed_cascade_is_told_once,
    a_change_reaches_slack_and_email,
    smtp_without_starttls_keeps_retrying,
    a_rollout_tells_teams
);
