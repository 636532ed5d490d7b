use std::time::Duration;

use freshen_testkit::{Jenkins, JenkinsOptions};
use serde_json::Value;

use crate::client;

fn opts() -> JenkinsOptions {
    JenkinsOptions {
        user: "ci".into(),
        api_token: "11abcdef".into(),
        ..JenkinsOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crumb_cookie_build_queue_and_job() {
    let j = Jenkins::start(JenkinsOptions {
        queue_delay: Duration::from_millis(1500),
        ..opts()
    })
    .await;
    let c = client();

    // Crumb with its session cookie.
    let r = c
        .get(format!("{}/crumbIssuer/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-jenkins"));
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with(&format!("{}=", j.cookie_name())),
        "{set_cookie}"
    );
    assert!(j.cookie_name().starts_with("JSESSIONID."));
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let crumb: Value = r.json().await.unwrap();
    assert_eq!(crumb["_class"], "hudson.security.csrf.DefaultCrumbIssuer");
    assert_eq!(crumb["crumbRequestField"], "Jenkins-Crumb");
    let crumb = crumb["crumb"].as_str().unwrap().to_string();
    assert!(crumb.len() >= 32 && crumb.chars().all(|c| c.is_ascii_hexdigit()));

    // Parameters in the query string, crumb + cookie sent.
    let r = c
        .post(format!(
            "{}/job/images/job/rebuild-app/buildWithParameters?IMAGE=app%3A1&DIGEST=sha256%3Aabc",
            j.url()
        ))
        .basic_auth("ci", Some("11abcdef"))
        .header("Jenkins-Crumb", &crumb)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/queue/item/", j.url())),
        "{location}"
    );
    assert!(location.ends_with('/'));

    // Form body, crumb without the cookie: accepted (API token) but not ok.
    let r = c
        .post(format!(
            "{}/job/images/job/rebuild-app/buildWithParameters",
            j.url()
        ))
        .basic_auth("ci", Some("11abcdef"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("IMAGE=app+2&Jenkins-Crumb={crumb}&token=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // /build with the json form field.
    let r = c
        .post(format!("{}/job/solo/build", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            "json=%7B%22parameter%22%3A%5B%7B%22name%22%3A%22A%22%2C%22value%22%3A%221%22%7D%5D%7D",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let builds = j.builds();
    assert_eq!(builds.len(), 3);
    assert_eq!(builds[0].job, "images/rebuild-app");
    assert_eq!(builds[0].params["IMAGE"], "app:1");
    assert_eq!(builds[0].params["DIGEST"], "sha256:abc");
    assert!(builds[0].crumb_ok);
    assert_eq!(builds[0].endpoint, "buildWithParameters");
    assert_eq!(builds[1].params.len(), 1, "{:?}", builds[1].params);
    assert_eq!(builds[1].params["IMAGE"], "app 2");
    assert!(!builds[1].crumb_ok);
    assert_eq!(builds[1].number, 2);
    assert_eq!(builds[2].job, "solo");
    assert_eq!(builds[2].endpoint, "build");
    assert_eq!(builds[2].params["A"], "1");
    assert_eq!(builds[2].number, 1);

    // Queue: waiting first, then left with the executable.
    let item_url = format!("{location}api/json");
    let item: Value = c
        .get(&item_url)
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item["_class"], "hudson.model.Queue$WaitingItem");
    assert_eq!(item["id"], builds[0].queue_id);
    let queue: Value = c
        .get(format!("{}/queue/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let params = &items[0]["actions"][0]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "IMAGE" && p["value"] == "app:1")
    );

    // Poll as a client would until the item left the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let item = loop {
        let item: Value = c
            .get(&item_url)
            .basic_auth("ci", Some("11abcdef"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if item["_class"] != "hudson.model.Queue$WaitingItem"
            || std::time::Instant::now() > deadline
        {
            break item;
        }
        assert!(
            item["why"]
                .as_str()
                .unwrap()
                .starts_with("In the quiet period")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(item["_class"], "hudson.model.Queue$LeftItem");
    assert_eq!(item["executable"]["number"], 1);
    let build_url = item["executable"]["url"].as_str().unwrap().to_string();
    assert_eq!(
        build_url,
        format!("{}/job/images/job/rebuild-app/1/", j.url())
    );
    let build: Value = c
        .get(format!("{build_url}api/json"))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(build["building"], false);
    assert_eq!(build["result"], "SUCCESS");
    assert_eq!(build["number"], 1);
    assert_eq!(build["url"], build_url.as_str());

    // Job listing for reconciliation, newest first.
    let job: Value = c
        .get(format!(
            "{}/job/images/job/rebuild-app/api/json?tree=builds[number,url,actions[parameters[name,value]]]",
            j.url()
        ))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["fullName"], "images/rebuild-app");
    let jb = job["builds"].as_array().unwrap();
    assert_eq!(jb.len(), 2);
    assert_eq!(jb[0]["number"], 2);
    assert_eq!(jb[1]["actions"][0]["parameters"][1]["name"], "IMAGE");
    assert_eq!(jb[1]["actions"][0]["parameters"][1]["value"], "app:1");
    let queue: Value = c
        .get(format!("{}/queue/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(queue["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_crumb_failures_results_and_delay() {
    let j = Jenkins::start(JenkinsOptions {
        require_crumb: true,
        queue_delay: Duration::ZERO,
        ..opts()
    })
    .await;
    let c = client();
    let build = format!("{}/job/deploy/buildWithParameters?X=1", j.url());

    assert_eq!(c.post(&build).send().await.unwrap().status(), 401);
    let r = c
        .post(&build)
        .basic_auth("ci", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Crumb required in this mode: none, or one from another session.
    let r = c
        .post(&build)
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let crumb: Value = c
        .get(format!("{}/crumbIssuer/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let crumb = crumb["crumb"].as_str().unwrap();
    let r = c
        .post(&build)
        .basic_auth("ci", Some("11abcdef"))
        .header("Jenkins-Crumb", crumb)
        .header("Cookie", format!("{}=node0forged.node0", j.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(j.builds().is_empty());

    // With a cookie jar the crumb works.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let jar = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .build()
        .unwrap();
    let crumb: Value = jar
        .get(format!("{}/crumbIssuer/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    j.set_result("deploy", "FAILURE");
    j.set_delay(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let r = jar
        .post(&build)
        .basic_auth("ci", Some("11abcdef"))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(t.elapsed() >= Duration::from_millis(200));
    let builds = j.wait_for_builds(1, Duration::from_secs(1)).await;
    assert!(builds[0].crumb_ok);
    let b: Value = c
        .get(format!("{}/job/deploy/lastBuild/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["result"], "FAILURE");

    j.set_delay(Duration::ZERO);
    j.fail_next(2, 502);
    for _ in 0..2 {
        let r = jar
            .post(&build)
            .basic_auth("ci", Some("11abcdef"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
    }
    assert_eq!(j.builds().len(), 1);
    assert_eq!(j.build_attempts(), 7);
    let r = c
        .get(format!("{}/job/deploy/99/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn csrf_off_has_no_crumb_issuer() {
    let j = Jenkins::start(JenkinsOptions {
        csrf: false,
        ..opts()
    })
    .await;
    let c = client();
    let r = c
        .get(format!("{}/crumbIssuer/api/json", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(format!("{}/job/a%20b/build", j.url()))
        .basic_auth("ci", Some("11abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(j.builds()[0].job, "a b");
    assert!(!j.builds()[0].crumb_ok);
}
