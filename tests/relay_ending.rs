//! How legs and sessions end: CANCEL only after a provisional response,
//! ACK before BYE, late and retransmitted 2xx, BYE on a leg that lost,
//! requests pending when the session ends.

mod common;

use std::time::Duration;

use common::relay::{
    answer_200, app_server, establish, method_of, next_request, session_in, world, PASSWORD,
};
use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, DOMAIN};
use reqwest::{Method, StatusCode};

both_engines!(
    no_cancel_before_a_provisional_response,
    an_answered_leg_is_acked_before_its_bye,
    a_retransmitted_2xx_is_answered_after_the_end,
    a_2xx_crossing_the_cancel_is_acked_and_ended_after_the_end,
    a_bye_on_a_leg_that_lost_leaves_the_session,
    pending_requests_end_with_the_session,
    a_dialog_reused_by_a_new_session_survives_the_old_one,
);

/// Alice's INVITE to voicemail, sent with credentials; the challenge is
/// consumed.
async fn invite_voicemail(w: &common::relay::World) -> (SipUa, common::sip_ua::Request) {
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let invite = client.invite(&format!("sip:voicemail@{DOMAIN}"), &offer);
    let challenge = client.transact(&invite).await;
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    (client, invite)
}

/// Whatever `ua` receives within `wait`, by method (responses as "").
async fn drain(ua: &mut SipUa, wait: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(m) = ua.recv_within(wait).await {
        seen.push(method_of(&m));
    }
    seen
}

async fn no_cancel_before_a_provisional_response(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let (mut client, invite) = invite_voicemail(&w).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    // The AS has not said a word (not even 100) when the client gives up.
    let cancel = client.cancel(&invite);
    assert_eq!(client.transact(&cancel).await.status(), Some(200));
    assert_eq!(client.recv_final(&invite).await.status(), Some(487));
    let seen = drain(&mut as_ua, Duration::from_millis(400)).await;
    assert!(
        !seen.iter().any(|m| m == "CANCEL"),
        "no CANCEL before a provisional response (RFC 3261 §9.1): {seen:?}"
    );
    // Its first provisional response lets the CANCEL go.
    as_ua.respond(&at_as, 180, "Ringing", &[], None).await;
    let as_cancel = next_request(&mut as_ua, "CANCEL").await;
    as_ua.respond(&as_cancel, 200, "OK", &[], None).await;
    as_ua
        .respond(&at_as, 487, "Request Terminated", &[], None)
        .await;
    assert_eq!(method_of(&next_request(&mut as_ua, "ACK").await.msg), "ACK");
}

async fn an_answered_leg_is_acked_before_its_bye(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let (mut client, invite) = invite_voicemail(&w).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    answer_200(&mut as_ua, &at_as).await;
    assert_eq!(client.recv_final(&invite).await.status(), Some(200));
    // The client does not ACK; the operator ends the session meanwhile.
    let detail = session_in(&w.app, &w.client_id, "answered").await;
    let id = detail["id"].as_str().unwrap();
    let (s, _) = w
        .app
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let first = as_ua.accept_request().await;
    assert_eq!(
        method_of(&first),
        "ACK",
        "the 2xx is ACKed first (RFC 3261 §15)"
    );
    let bye = as_ua.accept_request().await;
    assert_eq!(method_of(&bye), "BYE");
    assert_eq!(
        bye.call_id().unwrap(),
        first.call_id().unwrap(),
        "same dialog"
    );
    as_ua.respond(&bye, 200, "OK", &[], None).await;
}

async fn a_retransmitted_2xx_is_answered_after_the_end(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let bye = call.client.bye();
    call.client.send(&bye).await;
    let as_bye = next_request(&mut as_ua, "BYE").await;
    as_ua.respond(&as_bye, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&bye).await.status(), Some(200));
    session_in(&w.app, &w.client_id, "ended").await;
    // The AS never saw our ACK and retransmits its 2xx: it is ACKed again.
    answer_200(&mut as_ua, &call.at_as).await;
    let ack = next_request(&mut as_ua, "ACK").await;
    assert_eq!(ack.call_id().unwrap(), call.at_as.call_id().unwrap());
}

async fn a_2xx_crossing_the_cancel_is_acked_and_ended_after_the_end(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let (mut client, invite) = invite_voicemail(&w).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    as_ua.respond(&at_as, 180, "Ringing", &[], None).await;
    let cancel = client.cancel(&invite);
    assert_eq!(client.transact(&cancel).await.status(), Some(200));
    assert_eq!(client.recv_final(&invite).await.status(), Some(487));
    let as_cancel = next_request(&mut as_ua, "CANCEL").await;
    session_in(&w.app, &w.client_id, "ended").await;
    // The AS answered before the CANCEL reached it, and does not answer
    // the CANCEL: its 2xx comes to a session that has ended and lets its
    // INVITE go. The leg never had an ACK, so it kept its INVITE, and the
    // dialog the 2xx made is confirmed and ended (RFC 3261 §9.1, §15).
    answer_200(&mut as_ua, &at_as).await;
    as_ua
        .respond(
            &as_cancel,
            481,
            "Call/Transaction Does Not Exist",
            &[],
            None,
        )
        .await;
    let ack = next_request(&mut as_ua, "ACK").await;
    assert_eq!(ack.call_id().unwrap(), at_as.call_id().unwrap());
    let bye = next_request(&mut as_ua, "BYE").await;
    assert_eq!(bye.call_id().unwrap(), at_as.call_id().unwrap());
    as_ua.respond(&bye, 200, "OK", &[], None).await;
}

async fn a_bye_on_a_leg_that_lost_leaves_the_session(engine: Engine) {
    let first = app_server().await;
    let mut second = app_server().await;
    let Some(w) = world(engine, &[&first, &second]).await else {
        return;
    };
    // The first app server refuses, the second one answers.
    let refusing = tokio::spawn(async move {
        let mut first = first;
        let at_first = next_request(&mut first, "INVITE").await;
        first
            .respond(&at_first, 503, "Service Unavailable", &[], None)
            .await;
        (first, at_first)
    });
    let mut call = establish(&w, &mut second, |r| r, &[]).await;
    let (mut first, at_first) = refusing.await.unwrap();

    // The refusing app server sends BYE in the dialog it never had.
    first.set_server(w.app.sip);
    let dialog = first.uas_dialog(&at_first, "stray");
    let bye = first.in_dialog(&dialog, "BYE");
    assert_eq!(first.transact(&bye).await.status(), Some(481));
    let seen = drain(&mut call.client, Duration::from_millis(300)).await;
    assert!(
        !seen.iter().any(|m| m == "BYE"),
        "the client keeps its call"
    );
    session_in(&w.app, &w.client_id, "established").await;

    // The session still ends normally.
    let bye = call.client.bye();
    call.client.send(&bye).await;
    let as_bye = next_request(&mut second, "BYE").await;
    second.respond(&as_bye, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&bye).await.status(), Some(200));
    let detail = session_in(&w.app, &w.client_id, "ended").await;
    assert_eq!(detail["end_reason"], "client_bye");
}

async fn pending_requests_end_with_the_session(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let info = call
        .client
        .in_dialog(&call.client_dialog, "INFO")
        .with_body("application/dtmf-relay", b"Signal=1\r\n");
    call.client.send(&info).await;
    next_request(&mut as_ua, "INFO").await; // never answered
    let bye = as_ua.in_dialog(&call.as_dialog, "BYE");
    assert_eq!(as_ua.transact(&bye).await.status(), Some(200));
    let client_bye = next_request(&mut call.client, "BYE").await;
    call.client.respond(&client_bye, 200, "OK", &[], None).await;
    // The INFO the session can no longer carry is answered.
    assert_eq!(call.client.recv_final(&info).await.status(), Some(487));
    // A request in the ended dialog: it no longer exists.
    let late = call.client.in_dialog(&call.client_dialog, "INFO");
    assert_eq!(call.client.transact(&late).await.status(), Some(481));
}

async fn a_dialog_reused_by_a_new_session_survives_the_old_one(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    // A first session, refused by the AS.
    let (mut client, invite) = invite_voicemail(&w).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    as_ua.respond(&at_as, 486, "Busy Here", &[], None).await;
    assert_eq!(client.recv_final(&invite).await.status(), Some(486));
    next_request(&mut as_ua, "ACK").await;
    // The client tries again with the same Call-ID and From tag (a new
    // CSeq): a new session, answered.
    let mut fresh = client.renew(&invite);
    fresh.headers.retain(|(n, _)| !n.ends_with("uthorization"));
    let challenge = client.transact(&fresh).await;
    assert_eq!(challenge.status(), Some(407));
    let retry = client.authorize(&fresh, &challenge, "alice", PASSWORD, &Default::default());
    assert_eq!(retry.call_id, invite.call_id);
    client.send(&retry).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    answer_200(&mut as_ua, &at_as).await;
    let ok = client.recv_final(&retry).await;
    assert_eq!(ok.status(), Some(200));
    let ack = client.ack(&retry, &ok);
    client.send(&ack).await;
    next_request(&mut as_ua, "ACK").await;
    client.dialog = Some(client.uac_dialog(&retry, &ok));
    // The first session is forgotten after its linger (64·T1 = 32 s); the
    // dialog key it shared belongs to the second and must stay.
    tokio::time::sleep(Duration::from_secs(34)).await;
    let bye = client.bye();
    client.send(&bye).await;
    let as_bye = next_request(&mut as_ua, "BYE").await;
    as_ua.respond(&as_bye, 200, "OK", &[], None).await;
    assert_eq!(client.recv_final(&bye).await.status(), Some(200));
}
