//! What the CLI prints: aligned tables for people, JSON for scripts.

use freshen_actions::Outcome;
use freshen_reference::Reference;
use freshen_registry::{Client, PlatformManifest, Resolved};
use freshen_store::{ChangeEvent, Delivery, HistoryEntry, Status};
use freshen_watch::{CheckError, CheckResult, Watch};
use serde::Serialize;
use serde_json::json;

/// Prints rows with columns padded to the widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let s: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn print_json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn platform_label(p: &str) -> String {
    if p.is_empty() {
        "(tag)".into()
    } else {
        p.to_string()
    }
}

/// `freshen digest`.
pub fn digest(r: &Reference, resolved: &Resolved, manifests: &[PlatformManifest], json: bool) {
    if json {
        print_json(&json!({
            "reference": r.to_string(),
            "digest": resolved.digest,
            "media_type": resolved.media_type,
            "index": resolved.is_index,
            "platforms": manifests,
        }));
        return;
    }
    println!("{r}");
    println!(
        "  {} {}",
        if resolved.is_index {
            "index   "
        } else {
            "manifest"
        },
        resolved.digest
    );
    for m in manifests {
        println!("  {:<14} {}", m.platform.to_string(), m.digest);
    }
}

/// `freshen history`.
pub fn history(r: &Reference, rows: &[HistoryEntry], json: bool) {
    if json {
        print_json(&json!({ "reference": r.to_string(), "history": rows }));
        return;
    }
    table(
        &["PLATFORM", "DIGEST", "FIRST SEEN (UTC)", "LAST SEEN (UTC)"],
        rows.iter()
            .map(|h| {
                vec![
                    platform_label(&h.platform),
                    h.digest.clone(),
                    time(h.first_seen),
                    time(h.last_seen),
                ]
            })
            .collect(),
    );
}

/// `freshen events`.
pub fn events(events: &[ChangeEvent], json: bool) {
    if json {
        print_json(&events);
        return;
    }
    table(
        &[
            "EVENT",
            "OBSERVED (UTC)",
            "REFERENCE",
            "PLATFORMS",
            "SOURCE",
        ],
        events
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    time(e.observed_at),
                    e.reference.clone(),
                    e.changes
                        .iter()
                        .map(|c| c.platform.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    e.source.clone(),
                ]
            })
            .collect(),
    );
}

/// `freshen outbox list`.
pub fn deliveries(list: &[Delivery], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    table(
        &[
            "ID",
            "STATE",
            "TRIGGER",
            "ATTEMPTS",
            "EVENT",
            "NEXT/DONE (UTC)",
            "DETAIL",
        ],
        list.iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.state.as_str().to_string(),
                    d.trigger.clone(),
                    d.attempts.to_string(),
                    d.event_id.clone(),
                    time(d.delivered_at.unwrap_or(d.next_attempt_at)),
                    d.response
                        .clone()
                        .or_else(|| d.last_error.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

/// The outcome of `freshen check`.
pub struct CheckReport {
    results: Vec<CheckResult>,
    errors: Vec<(String, String)>,
    deliveries: Vec<Outcome>,
    rate_limits: Vec<(String, String)>,
}

impl CheckReport {
    pub fn new(
        watches: &[Watch],
        results: Vec<Result<CheckResult, CheckError>>,
        deliveries: Vec<Outcome>,
        client: &Client,
    ) -> CheckReport {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (w, r) in watches.iter().zip(results) {
            match r {
                Ok(r) => ok.push(r),
                Err(e) => errors.push((w.reference.to_string(), e.to_string())),
            }
        }
        let mut registries: Vec<&str> = watches.iter().map(|w| w.reference.registry()).collect();
        registries.sort();
        registries.dedup();
        let rate_limits = registries
            .into_iter()
            .filter_map(|r| client.rate_limit_remaining(r).map(|v| (r.to_string(), v)))
            .collect();
        CheckReport {
            results: ok,
            errors,
            deliveries,
            rate_limits,
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn changed(&self) -> bool {
        self.results.iter().any(CheckResult::changed)
    }

    pub fn print(&self, json: bool) {
        if json {
            print_json(&json!({
                "results": self.results,
                "errors": self.errors.iter().map(|(r, e)| json!({"reference": r, "error": e})).collect::<Vec<_>>(),
                "deliveries": self.deliveries,
                "rate_limit_remaining": self.rate_limits.iter().map(|(r, v)| json!({"registry": r, "remaining": v})).collect::<Vec<_>>(),
            }));
            return;
        }
        let mut rows = Vec::new();
        for r in &self.results {
            for p in &r.platforms {
                let (status, note) = match &p.status {
                    Status::New => ("new", String::new()),
                    Status::Unchanged => ("unchanged", String::new()),
                    Status::Changed { old } => ("changed", format!("was {old}")),
                };
                rows.push(vec![
                    r.reference.clone(),
                    p.platform.clone(),
                    status.to_string(),
                    p.digest.clone(),
                    note,
                ]);
            }
            if r.platforms
                .iter()
                .all(|p| !matches!(p.status, Status::Changed { .. }))
                && let Status::Changed { old } = &r.top
            {
                rows.push(vec![
                    r.reference.clone(),
                    "(tag)".into(),
                    "moved".into(),
                    r.digest.clone(),
                    format!("was {old}; watched platforms unchanged, nothing fired"),
                ]);
            }
        }
        if !rows.is_empty() {
            table(&["REFERENCE", "PLATFORM", "STATUS", "DIGEST", ""], rows);
        }
        for d in &self.deliveries {
            let detail = d
                .detail
                .as_deref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            eprintln!(
                "trigger {} for event {}: {}{}",
                d.trigger, d.event_id, d.state, detail
            );
        }
        for (r, v) in &self.rate_limits {
            eprintln!("{r}: rate limit remaining {v}");
        }
        for (r, e) in &self.errors {
            if e.contains(r.as_str()) {
                eprintln!("freshen: error: {e}");
            } else {
                eprintln!("freshen: error: {r}: {e}");
            }
        }
    }
}
