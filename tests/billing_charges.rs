//! `/v1/charges` over HTTP on both engines: charging by app servers and
//! admins, idempotent replays and conflicts, who may do what, precise
//! refusals of bad bodies, lists with filters, cursor and CSV.

mod billing_world;
mod common;

use billing_world::{ids, money, world, World};
use common::{assert_problem, Engine};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::store::Money;

both_engines!(
    charge_replay_conflict,
    who_may_charge_and_read,
    bad_bodies_are_refused_precisely,
    lists_filters_and_csv,
    concurrent_identical_posts_charge_once,
);

/// Sessions s1 (client c1, service svc1) and s2 (c2, svc2), served by as1
/// and as2.
async fn two_sessions(w: &World) {
    w.add_session("s1", "c1", "svc1", &w.as1.clone()).await;
    w.add_session("s2", "c2", "svc2", &w.as2.clone()).await;
}

fn body(session: &str, amount: &str, key: &str) -> Value {
    json!({"session_id": session, "amount": amount, "currency": "EUR",
           "description": "Premium announcement", "idempotency_key": key})
}

async fn charge_replay_conflict(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    two_sessions(&w).await;
    let (s, first) = w.charge(&w.as1_token, body("s1", "0.50", "k1")).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["session_id"], "s1");
    assert_eq!(first["app_server_id"], w.as1.as_str());
    assert_eq!(first["client_id"], "c1");
    assert_eq!(first["service_id"], "svc1");
    assert_eq!(first["amount"], "0.5");
    assert_eq!(first["currency"], "EUR");
    assert_eq!(first["description"], "Premium announcement");
    assert_eq!(first["idempotency_key"], "k1");
    assert_eq!(first["source"], "rest");
    assert!(first["seq"].as_i64().unwrap() > 0);
    assert!(first.get("request_hash").is_none(), "internal: {first}");

    // The same charge again (the amount spelt differently): the first one.
    let (s, replay) = w.charge(&w.as1_token, body("s1", "0.5", "k1")).await;
    assert_eq!(s, StatusCode::OK, "{replay}");
    assert_eq!(replay, first);

    // The same key for something else: refused, nothing written.
    let (s, conflict) = w.charge(&w.as1_token, body("s1", "0.75", "k1")).await;
    assert_problem(
        (s, conflict.clone()),
        StatusCode::CONFLICT,
        "idempotency_key: 'k1' was already used on session 's1' for a different charge",
    );
    let mut other_text = body("s1", "0.5", "k1");
    other_text["description"] = json!("Something else");
    assert_problem(
        w.charge(&w.as1_token, other_text).await,
        StatusCode::CONFLICT,
        "idempotency_key",
    );
    let mut no_text = body("s1", "0.5", "k1");
    no_text.as_object_mut().unwrap().remove("description");
    assert_problem(
        w.charge(&w.as1_token, no_text).await,
        StatusCode::CONFLICT,
        "idempotency_key",
    );

    // Keys are per session: an admin charges s2 with the same key.
    let (s, other) = w.charge(&w.app.admin_token, body("s2", "0.5", "k1")).await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["app_server_id"], w.as2.as_str());

    w.settled(2).await;
    let path = format!("/v1/charges/{}", first["id"].as_str().unwrap());
    assert_eq!(w.get(&w.billing_token, &path).await, first);
    assert_eq!(w.get(&w.as1_token, &path).await, first);
    let list = w.get(&w.billing_token, "/v1/charges").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0], first);
    assert_problem(
        w.app.admin(Method::GET, "/v1/charges/nope", None).await,
        StatusCode::NOT_FOUND,
        "no charge with id 'nope'",
    );
}

async fn who_may_charge_and_read(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    two_sessions(&w).await;
    assert_problem(
        w.charge(&w.as1_token, body("s2", "1", "k")).await,
        StatusCode::FORBIDDEN,
        "session 's2' is not served by this token's app server",
    );
    assert_problem(
        w.charge(&w.billing_token, body("s1", "1", "k")).await,
        StatusCode::FORBIDDEN,
        "needs role admin or app_server; the token has role billing",
    );
    assert_problem(
        w.charge(&w.as1_token, body("nope", "1", "k")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "session_id: no session with id 'nope'",
    );
    let (s, _) = w
        .app
        .call(
            Method::POST,
            "/v1/charges",
            None,
            Some(body("s1", "1", "k")),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, c1) = w.charge(&w.as1_token, body("s1", "1", "k")).await;
    assert_eq!(s, StatusCode::CREATED, "{c1}");
    let (s, c2) = w.charge(&w.as2_token, body("s2", "2", "k")).await;
    assert_eq!(s, StatusCode::CREATED, "{c2}");
    let (c1, c2) = (c1["id"].as_str().unwrap(), c2["id"].as_str().unwrap());
    w.settled(2).await;

    // Each app server reads its own charges only; billing and admins all.
    assert_eq!(w.charge_ids(&w.as1_token, "").await, [c1]);
    assert_eq!(w.charge_ids(&w.as2_token, "").await, [c2]);
    assert_eq!(
        w.charge_ids(&w.as2_token, &format!("?app_server_id={}", w.as1))
            .await,
        [c2],
        "an app server cannot ask for another's charges"
    );
    assert_eq!(w.charge_ids(&w.billing_token, "").await, [c1, c2]);
    assert_eq!(w.charge_ids(&w.app.admin_token, "").await, [c1, c2]);
    assert_problem(
        w.app
            .call(
                Method::GET,
                &format!("/v1/charges/{c1}"),
                Some(&w.as2_token),
                None,
            )
            .await,
        StatusCode::FORBIDDEN,
        "not made by this token's app server",
    );
    let (s, _) = w.app.call(Method::GET, "/v1/charges", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn bad_bodies_are_refused_precisely(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    two_sessions(&w).await;
    let raw = |content_type: &'static str, text: &'static str| {
        w.app.raw(Method::POST, "/v1/charges", content_type, text)
    };
    let (s, _) = raw("application/json", "{\"session_id\": \"s1\",").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = raw("text/plain", "amount=1").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let cases = [
        (
            json!({"session_id": "s1", "amount": 0.5, "currency": "EUR", "idempotency_key": "k"}),
            "amount: must be a decimal string such as \"0.50\", not the JSON number 0.5",
        ),
        (
            json!({"session_id": "s1", "amount": "-0.50", "currency": "EUR", "idempotency_key": "k"}),
            "amount: must be greater than 0 (got -0.50)",
        ),
        (
            json!({"session_id": "s1", "amount": "0", "currency": "EUR", "idempotency_key": "k"}),
            "amount: must be greater than 0",
        ),
        (
            json!({"session_id": "s1", "amount": "0.1234567", "currency": "EUR", "idempotency_key": "k"}),
            "amount: '0.1234567' has more than 6 decimal places",
        ),
        (
            json!({"session_id": "s1", "amount": "1", "currency": "euro", "idempotency_key": "k"}),
            "currency: 'euro' is not an ISO 4217 code",
        ),
        (
            json!({"session_id": "s1", "amount": "1", "currency": "EUR"}),
            "idempotency_key: missing",
        ),
        (
            json!({"session_id": "s1", "amount": "1", "currency": "EUR", "idempotency_key": "k", "vat": "0.2"}),
            "unknown field `vat`",
        ),
        (
            json!({"amount": "1", "currency": "EUR", "idempotency_key": "k"}),
            "session_id: missing",
        ),
        (
            json!({"session_id": "s1", "amount": "1", "currency": "EUR", "idempotency_key": "k",
                   "description": "x".repeat(257)}),
            "description: must be at most 256 characters",
        ),
        (
            json!(["s1", "1"]),
            "the body must be a JSON object, not an array",
        ),
    ];
    for (body, detail) in cases {
        assert_problem(
            w.charge(&w.as1_token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            detail,
        );
    }
    let list = w.get(&w.billing_token, "/v1/charges").await;
    assert_eq!(list["items"], json!([]), "nothing was charged");
}

async fn lists_filters_and_csv(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    two_sessions(&w).await;
    w.add_session("s3", "c1", "svc2", &w.as2.clone()).await;
    let mut all = Vec::new();
    for (token, session, amount) in [
        (&w.as1_token, "s1", "1.10"),
        (&w.as2_token, "s2", "2.20"),
        (&w.as2_token, "s3", "3.30"),
        (&w.as1_token, "s1", "4.40"),
    ] {
        let mut b = body(session, amount, &format!("k-{amount}"));
        b["description"] = json!(format!("item \"{amount}\", boxed"));
        let (s, c) = w.charge(token, b).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        all.push(c["id"].as_str().unwrap().to_string());
    }
    w.settled(all.len()).await;
    let b = w.billing_token.clone();
    assert_eq!(
        w.charge_ids(&b, "?client_id=c1").await,
        [all[0].clone(), all[2].clone(), all[3].clone()]
    );
    assert_eq!(
        w.charge_ids(&b, "?service_id=svc2").await,
        [all[1].clone(), all[2].clone()]
    );
    assert_eq!(
        w.charge_ids(&b, &format!("?app_server_id={}", w.as1)).await,
        [all[0].clone(), all[3].clone()]
    );
    assert_eq!(w.charge_ids(&b, "?session_id=s3").await, [all[2].clone()]);
    assert_eq!(w.charge_ids(&b, "?from=2000-01-01T00:00:00Z").await, all);
    assert!(w
        .charge_ids(&b, "?to=2000-01-01T00:00:00Z")
        .await
        .is_empty());

    // Paging: two by two, then nothing new and the cursor stays put.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/charges?limit=2&cursor={c}"),
            None => "/v1/charges?limit=2".into(),
        };
        let page = w.get(&w.billing_token, &path).await;
        seen.extend(ids(&page));
        cursor = Some(page["next_cursor"].as_str().unwrap().to_string());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, all);
    let c = cursor.unwrap();
    let again = w
        .get(&w.billing_token, &format!("/v1/charges?cursor={c}"))
        .await;
    assert_eq!(again["items"], json!([]));
    assert_eq!(again["next_cursor"], c.as_str());

    // CSV: a header, one row per charge, fields quoted as RFC 4180 says.
    let (header_cursor, lines) = w
        .get_csv(&w.billing_token, "/v1/charges?client_id=c1")
        .await;
    assert!(header_cursor.is_some());
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[0],
        "seq,id,session_id,app_server_id,client_id,service_id,amount,currency,description,idempotency_key,source,created_at"
    );
    assert!(
        lines[1].contains(&format!(
            ",{},s1,{},c1,svc1,1.1,EUR,\"item \"\"1.10\"\", boxed\",k-1.10,rest,",
            all[0], w.as1
        )),
        "{}",
        lines[1]
    );

    for bad in [
        "?cursor=%21%21",
        "?limit=0",
        "?from=yesterday",
        "?colour=red",
    ] {
        let (s, _) = w
            .app
            .call(
                Method::GET,
                &format!("/v1/charges{bad}"),
                Some(&w.billing_token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn concurrent_identical_posts_charge_once(engine: Engine) {
    let Some(w) = world(engine).await else {
        return;
    };
    two_sessions(&w).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let post = w
            .app
            .http
            .post(format!("{}/v1/charges", w.app.base))
            .bearer_auth(&w.as1_token)
            .json(&body("s1", "9.99", "once"));
        tasks.push(tokio::spawn(async move {
            let resp = post.send().await.expect("post");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("JSON"))
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (s, c) in &answers {
        assert!(
            matches!(*s, StatusCode::CREATED | StatusCode::OK),
            "{s} {c}"
        );
        assert_eq!(c["id"], answers[0].1["id"]);
    }
    w.settled(1).await;
    let list = w.get(&w.billing_token, "/v1/charges").await;
    assert_eq!(
        money(&list["items"][0]["amount"]),
        Money::parse("9.99").unwrap()
    );
}
