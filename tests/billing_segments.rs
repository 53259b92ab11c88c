//! Billing segments left open by a node that died: at its next start the
//! session ends with reason `restart`, its open segment ends at the last
//! heartbeat, and each segment gets its own CDR, priced with its own
//! service's tariff.

mod common;

use reqwest::Method;
use serde_json::Value;
use switchboard::billing::restart::close_orphans;
use switchboard::store::sessions::{SegmentRecord, SessionChange, SessionRecord};
use switchboard::store::{Store, Timestamp};

use common::{test_settings, Engine, TestApp, TestDb};

both_engines!(a_moved_session_cut_by_a_crash_is_billed_per_segment);

const NODE: &str = "crashed-node";

fn segment(n: i32, app_server: &str, from: i64, to: Option<i64>) -> SessionChange {
    SessionChange::Segment(Box::new(SegmentRecord {
        session_id: "s-1".into(),
        segment: n,
        service_id: Some(format!("svc-{app_server}")),
        app_server_id: Some(app_server.into()),
        started_at: Timestamp::from_millis(from),
        ended_at: to.map(Timestamp::from_millis),
    }))
}

async fn a_moved_session_cut_by_a_crash_is_billed_per_segment(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("store");
    store.migrate().await.expect("migrate");
    let t0 = Timestamp::now().millis() - 60_000;
    // Answered at t0, moved from as-a to as-b at t0 + 20 s; the node's last
    // heartbeat at t0 + 50 s.
    let session = SessionRecord {
        id: "s-1".into(),
        request_id: "r-1".into(),
        state: "established".into(),
        client_id: None,
        service_id: Some("svc-as-b".into()),
        rule_id: None,
        app_server_id: Some("as-b".into()),
        caller_uri: "sip:alice@example.com".into(),
        callee_uri: "sip:voicemail@example.com".into(),
        client_call_id: "c-1".into(),
        as_call_id: Some("b-1".into()),
        node: NODE.into(),
        created_at: Timestamp::from_millis(t0 - 1_000),
        answered_at: Some(Timestamp::from_millis(t0)),
        ended_at: None,
        duration_ms: None,
        end_reason: None,
        final_status: Some(200),
    };
    store
        .apply_session_changes(&[
            SessionChange::Session(Box::new(session)),
            segment(1, "as-a", t0, Some(t0 + 20_000)),
            segment(2, "as-b", t0 + 20_000, None),
        ])
        .await
        .expect("session");
    store
        .node_started(NODE, Timestamp::from_millis(t0 - 5_000))
        .await
        .expect("node");
    store
        .node_alive(NODE, Timestamp::from_millis(t0 + 50_000))
        .await
        .expect("heartbeat");

    let closed = close_orphans(&store, NODE, |_, _| None)
        .await
        .expect("closed");
    assert_eq!((closed.sessions, closed.cdrs), (1, 2));
    // A second start finds nothing more to do.
    let again = close_orphans(&store, NODE, |_, _| None)
        .await
        .expect("closed");
    assert_eq!((again.sessions, again.cdrs), (0, 0));

    let settings = test_settings(&db.url);
    let app = TestApp::spawn_with(db, settings).await;
    let (_, page) = app
        .admin(Method::GET, "/v1/cdrs?session_id=s-1", None)
        .await;
    let mut cdrs: Vec<Value> = page["items"].as_array().cloned().unwrap_or_default();
    cdrs.sort_by_key(|c| c["segment"].as_i64());
    assert_eq!(cdrs.len(), 2, "{page}");
    assert_eq!(cdrs[0]["app_server_id"], "as-a");
    assert_eq!(cdrs[0]["duration_ms"], 20_000);
    assert_eq!(cdrs[1]["app_server_id"], "as-b");
    assert_eq!(cdrs[1]["service_id"], "svc-as-b");
    assert_eq!(cdrs[1]["duration_ms"], 30_000);
    assert_eq!(cdrs[1]["end_reason"], "restart");
    let (_, detail) = app.admin(Method::GET, "/v1/sessions/s-1", None).await;
    assert_eq!(detail["state"], "ended");
    assert_eq!(detail["end_reason"], "restart");
    assert_eq!(
        detail["segments"][1]["ended_at"], detail["ended_at"],
        "the open segment ends with the session: {detail}"
    );
}
