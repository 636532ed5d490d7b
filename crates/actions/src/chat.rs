//! Chat notifications: the bodies of Slack, Microsoft Teams, Mattermost
//! and Discord incoming webhooks, each in its documented shape and within
//! its documented limits, rendered from the payload's message templates,
//! and the POST that delivers them.

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use freshen_settings::message::{self, Kind, Markup, MessageTemplate, Part, Tone};
use freshen_settings::{DiscordSpec, MattermostSpec, SlackSpec, TeamsFormat, TeamsSpec};

use crate::targets::{Ack, DeliveryError, http_client, redact_url, send_failure};

/// Slack: a section block's text.
const SLACK_SECTION: usize = 3000;
/// Slack: a header block's text.
const SLACK_HEADER: usize = 150;
/// Slack: a section's fields, and each field's text.
const SLACK_FIELDS: usize = 10;
const SLACK_FIELD: usize = 2000;
/// Slack: sections the message may take (a message has at most 50 blocks).
const SLACK_SECTIONS: usize = 10;
/// Slack: a message's `text` (longer ones are cut by Slack).
const SLACK_TEXT: usize = 40_000;
/// Teams: a card's text, in bytes (a webhook message is about 28 KB at most).
const TEAMS_TEXT_BYTES: usize = 20_000;
/// Teams: a title and each fact.
const TEAMS_LINE: usize = 400;
/// Mattermost: a post's message (longer ones are split into several posts).
const MATTERMOST_TEXT: usize = 16_383;
/// Discord: `content`, an embed's title, description, field names and
/// values, fields per embed, footer, and all of an embed's text together.
const DISCORD_CONTENT: usize = 2000;
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
const DISCORD_FIELD_NAME: usize = 256;
const DISCORD_FIELD_VALUE: usize = 1024;
const DISCORD_FIELDS: usize = 25;
const DISCORD_EMBED_TOTAL: usize = 6000;
/// Discord: a username.
const DISCORD_USERNAME: usize = 80;

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` cut to at most `max` bytes (on a character boundary), ending in `…`.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `s` in pieces of at most `max` characters, cut at line ends where it can.
fn chunks(s: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in s.split_inclusive('\n') {
        let mut line = line.to_string();
        while line.chars().count() > max {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            let head: String = line.chars().take(max).collect();
            line = line.chars().skip(max).collect();
            out.push(head);
        }
        if current.chars().count() + line.chars().count() > max {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(&line);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out.into_iter()
        .map(|c| c.trim_end().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// A message's parts, rendered.
struct Message {
    title: String,
    text: String,
    facts: Vec<(String, String)>,
    tone: Tone,
    kind: Kind,
}

impl Message {
    fn render(
        template: Option<&MessageTemplate>,
        title: Option<&MessageTemplate>,
        fields: bool,
        payload: &Value,
        markup: Markup,
    ) -> Message {
        let body = message::render(template, Part::Body, payload, markup);
        let head = message::render(title, Part::Title, payload, markup);
        for why in [&body.fell_back, &head.fell_back].into_iter().flatten() {
            tracing::warn!(error = %why, "a message template failed on this payload; the built-in one was used");
        }
        Message {
            title: head.text,
            text: body.text,
            facts: if fields {
                message::facts(payload)
            } else {
                Vec::new()
            },
            tone: Tone::of(payload),
            kind: Kind::of(payload),
        }
    }

    /// `freshen · <kind> · <id>`: where a message came from.
    fn footer(&self, payload: &Value) -> String {
        match payload.get("id").and_then(Value::as_str) {
            Some(id) => format!("freshen · {} · {id}", self.kind.as_str()),
            None => format!("freshen · {}", self.kind.as_str()),
        }
    }
}

/// Slack's three control characters escaped, for text freshen writes
/// into `mrkdwn` itself (the templates escape their values).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body of a Slack incoming webhook: `text` (the notification's
/// fallback) and Block Kit `blocks`: a `header`, the message in `mrkdwn`
/// `section`s, the facts as a section's `fields`, a `context` line.
pub fn slack_body(spec: &SlackSpec, payload: &Value) -> Value {
    let m = Message::render(
        spec.template.as_ref(),
        spec.title.as_ref(),
        spec.fields,
        payload,
        Markup::Slack,
    );
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&m.title, SLACK_HEADER), "emoji": true},
    })];
    let mut sections = chunks(&m.text, SLACK_SECTION);
    if sections.len() > SLACK_SECTIONS {
        sections.truncate(SLACK_SECTIONS);
        let last = sections.last_mut().expect("ten sections");
        *last = truncate(&format!("{last}\n…"), SLACK_SECTION);
    }
    for s in sections {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": s}}));
    }
    if !m.facts.is_empty() {
        let fields: Vec<Value> = m
            .facts
            .iter()
            .take(SLACK_FIELDS)
            .map(|(k, v)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), SLACK_FIELD)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_escape(&m.footer(payload))}],
    }));
    let mut body = json!({
        "text": truncate(&m.text, SLACK_TEXT),
        "blocks": blocks,
    });
    if let Some(u) = &spec.username {
        body["username"] = json!(u);
    }
    if let Some(i) = &spec.icon_url {
        body["icon_url"] = json!(i);
    }
    body
}

/// The Adaptive Card colour of a tone.
fn adaptive_color(t: Tone) -> &'static str {
    match t {
        Tone::Good => "Good",
        Tone::Info => "Accent",
        Tone::Warning => "Warning",
        Tone::Bad => "Attention",
    }
}

/// The body of a Teams webhook. `workflows`: a message whose one
/// attachment is an Adaptive Card 1.4 (title, message, FactSet), as
/// Workflows webhooks take it; `messagecard`: a legacy `MessageCard`
/// (title, `themeColor`, a section with the message and its facts).
pub fn teams_body(spec: &TeamsSpec, payload: &Value) -> Value {
    let m = Message::render(
        spec.template.as_ref(),
        spec.title.as_ref(),
        spec.fields,
        payload,
        Markup::Markdown,
    );
    let title = truncate(&m.title, TEAMS_LINE);
    let text = truncate_bytes(&m.text, TEAMS_TEXT_BYTES);
    let facts = m
        .facts
        .iter()
        .map(|(k, v)| (truncate(k, TEAMS_LINE), truncate(v, TEAMS_LINE)));
    match spec.format {
        TeamsFormat::Workflows => {
            let mut card_body = vec![
                json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                       "wrap": true, "color": adaptive_color(m.tone)}),
                json!({"type": "TextBlock", "text": text, "wrap": true}),
            ];
            if !m.facts.is_empty() {
                card_body.push(json!({
                    "type": "FactSet",
                    "facts": facts.map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>(),
                }));
            }
            card_body.push(
                json!({"type": "TextBlock", "text": m.footer(payload), "size": "Small",
                                  "isSubtle": true, "wrap": true}),
            );
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": card_body,
                        "msteams": {"width": "Full"},
                    },
                }],
            })
        }
        TeamsFormat::Messagecard => {
            // A MessageCard's Markdown joins single lines: keep them apart.
            let mut section = json!({"text": text.replace('\n', "\n\n"), "markdown": true});
            if !m.facts.is_empty() {
                section["facts"] = facts
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
                    .into();
            }
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": title,
                "themeColor": m.tone.hex().trim_start_matches('#'),
                "title": title,
                "sections": [section],
            })
        }
    }
}

/// The body of a Mattermost incoming webhook: the message in `text`, and
/// an attachment in the tone's colour with the title and the facts.
pub fn mattermost_body(spec: &MattermostSpec, payload: &Value) -> Value {
    let m = Message::render(
        spec.template.as_ref(),
        spec.title.as_ref(),
        spec.fields,
        payload,
        Markup::Markdown,
    );
    let mut attachment = json!({
        "fallback": m.title,
        "color": m.tone.hex(),
        "title": m.title,
        "footer": m.footer(payload),
    });
    if !m.facts.is_empty() {
        attachment["fields"] = m
            .facts
            .iter()
            .map(|(k, v)| json!({"short": true, "title": k, "value": v}))
            .collect::<Vec<_>>()
            .into();
    }
    let mut body = json!({
        "text": truncate(&m.text, MATTERMOST_TEXT),
        "attachments": [attachment],
    });
    for (k, v) in [
        ("channel", &spec.channel),
        ("username", &spec.username),
        ("icon_url", &spec.icon_url),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    body
}

/// The body of a Discord webhook. With `fields` (the default) an embed
/// (title, the message as its description, the facts, the tone's colour,
/// a footer), the mentions in `content`; without, the mentions and the
/// message in `content`. `allowed_mentions` lets only the configured
/// mentions ping: a value in a message never does.
pub fn discord_body(spec: &DiscordSpec, payload: &Value) -> Value {
    let m = Message::render(
        spec.template.as_ref(),
        spec.title.as_ref(),
        spec.fields,
        payload,
        Markup::Markdown,
    );
    let mentions = spec.mentions.join(" ");
    let mut allowed = json!({"parse": []});
    let (mut users, mut roles) = (Vec::new(), Vec::new());
    for mention in &spec.mentions {
        match freshen_settings::mention_id(mention) {
            Some((true, id)) => roles.push(id.to_string()),
            Some((false, id)) => users.push(id.to_string()),
            None => allowed["parse"] = json!(["everyone"]),
        }
    }
    if !users.is_empty() {
        allowed["users"] = json!(users);
    }
    if !roles.is_empty() {
        allowed["roles"] = json!(roles);
    }
    let mut body = json!({"allowed_mentions": allowed});
    if spec.fields {
        let title = truncate(&m.title, DISCORD_TITLE);
        let footer = m.footer(payload);
        let fields: Vec<(String, String)> = m
            .facts
            .iter()
            .take(DISCORD_FIELDS)
            .map(|(k, v)| {
                (
                    truncate(k, DISCORD_FIELD_NAME),
                    truncate(v, DISCORD_FIELD_VALUE),
                )
            })
            .collect();
        // All of an embed's text counts against one limit: the message
        // gives way to the title, facts and footer.
        let used = title.chars().count()
            + footer.chars().count()
            + fields
                .iter()
                .map(|(k, v)| k.chars().count() + v.chars().count())
                .sum::<usize>();
        let room = DISCORD_EMBED_TOTAL
            .saturating_sub(used)
            .min(DISCORD_DESCRIPTION);
        let color = i64::from_str_radix(m.tone.hex().trim_start_matches('#'), 16).unwrap_or(0);
        body["embeds"] = json!([{
            "title": title,
            "description": truncate(&m.text, room),
            "color": color,
            "fields": fields.into_iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect::<Vec<_>>(),
            "footer": {"text": footer},
        }]);
        if !mentions.is_empty() {
            body["content"] = json!(truncate(&mentions, DISCORD_CONTENT));
        }
    } else {
        let content = if mentions.is_empty() {
            m.text
        } else {
            format!("{mentions} {}", m.text)
        };
        body["content"] = json!(truncate(&content, DISCORD_CONTENT));
    }
    if let Some(u) = &spec.username {
        body["username"] = json!(truncate(u, DISCORD_USERNAME));
    }
    if let Some(a) = &spec.avatar_url {
        body["avatar_url"] = json!(a);
    }
    body
}

/// POSTs `body` to a chat webhook `url` as JSON. Any 2xx acknowledges
/// (Slack and Mattermost answer `200 ok`, Teams' Workflows `202`, Discord
/// `204`). 429, 408 and 5xx are retried; another 4xx says the message or
/// the URL is wrong, which retrying can't fix: the delivery fails at once,
/// with the service's answer (`freshen outbox retry` once fixed).
pub async fn post(
    service: &str,
    url: &str,
    timeout: Option<std::time::Duration>,
    body: &Value,
) -> Result<Ack, DeliveryError> {
    let shown = format!("{service} {}", redact_url(url));
    let client = http_client(timeout)?;
    let resp = client
        .post(url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(serde_json::to_vec(body).expect("JSON values serialise"))
        .send()
        .await
        .map_err(|e| DeliveryError {
            message: send_failure(&shown, &e),
            retryable: true,
        })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(None);
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (Retry-After: {v})"))
        .unwrap_or_default();
    let answer = resp.text().await.unwrap_or_default();
    let answer = scrub(&answer, url);
    let code = status.as_u16();
    Err(DeliveryError {
        message: format!(
            "{shown}: HTTP {code}{retry_after}{}",
            if answer.is_empty() {
                String::new()
            } else {
                format!(": {answer}")
            }
        ),
        retryable: code == 429 || code == 408 || status.is_server_error(),
    })
}

/// A service's answer on one short line, without the webhook's URL or its
/// secret path, should the service echo them.
fn scrub(answer: &str, url: &str) -> String {
    let mut s = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Ok(u) = url::Url::parse(url) {
        for secret in [url, u.path()] {
            if secret.len() > 1 {
                s = s.replace(secret, "…");
            }
        }
    }
    truncate(&s, 300)
}

/// Delivers to a Slack incoming webhook.
pub async fn deliver_slack(spec: &SlackSpec, payload: &Value) -> Result<Ack, DeliveryError> {
    post("slack", &spec.url, spec.timeout, &slack_body(spec, payload)).await
}

/// Delivers to a Teams webhook.
pub async fn deliver_teams(spec: &TeamsSpec, payload: &Value) -> Result<Ack, DeliveryError> {
    post("teams", &spec.url, spec.timeout, &teams_body(spec, payload)).await
}

/// Delivers to a Mattermost incoming webhook.
pub async fn deliver_mattermost(
    spec: &MattermostSpec,
    payload: &Value,
) -> Result<Ack, DeliveryError> {
    post(
        "mattermost",
        &spec.url,
        spec.timeout,
        &mattermost_body(spec, payload),
    )
    .await
}

/// Delivers to a Discord webhook.
pub async fn deliver_discord(spec: &DiscordSpec, payload: &Value) -> Result<Ack, DeliveryError> {
    post(
        "discord",
        &spec.url,
        spec.timeout,
        &discord_body(spec, payload),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshen_settings::message::sample;

    fn spec<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo!", 5), "héll…");
        assert_eq!(truncate_bytes("ééé", 5), "é…");
        assert_eq!(
            chunks("a\nbb\nccc\n", 5),
            vec!["a\nbb".to_string(), "ccc".into()]
        );
        assert_eq!(chunks("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn slack_is_blocks_with_a_fallback_text() {
        let s: SlackSpec =
            spec(json!({"url": "https://hooks.slack.com/services/T/B/x", "username": "freshen"}));
        let b = slack_body(&s, &sample(Kind::Change));
        assert!(
            b["text"]
                .as_str()
                .unwrap()
                .starts_with("`registry.example/library/debian:bookworm` moved")
        );
        let blocks = b["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(
            blocks[2]["fields"][0]["text"],
            "*Image*\nregistry.example/library/debian:bookworm"
        );
        assert_eq!(blocks.last().unwrap()["type"], "context");
        assert_eq!(b["username"], "freshen");
        // A long message is cut into sections within Slack's limits.
        let mut long = sample(Kind::Change);
        long["source"] = json!("x".repeat(100_000));
        let b = slack_body(&s, &long);
        let blocks = b["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for bl in blocks
            .iter()
            .filter(|b| b["type"] == "section" && b["text"].is_object())
        {
            assert!(bl["text"]["text"].as_str().unwrap().chars().count() <= SLACK_SECTION);
        }
        assert!(b["text"].as_str().unwrap().chars().count() <= SLACK_TEXT);
    }

    #[test]
    fn teams_workflows_is_an_adaptive_card_in_a_message() {
        let t: TeamsSpec =
            spec(json!({"url": "https://prod.westeurope.logic.azure.com/workflows/x"}));
        let b = teams_body(&t, &sample(Kind::Rebuild));
        assert_eq!(b["type"], "message");
        let a = &b["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["version"], "1.4");
        let body = a["content"]["body"].as_array().unwrap();
        assert_eq!(body[0]["color"], "Attention");
        assert_eq!(body[2]["type"], "FactSet");
        assert_eq!(body[2]["facts"][0]["title"], "Run");
        let t: TeamsSpec = spec(
            json!({"url": "https://x.webhook.office.com/webhookb2/x", "format": "messagecard"}),
        );
        let b = teams_body(&t, &sample(Kind::Rollout));
        assert_eq!(b["@type"], "MessageCard");
        assert_eq!(b["themeColor"], "2eb67d");
        assert_eq!(b["sections"][0]["facts"][0]["name"], "Roll-out");
    }

    #[test]
    fn mattermost_has_text_and_an_attachment() {
        let m: MattermostSpec = spec(
            json!({"url": "https://chat.example/hooks/k", "channel": "ops", "icon_url": "https://x/i.png"}),
        );
        let b = mattermost_body(&m, &sample(Kind::Approval));
        assert!(
            b["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval needed to rebuild")
        );
        assert_eq!(b["channel"], "ops");
        assert_eq!(b["icon_url"], "https://x/i.png");
        assert_eq!(b["attachments"][0]["color"], "#ecb22e");
        assert_eq!(b["attachments"][0]["fields"][1]["title"], "Stage");
    }

    #[test]
    fn discord_embeds_within_limits_and_mentions_only_as_configured() {
        let d: DiscordSpec = spec(
            json!({"url": "https://discord.com/api/webhooks/1/t", "mentions": ["@here", "<@123>", "<@&77>"]}),
        );
        let mut p = sample(Kind::Vulnerability);
        p["vulnerability"]["findings"][0]["summary"] = json!("@everyone look");
        p["decision"]["reason"] = json!("y".repeat(20_000));
        let b = discord_body(&d, &p);
        assert_eq!(b["content"], "@here <@123> <@&77>");
        assert_eq!(b["allowed_mentions"]["parse"], json!(["everyone"]));
        assert_eq!(b["allowed_mentions"]["users"], json!(["123"]));
        assert_eq!(b["allowed_mentions"]["roles"], json!(["77"]));
        let e = &b["embeds"][0];
        let total = ["title", "description"]
            .iter()
            .map(|k| e[*k].as_str().unwrap().chars().count())
            .sum::<usize>()
            + e["footer"]["text"].as_str().unwrap().chars().count()
            + e["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    f["name"].as_str().unwrap().chars().count()
                        + f["value"].as_str().unwrap().chars().count()
                })
                .sum::<usize>();
        assert!(total <= DISCORD_EMBED_TOTAL, "{total}");
        assert_eq!(e["color"], 0xe01e5a);
        // Without fields, the message is the content, cut at 2000.
        let d: DiscordSpec =
            spec(json!({"url": "https://discord.com/api/webhooks/1/t", "fields": false}));
        let b = discord_body(&d, &p);
        assert!(b.get("embeds").is_none());
        assert_eq!(
            b["content"].as_str().unwrap().chars().count(),
            DISCORD_CONTENT
        );
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn answers_are_scrubbed() {
        let url = "https://discord.com/api/webhooks/1/s3cret";
        assert_eq!(
            scrub(
                "bad\n webhook https://discord.com/api/webhooks/1/s3cret /api/webhooks/1/s3cret",
                url
            ),
            "bad webhook … …"
        );
    }
}
