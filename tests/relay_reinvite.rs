//! re-INVITEs inside an established session (RFC 3261 §14): an offerless
//! one gets its answer from the ACK, which must reach the other side;
//! retransmitted 2xx are answered consistently; one re-INVITE at a time
//! (491 for a second one and for glare).

mod common;

use std::time::Duration;

use common::relay::{
    app_server, establish, header, method_of, next_request, ok_with, session_in, world, PASSWORD,
};
use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, DOMAIN};

both_engines!(
    a_delayed_offer_gets_its_answer_from_the_ack,
    an_offerless_reinvite_gets_its_answer_from_the_ack,
    the_ack_of_a_reinvite_is_relayed_after_the_session_ended,
    one_reinvite_at_a_time,
);

async fn a_delayed_offer_gets_its_answer_from_the_ack(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    // An INVITE without SDP (RFC 3261 §13.2.1): the offer comes in the 2xx.
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let invite = client.request("INVITE", &format!("sip:voicemail@{DOMAIN}"));
    let challenge = client.transact(&invite).await;
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    assert!(at_as.body().is_empty());
    let offer = sdp_offer(as_ua.local_addr(), 7000);
    ok_with(&mut as_ua, &at_as, &offer).await;
    let ok = client.recv_final(&invite).await;
    assert_eq!(ok.body(), offer.as_bytes());
    let answer = sdp_offer(client.local_addr(), 4000);
    let ack = client
        .ack(&invite, &ok)
        .with_body("application/sdp", answer.as_bytes());
    client.send(&ack).await;
    let at_as_ack = next_request(&mut as_ua, "ACK").await;
    assert_eq!(
        at_as_ack.body(),
        answer.as_bytes(),
        "the answer reaches the AS"
    );
    session_in(&w.app, &w.client_id, "established").await;
    // A retransmitted 2xx gets the same ACK, answer included.
    ok_with(&mut as_ua, &at_as, &offer).await;
    let again = next_request(&mut as_ua, "ACK").await;
    assert_eq!(again.as_bytes(), at_as_ack.as_bytes());
}

async fn an_offerless_reinvite_gets_its_answer_from_the_ack(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let client = &mut call.client;

    // No offer in the re-INVITE: the AS makes one in its 2xx.
    let reinvite = client.in_dialog(&call.client_dialog, "INVITE");
    client.send(&reinvite).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    assert!(at_as.body().is_empty(), "nothing to offer on the AS side");
    let offer = sdp_offer(as_ua.local_addr(), 7100);
    ok_with(&mut as_ua, &at_as, &offer).await;
    let ok = client.recv_final(&reinvite).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        ok.body(),
        offer.as_bytes(),
        "the AS's offer reaches the client"
    );
    assert!(
        as_ua.recv_within(Duration::from_millis(300)).await.is_err(),
        "no ACK for the AS before the client's: the answer is in that ACK"
    );

    // The AS's 2xx retransmitted meanwhile: the client gets ours again.
    ok_with(&mut as_ua, &at_as, &offer).await;
    let again = client.recv_response(&reinvite).await;
    assert_eq!(again.status(), Some(200));
    assert_eq!(again.body(), offer.as_bytes());

    // The client's answer comes in its ACK, and goes on to the AS.
    let answer = sdp_offer(client.local_addr(), 4100);
    let ack = client
        .ack(&reinvite, &ok)
        .with_body("application/sdp", answer.as_bytes());
    client.send(&ack).await;
    let at_as_ack = next_request(&mut as_ua, "ACK").await;
    assert_eq!(at_as_ack.body(), answer.as_bytes());
    assert_eq!(header(&at_as_ack, "Content-Type"), "application/sdp");
    assert_eq!(
        at_as_ack.cseq().unwrap().seq,
        at_as.cseq().unwrap().seq,
        "the ACK names the re-INVITE it acknowledges"
    );

    // Our ACK lost: the AS retransmits its 2xx and gets the same ACK.
    ok_with(&mut as_ua, &at_as, &offer).await;
    let ack_again = next_request(&mut as_ua, "ACK").await;
    assert_eq!(ack_again.as_bytes(), at_as_ack.as_bytes());
    assert!(
        client
            .recv_within(Duration::from_millis(200))
            .await
            .is_err(),
        "the client, who ACKed, is not bothered"
    );
}

async fn the_ack_of_a_reinvite_is_relayed_after_the_session_ended(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let reinvite = call.client.in_dialog(&call.client_dialog, "INVITE");
    call.client.send(&reinvite).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;
    let offer = sdp_offer(as_ua.local_addr(), 7200);
    ok_with(&mut as_ua, &at_as, &offer).await;
    let ok = call.client.recv_final(&reinvite).await;
    assert_eq!(ok.status(), Some(200));
    // The session ends before the client's ACK (with the answer) comes:
    // the AS hangs up meanwhile.
    let bye = as_ua.in_dialog(&call.as_dialog, "BYE");
    assert_eq!(as_ua.transact(&bye).await.status(), Some(200));
    let client_bye = next_request(&mut call.client, "BYE").await;
    call.client.respond(&client_bye, 200, "OK", &[], None).await;
    session_in(&w.app, &w.client_id, "ended").await;
    // The ended session still relays that ACK (RFC 3261 §13.2.2.4): the
    // AS's 2xx would otherwise go unacknowledged.
    let answer = sdp_offer(call.client.local_addr(), 4200);
    let ack = call
        .client
        .ack(&reinvite, &ok)
        .with_body("application/sdp", answer.as_bytes());
    call.client.send(&ack).await;
    let at_as_ack = next_request(&mut as_ua, "ACK").await;
    assert_eq!(at_as_ack.body(), answer.as_bytes());
    assert_eq!(at_as_ack.cseq().unwrap().seq, at_as.cseq().unwrap().seq);
}

async fn one_reinvite_at_a_time(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let client = &mut call.client;
    let video = sdp_offer(client.local_addr(), 4200);

    // A re-INVITE from the client, not yet answered by the AS.
    let first = client
        .in_dialog(&call.client_dialog, "INVITE")
        .with_body("application/sdp", video.as_bytes());
    client.send(&first).await;
    let at_as = next_request(&mut as_ua, "INVITE").await;

    // Another one from the client while it is pending (RFC 3261 §14.2).
    let second = client
        .in_dialog(&call.client_dialog, "INVITE")
        .with_body("application/sdp", video.as_bytes());
    assert_eq!(client.transact(&second).await.status(), Some(491));
    // And one from the AS: glare.
    let as_offer = sdp_offer(as_ua.local_addr(), 7200);
    let glare = as_ua
        .in_dialog(&call.as_dialog, "INVITE")
        .with_body("application/sdp", as_offer.as_bytes());
    assert_eq!(as_ua.transact(&glare).await.status(), Some(491));
    while let Ok(m) = client.recv_within(Duration::from_millis(200)).await {
        assert!(m.is_response(), "neither reached the client");
    }

    // The first one completes.
    let answer = sdp_offer(as_ua.local_addr(), 7000);
    as_ua
        .respond(
            &at_as,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let ok = client.recv_final(&first).await;
    assert_eq!(ok.status(), Some(200));
    let ack = client.ack(&first, &ok);
    client.send(&ack).await;
    assert_eq!(method_of(&next_request(&mut as_ua, "ACK").await.msg), "ACK");

    // Then the AS may try again, and its re-INVITE reaches the client.
    let retry = as_ua
        .in_dialog(&call.as_dialog, "INVITE")
        .with_body("application/sdp", as_offer.as_bytes());
    as_ua.send(&retry).await;
    let at_client = next_request(client, "INVITE").await;
    assert_eq!(at_client.body(), as_offer.as_bytes());
    client
        .respond(
            &at_client,
            200,
            "OK",
            &[],
            Some(("application/sdp", video.as_bytes())),
        )
        .await;
    let ok = as_ua.recv_final(&retry).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), video.as_bytes());
    let ack = as_ua.ack(&retry, &ok);
    as_ua.send(&ack).await;
    assert_eq!(method_of(&next_request(client, "ACK").await.msg), "ACK");
}
