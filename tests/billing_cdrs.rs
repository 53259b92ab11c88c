//! CDRs of calls of known length through the relay, billed with the
//! service's tariff or the client's override, pulled over REST as JSON and
//! CSV with a cursor.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::Method;
use serde_json::{json, Value};

both_engines!(
    answered_call_is_billed_and_pulled_incrementally,
    override_and_unanswered
);

const PASSWORD: &str = "alice-secret";

struct World {
    app: TestApp,
    as_ua: SipUa,
    client_id: String,
}

async fn world(engine: Engine) -> Option<World> {
    let app = TestApp::spawn(engine).await?;
    let tariff = app
        .create(
            "/v1/tariffs",
            json!({"name": "std", "currency": "EUR", "setup_fee": "0.05", "price_per_minute": "1",
                   "minimum_seconds": 60, "increment_seconds": 60}),
        )
        .await;
    let client = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let mut as_ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    as_ua.auto_ack = false;
    let a = app
        .create(
            "/v1/app-servers",
            json!({"name": "as", "uri": format!("sip:{}", as_ua.local_addr())}),
        )
        .await;
    let s = app
        .create(
            "/v1/services",
            json!({"name": "svc", "app_server_ids": [a["id"]], "tariff_id": tariff["id"]}),
        )
        .await;
    app.create("/v1/rules", json!({"service_id": s["id"]}))
        .await;
    Some(World {
        client_id: client["id"].as_str().unwrap().to_string(),
        app,
        as_ua,
    })
}

/// A call held for `hold`; returns the time between the client's ACK and
/// its BYE as the client saw it.
async fn call(w: &mut World, hold: Duration) -> Duration {
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:svc@{DOMAIN}");
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer, Some(("alice", PASSWORD))).await;
        (client, resp, tokio::time::Instant::now())
    });
    let invite = w.as_ua.accept_request().await;
    let answer = sdp_offer(w.as_ua.local_addr(), 7000);
    w.as_ua
        .respond(
            &invite,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let (mut client, resp, acked) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    w.as_ua.accept_request().await; // ACK
    tokio::time::sleep(hold).await;
    let bye = client.bye();
    let sent = tokio::time::Instant::now();
    client.send(&bye).await;
    let at_as = w.as_ua.accept_request().await;
    w.as_ua.respond(&at_as, 200, "OK", &[], None).await;
    assert_eq!(client.recv_final(&bye).await.status(), Some(200));
    sent - acked
}

async fn cdrs(app: &TestApp, query: &str, n: usize) -> Value {
    for _ in 0..150 {
        let (_, page) = app
            .admin(Method::GET, &format!("/v1/cdrs{query}"), None)
            .await;
        if page["items"].as_array().is_some_and(|i| i.len() == n) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} CDRs for {query}");
}

async fn answered_call_is_billed_and_pulled_incrementally(engine: Engine) {
    let Some(mut w) = world(engine).await else {
        return;
    };
    let held = call(&mut w, Duration::from_millis(1200)).await;
    let page = cdrs(&w.app, "", 1).await;
    let cdr = &page["items"][0];
    let duration = cdr["duration_ms"].as_i64().unwrap();
    let measured = held.as_millis() as i64;
    assert!(
        (duration - measured).abs() <= 50,
        "CDR {duration} ms, measured {measured} ms"
    );
    assert_eq!(cdr["billed_seconds"], 60);
    assert_eq!(cdr["amount"], "1.05");
    assert_eq!(cdr["currency"], "EUR");
    assert_eq!(cdr["end_reason"], "client_bye");
    assert_eq!(cdr["final_status"], 200);
    assert_eq!(cdr["client_id"], w.client_id.as_str());
    assert_eq!(cdr["segment"], 1);
    assert!(!page["has_more"].as_bool().unwrap());

    // Incremental pulls: nothing new, then exactly the next call.
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let again = cdrs(&w.app, &format!("?cursor={cursor}"), 0).await;
    assert_eq!(
        again["next_cursor"],
        cursor.as_str(),
        "the cursor stays put"
    );
    call(&mut w, Duration::from_millis(100)).await;
    let next = cdrs(&w.app, &format!("?cursor={cursor}"), 1).await;
    assert_ne!(next["items"][0]["id"], cdr["id"]);

    // CSV: a header row, one row per CDR, the cursor in a header.
    let resp = w
        .app
        .http
        .get(format!("{}/v1/cdrs", w.app.base))
        .bearer_auth(&w.app.admin_token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(resp.headers().contains_key("x-next-cursor"));
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("seq,id,session_id,request_id,segment,"));
    assert!(
        lines[1].contains(",1.05,EUR,client_bye,200,"),
        "{}",
        lines[1]
    );
}

async fn override_and_unanswered(engine: Engine) {
    let Some(mut w) = world(engine).await else {
        return;
    };
    let cheap = w
        .app
        .create(
            "/v1/tariffs",
            json!({"name": "cheap", "currency": "USD", "price_per_minute": "0.6", "minimum_seconds": 0, "increment_seconds": 1}),
        )
        .await;
    w.app
        .admin(
            Method::PATCH,
            &format!("/v1/clients/{}", w.client_id),
            Some(json!({"tariff_id": cheap["id"]})),
        )
        .await;
    let held = call(&mut w, Duration::from_millis(1500)).await;
    let page = cdrs(&w.app, "", 1).await;
    let cdr = &page["items"][0];
    let billed = cdr["billed_seconds"].as_i64().unwrap();
    assert_eq!(
        billed,
        (cdr["duration_ms"].as_i64().unwrap() + 999) / 1000,
        "1/1 rounds up to whole seconds"
    );
    assert!(billed >= held.as_secs() as i64);
    assert_eq!(
        cdr["currency"], "USD",
        "the client's tariff overrides the service's"
    );
    assert_eq!(cdr["tariff_id"], cheap["id"]);

    // An unanswered attempt gets a CDR too, with nothing billed.
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:svc@{DOMAIN}");
    let caller =
        tokio::spawn(async move { client.call(&uri, &offer, Some(("alice", PASSWORD))).await.1 });
    let invite = w.as_ua.accept_request().await;
    w.as_ua.respond(&invite, 486, "Busy Here", &[], None).await;
    assert_eq!(caller.await.unwrap().status(), Some(486));
    let page = cdrs(&w.app, &format!("?client_id={}", w.client_id), 2).await;
    let busy = &page["items"][1];
    assert_eq!(busy["billed_seconds"], 0);
    assert_eq!(busy["amount"], "0");
    assert_eq!(busy["final_status"], 486);
    assert_eq!(busy["end_reason"], "rejected");
    assert!(busy["answered_at"].is_null());
}
