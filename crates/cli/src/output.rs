//! What the CLI prints: aligned tables for people, JSON for scripts.

use freshen_app::view::{
    AffectedImage, ArchiveOutcome, BaseDiff, ChangeEvent, ChildView, CopyReport, Decision,
    Delivery, DeliveryState, FeedArchive, Finding, HistoryEntry, ImageView, ImageVulns, Imported,
    PackageRecord, PackageVersion, Plan, PlatformManifest, PolicyCheck, Progress, RebuildRun,
    Reference, Replay, Resolved, RunReport, ScanReport, Status, Trigger,
};
use freshen_app::{CheckReport, FeedsSynced, Verified};
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
            "POLICY",
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
                    match &e.decision {
                        None => "-".into(),
                        Some(d) => format!("{}: {}", verdict_word(d.act), d.reason),
                    },
                ]
            })
            .collect(),
    );
}

/// How a policy's decision reads in tables.
fn verdict_word(act: bool) -> &'static str {
    if act { "act" } else { "quiet" }
}

/// `freshen outbox list`.
pub fn deliveries(list: &[Delivery], json: bool) {
    if json {
        // A Docker Hub callback's URL is a capability: never printed.
        let shown: Vec<Delivery> = list
            .iter()
            .map(|d| Delivery {
                payload: freshen_app::view::shown_payload(&d.trigger, &d.payload),
                ..d.clone()
            })
            .collect();
        print_json(&shown);
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
                    delivery_detail(d),
                ]
            })
            .collect(),
    );
}

/// What a delivery's row says: the target's answer once delivered (an
/// earlier attempt's error is history then), else the latest error.
fn delivery_detail(d: &Delivery) -> String {
    match d.state {
        DeliveryState::Delivered => d.response.clone(),
        _ => d.last_error.clone(),
    }
    .unwrap_or_default()
}

/// `freshen check`.
pub fn check(report: &CheckReport, json: bool) {
    if json {
        print_json(&json!({
            "results": report.results,
            "errors": report.errors.iter().map(|(r, e)| json!({"reference": r, "error": e})).collect::<Vec<_>>(),
            "deliveries": report.deliveries,
            "rate_limit_remaining": report.rate_limits.iter().map(|(r, v)| json!({"registry": r, "remaining": v})).collect::<Vec<_>>(),
        }));
        return;
    }
    let mut rows = Vec::new();
    for r in &report.results {
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
    for r in &report.results {
        if let Some(d) = &r.decision {
            println!(
                "{}: policy: {}: {}",
                r.reference,
                verdict_word(d.act),
                d.reason
            );
        }
    }
    for d in &report.deliveries {
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
    for r in &report.results {
        if let Some(e) = &r.inventory_error {
            eprintln!(
                "freshen: warning: {}: the change is recorded, but the inventory still has the old digest: {e}",
                r.reference
            );
        }
    }
    for (r, v) in &report.rate_limits {
        eprintln!("{r}: rate limit remaining {v}");
    }
    for (r, e) in &report.errors {
        if e.contains(r.as_str()) {
            eprintln!("freshen: error: {e}");
        } else {
            eprintln!("freshen: error: {r}: {e}");
        }
    }
}

/// `freshen scan`.
pub fn scans(reports: &[ScanReport], errors: &[(String, String)], json: bool) {
    if json {
        print_json(&json!({
            "images": reports,
            "errors": errors.iter().map(|(r, e)| json!({"reference": r, "error": e})).collect::<Vec<_>>(),
        }));
    } else {
        table(
            &[
                "REFERENCE",
                "PLATFORM",
                "DIGEST",
                "OS",
                "PACKAGES",
                "LAYERS READ/CACHED",
                "BASE (EVIDENCE)",
            ],
            reports
                .iter()
                .map(|r| {
                    vec![
                        r.reference.clone(),
                        r.platform.clone(),
                        r.digest.clone(),
                        r.os.clone().unwrap_or_else(|| "-".into()),
                        r.packages.to_string(),
                        format!("{}/{}", r.layers_read, r.layers_cached),
                        r.base
                            .first()
                            .map(|e| {
                                format!(
                                    "{} ({})",
                                    e.base_reference
                                        .clone()
                                        .or(e.base_digest.clone())
                                        .unwrap_or_default(),
                                    e.evidence
                                )
                            })
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect(),
        );
        for r in reports {
            for w in &r.warnings {
                eprintln!("warning: {} ({}): {w}", r.reference, r.platform);
            }
        }
    }
    for (r, e) in errors {
        if e.contains(r.as_str()) {
            eprintln!("freshen: error: {e}");
        } else {
            eprintln!("freshen: error: {r}: {e}");
        }
    }
}

/// `freshen images list`: a table and, when more rows follow, how to
/// ask for them (on stderr, so a pipe reads only rows).
pub fn image_list(page: &freshen_app::ImagePage, json: bool) {
    if json {
        print_json(page);
        return;
    }
    let short = |d: &str| {
        d.strip_prefix("sha256:")
            .unwrap_or(d)
            .chars()
            .take(12)
            .collect::<String>()
    };
    table(
        &[
            "IMAGE", "PLATFORM", "DIGEST", "OS", "PACKAGES", "BASE", "STATUS",
        ],
        page.items
            .iter()
            .map(|i| {
                let status = match (i.outdated, i.vulnerable) {
                    (true, true) => "outdated, vulnerable",
                    (true, false) => "outdated",
                    (false, true) => "vulnerable",
                    (false, false) => "current",
                };
                vec![
                    i.reference.clone(),
                    i.platform.clone(),
                    short(&i.digest),
                    i.os.clone().unwrap_or_else(|| "-".into()),
                    i.packages.to_string(),
                    i.base.clone().unwrap_or_else(|| "-".into()),
                    status.to_string(),
                ]
            })
            .collect(),
    );
    let shown = page.items.len() as i64;
    match page.next {
        Some(next) => eprintln!(
            "rows {}-{} of {}; next page: --offset {next}",
            page.offset + 1,
            page.offset + shown,
            page.total
        ),
        None if shown == 0 && page.total > 0 => {
            eprintln!("no rows at offset {} ({} in all)", page.offset, page.total)
        }
        None => {}
    }
}

/// `freshen images show`.
pub fn image(view: &ImageView, json: bool) {
    if json {
        print_json(view);
        return;
    }
    println!("{}", view.reference);
    for p in &view.platforms {
        println!("  {}  {}", p.platform, p.digest);
        if let Some(i) = &p.index_digest {
            println!("    index     {i}");
        }
        println!("    os        {}", p.os.as_deref().unwrap_or("-"));
        println!("    packages  {}", p.packages);
        println!("    scanned   {} ({})", time(p.scanned_at), p.source);
        if p.base.is_empty() {
            println!("    base      - (none known)");
        }
        for e in &p.base {
            println!(
                "    base      {} {} ({}, confidence {}{})",
                e.base_reference.as_deref().unwrap_or("-"),
                e.base_digest.as_deref().unwrap_or(""),
                e.evidence,
                e.confidence,
                e.detail
                    .as_deref()
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// `freshen images children`.
pub fn children(kids: &[ChildView], json: bool) {
    if json {
        print_json(&kids);
        return;
    }
    table(
        &["DEPTH", "IMAGE", "PLATFORM", "DIGEST", "EVIDENCE", "BASE"],
        kids.iter()
            .map(|k| {
                vec![
                    k.depth.to_string(),
                    if k.references.is_empty() {
                        "-".into()
                    } else {
                        k.references.join(", ")
                    },
                    k.platform.clone(),
                    k.digest.clone(),
                    format!("{} ({})", k.evidence, k.confidence),
                    if k.outdated {
                        "outdated".into()
                    } else {
                        "current".into()
                    },
                ]
            })
            .collect(),
    );
}

/// `freshen images packages`.
pub fn image_packages(
    by_platform: &std::collections::BTreeMap<String, Vec<PackageRecord>>,
    json: bool,
) {
    if json {
        print_json(by_platform);
        return;
    }
    let mut rows = Vec::new();
    for (platform, pkgs) in by_platform {
        for p in pkgs {
            rows.push(vec![
                platform.clone(),
                p.ecosystem.clone(),
                p.name.clone(),
                p.version.clone(),
                p.source_name.clone().unwrap_or_default(),
                p.layer.as_deref().map(short).unwrap_or_default(),
            ]);
        }
    }
    table(
        &["PLATFORM", "TYPE", "NAME", "VERSION", "SOURCE", "LAYER"],
        rows,
    );
}

/// `freshen packages`.
pub fn package_versions(name: &str, versions: &[PackageVersion], json: bool) {
    if json {
        print_json(&json!({"name": name, "versions": versions}));
        return;
    }
    let mut rows = Vec::new();
    for v in versions {
        for h in &v.images {
            rows.push(vec![
                v.ecosystem.clone(),
                v.name.clone(),
                v.version.clone(),
                if h.references.is_empty() {
                    h.digest.clone()
                } else {
                    h.references.join(", ")
                },
                h.platform.clone(),
            ]);
        }
    }
    if rows.is_empty() {
        eprintln!("no image in the inventory holds {name}");
        return;
    }
    table(&["TYPE", "NAME", "VERSION", "IMAGE", "PLATFORM"], rows);
}

fn short(d: &str) -> String {
    d.split_once(':')
        .map(|(_, h)| h.chars().take(12).collect())
        .unwrap_or_else(|| d.to_string())
}

/// `vulns sync`: one row per archive; failures also go to stderr, one
/// line each, naming the archive.
pub fn feed_syncs(synced: &FeedsSynced, json: bool) {
    if json {
        print_json(synced);
        return;
    }
    let mut rows = Vec::new();
    for f in &synced.feeds {
        if let Some(note) = &f.note {
            eprintln!("freshen: feed {}: {note}", f.feed);
        }
        for a in &f.archives {
            let (outcome, counts) = match &a.outcome {
                ArchiveOutcome::Unchanged => ("unchanged", vec!["-".into(); 5]),
                ArchiveOutcome::Imported { summary, .. } => (
                    "imported",
                    vec![
                        summary.records.to_string(),
                        summary.added.to_string(),
                        summary.updated.to_string(),
                        summary.unchanged.to_string(),
                        summary.import_id.to_string(),
                    ],
                ),
                ArchiveOutcome::Failed { error } => {
                    eprintln!(
                        "freshen: feed {}: {error} (the data imported before stays in force)",
                        f.feed
                    );
                    ("failed", vec!["-".into(); 5])
                }
            };
            let mut row = vec![f.feed.clone(), a.source.clone(), outcome.into()];
            row.extend(counts);
            rows.push(row);
        }
    }
    table(
        &[
            "FEED",
            "SOURCE",
            "OUTCOME",
            "RECORDS",
            "ADDED",
            "UPDATED",
            "UNCHANGED",
            "IMPORT",
        ],
        rows,
    );
    vulnerability_events(&synced.events);
}

/// The `vulnerability` events that new data made: one line each.
pub fn vulnerability_events(events: &[ChangeEvent]) {
    for e in events {
        let ids: Vec<String> = e
            .vulnerability
            .as_ref()
            .and_then(|v| v.findings.as_array())
            .map(|fs| {
                let mut ids: Vec<String> = fs
                    .iter()
                    .filter_map(|f| f["id"].as_str().map(str::to_string))
                    .collect();
                ids.dedup();
                ids
            })
            .unwrap_or_default();
        let reason = e
            .decision
            .as_ref()
            .map(|d| d.reason.as_str())
            .unwrap_or_default();
        println!(
            "vulnerability event {} for {} ({}): {}; {reason}",
            e.id,
            e.reference,
            e.vulnerability
                .as_ref()
                .map(|v| v.platform.as_str())
                .unwrap_or_default(),
            ids.join(", ")
        );
    }
}

/// `vulns feeds`: each archive's state.
pub fn feed_archives(list: &[FeedArchive], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    let rows = list
        .iter()
        .map(|a| {
            vec![
                a.feed.clone(),
                a.source.clone(),
                time(a.checked_at),
                a.changed_at.map(time).unwrap_or_else(|| "-".into()),
                a.import_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                a.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["FEED", "SOURCE", "CHECKED", "CHANGED", "IMPORT", "ERROR"],
        rows,
    );
}

pub fn imports(list: &[Imported], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    let rows = list
        .iter()
        .map(|i| {
            vec![
                i.path.clone(),
                i.kind.clone(),
                i.summary.records.to_string(),
                i.summary.added.to_string(),
                i.summary.updated.to_string(),
                i.summary.unchanged.to_string(),
                i.summary.import_id.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PATH",
            "KIND",
            "RECORDS",
            "ADDED",
            "UPDATED",
            "UNCHANGED",
            "IMPORT",
        ],
        rows,
    );
    for i in list {
        if let Some(r) = &i.report {
            let version = r
                .scanner_version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            let later = if r.in_inventory {
                ""
            } else {
                " (not in the inventory yet: its findings show once it is scanned)"
            };
            println!(
                "{}: {}{version} report for {}: {} findings, {}{later}",
                i.path,
                r.scanner,
                r.image_digest,
                r.findings,
                r.outcome.as_str()
            );
        }
    }
}

fn finding_row(prefix: Vec<String>, f: &Finding) -> Vec<String> {
    let mut row = prefix;
    row.extend([
        f.id.clone(),
        f.severity.to_string(),
        f.package.clone(),
        f.version.clone(),
        f.fixed.clone().unwrap_or_else(|| "-".into()),
        f.aliases.join(", "),
        f.sources.join(","),
    ]);
    row
}

pub fn image_vulns(r: &Reference, list: &[ImageVulns], json: bool) {
    if json {
        print_json(&serde_json::json!({"reference": r.to_string(), "platforms": list}));
        return;
    }
    let mut rows = Vec::new();
    for p in list {
        for f in &p.findings {
            rows.push(finding_row(vec![p.platform.clone()], f));
        }
    }
    table(
        &[
            "PLATFORM", "ID", "SEVERITY", "PACKAGE", "VERSION", "FIXED", "ALIASES", "SOURCES",
        ],
        rows,
    );
    for p in list {
        let counts: Vec<String> = p
            .counts
            .iter()
            .rev()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "{} ({}): {}",
            p.platform,
            p.os.as_deref().unwrap_or("unknown OS"),
            if counts.is_empty() {
                "no findings".to_string()
            } else {
                counts.join(", ")
            }
        );
    }
}

pub fn affected_images(list: &[AffectedImage], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    let mut rows = Vec::new();
    for a in list {
        for f in &a.findings {
            rows.push(finding_row(
                vec![
                    a.references.join(", "),
                    a.platform.clone(),
                    short(&a.digest),
                ],
                f,
            ));
        }
    }
    table(
        &[
            "REFERENCES",
            "PLATFORM",
            "DIGEST",
            "ID",
            "SEVERITY",
            "PACKAGE",
            "VERSION",
            "FIXED",
            "ALIASES",
            "SOURCES",
        ],
        rows,
    );
}

pub fn diff(list: &[BaseDiff], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    for d in list {
        println!(
            "{}: {} -> {}: {} upgraded, {} added, {} removed; {} fixed, {} introduced",
            d.platform,
            short(&d.old_digest),
            short(&d.new_digest),
            d.upgraded.len(),
            d.added.len(),
            d.removed.len(),
            d.fixed.len(),
            d.introduced.len()
        );
        let rows = d
            .upgraded
            .iter()
            .map(|u| {
                vec![
                    u.ecosystem.clone(),
                    u.name.clone(),
                    u.from.clone(),
                    u.to.clone(),
                    u.direction.clone(),
                ]
            })
            .collect();
        table(&["TYPE", "NAME", "FROM", "TO", "CHANGE"], rows);
        let rows = d
            .fixed
            .iter()
            .map(|f| finding_row(vec!["fixed".into()], f))
            .chain(
                d.introduced
                    .iter()
                    .map(|f| finding_row(vec!["introduced".into()], f)),
            )
            .collect();
        table(
            &[
                "", "ID", "SEVERITY", "PACKAGE", "VERSION", "FIXED", "ALIASES", "SOURCES",
            ],
            rows,
        );
        for c in &d.children {
            println!(
                "child {} (depth {}): {}",
                c.references.join(", "),
                c.depth,
                if c.fixed.is_empty() {
                    "holds nothing the new base fixes".to_string()
                } else {
                    format!("the new base fixes {}", c.fixed.join(", "))
                }
            );
        }
    }
}

pub fn policy_checks(list: &[PolicyCheck], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.reference.clone(),
                c.platform.clone(),
                c.policy.clone(),
                verdict_word(c.verdict.act).to_string(),
                c.verdict.reason.clone(),
            ]
        })
        .collect();
    table(
        &["REFERENCE", "PLATFORM", "POLICY", "DECISION", "REASON"],
        rows,
    );
}

/// `freshen plan`.
pub fn plan(p: &Plan, json: bool, dot: bool) {
    if json {
        print_json(p);
        return;
    }
    if dot {
        print!("{}", p.dot());
        return;
    }
    println!(
        "plan: {}: {} image(s) in {} wave(s)",
        trigger_words(&p.trigger),
        p.len(),
        p.waves.len()
    );
    for (i, wave) in p.waves.iter().enumerate() {
        println!("wave {}:", i + 1);
        table(
            &["  IMAGE", "EXECUTOR", "DEFINED IN", "REASON"],
            wave.iter()
                .map(|b| {
                    vec![
                        format!("  {}", b.image),
                        b.executor.clone(),
                        b.origin.clone(),
                        b.reason.clone(),
                    ]
                })
                .collect(),
        );
    }
    if !p.not_buildable.is_empty() {
        println!(
            "built on it, but no build definition (not rebuilt): {}",
            p.not_buildable.join(", ")
        );
    }
}

/// What a plan or a run started from, in a few words.
fn trigger_words(t: &Trigger) -> String {
    match t {
        Trigger::Base { reference } => format!("{reference} changed"),
        Trigger::Image { reference } => format!("rebuild {reference}"),
        Trigger::Vulnerable { images } => format!("{} vulnerable image(s)", images.len()),
        Trigger::All => "every build".to_string(),
    }
}

/// One line per step of a rebuild, on stderr.
pub fn rebuild_progress(p: freshen_app::RebuildProgress) {
    match p {
        freshen_app::RebuildProgress::Quiet { reason } => {
            eprintln!("the policy kept this change quiet: {reason}")
        }
        freshen_app::RebuildProgress::Nothing => eprintln!("nothing to rebuild"),
        freshen_app::RebuildProgress::Run(p) => run_progress(p),
    }
}

fn run_progress(p: Progress) {
    match p {
        Progress::Wave { index, images } => {
            eprintln!("wave {}: {images} image(s)", index + 1)
        }
        Progress::Started { image, version } => {
            eprintln!("  {image}: building {version}")
        }
        Progress::Finished { item } => eprintln!(
            "  {}: {}{}",
            item.image,
            item.state,
            item.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .or_else(|| item.digest.as_deref().map(|d| format!(" ({d})")))
                .unwrap_or_default()
        ),
    }
}

/// `freshen rebuild`, `freshen rebuilds RUN`.
/// `rebuild --vulnerable`: the run, then what became of each rebuilt
/// vulnerable image's findings.
pub fn rebuild_verified(r: &RunReport, verified: &[Verified], json: bool) {
    if json {
        let mut v = serde_json::to_value(r).expect("serialisable");
        v["verified"] = serde_json::to_value(verified).expect("serialisable");
        print_json(&v);
        return;
    }
    rebuild(r, false);
    for v in verified {
        println!("{}:", v.image);
        table(
            &["  FINDING", "PACKAGE", "VERSION", "OUTCOME", "WHY"],
            v.findings
                .iter()
                .map(|f| {
                    vec![
                        format!("  {}", f.id),
                        f.package.clone(),
                        f.version.clone(),
                        f.outcome.to_string(),
                        f.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        );
    }
}

pub fn rebuild(r: &RunReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    println!("rebuild {}: {}", r.run.id, r.run.state);
    table(
        &["WAVE", "IMAGE", "STATE", "VERSION", "DIGEST", "DETAIL"],
        r.items
            .iter()
            .map(|i| {
                vec![
                    (i.wave + 1).to_string(),
                    i.image.clone(),
                    i.state.to_string(),
                    i.version.clone().unwrap_or_default(),
                    i.digest.clone().unwrap_or_default(),
                    i.detail.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

/// `freshen rebuilds`.
pub fn rebuild_runs(runs: &[RebuildRun], json: bool) {
    if json {
        print_json(&runs);
        return;
    }
    table(
        &["RUN", "CREATED (UTC)", "STATE", "TRIGGER", "EVENT"],
        runs.iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    time(r.created_at),
                    r.state.to_string(),
                    // As stored: a run from an older version may not parse.
                    serde_json::from_value::<Trigger>(r.trigger.clone())
                        .map(|t| trigger_words(&t))
                        .unwrap_or_else(|_| r.trigger.to_string()),
                    // Empty for a run started by hand.
                    r.event_id.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

/// `freshen policy replay`.
pub fn replay(r: &Replay, json: bool) {
    if json {
        print_json(r);
        return;
    }
    let d = &r.decision;
    println!(
        "decision {} on {} by policy {} ({}), {}:",
        d.id,
        d.subject,
        d.policy,
        d.policy_version,
        time(d.decided_at)
    );
    println!("  stored:   {}: {}", verdict_word(d.act), d.reason);
    println!("  replayed: {}: {}", verdict_word(r.verdict.act), r.reason);
    println!(
        "  with {} (vulnerability data of import {}, {} records; policy {}; day {})",
        if r.mode == "now" {
            "the config's policy and today's data"
        } else {
            "the data and rules of its snapshot"
        },
        r.data["vuln_import"],
        r.data["records"],
        r.data["policy_version"].as_str().unwrap_or_default(),
        r.data["day"].as_str().unwrap_or_default()
    );
    println!(
        "  {}",
        if r.same {
            "same outcome"
        } else {
            "different outcome"
        }
    );
}

/// `freshen policy decisions`.
pub fn decisions(list: &[Decision], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    let rows = list
        .iter()
        .map(|d| {
            vec![
                time(d.decided_at),
                d.subject.clone(),
                d.policy.clone(),
                verdict_word(d.act).to_string(),
                d.event_id.clone().unwrap_or_else(|| "-".into()),
                d.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "DECIDED (UTC)",
            "SUBJECT",
            "POLICY",
            "DECISION",
            "EVENT",
            "REASON",
        ],
        rows,
    );
}

/// The progress bar of `freshen scan` over many images (hidden for one
/// image, and with `--json`).
pub struct ScanProgress {
    json: bool,
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
}

impl ScanProgress {
    pub fn new(json: bool) -> ScanProgress {
        ScanProgress {
            json,
            bar: std::sync::OnceLock::new(),
        }
    }

    /// Clears the bar once the scans are done.
    pub fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
    }
}

impl freshen_app::ScanObserver for ScanProgress {
    fn started(&self, total: usize) {
        let bar = if total > 1 && !self.json {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let _ = self.bar.set(bar);
    }

    fn scanned(&self, reference: &Reference) {
        if let Some(b) = self.bar.get() {
            b.inc(1);
            b.set_message(reference.familiar());
        }
    }
}

/// `freshen promote`, as each target is done: the source and its digest
/// before the first.
pub fn promoted(first: bool, source: &Reference, to: &Reference, report: &CopyReport) {
    if first {
        println!("{source}  {}", report.digest);
    }
    println!("  -> {to}  {}  ({})", report.digest, how(report));
}

/// `freshen promote --json`.
pub fn promotion(p: &freshen_app::Promotion) {
    print_json(p);
}

/// What a copy did, in a few words.
fn how(r: &CopyReport) -> String {
    let mut parts = Vec::new();
    if r.manifests_pushed > 1 {
        parts.push(format!("{} manifests", r.manifests_pushed));
    }
    if r.blobs_mounted > 0 {
        parts.push(format!("{} blobs mounted", r.blobs_mounted));
    }
    if r.blobs_copied > 0 {
        parts.push(format!("{} blobs copied", r.blobs_copied));
    }
    if r.already_present > 0 {
        parts.push(format!("{} already there", r.already_present));
    }
    if parts.is_empty() {
        "manifest only".into()
    } else {
        parts.join(", ")
    }
}

fn containers_line(cs: &[freshen_app::view::ContainerChange]) -> String {
    cs.iter()
        .map(|c| {
            let init = if c.init { " (init)" } else { "" };
            format!("{}{init}: {} -> {}", c.container, c.old, c.new)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `freshen rollout --plan`.
pub fn rollout_plan(p: &freshen_app::RolloutPlan, json: bool) {
    if json {
        print_json(p);
        return;
    }
    for i in &p.images {
        println!("image {} -> {} (wave {})", i.image, i.digest, i.wave + 1);
    }
    if p.matched.changes.is_empty() {
        println!("no workload to move");
    } else {
        table(
            &["WAVE", "WORKLOAD", "CONTAINERS"],
            p.matched
                .changes
                .iter()
                .map(|c| {
                    vec![
                        (c.wave + 1).to_string(),
                        c.workload.to_string(),
                        containers_line(&c.containers),
                    ]
                })
                .collect(),
        );
    }
    for c in &p.matched.current {
        println!(
            "already on the new digest: {} ({})",
            c.workload,
            c.containers.join(", ")
        );
    }
    for g in &p.gitops {
        println!("gitops: a commit to {g}");
    }
}

/// A roll-out's progress, on stderr.
pub fn rollout_progress(p: freshen_app::RolloutProgress) {
    match p {
        freshen_app::RolloutProgress::Started(c) => {
            eprintln!("  {} (wave {}): rolling out", c.workload, c.wave + 1)
        }
        freshen_app::RolloutProgress::Finished(c, o) => {
            let word = match &o {
                freshen_app::view::Outcome::Done(_) => "done",
                freshen_app::view::Outcome::RolledBack(_) => "rolled back",
                freshen_app::view::Outcome::Failed(_) => "failed",
                freshen_app::view::Outcome::Skipped(_) => "skipped",
            };
            eprintln!("  {}: {word}: {}", c.workload, o.detail())
        }
    }
}

/// `freshen rollout` and `freshen rollouts ID`.
pub fn rollout(r: &freshen_app::RolloutReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    println!("roll-out {}: {}", r.rollout.id, r.rollout.state);
    if r.items.is_empty() {
        println!("no workload runs these images");
        return;
    }
    table(
        &["WAVE", "WORKLOAD", "STATE", "TOOK", "DETAIL"],
        r.items
            .iter()
            .map(|i| {
                let took = match (i.started_at, i.finished_at) {
                    (Some(s), Some(f)) => format!("{:.1}s", (f - s).as_seconds_f64()),
                    _ => String::new(),
                };
                let detail = match &i.detail {
                    Some(d) => d.clone(),
                    None => serde_json::from_value::<Vec<freshen_app::view::ContainerChange>>(
                        i.containers.clone(),
                    )
                    .map(|cs| containers_line(&cs))
                    .unwrap_or_default(),
                };
                vec![
                    (i.wave + 1).to_string(),
                    i.workload.clone(),
                    i.state.to_string(),
                    took,
                    detail,
                ]
            })
            .collect(),
    );
}

/// `freshen rollouts`.
pub fn rollouts(list: &[freshen_app::view::RolloutRecord], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    table(
        &["ROLL-OUT", "CREATED (UTC)", "STATE", "OF"],
        list.iter()
            .map(|r| {
                let of = match (&r.run_id, r.trigger.get("image")) {
                    (Some(run), _) => format!("rebuild run {run}"),
                    (None, Some(image)) => format!(
                        "{}@{}",
                        image.as_str().unwrap_or_default(),
                        r.trigger["digest"].as_str().unwrap_or_default()
                    ),
                    _ => r.trigger.to_string(),
                };
                vec![r.id.clone(), time(r.created_at), r.state.to_string(), of]
            })
            .collect(),
    );
}

/// `freshen approvals`, `approve`, `reject`.
pub fn approvals(list: &[freshen_app::view::Approval], json: bool) {
    if json {
        print_json(&list);
        return;
    }
    if list.is_empty() {
        println!("no approval waiting");
        return;
    }
    table(
        &[
            "APPROVAL",
            "STAGE",
            "IMAGE",
            "ASKED BY",
            "STATE",
            "EXPIRES (UTC)",
            "DECISION",
        ],
        list.iter()
            .map(|a| {
                let decision = match (&a.decided_by, &a.comment) {
                    (Some(by), Some(c)) => format!("{by}: {c}"),
                    (Some(by), None) => by.clone(),
                    _ => String::new(),
                };
                vec![
                    a.id.clone(),
                    a.stage.clone(),
                    a.reference.clone(),
                    a.reason.clone(),
                    a.state.to_string(),
                    time(a.expires_at),
                    decision,
                ]
            })
            .collect(),
    );
}
