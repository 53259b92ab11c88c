//! Session change (SPEC §2 claim 5): a re-INVITE from the client with a new
//! offer is searched against the rules again. Served by the same app
//! server, it is relayed; a service on another app server takes the
//! session over (new INVITE there, BYE to the old one, a second billing
//! segment); refused there, the client gets the refusal and the session
//! stays as it was.

mod common;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use common::relay::{
    app_server, establish, header, next_request, send_offer, session_in, Call, World, PASSWORD,
};
use common::sip_ua::{sdp_offer, Incoming, Request, SipUa};
use common::sipp::{spawn_answering_as, AuthenticatedCalls};
use common::{Engine, TestApp, DOMAIN};

both_engines!(
    a_change_served_by_the_same_app_server_is_relayed,
    a_change_to_another_service_moves_the_session,
    a_refused_change_leaves_the_session_as_it_was,
    an_update_with_a_new_offer_moves_the_session_too,
    sipp_calls_change_to_another_app_server,
);

/// The client's offer with a video stream added.
fn video_offer(client: &SipUa) -> String {
    sdp_offer(client.local_addr(), 4010) + "m=video 4012 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
}

/// Alice and voicemail on `as1`, and a `video` service on `as2`, chosen
/// for voicemail requests whose SDP has video.
async fn two_services(engine: Engine, as1: &SipUa, as2: &SipUa) -> Option<(World, String)> {
    let w = common::relay::world(engine, &[as1]).await?;
    let video = json!({"request_uri_user": "voicemail", "sdp_media": "video"});
    let as2_id = common::relay::add_service(&w, as2, "video", 10, video).await;
    Some((w, as2_id))
}

/// Alice's call established on as1, then, 400 ms later, her `method`
/// adding video sent and received by as2 as a new INVITE: the call, the
/// session id, the request and what as2 got.
async fn video_requested(
    w: &World,
    as1: &mut SipUa,
    as2: &mut SipUa,
    method: &str,
) -> (Call, String, Request, Incoming) {
    let mut call = establish(w, as1, |r| r, &[]).await;
    let s = session_in(&w.app, &w.client_id, "established").await;
    let id = s["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let offer = video_offer(&call.client);
    let request = send_offer(&mut call, method, &offer).await;
    let at_as2 = next_request(as2, "INVITE").await;
    assert_eq!(at_as2.body(), offer.as_bytes(), "as2 gets the new offer");
    (call, id, request, at_as2)
}

async fn session(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/v1/sessions/{id}"), None)
        .await
        .1
}

/// Polls the session until `done` holds.
async fn session_until(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..150 {
        let s = session(app, id).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never got there: {}", session(app, id).await);
}

async fn cdrs_of(app: &TestApp, session_id: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let (_, page) = app
            .admin(
                Method::GET,
                &format!("/v1/cdrs?session_id={session_id}"),
                None,
            )
            .await;
        if let Some(items) = page["items"].as_array().filter(|i| i.len() == n) {
            return items.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} CDRs for session {session_id}");
}

async fn a_change_served_by_the_same_app_server_is_relayed(engine: Engine) {
    let mut as1 = app_server().await;
    let mut as2 = app_server().await;
    let Some((w, _)) = two_services(engine, &as1, &as2).await else {
        return;
    };
    let mut call = establish(&w, &mut as1, |r| r, &[]).await;
    // A new audio offer (another port): still voicemail, still as1.
    let offer = sdp_offer(call.client.local_addr(), 4100);
    let reinvite = send_offer(&mut call, "INVITE", &offer).await;
    let at_as1 = next_request(&mut as1, "INVITE").await;
    assert_eq!(at_as1.body(), offer.as_bytes());
    assert_eq!(
        header(&at_as1, "Call-ID"),
        header(&call.at_as, "Call-ID"),
        "relayed in the existing dialog"
    );
    let answer = sdp_offer(as1.local_addr(), 7100);
    as1.respond(
        &at_as1,
        200,
        "OK",
        &[],
        Some(("application/sdp", answer.as_bytes())),
    )
    .await;
    let ok = call.client.recv_final(&reinvite).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), answer.as_bytes());
    let ack = call.client.ack(&reinvite, &ok);
    call.client.send(&ack).await;
    next_request(&mut as1, "ACK").await;
    let s = session_in(&w.app, &w.client_id, "established").await;
    let id = s["id"].as_str().unwrap();
    let s = session_until(&w.app, id, |s| {
        s["segments"].as_array().is_some_and(|g| !g.is_empty())
    })
    .await;
    assert_eq!(s["segments"].as_array().unwrap().len(), 1, "{s}");
    assert!(
        as2.recv_within(Duration::from_millis(200)).await.is_err(),
        "the video app server is not asked"
    );
}

async fn a_change_to_another_service_moves_the_session(engine: Engine) {
    let mut as1 = app_server().await;
    let mut as2 = app_server().await;
    let Some((w, as2_id)) = two_services(engine, &as1, &as2).await else {
        return;
    };
    let (mut call, id, reinvite, at_as2) = video_requested(&w, &mut as1, &mut as2, "INVITE").await;
    let as1_id = session(&w.app, &id).await["app_server_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !header(&at_as2, "To").contains("tag="),
        "a new dialog with as2"
    );
    assert_eq!(header(&at_as2, "X-Switchboard-Session"), id);
    assert_eq!(
        header(&at_as2, "X-Service"),
        "video",
        "the new rule's headers go to the new app server"
    );
    let answer = sdp_offer(as2.local_addr(), 7200);
    as2.answer_with_sdp(&at_as2, 7200).await;
    let ok = call.client.recv_final(&reinvite).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        ok.body(),
        answer.as_bytes(),
        "the client ends with as2's answer"
    );
    // The old app server is let go.
    let bye = next_request(&mut as1, "BYE").await;
    assert_eq!(header(&bye, "Call-ID"), header(&call.at_as, "Call-ID"));
    as1.respond(&bye, 200, "OK", &[], None).await;
    let ack = call.client.ack(&reinvite, &ok);
    call.client.send(&ack).await;
    let ack_at_as2 = next_request(&mut as2, "ACK").await;
    assert_eq!(header(&ack_at_as2, "Call-ID"), header(&at_as2, "Call-ID"));

    let moved = session_until(&w.app, &id, |s| {
        s["segments"].as_array().is_some_and(|g| g.len() == 2)
            && s["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "moved"))
    })
    .await;
    assert_eq!(moved["app_server_id"], as2_id.as_str());
    assert_eq!(moved["state"], "established");
    let segments = moved["segments"].as_array().unwrap();
    assert_eq!(segments[0]["app_server_id"], as1_id.as_str());
    assert_eq!(segments[1]["app_server_id"], as2_id.as_str());
    assert_eq!(segments[0]["ended_at"], segments[1]["started_at"]);
    assert!(segments[1]["ended_at"].is_null());

    // In-dialog requests from the client now go to as2; its BYE ends it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    as2.set_server(w.app.sip);
    let bye = call.client.bye();
    call.client.send(&bye).await;
    let bye_at_as2 = next_request(&mut as2, "BYE").await;
    assert_eq!(header(&bye_at_as2, "Call-ID"), header(&at_as2, "Call-ID"));
    as2.respond(&bye_at_as2, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&bye).await.status(), Some(200));

    let cdrs = cdrs_of(&w.app, &id, 2).await;
    let (first, second) = if cdrs[0]["segment"] == 1 {
        (&cdrs[0], &cdrs[1])
    } else {
        (&cdrs[1], &cdrs[0])
    };
    assert_eq!(first["segment"], 1);
    assert_eq!(second["segment"], 2);
    assert_eq!(first["app_server_id"], as1_id.as_str());
    assert_eq!(second["app_server_id"], as2_id.as_str());
    assert_eq!(first["end_reason"], "moved");
    assert_eq!(second["end_reason"], "client_bye");
    let d1 = first["duration_ms"].as_i64().unwrap();
    let d2 = second["duration_ms"].as_i64().unwrap();
    assert!((350..3000).contains(&d1), "first segment {d1} ms");
    assert!((250..3000).contains(&d2), "second segment {d2} ms");
    assert_ne!(first["service_id"], second["service_id"]);
}

async fn a_refused_change_leaves_the_session_as_it_was(engine: Engine) {
    let mut as1 = app_server().await;
    let mut as2 = app_server().await;
    let Some((w, _)) = two_services(engine, &as1, &as2).await else {
        return;
    };
    let (mut call, id, reinvite, at_as2) = video_requested(&w, &mut as1, &mut as2, "INVITE").await;

    // Glare (RFC 3261 §14.2): as1's re-INVITE meets the change in progress.
    let glare = as1.in_dialog(&call.as_dialog, "INVITE").with_body(
        "application/sdp",
        sdp_offer(as1.local_addr(), 7300).as_bytes(),
    );
    let refused = as1.transact(&glare).await;
    assert_eq!(refused.status(), Some(491));

    as2.respond(&at_as2, 488, "Not Acceptable Here", &[], None)
        .await;
    let answer = call.client.recv_final(&reinvite).await;
    assert_eq!(answer.status(), Some(488), "the refusal reaches the client");

    // Nothing changed for as1: the session still runs there.
    let s = session_until(&w.app, &id, |s| {
        s["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "change_rejected"))
    })
    .await;
    assert_eq!(s["state"], "established");
    assert_eq!(s["segments"].as_array().unwrap().len(), 1);
    let info = call.client.in_dialog(&call.client_dialog, "INFO");
    call.client.send(&info).await;
    let at_as1 = next_request(&mut as1, "INFO").await;
    as1.respond(&at_as1, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&info).await.status(), Some(200));
    let bye = call.client.bye();
    call.client.send(&bye).await;
    let bye_at_as1 = next_request(&mut as1, "BYE").await;
    as1.respond(&bye_at_as1, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&bye).await.status(), Some(200));
    let cdrs = cdrs_of(&w.app, &id, 1).await;
    assert_eq!(cdrs[0]["segment"], 1);
}

async fn an_update_with_a_new_offer_moves_the_session_too(engine: Engine) {
    let mut as1 = app_server().await;
    let mut as2 = app_server().await;
    let Some((w, as2_id)) = two_services(engine, &as1, &as2).await else {
        return;
    };
    // RFC 3311: the offer in an UPDATE, the answer in its 2xx; the new
    // app server's INVITE is ACKed by Switchboard (no ACK follows an UPDATE).
    let (mut call, id, update, at_as2) = video_requested(&w, &mut as1, &mut as2, "UPDATE").await;
    let answer = sdp_offer(as2.local_addr(), 7400);
    as2.answer_with_sdp(&at_as2, 7400).await;
    let ok = call.client.recv_final(&update).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), answer.as_bytes());
    next_request(&mut as2, "ACK").await;
    let bye = next_request(&mut as1, "BYE").await;
    as1.respond(&bye, 200, "OK", &[], None).await;
    let moved = session_until(&w.app, &id, |s| {
        s["segments"].as_array().is_some_and(|g| g.len() == 2)
    })
    .await;
    assert_eq!(moved["app_server_id"], as2_id.as_str());
}

/// Real peers: a sipp client whose calls add video after 300 ms; sipp app
/// servers for voice (as1) and video (as2). Every call ends on as2 with
/// two segments and two CDRs.
async fn sipp_calls_change_to_another_app_server(engine: Engine) {
    const CALLS: usize = 10;
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let client = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let within = Duration::from_secs(20);
    let Some((as1, p1)) = spawn_answering_as(CALLS, within).await else {
        return;
    };
    let Some((as2, p2)) = spawn_answering_as(CALLS, within).await else {
        return;
    };
    let mut services = Vec::new();
    for (name, port, media) in [("voicemail", p1, None), ("video", p2, Some("video"))] {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": format!("sipp-{name}"), "uri": format!("sip:127.0.0.1:{port}")}),
            )
            .await;
        let svc = app
            .create(
                "/v1/services",
                json!({"name": name, "app_server_ids": [a["id"]]}),
            )
            .await;
        let mut rule = json!({"match": {"request_uri_user": "voicemail"}, "service_id": svc["id"]});
        if let Some(m) = media {
            rule["match"]["sdp_media"] = json!(m);
            rule["priority"] = json!(10);
        }
        app.create("/v1/rules", rule).await;
        services.push((a["id"].clone(), svc["id"].clone()));
    }
    let calls = AuthenticatedCalls {
        server: app.sip,
        service: "voicemail",
        user: "alice",
        password: PASSWORD,
        domain: DOMAIN,
        calls: CALLS,
        rate: 10,
        hold_ms: 300,
        within: Duration::from_secs(15),
    };
    let Some(uac) = calls.spawn_scenario("uac_change_auth.xml").await else {
        return;
    };
    let uac = uac.wait().await;
    let (as1, as2) = (as1.wait().await, as2.wait().await);
    assert!(
        uac.success && as1.success && as2.success,
        "sipp UAC:\n{}\n\nvoice AS:\n{}\n\nvideo AS:\n{}",
        uac.report(),
        as1.report(),
        as2.report()
    );
    let client_id = client["id"].as_str().unwrap();
    let mut ended = Vec::new();
    for _ in 0..150 {
        let (_, page) = app
            .admin(
                Method::GET,
                &format!("/v1/sessions?client_id={client_id}&state=ended&limit=100"),
                None,
            )
            .await;
        ended = page["items"].as_array().cloned().unwrap_or_default();
        if ended.len() == CALLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ended.len(), CALLS);
    for s in &ended {
        let id = s["id"].as_str().unwrap();
        let d = session_until(&app, id, |d| {
            d["segments"].as_array().is_some_and(|g| g.len() == 2)
        })
        .await;
        assert_eq!(d["end_reason"], "client_bye", "{d:#}");
        assert_eq!(d["segments"][0]["app_server_id"], services[0].0);
        assert_eq!(d["segments"][1]["app_server_id"], services[1].0);
        assert_eq!(d["segments"][1]["service_id"], services[1].1);
        let cdrs = cdrs_of(&app, id, 2).await;
        assert!(cdrs
            .iter()
            .any(|c| c["segment"] == 1 && c["end_reason"] == "moved"));
    }
}
