use serde_json::json;

use super::*;

fn sip(body: &str) -> Result<ChargeRequest, ChargeRejection> {
    parse_sip_charge(Some("application/json"), body.as_bytes())
}

fn sip_reason(body: &str) -> String {
    match sip(body) {
        Ok(r) => panic!("{body} accepted as {r:?}"),
        Err(e) => {
            assert_eq!(e.sip_status(), 400, "{e:?}");
            e.reason().to_string()
        }
    }
}

#[test]
fn a_good_charge() {
    let r = sip(r#"{"amount": "0.50", "currency": "EUR", "description": "Premium prompt", "idempotency_key": "k-1"}"#)
        .unwrap();
    assert_eq!(r.amount, Money::parse("0.5").unwrap());
    assert_eq!(r.currency, "EUR");
    assert_eq!(r.description.as_deref(), Some("Premium prompt"));
    assert_eq!(r.idempotency_key, "k-1");
    let r =
        sip(r#"{"amount": "3", "currency": "USD", "idempotency_key": "k", "description": null}"#)
            .unwrap();
    assert_eq!(r.description, None);
}

#[test]
fn media_type_and_syntax() {
    for ct in [None, Some("text/plain"), Some("application/sdp")] {
        let e = parse_sip_charge(ct, b"{}").unwrap_err();
        assert_eq!(e.sip_status(), 415, "{ct:?}");
        assert!(e.reason().contains("application/json"));
    }
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.charge+json",
    ] {
        assert!(is_json_media_type(ct), "{ct}");
    }
    let e = parse_sip_charge(Some("application/json"), b"{\"amount\": ").unwrap_err();
    assert!(matches!(e, ChargeRejection::Malformed(_)), "{e:?}");
    assert!(e.reason().starts_with("the body is not valid JSON"));
}

#[test]
fn precise_reasons() {
    let cases = [
        (r#"[1]"#, "the body must be a JSON object, not an array"),
        (
            r#"{"amount": 0.5, "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: must be a decimal string such as \"0.50\", not the JSON number 0.5",
        ),
        (
            r#"{"amount": "-1", "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: must be greater than 0 (got -1)",
        ),
        (
            r#"{"amount": "0.000", "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: must be greater than 0",
        ),
        (
            r#"{"amount": "1.0000001", "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: '1.0000001' has more than 6 decimal places",
        ),
        (
            r#"{"amount": "1e3", "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: '1e3' is not a decimal number",
        ),
        (
            r#"{"amount": "1000000000000000000", "currency": "EUR", "idempotency_key": "k"}"#,
            "amount: must be less than 1000000000000000000",
        ),
        (
            r#"{"currency": "EUR", "idempotency_key": "k"}"#,
            "amount: missing",
        ),
        (
            r#"{"amount": "1", "currency": "eur", "idempotency_key": "k"}"#,
            "currency: 'eur' is not an ISO 4217 code",
        ),
        (
            r#"{"amount": "1", "currency": 978, "idempotency_key": "k"}"#,
            "currency: must be a string such as \"EUR\", not a number",
        ),
        (
            r#"{"amount": "1", "currency": "EUR"}"#,
            "idempotency_key: missing",
        ),
        (
            r#"{"amount": "1", "currency": "EUR", "idempotency_key": "a b"}"#,
            "idempotency_key: must be visible ASCII",
        ),
        (
            r#"{"amount": "1", "currency": "EUR", "idempotency_key": "k", "description": "a\nb"}"#,
            "description: must not contain line breaks",
        ),
        (
            r#"{"amount": "1", "currency": "EUR", "idempotency_key": "k", "description": " "}"#,
            "description: must not be blank",
        ),
        (
            r#"{"amount": "1", "currency": "EUR", "idempotency_key": "k", "tip": "1"}"#,
            "unknown field `tip`, expected one of amount, currency, description, idempotency_key",
        ),
        (
            r#"{"session_id": "s1", "amount": "1", "currency": "EUR", "idempotency_key": "k"}"#,
            "unknown field `session_id`",
        ),
    ];
    for (body, needle) in cases {
        let reason = sip_reason(body);
        assert!(reason.starts_with(needle), "{body}: {reason:?}");
    }
    let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
    let body =
        json!({"amount": "1", "currency": "EUR", "idempotency_key": "k", "description": long});
    assert!(sip_reason(&body.to_string()).starts_with("description: must be at most 256"));
    let body = json!({"amount": "1", "currency": "EUR", "idempotency_key": "k".repeat(129)});
    assert!(sip_reason(&body.to_string()).starts_with("idempotency_key: must be 1 to 128"));
}

#[test]
fn rest_body_names_the_session() {
    let (session, r) = parse_rest_charge(
        &json!({"session_id": "s1", "amount": "2.25", "currency": "EUR", "idempotency_key": "k"}),
    )
    .unwrap();
    assert_eq!(session, "s1");
    assert_eq!(r.amount, Money::parse("2.25").unwrap());
    for (body, needle) in [
        (
            json!({"amount": "1", "currency": "EUR", "idempotency_key": "k"}),
            "session_id: missing",
        ),
        (
            json!({"session_id": 7, "amount": "1", "currency": "EUR", "idempotency_key": "k"}),
            "session_id: must be a string, not a number",
        ),
        (
            json!({"session_id": "s1", "amount": 1, "currency": "EUR", "idempotency_key": "k"}),
            "amount: must be a decimal string",
        ),
    ] {
        let e = parse_rest_charge(&body).unwrap_err();
        assert!(matches!(e, ChargeRejection::Invalid(_)));
        assert!(e.reason().starts_with(needle), "{body}: {e}");
    }
}

#[test]
fn hash_covers_the_content_not_the_spelling() {
    let a = sip(r#"{"amount": "0.50", "currency": "EUR", "idempotency_key": "k"}"#).unwrap();
    let b = sip(r#"{"amount": "0.5", "currency": "EUR", "idempotency_key": "other"}"#).unwrap();
    assert_eq!(a.request_hash("s1"), b.request_hash("s1"));
    assert_ne!(a.request_hash("s1"), a.request_hash("s2"));
    let c = sip(r#"{"amount": "0.51", "currency": "EUR", "idempotency_key": "k"}"#).unwrap();
    assert_ne!(a.request_hash("s1"), c.request_hash("s1"));
    let d =
        sip(r#"{"amount": "0.5", "currency": "EUR", "idempotency_key": "k", "description": "x"}"#)
            .unwrap();
    assert_ne!(a.request_hash("s1"), d.request_hash("s1"));
}

#[test]
fn charge_carries_the_session() {
    let r = sip(r#"{"amount": "1.5", "currency": "EUR", "idempotency_key": "k"}"#).unwrap();
    let session = ChargeSession {
        session_id: "s1".into(),
        app_server_id: Some("as1".into()),
        client_id: Some("c1".into()),
        service_id: Some("svc".into()),
    };
    let now = Timestamp::from_millis(1_000);
    let c = r.to_charge(&session, ChargeSource::Sip, now);
    assert_eq!(c.session_id, "s1");
    assert_eq!(c.app_server_id.as_deref(), Some("as1"));
    assert_eq!(c.client_id.as_deref(), Some("c1"));
    assert_eq!(c.service_id.as_deref(), Some("svc"));
    assert_eq!(c.source, "sip");
    assert_eq!(c.created_at, now);
    assert_eq!(c.request_hash, r.request_hash("s1"));
}
