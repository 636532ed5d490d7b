//! `freshen scan`: many images with bounded concurrency and a progress bar.

use anyhow::Result;
use freshen_inventory::{ScanOptions, ScanReport, Scanner};
use freshen_reference::Reference;
use futures::StreamExt as _;

use crate::output;

/// Scans `refs`, `concurrency` at a time; exit 2 if any failed.
pub async fn run(
    scanner: &Scanner,
    refs: Vec<Reference>,
    opts: &ScanOptions,
    concurrency: usize,
    json: bool,
) -> Result<u8> {
    let bar = if refs.len() > 1 && !json {
        let b = indicatif::ProgressBar::new(refs.len() as u64);
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
    let results: Vec<(
        Reference,
        Result<Vec<ScanReport>, freshen_inventory::InventoryError>,
    )> = futures::stream::iter(refs)
        .map(|r| {
            let bar = &bar;
            async move {
                let res = scanner.scan(&r, opts).await;
                bar.inc(1);
                bar.set_message(r.familiar());
                (r, res)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for (r, res) in results {
        match res {
            Ok(mut v) => reports.append(&mut v),
            Err(e) => errors.push((r.to_string(), e.to_string())),
        }
    }
    reports.sort_by(|a, b| (&a.reference, &a.platform).cmp(&(&b.reference, &b.platform)));
    output::scans(&reports, &errors, json);
    Ok(if errors.is_empty() { 0 } else { 2 })
}
