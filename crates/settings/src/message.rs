//! Message templates (minijinja) of the chat and email triggers: the
//! variables each payload the outbox carries offers, the built-in
//! templates per kind of payload, the check made when the config loads,
//! and the rendering the actions layer does when it delivers.
//!
//! Undefined names are handled in two steps. When the config loads, a
//! template must compile (a syntax error names its line), may use only
//! the documented variables (a typo is an error), and must render every
//! kind of payload it applies to. When a message is delivered, rendering
//! is lenient (chainable undefined): one template serves every kind, and
//! a field a kind lacks (`vulnerability.policy` in a change event)
//! renders empty instead of failing. Should a template still fail on
//! some payload, the built-in template of that kind is used and the
//! delivery goes out: the next attempt would meet the same template, so
//! failing would only turn news into a dead delivery.

use std::collections::BTreeMap;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

/// The kind of payload a delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A watched tag moved (a change event).
    Change,
    /// A policy acted on new vulnerability data (`source: vulnerability`).
    Vulnerability,
    /// A cascade or roll-out waits for a person (`approvals.announce`).
    Approval,
    /// A rebuild run ended (`notify.rebuilds`).
    Rebuild,
    /// A roll-out ended (`notify.rollouts`).
    Rollout,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Change,
        Kind::Vulnerability,
        Kind::Approval,
        Kind::Rebuild,
        Kind::Rollout,
    ];

    /// The name, as written under a per-kind template and in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Change => "change",
            Kind::Vulnerability => "vulnerability",
            Kind::Approval => "approval",
            Kind::Rebuild => "rebuild",
            Kind::Rollout => "rollout",
        }
    }

    /// The kind a name stands for.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of a payload: its `kind`, else a change event's `source`.
    pub fn of(payload: &Json) -> Kind {
        match payload
            .get("kind")
            .and_then(Json::as_str)
            .and_then(Kind::parse)
        {
            Some(k) => k,
            None if payload.get("source").and_then(Json::as_str) == Some("vulnerability") => {
                Kind::Vulnerability
            }
            None => Kind::Change,
        }
    }
}

/// How a message's markup is written, and what its values need escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Markup {
    /// Slack's `mrkdwn`: `*bold*`; `&`, `<` and `>` in values escaped,
    /// so a value can't become a link or an `@channel`.
    Slack,
    /// Markdown (Mattermost, Discord, Teams): `**bold**`.
    Markdown,
    /// Plain text (email, titles).
    Plain,
}

/// A template as written: one for every kind of payload, or one per kind
/// (`{change: "…", rebuild: "…"}`; kinds left out get the built-in one).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MessageTemplate {
    /// The same template for every kind.
    One(String),
    /// A template per kind, by kind name.
    PerKind(BTreeMap<String, String>),
}

impl MessageTemplate {
    /// The template for `kind`, if this one gives one.
    pub fn for_kind(&self, kind: Kind) -> Option<&str> {
        match self {
            MessageTemplate::One(s) => Some(s),
            MessageTemplate::PerKind(m) => m.get(kind.as_str()).map(String::as_str),
        }
    }
}

/// Which part of a message a template makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The message itself (a chat message's text, an email's body).
    Body,
    /// Its heading (a card's title, an email's subject): one line.
    Title,
}

/// The variables a message template may use, with what each holds.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "kind",
        "change, vulnerability, approval, rebuild or rollout",
    ),
    (
        "text",
        "the built-in message of this kind, rendered (to wrap it: `{{ text }}`)",
    ),
    ("title", "the built-in title of this kind, rendered"),
    ("event", "the whole payload, as the outbox holds it"),
    (
        "ref",
        "the image concerned, e.g. docker.io/library/debian:bookworm (change, vulnerability, approval, a cascade's rebuild)",
    ),
    ("registry", "the image's registry, e.g. docker.io"),
    ("repository", "the image's repository, e.g. library/debian"),
    ("tag", "the image's tag, e.g. bookworm"),
    (
        "reference",
        "the image as the payload names it (change, vulnerability, a cascade's rebuild)",
    ),
    ("event_id", "the change event's stable id"),
    (
        "id",
        "the payload's id (the event id; for results `<run or roll-out id>:<state>`)",
    ),
    (
        "old_digest",
        "the tag's previous digest (change; empty on a first sight that fires)",
    ),
    ("new_digest", "the tag's digest now (change, vulnerability)"),
    (
        "changes",
        "the platforms that moved: [{platform, old_digest, new_digest}]",
    ),
    ("platforms", "the platforms that moved, comma-separated"),
    (
        "source",
        "what saw the change: poll, webhook:…, vulnerability",
    ),
    ("observed_at", "when (RFC 3339)"),
    ("decision", "the policy's decision: {act, reason}"),
    (
        "vulnerability",
        "{policy, policy_version, platform, snapshot, findings} (vulnerability)",
    ),
    (
        "findings",
        "the findings the policy acted on: [{id, aliases, package, version, fixed, severity, score, summary}] (vulnerability)",
    ),
    (
        "approval",
        "{id, stage, subject, event_id, reference, reason, state, requested_at, expires_at} (approval)",
    ),
    ("link", "the approval's page, with approvals.url (approval)"),
    ("approve", "the command that approves (approval)"),
    ("reject", "the command that rejects (approval)"),
    (
        "run",
        "{id, state, event_id, trigger, created_at, finished_at} (rebuild)",
    ),
    (
        "rollout",
        "{id, state, run_id, trigger, created_at, finished_at} (rollout)",
    ),
    (
        "items",
        "a run's images [{image, wave, state, version, digest, detail}] or a roll-out's workloads [{workload, cluster, kind, namespace, name, wave, state, detail}]",
    ),
    (
        "counts",
        "{total, done, failed, skipped} (rebuild); {total, done, rolled_back, failed, skipped} (rollout)",
    ),
];

/// The filters freshen adds to minijinja's built-in ones.
pub const FILTERS: &[(&str, &str)] = &[
    ("code", "`value` in chat, as is in email"),
    (
        "bold",
        "*value* (Slack), **value** (Markdown), as is in email",
    ),
    (
        "short",
        "a digest cut to 12 hex digits: sha256:0123456789ab",
    ),
];

/// At most this many template instructions per rendering: a loop that
/// never ends is cut short, not a stuck delivery.
const FUEL: u64 = 200_000;

const BODY_CHANGE: &str = "\
{% if old_digest %}{{ ref | code }} moved from {{ old_digest | short | code }} to {{ new_digest | short | code }}\
{% else %}{{ ref | code }} was pushed as {{ new_digest | short | code }}{% endif %}\
{% if platforms %} ({{ platforms }}){% endif %}.
{% if decision %}
Policy: {{ decision.reason }}
{% endif %}
Seen by {{ source }} at {{ observed_at }}; event {{ event_id | code }}.";

const BODY_VULNERABILITY: &str = "\
{{ ref | code }} ({{ vulnerability.platform }}) is vulnerable: policy {{ vulnerability.policy | bold }} acts on {{ findings | length }} finding(s).
{% for f in findings[:10] %}
- {{ f.id | bold }} ({{ f.severity }}) in {{ f.package }} {{ f.version }}{% if f.fixed %}, fixed in {{ f.fixed }}{% endif %}

{% endfor %}
{% if findings | length > 10 %}
- and {{ findings | length - 10 }} more
{% endif %}
{% if decision %}
Policy: {{ decision.reason }}
{% endif %}
Event {{ event_id | code }}.";

const BODY_APPROVAL: &str = "\
Approval needed to {{ \"rebuild\" if approval.stage == \"cascade\" else \"roll out\" }} after a change of {{ approval.reference | code }} ({{ approval.reason }} asks); it expires at {{ approval.expires_at }}.
{% if link %}
Decide: {{ link }}
{% endif %}
Approve: {{ approve | code }}
Reject: {{ reject | code }}";

const BODY_REBUILD: &str = "\
Rebuild run {{ run.id | code }} {{ run.state | bold }}{% if ref %} after a change of {{ ref | code }}{% endif %}: \
{{ counts.done }} of {{ counts.total }} image(s) rebuilt\
{% if counts.failed %}, {{ counts.failed }} failed{% endif %}{% if counts.skipped %}, {{ counts.skipped }} skipped{% endif %}.
{% for i in items[:20] %}
- {{ i.image | code }}: {{ i.state }}{% if i.version and i.state == \"done\" %} as {{ i.version }}{% endif %}{% if i.detail %} ({{ i.detail }}){% endif %}

{% endfor %}
{% if items | length > 20 %}
- and {{ items | length - 20 }} more
{% endif %}";

const BODY_ROLLOUT: &str = "\
Roll-out {{ rollout.id | code }} {{ rollout.state | bold }}: {{ counts.total }} workload(s), {{ counts.done }} done\
{% if counts.rolled_back %}, {{ counts.rolled_back }} rolled back{% endif %}\
{% if counts.failed %}, {{ counts.failed }} failed{% endif %}{% if counts.skipped %}, {{ counts.skipped }} skipped{% endif %}.
{% for i in items[:20] %}
- {{ i.workload | code }}: {{ i.state }}{% if i.detail %} ({{ i.detail }}){% endif %}

{% endfor %}
{% if items | length > 20 %}
- and {{ items | length - 20 }} more
{% endif %}";

const TITLE_CHANGE: &str = "{{ ref }} changed";
const TITLE_VULNERABILITY: &str = "{{ ref }} is vulnerable ({{ findings | length }} finding(s))";
const TITLE_APPROVAL: &str = "Approval needed: {{ approval.reference }}";
const TITLE_REBUILD: &str =
    "Rebuild {{ run.state }}: {{ counts.done }} of {{ counts.total }} image(s) rebuilt";
const TITLE_ROLLOUT: &str =
    "Roll-out {{ rollout.state }}: {{ counts.done }} of {{ counts.total }} workload(s) done";

/// The built-in template of `part` for `kind`.
pub fn default_template(kind: Kind, part: Part) -> &'static str {
    match (part, kind) {
        (Part::Body, Kind::Change) => BODY_CHANGE,
        (Part::Body, Kind::Vulnerability) => BODY_VULNERABILITY,
        (Part::Body, Kind::Approval) => BODY_APPROVAL,
        (Part::Body, Kind::Rebuild) => BODY_REBUILD,
        (Part::Body, Kind::Rollout) => BODY_ROLLOUT,
        (Part::Title, Kind::Change) => TITLE_CHANGE,
        (Part::Title, Kind::Vulnerability) => TITLE_VULNERABILITY,
        (Part::Title, Kind::Approval) => TITLE_APPROVAL,
        (Part::Title, Kind::Rebuild) => TITLE_REBUILD,
        (Part::Title, Kind::Rollout) => TITLE_ROLLOUT,
    }
}

/// The environment every template is compiled and rendered in: blocks
/// take their line with them (`trim_blocks`, `lstrip_blocks`), `none`
/// prints empty, values are escaped as `markup` needs, fuel is bounded.
fn environment(markup: Markup, undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters make a valid syntax"),
    );
    env.set_fuel(Some(FUEL));
    env.set_formatter(move |out: &mut Output, _: &mut State, v: &Value| {
        if v.is_none() || v.is_undefined() {
            return Ok(());
        }
        let s = v.to_string();
        let shown = if v.is_safe() { s } else { escape(&s, markup) };
        out.write_str(&shown)
            .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
    });
    env.add_filter("code", move |v: Value| -> Value {
        wrap(&v, markup, "`", "`", Markup::Plain)
    });
    env.add_filter("bold", move |v: Value| -> Value {
        match markup {
            Markup::Slack => wrap(&v, markup, "*", "*", Markup::Plain),
            Markup::Markdown => wrap(&v, markup, "**", "**", Markup::Plain),
            Markup::Plain => v,
        }
    });
    env.add_filter("short", |v: Value| -> Value {
        if v.is_none() || v.is_undefined() {
            return v;
        }
        Value::from(short_digest(&v.to_string()))
    });
    env
}

/// `v` between `open` and `close` (left as is in `plain` markup), its
/// text escaped: a safe value the template can print.
fn wrap(v: &Value, markup: Markup, open: &str, close: &str, plain: Markup) -> Value {
    if v.is_none() || v.is_undefined() {
        return v.clone();
    }
    let s = v.to_string();
    let inner = if v.is_safe() { s } else { escape(&s, markup) };
    if inner.is_empty() || markup == plain {
        return Value::from_safe_string(inner);
    }
    Value::from_safe_string(format!("{open}{inner}{close}"))
}

/// What a value needs escaped in `markup`.
fn escape(s: &str, markup: Markup) -> String {
    match markup {
        // Slack's three control characters: without this a value could
        // make a link or a mention (`<!channel>`).
        Markup::Slack => s
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
        Markup::Markdown | Markup::Plain => s.to_string(),
    }
}

/// `sha256:0123456789ab` of a digest; anything else unchanged.
pub fn short_digest(s: &str) -> String {
    match s.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            format!("{algo}:{}", &hex[..12])
        }
        _ => s.to_string(),
    }
}

/// `registry/repository:tag` split without re-validating (the payload's
/// reference was normalised when it was stored).
fn reference_parts(r: &str) -> Option<(String, String, String)> {
    let (registry, rest) = r.split_once('/')?;
    let rest = rest.split('@').next().unwrap_or(rest);
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) => (repo, tag),
        None => (rest, ""),
    };
    Some((registry.to_string(), repo.to_string(), tag.to_string()))
}

/// The variables of `payload`, without `text` and `title`: the payload's
/// own fields, `kind`, `event`, and the derived ones (`ref` and its
/// parts, `event_id`, `platforms`, `findings`). A name a kind has no
/// value for is left out (undefined), not set to null.
fn variables(payload: &Json) -> Map<String, Json> {
    let kind = Kind::of(payload);
    let mut m = payload.as_object().cloned().unwrap_or_default();
    m.insert("kind".into(), json!(kind.as_str()));
    m.insert("event".into(), payload.clone());
    let s = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    let (image, event_id) = match kind {
        Kind::Change | Kind::Vulnerability => {
            let platforms: Vec<&str> = payload
                .get("changes")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("platform").and_then(Json::as_str))
                .collect();
            m.insert("platforms".into(), json!(platforms.join(",")));
            let findings = payload
                .get("vulnerability")
                .and_then(|v| v.get("findings"))
                .cloned()
                .unwrap_or_else(|| json!([]));
            m.insert("findings".into(), findings);
            (s(payload, "reference"), s(payload, "id"))
        }
        Kind::Approval => {
            let a = payload.get("approval").cloned().unwrap_or(Json::Null);
            (s(&a, "reference"), s(&a, "event_id"))
        }
        Kind::Rebuild => {
            let run = payload.get("run").cloned().unwrap_or(Json::Null);
            (s(payload, "reference"), s(&run, "event_id"))
        }
        Kind::Rollout => (None, s(payload, "event_id")),
    };
    if let Some(r) = image {
        if let Some((registry, repository, tag)) = reference_parts(&r) {
            m.insert("registry".into(), json!(registry));
            m.insert("repository".into(), json!(repository));
            m.insert("tag".into(), json!(tag));
        }
        m.insert("ref".into(), json!(r));
    }
    if let Some(e) = event_id {
        m.insert("event_id".into(), json!(e));
    }
    m
}

/// Renders `source` over `vars`.
fn render_source(
    source: &str,
    vars: &Map<String, Json>,
    markup: Markup,
    undefined: UndefinedBehavior,
) -> Result<String, Error> {
    let env = environment(markup, undefined);
    let t = env.template_from_named_str("template", source)?;
    t.render(Value::from(Serde(vars)))
}

/// The variables of `payload` as a template sees them, with `text` (the
/// built-in message, in `markup`) and `title` (the built-in title).
pub fn context(payload: &Json, markup: Markup) -> Map<String, Json> {
    let kind = Kind::of(payload);
    let mut vars = variables(payload);
    let lenient = UndefinedBehavior::Chainable;
    let text = render_source(default_template(kind, Part::Body), &vars, markup, lenient)
        .unwrap_or_else(|_| fallback(payload, kind));
    let title = render_source(
        default_template(kind, Part::Title),
        &vars,
        Markup::Plain,
        lenient,
    )
    .unwrap_or_else(|_| fallback(payload, kind));
    vars.insert("text".into(), json!(text.trim()));
    vars.insert("title".into(), json!(one_line(&title)));
    vars
}

/// The last resort when even a built-in template fails on a payload.
fn fallback(payload: &Json, kind: Kind) -> String {
    format!(
        "freshen: {} {}",
        kind.as_str(),
        payload.get("id").and_then(Json::as_str).unwrap_or("")
    )
}

/// A title's text on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A rendered part of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The text (a title on one line).
    pub text: String,
    /// Set when the configured template failed on this payload and the
    /// built-in one was used: why, for the log.
    pub fell_back: Option<String>,
}

/// Renders `part` of the message for `payload`: the configured
/// template for its kind when there is one, else the built-in one. Never
/// fails (see the module's notes on undefined names).
pub fn render(
    configured: Option<&MessageTemplate>,
    part: Part,
    payload: &Json,
    markup: Markup,
) -> Rendered {
    let kind = Kind::of(payload);
    let markup = if part == Part::Title {
        Markup::Plain
    } else {
        markup
    };
    let vars = context(payload, markup);
    let finish = |s: String| match part {
        Part::Body => s.trim().to_string(),
        Part::Title => one_line(&s),
    };
    let mut fell_back = None;
    if let Some(source) = configured.and_then(|t| t.for_kind(kind)) {
        match render_source(source, &vars, markup, UndefinedBehavior::Chainable) {
            Ok(s) => {
                return Rendered {
                    text: finish(s),
                    fell_back: None,
                };
            }
            Err(e) => fell_back = Some(describe(&e)),
        }
    }
    let key = if part == Part::Body { "text" } else { "title" };
    Rendered {
        text: finish(vars[key].as_str().unwrap_or_default().to_string()),
        fell_back,
    }
}

/// One line: what failed, and where.
fn describe(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s = format!("line {line}: {s}");
    }
    s
}

/// Checks a configured template: it compiles, names only known variables,
/// and renders every kind of payload it applies to. The message names the
/// line; the caller names the key.
pub fn check(template: &MessageTemplate) -> Result<(), String> {
    let sources: Vec<(Option<Kind>, &str)> = match template {
        MessageTemplate::One(s) => vec![(None, s.as_str())],
        MessageTemplate::PerKind(m) => m
            .iter()
            .map(|(k, s)| {
                Kind::parse(k)
                    .map(|k| (Some(k), s.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "{k:?} is not a kind of payload (kinds: {})",
                            Kind::ALL.map(Kind::as_str).join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let env = environment(Markup::Plain, UndefinedBehavior::Chainable);
    for (kind, source) in sources {
        let at = |m: String| match kind {
            Some(k) => format!("{}: {m}", k.as_str()),
            None => m,
        };
        let t = env
            .template_from_named_str("template", source)
            .map_err(|e| at(describe(&e)))?;
        let mut unknown: Vec<String> = t
            .undeclared_variables(false)
            .into_iter()
            .filter(|n| {
                !VARIABLES.iter().any(|(v, _)| v == n) && !env.globals().any(|(g, _)| g == n)
            })
            .collect();
        unknown.sort();
        if let Some(n) = unknown.first() {
            return Err(at(format!(
                "unknown variable {n:?} (known: {})",
                VARIABLES
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for k in kind.map(|k| vec![k]).unwrap_or_else(|| Kind::ALL.to_vec()) {
            let vars = context(&sample(k), Markup::Plain);
            render_source(source, &vars, Markup::Plain, UndefinedBehavior::Chainable).map_err(
                |e| {
                    at(format!(
                        "rendering a {} payload: {}",
                        k.as_str(),
                        describe(&e)
                    ))
                },
            )?;
        }
    }
    Ok(())
}

/// A payload of `kind` as the outbox carries it, for checking templates
/// (and documenting them).
pub fn sample(kind: Kind) -> Json {
    let change = json!({
        "id": "0190a5d2-7c4e-7000-8000-000000000001",
        "reference": "registry.example/library/debian:bookworm",
        "old_digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "new_digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
        "changes": [{
            "platform": "linux/amd64",
            "old_digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
            "new_digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444"
        }],
        "source": "poll",
        "observed_at": "2024-07-01T12:00:00Z"
    });
    match kind {
        Kind::Change => change,
        Kind::Vulnerability => {
            let mut v = change;
            v["source"] = json!("vulnerability");
            v["old_digest"] = v["new_digest"].clone();
            v["changes"] = json!([]);
            v["decision"] = json!({"act": true, "reason": "1 critical finding with a fix"});
            v["vulnerability"] = json!({
                "policy": "default",
                "policy_version": "v1",
                "snapshot": {"vuln_import": 1},
                "platform": "linux/amd64",
                "findings": [{
                    "id": "CVE-2023-5363", "aliases": ["DSA-5532-1"], "matched": ["DSA-5532-1"],
                    "package": "openssl", "version": "3.0.11-1~deb12u1", "package_type": "deb",
                    "fixed": "3.0.11-1~deb12u2", "severity": "critical", "score": 9.8,
                    "summary": "openssl: a key length change is ignored", "sources": ["osv"]
                }]
            });
            v
        }
        Kind::Approval => json!({
            "kind": "approval",
            "text": "freshen: approval needed",
            "approval": {
                "id": "0190a5d2-7c4e-7000-8000-000000000002", "stage": "cascade",
                "subject": "0190a5d2-7c4e-7000-8000-000000000001",
                "event_id": "0190a5d2-7c4e-7000-8000-000000000001",
                "reference": "registry.example/library/debian:bookworm",
                "reason": "watch registry.example/library/debian:bookworm", "state": "pending",
                "requested_at": "2024-07-01T12:00:00Z", "expires_at": "2024-07-02T12:00:00Z",
                "decided_at": null, "decided_by": null, "comment": null
            },
            "link": "https://freshen.example/approvals/0190a5d2-7c4e-7000-8000-000000000002",
            "approve": "freshen approve 0190a5d2-7c4e-7000-8000-000000000002",
            "reject": "freshen reject 0190a5d2-7c4e-7000-8000-000000000002 --reason TEXT"
        }),
        Kind::Rebuild => json!({
            "kind": "rebuild",
            "id": "0190a5d2-7c4e-7000-8000-000000000003:failed",
            "text": "freshen: rebuild run failed",
            "reference": "registry.example/library/debian:bookworm",
            "run": {
                "id": "0190a5d2-7c4e-7000-8000-000000000003", "state": "failed",
                "event_id": "0190a5d2-7c4e-7000-8000-000000000001",
                "trigger": {"base": "registry.example/library/debian:bookworm"},
                "created_at": "2024-07-01T12:00:00Z", "finished_at": "2024-07-01T12:05:00Z"
            },
            "items": [
                {"image": "registry.example/team/app:1", "wave": 0, "state": "done",
                 "version": "2024.27.1", "digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555", "detail": null},
                {"image": "registry.example/team/api:1", "wave": 0, "state": "failed",
                 "version": null, "digest": null, "detail": "build: exit status 1"}
            ],
            "counts": {"total": 2, "done": 1, "failed": 1, "skipped": 0}
        }),
        Kind::Rollout => json!({
            "kind": "rollout",
            "id": "0190a5d2-7c4e-7000-8000-000000000004:done",
            "text": "freshen: roll-out done",
            "event_id": "0190a5d2-7c4e-7000-8000-000000000001",
            "rollout": {
                "id": "0190a5d2-7c4e-7000-8000-000000000004", "state": "done",
                "run_id": "0190a5d2-7c4e-7000-8000-000000000003",
                "trigger": {"run": "0190a5d2-7c4e-7000-8000-000000000003"},
                "created_at": "2024-07-01T12:06:00Z", "finished_at": "2024-07-01T12:08:00Z"
            },
            "items": [
                {"workload": "prod/shop/Deployment/app", "cluster": "prod", "kind": "Deployment",
                 "namespace": "shop", "name": "app", "wave": 0, "state": "done",
                 "detail": "rolled out: 3/3 replicas ready"}
            ],
            "counts": {"total": 1, "done": 1, "rolled_back": 0, "failed": 0, "skipped": 0}
        }),
    }
}

/// How a payload's news reads at a glance, for a chat card's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Something finished well.
    Good,
    /// Something happened.
    Info,
    /// Someone needs to look.
    Warning,
    /// Something went wrong, or is dangerous.
    Bad,
}

impl Tone {
    /// The tone of `payload`.
    pub fn of(payload: &Json) -> Tone {
        let state = |k: &str| {
            payload
                .get(k)
                .and_then(|r| r.get("state"))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        match Kind::of(payload) {
            Kind::Change => Tone::Info,
            Kind::Approval => Tone::Warning,
            Kind::Vulnerability => {
                let grave = payload["vulnerability"]["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| matches!(f["severity"].as_str(), Some("critical" | "high")));
                if grave { Tone::Bad } else { Tone::Warning }
            }
            Kind::Rebuild if state("run") == "done" => Tone::Good,
            Kind::Rollout if state("rollout") == "done" => Tone::Good,
            Kind::Rebuild | Kind::Rollout => Tone::Bad,
        }
    }

    /// `#rrggbb`.
    pub fn hex(self) -> &'static str {
        match self {
            Tone::Good => "#2eb67d",
            Tone::Info => "#439fe0",
            Tone::Warning => "#ecb22e",
            Tone::Bad => "#e01e5a",
        }
    }
}

/// The key facts of a payload, `(name, value)`, for a card's fields.
pub fn facts(payload: &Json) -> Vec<(String, String)> {
    let vars = variables(payload);
    let get = |path: &[&str]| -> Option<String> {
        let mut v = vars.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        match v {
            Json::Null => None,
            Json::String(s) if s.is_empty() => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    };
    let mut out: Vec<(&str, Option<String>)> = Vec::new();
    let counts = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| {
                let c = vars.get("counts")?.get(*n)?.as_u64()?;
                (c > 0 || *n == "done").then(|| format!("{c} {}", n.replace('_', " ")))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match Kind::of(payload) {
        Kind::Change => {
            out.push(("Image", get(&["ref"])));
            out.push(("Digest", get(&["new_digest"]).map(|d| short_digest(&d))));
            out.push(("Previous", get(&["old_digest"]).map(|d| short_digest(&d))));
            out.push(("Platforms", get(&["platforms"])));
            out.push(("Source", get(&["source"])));
            out.push(("Policy", get(&["decision", "reason"])));
        }
        Kind::Vulnerability => {
            let findings = vars
                .get("findings")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let worst = ["critical", "high", "medium", "low", "negligible", "unknown"]
                .into_iter()
                .find(|s| findings.iter().any(|f| f["severity"] == *s));
            out.push(("Image", get(&["ref"])));
            out.push(("Platform", get(&["vulnerability", "platform"])));
            out.push(("Policy", get(&["vulnerability", "policy"])));
            out.push((
                "Findings",
                Some(match worst {
                    Some(w) => format!("{} (worst: {w})", findings.len()),
                    None => findings.len().to_string(),
                }),
            ));
        }
        Kind::Approval => {
            out.push(("Image", get(&["ref"])));
            out.push(("Stage", get(&["approval", "stage"])));
            out.push(("Asked by", get(&["approval", "reason"])));
            out.push(("Expires", get(&["approval", "expires_at"])));
            out.push(("Approval", get(&["approval", "id"])));
        }
        Kind::Rebuild => {
            out.push(("Run", get(&["run", "id"])));
            out.push(("State", get(&["run", "state"])));
            out.push(("Images", Some(counts(&["done", "failed", "skipped"]))));
            out.push(("Base", get(&["ref"])));
        }
        Kind::Rollout => {
            out.push(("Roll-out", get(&["rollout", "id"])));
            out.push(("State", get(&["rollout", "state"])));
            out.push((
                "Workloads",
                Some(counts(&["done", "rolled_back", "failed", "skipped"])),
            ));
            out.push(("Run", get(&["rollout", "run_id"])));
        }
    }
    out.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> MessageTemplate {
        MessageTemplate::One(s.into())
    }

    #[test]
    fn defaults_render_every_kind_in_every_markup() {
        for k in Kind::ALL {
            let p = sample(k);
            assert_eq!(Kind::of(&p), k);
            for m in [Markup::Slack, Markup::Markdown, Markup::Plain] {
                let body = render(None, Part::Body, &p, m);
                assert!(body.fell_back.is_none());
                assert!(!body.text.is_empty(), "{k:?} {m:?}");
                assert!(!body.text.contains("{{"), "{}", body.text);
                let title = render(None, Part::Title, &p, m);
                assert!(!title.text.contains('\n'), "{}", title.text);
            }
        }
        let change = render(None, Part::Body, &sample(Kind::Change), Markup::Slack).text;
        assert_eq!(
            change,
            "`registry.example/library/debian:bookworm` moved from `sha256:111111111111` to `sha256:222222222222` (linux/amd64).\n\
             Seen by poll at 2024-07-01T12:00:00Z; event `0190a5d2-7c4e-7000-8000-000000000001`."
        );
        let vuln = render(
            None,
            Part::Body,
            &sample(Kind::Vulnerability),
            Markup::Markdown,
        )
        .text;
        assert!(
            vuln.contains("- **CVE-2023-5363** (critical) in openssl 3.0.11-1~deb12u1, fixed in 3.0.11-1~deb12u2\n"),
            "{vuln}"
        );
        let rebuild = render(None, Part::Body, &sample(Kind::Rebuild), Markup::Plain).text;
        assert!(
            rebuild.starts_with("Rebuild run 0190a5d2-7c4e-7000-8000-000000000003 failed after a change of registry.example/library/debian:bookworm: 1 of 2 image(s) rebuilt, 1 failed.\n- registry.example/team/app:1: done as 2024.27.1\n- registry.example/team/api:1: failed (build: exit status 1)"),
            "{rebuild}"
        );
        assert_eq!(
            render(None, Part::Title, &sample(Kind::Rollout), Markup::Slack).text,
            "Roll-out done: 1 of 1 workload(s) done"
        );
    }

    #[test]
    fn slack_values_are_escaped_but_the_template_is_not() {
        let mut p = sample(Kind::Change);
        p["source"] = json!("webhook:<!channel> & co");
        let r = render(
            Some(&one("<!here> {{ source }} {{ source | code }}")),
            Part::Body,
            &p,
            Markup::Slack,
        );
        assert_eq!(
            r.text,
            "<!here> webhook:&lt;!channel&gt; &amp; co `webhook:&lt;!channel&gt; &amp; co`"
        );
        let r = render(Some(&one("{{ source }}")), Part::Body, &p, Markup::Plain);
        assert_eq!(r.text, "webhook:<!channel> & co");
    }

    #[test]
    fn one_template_serves_every_kind_leniently() {
        let t = one(
            "{{ kind }}:{{ vulnerability.policy }}{{ run.state }}|{{ ref }}|{{ text | length > 0 }}",
        );
        check(&t).unwrap();
        let r = render(Some(&t), Part::Body, &sample(Kind::Change), Markup::Plain);
        assert_eq!(
            r.text,
            "change:|registry.example/library/debian:bookworm|True"
        );
        let r = render(Some(&t), Part::Body, &sample(Kind::Rebuild), Markup::Plain);
        assert_eq!(
            r.text,
            "rebuild:failed|registry.example/library/debian:bookworm|True"
        );
    }

    #[test]
    fn checks_name_the_line_and_the_variable() {
        let e = check(&one("line one\n{% if kind %}\nno end")).unwrap_err();
        assert!(e.starts_with("line 3: syntax error"), "{e}");
        let e = check(&one("{{ ref }}\n{{ refrence }}")).unwrap_err();
        assert!(e.contains("unknown variable \"refrence\""), "{e}");
        let e = check(&one("{{ ref | nosuchfilter }}")).unwrap_err();
        assert!(
            e.contains("rendering a change payload") && e.contains("nosuchfilter"),
            "{e}"
        );
        let per: MessageTemplate =
            serde_json::from_value(json!({"rebuild": "{{ run.id }}", "nope": "x"})).unwrap();
        assert!(check(&per).unwrap_err().contains("\"nope\" is not a kind"));
        let per: MessageTemplate = serde_json::from_value(
            json!({"rebuild": "{% for i in items %}{{ i.image }}{% endfor %}{{ loop }}"}),
        )
        .unwrap();
        // `loop` outside a loop is not a variable.
        assert!(
            check(&per)
                .unwrap_err()
                .starts_with("rebuild: unknown variable \"loop\"")
        );
        check(&one(
            "{% for i in range(3) %}{{ loop.index }}{% endfor %}{{ namespace() }}",
        ))
        .unwrap();
    }

    #[test]
    fn a_template_that_fails_at_delivery_falls_back_to_the_default() {
        let t = one("{{ items[0].image }}{{ 1 / 0 }}");
        let r = render(Some(&t), Part::Body, &sample(Kind::Rebuild), Markup::Plain);
        assert!(r.fell_back.is_some());
        assert!(r.text.starts_with("Rebuild run"), "{}", r.text);
    }

    #[test]
    fn facts_and_tones() {
        let f = facts(&sample(Kind::Change));
        assert_eq!(
            f[0],
            (
                "Image".into(),
                "registry.example/library/debian:bookworm".into()
            )
        );
        assert_eq!(f[1], ("Digest".into(), "sha256:222222222222".into()));
        let f = facts(&sample(Kind::Rebuild));
        assert!(
            f.contains(&("Images".into(), "1 done, 1 failed".into())),
            "{f:?}"
        );
        assert_eq!(Tone::of(&sample(Kind::Rebuild)), Tone::Bad);
        assert_eq!(Tone::of(&sample(Kind::Rollout)), Tone::Good);
        assert_eq!(Tone::of(&sample(Kind::Vulnerability)), Tone::Bad);
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
    }
}
