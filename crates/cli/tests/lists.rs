//! `freshen images list` and `GET /images`: filters, pages, the next-page
//! link, and refusals, over images registered through the API.

mod common;

use common::Env;
use freshen_testkit::{Db, both_stores};
use serde_json::{Value, json};

fn digest(n: u32) -> String {
    format!("sha256:{n:064x}")
}

async fn images_listed_and_paged(db: Db) {
    let mut env = Env::new(db).await;
    env.env("API_TOKEN", "tok-list");
    let config = env.config("server:\n  listen: 127.0.0.1:0\n  write_tokens: [\"${API_TOKEN}\"]\n");
    let common::Served {
        mut child,
        url: base_url,
        stderr: _stderr,
    } = common::serve(&env, &config).await;
    let http = common::http();
    let enc = |r: &str| r.replace('/', "%2F").replace(':', "%3A");
    let register = |r: String, body: Value, replace: bool| {
        let url = format!("{base_url}/images/{}", enc(&r));
        let req = if replace {
            http.put(url)
        } else {
            http.post(url)
        };
        req.bearer_auth("tok-list").json(&body).send()
    };
    const BASE: &str = "registry.example/golden/base:1";
    let r = register(BASE.into(), json!({"digest": digest(1)}), false)
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Six apps built on the base's first digest.
    for i in 0..6 {
        let r = register(
            format!("registry.example/apps/app-{i:02}:1"),
            json!({
                "digest": digest(100 + i),
                "base": BASE,
                "base_digest": digest(1),
                "packages": [{"name": "openssl", "version": "3.0.11-1", "ecosystem": "deb"}],
            }),
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // The base moves; one app is rebuilt on the new digest.
    let r = register(BASE.into(), json!({"digest": digest(2)}), true)
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = register(
        "registry.example/apps/app-05:1".into(),
        json!({"digest": digest(205), "base": BASE, "base_digest": digest(2)}),
        true,
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Everything, sorted by reference.
    let all = env.run(&["images", "list", "--json"]).await;
    let all = all.expect(0).json();
    assert_eq!(all["total"], 7, "{all}");
    assert_eq!(all["next"], Value::Null);
    let refs: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    let mut sorted = refs.clone();
    sorted.sort();
    assert_eq!(refs, sorted);
    let app0 = &all["items"][0];
    assert_eq!(app0["reference"], "registry.example/apps/app-00:1");
    assert_eq!(app0["base"], BASE);
    assert_eq!(app0["packages"], 1);
    assert_eq!(app0["outdated"], true);

    // Outdated: the five apps still on the base's old digest.
    let old = env.run(&["images", "list", "--outdated", "--json"]).await;
    let old = old.expect(0).json();
    assert_eq!(old["total"], 5, "{old}");
    assert!(
        old["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["reference"] != "registry.example/apps/app-05:1")
    );

    // Search is by part of the reference, in any case; `_` and `%` are text.
    let found = env.run(&["images", "list", "-s", "APP-0", "--json"]).await;
    assert_eq!(found.expect(0).json()["total"], 6);
    let none = env.run(&["images", "list", "-s", "app_0", "--json"]).await;
    assert_eq!(none.expect(0).json()["total"], 0);

    // Pages: the table says where the next one starts.
    let p = env
        .run(&["images", "list", "--limit", "3", "--offset", "3"])
        .await;
    p.expect(0);
    assert_eq!(p.stdout.lines().count(), 4, "header and 3 rows: {p}");
    assert!(p.stdout.contains("app-03"), "{p}");
    assert!(
        p.stderr.contains("rows 4-6 of 7; next page: --offset 6"),
        "{p}"
    );
    assert!(p.stdout.lines().nth(1).unwrap().contains("outdated"), "{p}");

    // The API: the same page, with a Link to the next.
    let resp = http
        .get(format!("{base_url}/images?search=app&limit=4"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</images?search=app&limit=4&offset=4>; rel=\"next\"");
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["total"], 6);
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let last = http
        .get(format!("{base_url}{}", &link[1..link.find('>').unwrap()]))
        .send()
        .await
        .unwrap();
    assert!(last.headers().get("link").is_none());
    let last: Value = last.json().await.unwrap();
    assert_eq!(last["items"].as_array().unwrap().len(), 2);
    assert_eq!(last["next"], Value::Null);

    // Refusals name the value.
    let bad = env.run(&["images", "list", "--limit", "0"]).await;
    bad.expect(2);
    assert!(bad.stderr.contains("limit 0"), "{bad}");
    for q in ["limit=5000", "offset=-1", "outdated=maybe", "colour=red"] {
        let r = http
            .get(format!("{base_url}/images?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body = r.text().await.unwrap();
        let name = q.split('=').next().unwrap();
        assert!(body.contains(name), "{q}: {body}");
    }
    child.kill().await.ok();
}

both_stores!(images_listed_and_paged);
