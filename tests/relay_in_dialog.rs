//! Requests inside an established session: each side's route set and
//! remote target (RFC 3261 §12), the headers a B2BUA carries across and
//! those it keeps per leg, and what we say about ourselves.

mod common;

use common::relay::{app_server, establish, header, next_request, session_in, world};
use common::sip_ua::{Incoming, SipUa};
use common::{Engine, DOMAIN};
use reqwest::Method;
use serde_json::json;
use switchboard::sip::message::HeaderName;

both_engines!(
    in_dialog_requests_follow_each_sides_route_set,
    end_to_end_headers_cross_and_hop_headers_do_not,
    display_names_are_escaped,
    options_advertise_only_what_is_implemented,
    a_client_target_refresh_is_followed_and_published,
);

fn routes(m: &Incoming) -> Vec<String> {
    m.headers()
        .filter(|h| h.name == HeaderName::Route)
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect()
}

fn request_uri(m: &Incoming) -> String {
    String::from_utf8_lossy(m.request_uri_raw().unwrap_or_default()).into_owned()
}

async fn in_dialog_requests_follow_each_sides_route_set(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    // A proxy on the client's side and two on the app server's record-route.
    let mut call = establish(
        &w,
        &mut as_ua,
        |r| r.header("Record-Route", "<sip:edge.example;lr>"),
        &[
            ("Record-Route", "<sip:p1.example;lr>"),
            ("Record-Route", "<sip:p2.example;lr>"),
        ],
    )
    .await;
    assert_eq!(
        header(&call.ok, "Record-Route"),
        "<sip:edge.example;lr>",
        "the 2xx echoes the INVITE's Record-Route (§12.1.1)"
    );

    // Towards the AS: the 2xx's Record-Route reversed (§12.1.2), and its
    // Contact as Request-URI.
    let info = call
        .client
        .in_dialog(&call.client_dialog, "INFO")
        .with_body("application/dtmf-relay", b"Signal=2\r\n");
    call.client.send(&info).await;
    let at_as = next_request(&mut as_ua, "INFO").await;
    assert_eq!(
        routes(&at_as),
        ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    );
    assert_eq!(request_uri(&at_as), as_ua.contact_uri());
    as_ua.respond(&at_as, 200, "OK", &[], None).await;
    assert_eq!(call.client.recv_final(&info).await.status(), Some(200));

    // Towards the client: the INVITE's Record-Route in order (§12.1.1).
    let info = as_ua.in_dialog(&call.as_dialog, "INFO");
    as_ua.send(&info).await;
    let at_client = next_request(&mut call.client, "INFO").await;
    assert_eq!(routes(&at_client), ["<sip:edge.example;lr>"]);
    assert_eq!(request_uri(&at_client), call.client.contact_uri());
    call.client.respond(&at_client, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&info).await.status(), Some(200));
}

async fn end_to_end_headers_cross_and_hop_headers_do_not(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let mut info = call
        .client
        .in_dialog(&call.client_dialog, "INFO")
        .header("Content-Disposition", "signal;handling=optional")
        .header("Subject", "digits")
        .header("X-Account", "42")
        .header("X-Switchboard-Session", "forged")
        .header("P-Private", "not for the AS")
        .with_body("application/dtmf-relay", b"Signal=3\r\n");
    info.max_forwards = 10;
    call.client.send(&info).await;
    let at_as = next_request(&mut as_ua, "INFO").await;
    assert_eq!(header(&at_as, "Max-Forwards"), "9", "one hop less");
    assert_eq!(
        header(&at_as, "Content-Disposition"),
        "signal;handling=optional"
    );
    assert_eq!(header(&at_as, "Subject"), "digits");
    assert_eq!(header(&at_as, "X-Account"), "42");
    assert_eq!(header(&at_as, "Content-Type"), "application/dtmf-relay");
    assert!(at_as.header_value("X-Switchboard-Session").is_none());
    assert!(at_as.header_value("P-Private").is_none());
    assert_eq!(at_as.vias().count(), 1, "our Via only");
    let raw = String::from_utf8_lossy(at_as.as_bytes()).into_owned();
    assert!(
        !raw.contains(&format!(":{}", call.client.local_addr().port())),
        "nothing of the client's address:\n{raw}"
    );
    as_ua
        .respond(&at_as, 200, "OK", &[("X-Result", "stored")], None)
        .await;
    let resp = call.client.recv_final(&info).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(header(&resp, "X-Result"), "stored");
}

async fn display_names_are_escaped(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let (status, body) = w
        .app
        .admin(
            Method::PATCH,
            &format!("/v1/clients/{}", w.client_id),
            Some(json!({"display_name": "Al \"the pal\" \\ice"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let call = establish(&w, &mut as_ua, |r| r, &[]).await;
    assert_eq!(
        header(&call.at_as, "P-Asserted-Identity"),
        format!(r#""Al \"the pal\" \\ice" <sip:alice@{DOMAIN}>"#)
    );
}

async fn options_advertise_only_what_is_implemented(engine: Engine) {
    let as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut ua = SipUa::udp(w.app.sip).await;
    let options = ua.options(&format!("sip:{DOMAIN}"));
    let resp = ua.transact(&options).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(header(&resp, "Supported"), "timer, replaces");
}

/// An UPDATE with a new Contact refreshes the client's remote target (RFC
/// 3261 §12.2.2, RFC 3311 §5.2): the next request towards the client goes
/// there, and the session's client leg shows it once the session ended.
async fn a_client_target_refresh_is_followed_and_published(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut call = establish(&w, &mut as_ua, |r| r, &[]).await;
    let moved = format!("{};moved", call.client.contact_uri());
    let mut update = call.client.in_dialog(&call.client_dialog, "UPDATE");
    update.contact = Some(format!("<{moved}>"));
    // Without an offer it changes nothing the app server must hear of:
    // the relay answers it itself.
    assert_eq!(call.client.transact(&update).await.status(), Some(200));

    let bye = as_ua.in_dialog(&call.as_dialog, "BYE");
    as_ua.send(&bye).await;
    let at_client = next_request(&mut call.client, "BYE").await;
    assert_eq!(request_uri(&at_client), moved, "the refreshed target");
    call.client.respond(&at_client, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&bye).await.status(), Some(200));

    let detail = session_in(&w.app, &w.client_id, "ended").await;
    let client_leg = &detail["legs"][0];
    assert_eq!(client_leg["kind"], "client", "{detail}");
    assert_eq!(client_leg["remote_uri"], moved.as_str(), "{detail}");
    assert_eq!(client_leg["ended_at"], detail["ended_at"], "{detail}");
}
