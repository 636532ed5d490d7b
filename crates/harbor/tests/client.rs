//! The Harbor client against the testkit's Harbor API double: paging,
//! double-encoded repository names, the scan overview header, and auth.

use freshen_harbor::{ACCEPT_VULNERABILITIES, Client, Credentials, HarborError};
use freshen_testkit::{Harbor, HarborArtifact, HarborOptions};
use serde_json::json;

const MIME: &str = "application/vnd.security.vulnerability.report; version=1.1";

fn report(severity: &str, n: usize) -> serde_json::Value {
    let vulns: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("CVE-2024-{i:04}"), "package": "p", "version": "1", "fix_version": "2", "severity": severity, "description": "", "links": []}))
        .collect();
    json!({ MIME: {"generated_at": "2026-11-30T09:58:12Z", "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.58.1"}, "severity": severity, "vulnerabilities": vulns}})
}

fn digest(i: u8) -> String {
    format!("sha256:{}", format!("{i:02x}").repeat(32))
}

async fn harbor() -> Harbor {
    let h = Harbor::start(HarborOptions::default()).await;
    for (i, repo) in ["golden/base", "golden/team/app", "golden/tools"]
        .iter()
        .enumerate()
    {
        h.add_artifact(
            repo,
            HarborArtifact {
                digest: digest(i as u8),
                tags: vec!["1".into()],
                report: Some(report("High", i + 1)),
            },
        );
    }
    h.add_artifact(
        "golden/base",
        HarborArtifact {
            digest: digest(9),
            tags: vec![],
            report: None,
        },
    );
    h
}

fn client(h: &Harbor) -> Client {
    Client::new(
        &h.url(),
        Some(Credentials {
            username: h.user(),
            password: h.password(),
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn lists_every_page_with_scan_overviews() {
    let h = harbor().await;
    let c = client(&h).with_page_size(2);
    let repos = c.repositories("golden").await.unwrap();
    let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["golden/base", "golden/team/app", "golden/tools"]);
    let pages: Vec<String> = h
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/repositories"))
        .map(|r| format!("{}/{}", r.query["page"], r.query["page_size"]))
        .collect();
    assert_eq!(pages, ["1/2", "2/2"]);

    // A name with a slash, encoded twice in the path.
    let arts = c.artifacts("golden", "golden/team/app").await.unwrap();
    let last = h.requests().pop().unwrap();
    assert_eq!(
        last.path,
        "/api/v2.0/projects/golden/repositories/team%252Fapp/artifacts"
    );
    assert_eq!(last.query["with_scan_overview"], "true");
    assert_eq!(
        last.accept_vulnerabilities.as_deref(),
        Some(ACCEPT_VULNERABILITIES)
    );
    assert_eq!(arts.len(), 1);
    let (mime, o) = arts[0].scanned().unwrap();
    assert_eq!(mime, MIME);
    let s = o.summary.as_ref().unwrap();
    assert_eq!((s.total, s.fixable, s.summary["High"]), (2, 2, 2));
    assert_eq!(o.scanner.as_ref().unwrap().name.as_deref(), Some("Trivy"));

    // Artifacts page too; one never scanned has no overview.
    let arts = c.artifacts("golden", "base").await.unwrap();
    assert_eq!(arts.len(), 2);
    assert!(arts[1].scanned().is_none());

    let body = c
        .vulnerabilities("golden", "golden/team/app", &digest(1))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v[MIME]["vulnerabilities"].as_array().unwrap().len(), 2);
    assert!(h.requests().pop().unwrap().path.ends_with(&format!(
        "/team%252Fapp/artifacts/{}/additions/vulnerabilities",
        digest(1).replace(':', "%3A")
    )));
}

#[tokio::test]
async fn refusals_are_clear_and_keep_the_secret() {
    let h = harbor().await;
    let anonymous = Client::new(&h.url(), None).unwrap();
    let e = anonymous.repositories("golden").await.unwrap_err();
    assert!(
        matches!(e, HarborError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("FRESHEN_HARBOR_USER"), "{e}");

    let wrong = Client::new(
        &h.url(),
        Some(Credentials {
            username: h.user(),
            password: "not-the-secret-x9".into(),
        }),
    )
    .unwrap();
    let e = wrong.repositories("golden").await.unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("robot$freshen") && shown.contains("refused"),
        "{shown}"
    );
    assert!(
        !shown.contains("not-the-secret-x9") && !format!("{e:?}").contains("not-the-secret-x9")
    );

    let e = client(&h).repositories("nope").await.unwrap_err();
    assert!(
        matches!(e, HarborError::Status { status: 404, .. })
            && e.to_string().contains("project nope not found"),
        "{e}"
    );
    let e = Client::new("ftp://harbor.example.com", None).unwrap_err();
    assert!(e.to_string().contains("http"), "{e}");
}

#[tokio::test]
async fn an_index_lists_its_children_which_read_by_digest() {
    let h = harbor().await;
    h.add_index(
        "golden/multi",
        &digest(20),
        &["1"],
        vec![
            (
                "linux/amd64",
                HarborArtifact {
                    digest: digest(21),
                    tags: vec![],
                    report: Some(report("Medium", 3)),
                },
            ),
            (
                "linux/arm64",
                HarborArtifact {
                    digest: digest(22),
                    tags: vec![],
                    report: None,
                },
            ),
        ],
    );
    let c = client(&h);
    let arts = c.artifacts("golden", "golden/multi").await.unwrap();
    assert_eq!(arts.len(), 1, "children are not listed");
    let children: Vec<(&str, &str)> = arts[0]
        .references
        .iter()
        .map(|r| {
            let p = r.platform.as_ref().unwrap();
            (r.child_digest.as_str(), p.architecture.as_str())
        })
        .collect();
    assert_eq!(
        children,
        [
            (digest(21).as_str(), "amd64"),
            (digest(22).as_str(), "arm64")
        ]
    );
    let amd64 = c.artifact("golden", "multi", &digest(21)).await.unwrap();
    let (_, o) = amd64.scanned().unwrap();
    assert_eq!(o.summary.as_ref().unwrap().summary["Medium"], 3);
    let arm64 = c.artifact("golden", "multi", &digest(22)).await.unwrap();
    assert!(arm64.scanned().is_none());
}
