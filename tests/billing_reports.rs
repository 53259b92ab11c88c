//! `/v1/reports/billing` over HTTP on both engines: exact totals per group
//! and currency, that agree with the CDRs and charges listed for the same
//! range, as JSON and CSV.

mod billing_world;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use billing_world::{money, world, World};
use common::{assert_problem, Engine};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::store::cdrs::CdrRecord;
use switchboard::store::{new_id, Money, Timestamp};

both_engines!(
    totals_per_group_are_exact,
    totals_match_the_listed_records,
    day_groups_and_csv,
    who_may_read_and_bad_queries,
);

fn at(rfc3339: &str) -> Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("RFC 3339");
    Timestamp::from_millis(t.timestamp_millis())
}

/// A CDR of `client` (service svcN and app server of the same number),
/// answered when it has a currency.
fn cdr(
    client: &str,
    app_server: &str,
    currency: Option<&str>,
    amount: &str,
    ended: &str,
) -> CdrRecord {
    let ended_at = at(ended);
    let answered = currency.is_some();
    let service = if client == "c1" { "svc1" } else { "svc2" };
    CdrRecord {
        seq: 0,
        id: new_id(),
        session_id: new_id(),
        request_id: new_id(),
        segment: 1,
        client_id: Some(client.into()),
        service_id: Some(service.into()),
        app_server_id: Some(app_server.into()),
        caller_uri: format!("sip:{client}@test.example"),
        callee_uri: "sip:svc@test.example".into(),
        client_call_id: format!("{}@client", new_id()),
        as_call_id: None,
        created_at: Timestamp::from_millis(ended_at.millis() - 70_000),
        answered_at: answered.then(|| Timestamp::from_millis(ended_at.millis() - 61_500)),
        ended_at,
        duration_ms: if answered { 61_500 } else { 0 },
        billed_seconds: if answered { 62 } else { 0 },
        tariff_id: None,
        amount: Money::parse(amount).expect("amount"),
        currency: currency.map(Into::into),
        end_reason: if answered { "client_bye" } else { "rejected" }.into(),
        final_status: Some(if answered { 200 } else { 486 }),
        node: "test-node".into(),
    }
}

/// Six CDRs over three days (0.1 + 0.2 + 0.1 is not 0.4 in floating
/// point) and three charges made now: c1 on svc1 via as1, c2 on svc2 via
/// as2.
async fn seed(w: &World) {
    let (as1, as2) = (w.as1.as_str(), w.as2.as_str());
    let cdrs = [
        cdr("c1", as1, Some("EUR"), "0.1", "2026-01-01T10:00:00Z"),
        cdr("c1", as1, Some("EUR"), "0.2", "2026-01-01T23:59:59.999Z"),
        cdr("c2", as2, Some("EUR"), "0.1", "2026-01-02T00:00:00Z"),
        cdr("c2", as2, Some("USD"), "1.000001", "2026-01-02T12:00:00Z"),
        cdr("c1", as1, None, "0", "2026-01-02T13:00:00Z"),
        cdr("c1", as1, Some("EUR"), "0.1", "2026-01-03T00:00:00Z"),
    ];
    w.store.insert_cdrs(&cdrs).await.expect("insert CDRs");
    w.add_session("s1", "c1", "svc1", as1).await;
    w.add_session("s2", "c2", "svc2", as2).await;
    for (token, session, amount, currency, key) in [
        (&w.as1_token, "s1", "0.5", "EUR", "a"),
        (&w.as1_token, "s1", "0.25", "EUR", "b"),
        (&w.as2_token, "s2", "2", "USD", "c"),
    ] {
        let (s, c) = w
            .charge(
                token,
                json!({"session_id": session, "amount": amount, "currency": currency, "idempotency_key": key}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
    }
}

async fn report(w: &World, query: &str) -> Value {
    w.get(&w.billing_token, &format!("/v1/reports/billing{query}"))
        .await
}

/// `(key, currency, total_amount)` of each group.
fn lines(r: &Value) -> Vec<(Value, Value, String)> {
    r["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"].clone(),
                g["currency"].clone(),
                g["total_amount"].as_str().expect("amount").to_string(),
            )
        })
        .collect()
}

async fn totals_per_group_are_exact(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    seed(&w).await;
    let r = report(&w, "?group_by=client").await;
    assert_eq!(r["group_by"], "client");
    assert_eq!(r["from"], Value::Null);
    assert_eq!(
        lines(&r),
        [
            (json!("c1"), Value::Null, "0".to_string()),
            (json!("c1"), json!("EUR"), "1.15".into()),
            (json!("c2"), json!("EUR"), "0.1".into()),
            (json!("c2"), json!("USD"), "3.000001".into()),
        ]
    );
    let c1 = &r["groups"][1];
    assert_eq!(c1["sessions"], 3);
    assert_eq!(c1["answered"], 3);
    assert_eq!(c1["duration_ms"], 3 * 61_500);
    assert_eq!(c1["billed_seconds"], 3 * 62);
    assert_eq!(c1["time_amount"], "0.4");
    assert_eq!(c1["charge_count"], 2);
    assert_eq!(c1["charge_amount"], "0.75");
    let unanswered = &r["groups"][0];
    assert_eq!(unanswered["sessions"], 1);
    assert_eq!(unanswered["answered"], 0);

    let totals = &r["totals"];
    assert_eq!(totals.as_array().map(Vec::len), Some(3), "{totals}");
    assert_eq!(totals[1]["currency"], "EUR");
    assert_eq!(totals[1]["sessions"], 4);
    assert_eq!(totals[1]["time_amount"], "0.5");
    assert_eq!(totals[1]["charge_amount"], "0.75");
    assert_eq!(totals[1]["total_amount"], "1.25");
    assert_eq!(totals[2]["currency"], "USD");
    assert_eq!(totals[2]["total_amount"], "3.000001");

    // Charges carry their session's service and app server.
    let by_service = report(&w, "?group_by=service").await;
    assert_eq!(by_service["groups"][1]["key"], "svc1");
    assert_eq!(by_service["groups"][1]["charge_count"], 2);
    let by_as = report(&w, "?group_by=app_server").await;
    let as2 = by_as["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == w.as2.as_str() && g["currency"] == "USD")
        .expect("as2 in USD");
    assert_eq!(as2["time_amount"], "1.000001");
    assert_eq!(as2["charge_amount"], "2");
}

/// Per currency: (sessions, answered, duration_ms, billed_seconds,
/// time_amount, charge_count, charge_amount).
type Sums = BTreeMap<String, (i64, i64, i64, i64, Money, i64, Money)>;

fn add(m: &mut Money, v: &Value) {
    *m = Money(m.0 + money(v).0);
}

/// Polls `path` (a stream) until it lists `n` items; returns them.
async fn listed(w: &World, path: &str, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        let page = w.get(&w.billing_token, path).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} items at {path}");
}

async fn totals_match_the_listed_records(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    seed(&w).await;
    // `to` is exclusive: a millisecond after the last charge.
    let now = Timestamp::from_millis(Timestamp::now().millis() + 1).rfc3339();
    for (range, n_cdrs, n_charges) in [
        (String::new(), 6, 3),
        (
            "&from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z".to_string(),
            5,
            0,
        ),
        ("&from=2026-01-02T00:00:00Z".to_string(), 4, 3),
        (format!("&to={now}"), 6, 3),
    ] {
        let mut sums = Sums::new();
        for c in listed(&w, &format!("/v1/cdrs?limit=500{range}"), n_cdrs).await {
            let e = sums
                .entry(c["currency"].as_str().unwrap_or("-").to_string())
                .or_default();
            e.0 += 1;
            e.1 += i64::from(!c["answered_at"].is_null());
            e.2 += c["duration_ms"].as_i64().unwrap();
            e.3 += c["billed_seconds"].as_i64().unwrap();
            add(&mut e.4, &c["amount"]);
        }
        for c in listed(&w, &format!("/v1/charges?limit=500{range}"), n_charges).await {
            let e = sums
                .entry(c["currency"].as_str().unwrap().to_string())
                .or_default();
            e.5 += 1;
            add(&mut e.6, &c["amount"]);
        }
        let r = report(&w, &format!("?group_by=service{range}")).await;
        let mut reported = Sums::new();
        for t in r["totals"].as_array().expect("totals") {
            let total = money(&t["total_amount"]);
            let (time, charges) = (money(&t["time_amount"]), money(&t["charge_amount"]));
            assert_eq!(total.0, time.0 + charges.0, "{t}");
            reported.insert(
                t["currency"].as_str().unwrap_or("-").to_string(),
                (
                    t["sessions"].as_i64().unwrap(),
                    t["answered"].as_i64().unwrap(),
                    t["duration_ms"].as_i64().unwrap(),
                    t["billed_seconds"].as_i64().unwrap(),
                    time,
                    t["charge_count"].as_i64().unwrap(),
                    charges,
                ),
            );
        }
        assert_eq!(reported, sums, "range {range:?}");
        // The groups add up to the totals too.
        let groups: i64 = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["sessions"].as_i64().unwrap() + g["charge_count"].as_i64().unwrap())
            .sum();
        assert_eq!(groups as usize, n_cdrs + n_charges, "range {range:?}");
    }
}

async fn day_groups_and_csv(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    seed(&w).await;
    let range = "from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z";
    let r = report(&w, &format!("?group_by=day&{range}")).await;
    assert_eq!(r["from"], "2026-01-01T00:00:00.000Z");
    assert_eq!(r["to"], "2026-01-03T00:00:00.000Z");
    assert_eq!(
        lines(&r),
        [
            (json!("2026-01-01"), json!("EUR"), "0.3".to_string()),
            (json!("2026-01-02"), Value::Null, "0".into()),
            (json!("2026-01-02"), json!("EUR"), "0.1".into()),
            (json!("2026-01-02"), json!("USD"), "1.000001".into()),
        ]
    );
    // Charges made today are grouped under today.
    let today = Timestamp::now().rfc3339()[..10].to_string();
    let all = report(&w, "?group_by=day").await;
    let today_eur = all["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == today.as_str() && g["currency"] == "EUR")
        .expect("today in EUR");
    assert_eq!(today_eur["charge_amount"], "0.75");

    let (_, csv) = w
        .get_csv(
            &w.billing_token,
            &format!("/v1/reports/billing?group_by=day&{range}"),
        )
        .await;
    assert_eq!(
        csv,
        [
            "kind,key,currency,sessions,answered,duration_ms,billed_seconds,time_amount,charge_count,charge_amount,total_amount",
            "group,2026-01-01,EUR,2,2,123000,124,0.3,0,0,0.3",
            "group,2026-01-02,,1,0,0,0,0,0,0,0",
            "group,2026-01-02,EUR,1,1,61500,62,0.1,0,0,0.1",
            "group,2026-01-02,USD,1,1,61500,62,1.000001,0,0,1.000001",
            "total,,,1,0,0,0,0,0,0,0",
            "total,,EUR,3,3,184500,186,0.4,0,0,0.4",
            "total,,USD,1,1,61500,62,1.000001,0,0,1.000001",
        ]
    );
}

async fn who_may_read_and_bad_queries(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    let path = "/v1/reports/billing?group_by=client";
    assert_problem(
        w.app
            .call(Method::GET, path, Some(&w.as1_token), None)
            .await,
        StatusCode::FORBIDDEN,
        "needs role admin or billing",
    );
    let (s, _) = w.app.call(Method::GET, path, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, empty) = w.app.admin(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(empty["groups"], json!([]));
    assert_eq!(empty["totals"], json!([]));
    for (query, detail) in [
        ("", "group_by"),
        ("?group_by=week", "group_by"),
        (
            "?group_by=client&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from: must not be after to",
        ),
        (
            "?group_by=client&from=monday",
            "from: 'monday' is not an RFC 3339 date-time",
        ),
        ("?group_by=client&cursor=x", "cursor"),
    ] {
        assert_problem(
            w.app
                .admin(Method::GET, &format!("/v1/reports/billing{query}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            detail,
        );
    }
}
