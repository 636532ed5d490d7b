//! Scanner reports: one per image and scanner, idempotent, newer replaces
//! older, each change a new data snapshot.

use freshen_store::{ReportInput, ReportOutcome};

use crate::common::{Ctx, both, t};

both!(reports_per_image_and_scanner);

fn report(digest: &str, scanner: &str, report_digest: &str, scanned: Option<i64>) -> ReportInput {
    ReportInput {
        image_digest: digest.into(),
        scanner: scanner.into(),
        scanner_version: Some("0.69.1".into()),
        report_digest: report_digest.into(),
        source: format!("{scanner}.json"),
        scanned_at: scanned.map(t),
        findings: format!(r#"[{{"id": "CVE-2023-5363", "report": "{report_digest}"}}]"#),
        finding_count: 1,
    }
}

async fn reports_per_image_and_scanner(ctx: Ctx) {
    let s = &ctx.store;
    assert!(s.reports_of("sha256:img").await.unwrap().is_empty());
    let first = s
        .import_report(
            &report("sha256:img", "trivy", "sha256:r1", Some(10)),
            t(100),
        )
        .await
        .unwrap();
    assert_eq!(first.outcome, ReportOutcome::Added);
    assert_eq!(s.vuln_snapshot().await.unwrap(), Some(first.import_id));

    // The same report again: nothing changes, not even the snapshot.
    let again = s
        .import_report(
            &report("sha256:img", "trivy", "sha256:r1", Some(10)),
            t(101),
        )
        .await
        .unwrap();
    assert_eq!(again.outcome, ReportOutcome::Unchanged);
    assert_eq!(again.import_id, first.import_id);
    assert_eq!(s.vuln_snapshot().await.unwrap(), Some(first.import_id));

    // Another scanner's report of the same image sits beside it.
    let grype = s
        .import_report(&report("sha256:img", "grype", "sha256:g1", None), t(102))
        .await
        .unwrap();
    assert_eq!(grype.outcome, ReportOutcome::Added);
    let stored = s.reports_of("sha256:img").await.unwrap();
    let scanners: Vec<&str> = stored.iter().map(|r| r.scanner.as_str()).collect();
    assert_eq!(scanners, ["grype", "trivy"]);
    assert_eq!(stored[1].scanned_at, Some(t(10)));
    assert_eq!(stored[1].imported_at, t(100));
    assert_eq!(stored[1].scanner_version.as_deref(), Some("0.69.1"));
    assert_eq!(stored[0].scanned_at, None);

    // A newer scan replaces the older one's findings.
    let newer = s
        .import_report(
            &report("sha256:img", "trivy", "sha256:r2", Some(20)),
            t(103),
        )
        .await
        .unwrap();
    assert_eq!(newer.outcome, ReportOutcome::Replaced);
    assert!(newer.import_id > grype.import_id);
    assert_eq!(s.vuln_snapshot().await.unwrap(), Some(newer.import_id));
    let trivy = s
        .reports_of("sha256:img")
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.scanner == "trivy")
        .unwrap();
    assert_eq!(trivy.report_digest, "sha256:r2");
    assert!(trivy.findings.contains("sha256:r2"));
    assert_eq!(trivy.import_id, newer.import_id);

    // An older scan imported late is not kept.
    let late = s
        .import_report(&report("sha256:img", "trivy", "sha256:r0", Some(5)), t(104))
        .await
        .unwrap();
    assert_eq!(late.outcome, ReportOutcome::Older);
    assert_eq!(late.import_id, newer.import_id);
    assert_eq!(s.vuln_snapshot().await.unwrap(), Some(newer.import_id));

    // A report without a scan time replaces by import order.
    let undated = s
        .import_report(&report("sha256:img", "trivy", "sha256:r3", None), t(105))
        .await
        .unwrap();
    assert_eq!(undated.outcome, ReportOutcome::Replaced);

    s.import_report(&report("sha256:other", "trivy", "sha256:o1", None), t(106))
        .await
        .unwrap();
    let all: Vec<(String, String)> = s
        .all_reports()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.image_digest, r.report_digest))
        .collect();
    assert_eq!(
        all,
        [
            ("sha256:img".to_string(), "sha256:g1".to_string()),
            ("sha256:img".to_string(), "sha256:r3".to_string()),
            ("sha256:other".to_string(), "sha256:o1".to_string()),
        ]
    );
}
