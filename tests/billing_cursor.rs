//! The CDR and charge cursors under concurrent writers, on both engines: a
//! billing system pulling every few milliseconds while many transactions
//! commit in any order must see every record exactly once.

mod billing_world;
mod common;

use std::collections::HashSet;
use std::time::Duration;

use billing_world::{ids, world, World};
use common::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::store::cdrs::CdrRecord;
use switchboard::store::{new_id, Money, Timestamp};
use tokio::task::JoinHandle;

both_engines!(charges_pulled_while_posted, cdrs_pulled_while_written);

const WRITERS: usize = 8;
const EACH: usize = 25;

/// Pulls `path` with the cursor every few milliseconds until `writers` are
/// done and `total` records came; fails on a duplicate or after a minute.
async fn pull_until_complete(
    w: &World,
    path: &str,
    writers: &[JoinHandle<Vec<String>>],
    total: usize,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    let mut unique = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pulls = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("{path}?limit=7&cursor={c}"),
            None => format!("{path}?limit=7"),
        };
        let page = w.get(&w.billing_token, &query).await;
        pulls += 1;
        for id in ids(&page) {
            assert!(unique.insert(id.clone()), "{id} pulled twice");
            seen.push(id);
        }
        cursor = Some(page["next_cursor"].as_str().expect("cursor").to_string());
        let done = writers.iter().all(JoinHandle::is_finished);
        if done && seen.len() >= total && !page["has_more"].as_bool().unwrap_or(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {pulls} pulls only {} of {total} records",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(
        pulls > 10,
        "the pulls overlapped the writes ({pulls} pulls)"
    );
    seen
}

async fn written(writers: Vec<JoinHandle<Vec<String>>>) -> HashSet<String> {
    let mut all = HashSet::new();
    for t in writers {
        all.extend(t.await.expect("writer"));
    }
    all
}

async fn charges_pulled_while_posted(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    for i in 0..WRITERS {
        w.add_session(&format!("s{i}"), "c1", "svc1", &w.as1.clone())
            .await;
    }
    let writers: Vec<JoinHandle<Vec<String>>> = (0..WRITERS)
        .map(|i| {
            let http = w.app.http.clone();
            let url = format!("{}/v1/charges", w.app.base);
            let token = w.as1_token.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for j in 0..EACH {
                    let body = json!({"session_id": format!("s{i}"), "amount": format!("0.{j:02}1"),
                                      "currency": "EUR", "idempotency_key": format!("k{j}")});
                    let resp = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(resp.status(), StatusCode::CREATED);
                    let charge: Value = resp.json().await.expect("JSON");
                    ids.push(charge["id"].as_str().expect("id").to_string());
                }
                ids
            })
        })
        .collect();
    let seen = pull_until_complete(&w, "/v1/charges", &writers, WRITERS * EACH).await;
    let all = written(writers).await;
    assert_eq!(all.len(), WRITERS * EACH);
    assert_eq!(seen.len(), all.len());
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

fn cdr(session_id: String) -> CdrRecord {
    let now = Timestamp::now();
    CdrRecord {
        seq: 0,
        id: new_id(),
        request_id: format!("{session_id}-request"),
        segment: 1,
        client_id: Some("c1".into()),
        service_id: Some("svc1".into()),
        app_server_id: None,
        caller_uri: "sip:alice@test.example".into(),
        callee_uri: "sip:svc@test.example".into(),
        client_call_id: format!("{session_id}@client"),
        as_call_id: None,
        created_at: now,
        answered_at: Some(now),
        ended_at: now,
        duration_ms: 1000,
        billed_seconds: 1,
        tariff_id: None,
        amount: Money::parse("0.01").expect("amount"),
        currency: Some("EUR".into()),
        end_reason: "client_bye".into(),
        final_status: Some(200),
        node: "test-node".into(),
        session_id,
    }
}

/// CDRs come in batches, several rows per transaction: the case where a
/// transaction's rows interleave with another's in seq.
async fn cdrs_pulled_while_written(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    let writers: Vec<JoinHandle<Vec<String>>> = (0..WRITERS)
        .map(|i| {
            let store = w.store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for j in 0..EACH {
                    let batch: Vec<CdrRecord> =
                        (0..3).map(|k| cdr(format!("w{i}-b{j}-{k}"))).collect();
                    store.insert_cdrs(&batch).await.expect("insert CDRs");
                    ids.extend(batch.into_iter().map(|c| c.id));
                }
                ids
            })
        })
        .collect();
    let seen = pull_until_complete(&w, "/v1/cdrs", &writers, WRITERS * EACH * 3).await;
    let all = written(writers).await;
    assert_eq!(seen.len(), all.len());
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}
