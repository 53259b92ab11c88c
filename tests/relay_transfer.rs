//! Session transfer (SPEC §2 claim 6). A REFER from the client naming a
//! service (RFC 3515): 202, NOTIFYs with sipfrag bodies, an offerless
//! INVITE to the new app server (RFC 3725 flow I), our re-INVITE of the
//! client with its offer, ACKs on both sides with the client's answer, BYE
//! to the first app server, two billing segments. A refused transfer
//! leaves the session as it was. An INVITE with Replaces (RFC 3891) from
//! the same client takes the session over in a new dialog.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::relay::{
    add_service, app_server, establish, has_event, header, method_of, next_request, segment_cdrs,
    send_offer, session_in, session_when, Call, World, PASSWORD,
};
use common::sip_ua::{sdp_offer, Dialog, Request, SipUa};
use common::{Engine, DOMAIN};

both_engines!(
    a_refer_moves_the_session_to_another_service,
    a_refused_transfer_leaves_the_session_as_it_was,
    refers_that_cannot_be_carried_out,
    an_invite_with_replaces_takes_the_session_over,
);

/// A call of alice to voicemail established with `as1`, and a
/// `conference` service on `as2` chosen by Request-URI user `conference`.
struct Transferable {
    w: World,
    as1: SipUa,
    as2: SipUa,
    call: Call,
    id: String,
    as1_id: Value,
    as2_id: String,
}

async fn transferable(engine: Engine) -> Option<Transferable> {
    let mut as1 = app_server().await;
    let as2 = app_server().await;
    let w = common::relay::world(engine, &[&as1]).await?;
    let conference = json!({"request_uri_user": "conference"});
    let as2_id = add_service(&w, &as2, "conference", 5, conference).await;
    let call = establish(&w, &mut as1, |r| r, &[]).await;
    let s = session_in(&w.app, &w.client_id, "established").await;
    Some(Transferable {
        id: s["id"].as_str().unwrap().to_string(),
        as1_id: s["app_server_id"].clone(),
        w,
        as1,
        as2,
        call,
        as2_id,
    })
}

/// The client's REFER to `refer_to` in its dialog, and its final response.
async fn refer(call: &mut Call, refer_to: &str) -> u16 {
    let refer = call
        .client
        .in_dialog(&call.client_dialog, "REFER")
        .header("Refer-To", refer_to)
        .header("Referred-By", &format!("<sip:alice@{DOMAIN}>"));
    let answer = call.client.transact(&refer).await;
    answer.status().unwrap_or_default()
}

/// The next NOTIFY of the REFER's subscription at the client, answered
/// 200; its sipfrag body and Subscription-State.
async fn notified(client: &mut SipUa) -> (String, String) {
    let notify = next_request(client, "NOTIFY").await;
    assert!(header(&notify, "Event").starts_with("refer"), "{notify:?}");
    assert!(header(&notify, "Content-Type").starts_with("message/sipfrag"));
    client.respond(&notify, 200, "OK", &[], None).await;
    (
        String::from_utf8_lossy(notify.body())
            .trim_end()
            .to_string(),
        header(&notify, "Subscription-State"),
    )
}

/// Session detail `moved` is established on as2, after a segment on as1.
fn assert_moved(moved: &Value, as1_id: &Value, as2_id: &str) {
    assert_eq!(moved["state"], "established");
    assert_eq!(moved["app_server_id"], as2_id);
    let segments = moved["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{moved}");
    assert_eq!(&segments[0]["app_server_id"], as1_id);
    assert_eq!(segments[1]["app_server_id"], as2_id);
    assert_eq!(segments[0]["ended_at"], segments[1]["started_at"]);
}

/// The client hangs up; the app server at `as_ua` gets the BYE.
async fn hang_up(call: &mut Call, as_ua: &mut SipUa, w: &World) {
    as_ua.set_server(w.app.sip);
    let bye = call.client.in_dialog(&call.client_dialog, "BYE");
    call.client.send(&bye).await;
    let at_as = next_request(as_ua, "BYE").await;
    as_ua.respond(&at_as, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&bye).await.status(), Some(200));
}

async fn a_refer_moves_the_session_to_another_service(engine: Engine) {
    let Some(t) = transferable(engine).await else {
        return;
    };
    let Transferable {
        w,
        mut as1,
        mut as2,
        mut call,
        id,
        as1_id,
        as2_id,
    } = t;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let target = format!("<sip:conference@{DOMAIN}>");
    assert_eq!(refer(&mut call, &target).await, 202, "RFC 3515 §2.4.2");
    let (frag, state) = notified(&mut call.client).await;
    assert_eq!(frag, "SIP/2.0 100 Trying");
    assert!(state.starts_with("active;expires="), "{state}");

    // RFC 3725 flow I: no offer to the new app server; it makes one.
    let at_as2 = next_request(&mut as2, "INVITE").await;
    assert!(at_as2.body().is_empty(), "an offerless INVITE");
    assert!(
        String::from_utf8_lossy(at_as2.request_uri_raw().unwrap()).starts_with("sip:conference@"),
        "the service named by Refer-To"
    );
    assert_eq!(header(&at_as2, "X-Switchboard-Session"), id);
    assert_eq!(header(&at_as2, "X-Service"), "conference", "the rule's set");
    let offer = sdp_offer(as2.local_addr(), 7300);
    as2.answer_with_sdp(&at_as2, 7300).await;

    // The client is re-INVITEd in its dialog with as2's offer.
    let reinvite = next_request(&mut call.client, "INVITE").await;
    assert_eq!(header(&reinvite, "Call-ID"), call.client_dialog.call_id);
    assert_eq!(reinvite.body(), offer.as_bytes());
    let answer = sdp_offer(call.client.local_addr(), 4300);
    call.client.answer_with_sdp(&reinvite, 4300).await;
    let ack = next_request(&mut call.client, "ACK").await;
    assert_eq!(ack.cseq().unwrap().seq, reinvite.cseq().unwrap().seq);

    // as2's ACK carries the client's answer; as1 is let go.
    let ack_at_as2 = next_request(&mut as2, "ACK").await;
    assert_eq!(ack_at_as2.body(), answer.as_bytes());
    let bye = next_request(&mut as1, "BYE").await;
    assert_eq!(header(&bye, "Call-ID"), header(&call.at_as, "Call-ID"));
    as1.respond(&bye, 200, "OK", &[], None).await;
    let (frag, state) = notified(&mut call.client).await;
    assert_eq!(frag, "SIP/2.0 200 OK");
    assert!(state.starts_with("terminated"), "{state}");

    // The detail reads the session, then its events: wait for both.
    let moved = session_when(&w.app, &id, |s| {
        has_event(s, "transferred") && s["app_server_id"] == as2_id.as_str()
    })
    .await;
    assert!(has_event(&moved, "transfer"));
    assert_moved(&moved, &as1_id, &as2_id);

    // The client's requests now go to as2.
    tokio::time::sleep(Duration::from_millis(300)).await;
    hang_up(&mut call, &mut as2, &w).await;
    let cdrs = segment_cdrs(&w.app, &id, 2).await;
    assert_eq!(cdrs[0]["segment"], 1);
    assert_eq!(cdrs[1]["segment"], 2);
    assert_eq!(cdrs[0]["app_server_id"], as1_id);
    assert_eq!(cdrs[1]["app_server_id"], as2_id.as_str());
    assert_eq!(cdrs[0]["end_reason"], "transferred");
    assert_eq!(cdrs[1]["end_reason"], "client_bye");
    let d1 = cdrs[0]["duration_ms"].as_i64().unwrap();
    let d2 = cdrs[1]["duration_ms"].as_i64().unwrap();
    assert!((350..3000).contains(&d1), "first segment {d1} ms");
    assert!((250..3000).contains(&d2), "second segment {d2} ms");
}

async fn a_refused_transfer_leaves_the_session_as_it_was(engine: Engine) {
    let Some(t) = transferable(engine).await else {
        return;
    };
    let (w, mut as1, mut as2, mut call, id) = (t.w, t.as1, t.as2, t.call, t.id);

    let target = format!("<sip:conference@{DOMAIN}>");
    assert_eq!(refer(&mut call, &target).await, 202);
    assert_eq!(notified(&mut call.client).await.0, "SIP/2.0 100 Trying");
    let at_as2 = next_request(&mut as2, "INVITE").await;
    as2.respond(&at_as2, 486, "Busy Here", &[], None).await;
    let (frag, state) = notified(&mut call.client).await;
    assert_eq!(frag, "SIP/2.0 486 Busy Here");
    assert!(state.starts_with("terminated"), "{state}");
    assert!(
        as1.recv_within(Duration::from_millis(300)).await.is_err(),
        "as1 is not bothered"
    );

    let s = session_when(&w.app, &id, |s| has_event(s, "transfer_failed")).await;
    assert_eq!(s["state"], "established");
    assert_eq!(s["segments"].as_array().unwrap().len(), 1);
    // The session goes on with as1, to its end.
    hang_up(&mut call, &mut as1, &w).await;
    let cdrs = segment_cdrs(&w.app, &id, 1).await;
    assert_eq!(cdrs[0]["end_reason"], "client_bye");
}

async fn refers_that_cannot_be_carried_out(engine: Engine) {
    let Some(t) = transferable(engine).await else {
        return;
    };
    let (mut as1, mut call) = (t.as1, t.call);
    // No service: the REFER itself is refused, no subscription.
    let nowhere = format!("<sip:nobody@{DOMAIN}>");
    assert_eq!(refer(&mut call, &nowhere).await, 404);
    // Not a SIP URI (RFC 3261 §21.4.16).
    assert_eq!(refer(&mut call, "<tel:+15551234>").await, 416);
    // An attended transfer to a dialog (Replaces in the Refer-To).
    let attended = format!("<sip:bob@{DOMAIN}?Replaces=x%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>");
    assert_eq!(refer(&mut call, &attended).await, 403);
    // While a re-INVITE is pending (RFC 3261 §14.2).
    let offer = sdp_offer(call.client.local_addr(), 4400);
    let reinvite = send_offer(&mut call, "INVITE", &offer).await;
    let at_as1 = next_request(&mut as1, "INVITE").await;
    let target = format!("<sip:conference@{DOMAIN}>");
    assert_eq!(refer(&mut call, &target).await, 491);
    as1.respond(
        &at_as1,
        200,
        "OK",
        &[],
        Some(("application/sdp", offer.as_bytes())),
    )
    .await;
    let ok = call.client.recv_final(&reinvite).await;
    let ack = call.client.ack(&reinvite, &ok);
    call.client.send(&ack).await;
    while let Ok(m) = call.client.recv_within(Duration::from_millis(200)).await {
        assert_ne!(method_of(&m), "NOTIFY", "no subscription was created");
    }
}

/// Alice's INVITE (from another phone) replacing the dialog of `call`.
async fn replacing_invite(w: &World, d: &Dialog, user: &str, password: &str) -> (SipUa, Request) {
    let mut phone = SipUa::udp(w.app.sip).await.with_user(user, DOMAIN);
    let replaces = format!(
        "{};to-tag={};from-tag={}",
        d.call_id, d.remote_tag, d.local_tag
    );
    let offer = sdp_offer(phone.local_addr(), 4500);
    let invite = phone
        .invite(&format!("sip:conference@{DOMAIN}"), &offer)
        .header("Replaces", &replaces)
        .header("Supported", "replaces");
    let challenge = phone.transact(&invite).await;
    assert_eq!(challenge.status(), Some(407));
    let invite = phone.authorize(&invite, &challenge, user, password, &Default::default());
    phone.send(&invite).await;
    (phone, invite)
}

async fn an_invite_with_replaces_takes_the_session_over(engine: Engine) {
    let Some(t) = transferable(engine).await else {
        return;
    };
    let (w, mut as1, mut as2, mut call) = (t.w, t.as1, t.as2, t.call);
    let (id, as1_id, as2_id) = (t.id, t.as1_id, t.as2_id);

    // Naming no dialog of ours: 481 (RFC 3891 §3).
    let mut stranger = call.client_dialog.clone();
    stranger.call_id = "nothing-here".into();
    let (mut phone, invite) = replacing_invite(&w, &stranger, "alice", PASSWORD).await;
    assert_eq!(phone.recv_final(&invite).await.status(), Some(481));
    // Another client's dialog: 403.
    w.app
        .create(
            "/v1/clients",
            json!({"username": "bob", "password": "bob-secret"}),
        )
        .await;
    let (mut bob, invite) = replacing_invite(&w, &call.client_dialog, "bob", "bob-secret").await;
    assert_eq!(bob.recv_final(&invite).await.status(), Some(403));

    // as2 refuses: the new INVITE gets it, the session stays.
    let (mut phone, invite) = replacing_invite(&w, &call.client_dialog, "alice", PASSWORD).await;
    let at_as2 = next_request(&mut as2, "INVITE").await;
    as2.respond(&at_as2, 486, "Busy Here", &[], None).await;
    assert_eq!(phone.recv_final(&invite).await.status(), Some(486));
    let s = session_when(&w.app, &id, |s| has_event(s, "transfer_failed")).await;
    assert_eq!(s["segments"].as_array().unwrap().len(), 1);
    assert!(as1.recv_within(Duration::from_millis(200)).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // as2 answers: the new dialog takes over.
    let (mut phone, invite) = replacing_invite(&w, &call.client_dialog, "alice", PASSWORD).await;
    let at_as2 = next_request(&mut as2, "INVITE").await;
    assert_eq!(
        at_as2.body(),
        &invite.body[..],
        "as2 gets the new INVITE's offer"
    );
    assert_eq!(header(&at_as2, "X-Service"), "conference", "the rule's set");
    let answer = sdp_offer(as2.local_addr(), 7500);
    as2.answer_with_sdp(&at_as2, 7500).await;
    let ok = phone.recv_final(&invite).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), answer.as_bytes());
    // The replaced dialog and the old app server get BYE.
    let old_bye = next_request(&mut call.client, "BYE").await;
    assert_eq!(header(&old_bye, "Call-ID"), call.client_dialog.call_id);
    call.client.respond(&old_bye, 200, "OK", &[], None).await;
    let bye = next_request(&mut as1, "BYE").await;
    as1.respond(&bye, 200, "OK", &[], None).await;
    // The new app server's ACK comes with the client's.
    let ack = phone.ack(&invite, &ok);
    phone.send(&ack).await;
    assert_eq!(method_of(&next_request(&mut as2, "ACK").await.msg), "ACK");

    let moved = session_when(&w.app, &id, |s| {
        has_event(s, "transferred") && s["client_call_id"] == invite.call_id.as_str()
    })
    .await;
    assert_moved(&moved, &as1_id, &as2_id);

    // The new dialog is the session's: its BYE reaches as2.
    let mut new_call = Call {
        client_dialog: phone.uac_dialog(&invite, &ok),
        client: phone,
        invite,
        ok,
        at_as: at_as2,
        as_dialog: call.as_dialog.clone(),
    };
    hang_up(&mut new_call, &mut as2, &w).await;
    let cdrs = segment_cdrs(&w.app, &id, 2).await;
    assert_eq!(cdrs[1]["app_server_id"], as2_id.as_str());
    assert_eq!(cdrs[1]["end_reason"], "client_bye");
}
