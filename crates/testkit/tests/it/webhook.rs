use std::time::{Duration, Instant};

use freshen_testkit::{EVENT_ID_HEADER, SIGNATURE_HEADER, WebhookReceiver, sign};

use crate::client;

#[tokio::test(flavor = "multi_thread")]
async fn signatures_failures_and_delay() {
    let hook = WebhookReceiver::start("topsecret").await;
    let c = client();
    let body = br#"{"event":"digest_changed","image":"app:1"}"#;

    let r = c
        .post(hook.url())
        .header(EVENT_ID_HEADER, "ev-1")
        .header(SIGNATURE_HEADER, sign("topsecret", body))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Wrong secret, missing header, garbage header.
    for sig in [
        Some(sign("other", body)),
        None,
        Some("sha256=zz".to_string()),
    ] {
        let mut rb = c.post(hook.url()).body(body.to_vec());
        if let Some(sig) = sig {
            rb = rb.header(SIGNATURE_HEADER, sig);
        }
        assert_eq!(rb.send().await.unwrap().status(), 200);
    }

    hook.fail_next(2, 503);
    for _ in 0..2 {
        let r = c.post(hook.url()).body("x").send().await.unwrap();
        assert_eq!(r.status(), 503);
    }
    assert_eq!(
        c.post(hook.url()).body("x").send().await.unwrap().status(),
        200
    );

    hook.set_delay(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(
        c.post(hook.url()).body("{}").send().await.unwrap().status(),
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(300));

    assert_eq!(c.get(hook.url()).send().await.unwrap().status(), 405);

    let got = hook.wait_for(8, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 8);
    assert_eq!(got[0].event_id.as_deref(), Some("ev-1"));
    assert!(got[0].signature_valid);
    assert_eq!(got[0].body["image"], "app:1");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[0].path, "/hook");
    assert!(got[1..4].iter().all(|r| !r.signature_valid));
    assert_eq!(got[1].event_id, None);
    assert_eq!(got[4].status, 503);
    assert_eq!(got[6].status, 200);
    assert_eq!(got[4].body, serde_json::Value::Null);
    assert_eq!(got[4].raw_body, b"x");
}
