//! REGISTER end to end over real sockets: digest authentication (MD5 and
//! SHA-256, stale nonce, replayed nonce-count, wrong password, unknown
//! user), bindings (Min-Expires, refresh, unregister, `*`), their
//! publication over REST, and sipp as an independent client.

mod common;

use std::time::Duration;

use common::sip_digest::Challenge;
use common::sip_ua::{AuthOptions, SipUa};
use common::{test_settings, Engine, TestApp, TestDb, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::config::{DigestAlgorithm, DigestChallenges};
use switchboard::sip::message::{Contact, Message};

both_engines!(
    register_over_udp_and_tcp,
    bad_credentials_get_the_same_fresh_challenge,
    replayed_nonce_count_is_refused,
    interval_rules_and_unregister,
    bindings_are_published_and_removable_over_rest,
    registrations_survive_a_restart,
    sipp_registers_with_digest,
    every_algorithm_is_challenged_when_asked,
);

const PASSWORD: &str = "alice-secret";

async fn with_alice(engine: Engine) -> Option<(TestApp, String)> {
    let app = TestApp::spawn(engine).await?;
    let alice = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    Some((app, alice["id"].as_str().unwrap().to_string()))
}

fn contacts(resp: &Message) -> Vec<String> {
    resp.contacts()
        .filter_map(Result::ok)
        .filter_map(|c| match c {
            Contact::Addr(a) => Some(String::from_utf8_lossy(a.uri().raw()).into_owned()),
            Contact::Star => None,
        })
        .collect()
}

fn opts(algorithm: DigestAlgorithm) -> AuthOptions {
    AuthOptions {
        algorithm: Some(algorithm),
        ..AuthOptions::default()
    }
}

/// Polls the REST list until it has `n` bindings (publishing is
/// asynchronous), returning them.
async fn published(app: &TestApp, client_id: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (s, page) = app
            .admin(
                Method::GET,
                &format!("/v1/registrations?client_id={client_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let items = page["items"].as_array().unwrap().clone();
        if items.len() == n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("registrations of {client_id} never reached {n}");
}

async fn register_over_udp_and_tcp(engine: Engine) {
    let Some((app, alice)) = with_alice(engine).await else {
        return;
    };

    // The challenge by default: the first algorithm's alone, MD5.
    let mut udp = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let req = udp.register(3600);
    let first = udp.transact(&req).await;
    assert_eq!(first.status(), Some(401));
    let challenges = Challenge::all_from(&first);
    let algorithms: Vec<_> = challenges.iter().map(|c| c.algorithm()).collect();
    assert_eq!(algorithms, [Some(DigestAlgorithm::Md5)]);
    assert!(challenges
        .iter()
        .all(|c| c.realm == DOMAIN && c.offers_qop_auth() && !c.stale));

    let resp = udp
        .register_with_opts("alice", PASSWORD, 3600, &opts(DigestAlgorithm::Md5))
        .await;
    assert_eq!(resp.status(), Some(200), "MD5 REGISTER");
    assert_eq!(contacts(&resp), [udp.contact_uri()]);

    let mut tcp = SipUa::tcp(app.sip).await.with_user("alice", DOMAIN);
    let resp = tcp
        .register_with_opts("alice", PASSWORD, 600, &opts(DigestAlgorithm::Md5))
        .await;
    assert_eq!(resp.status(), Some(200), "REGISTER over TCP");
    let mut both = contacts(&resp);
    both.sort();
    let mut want = vec![udp.contact_uri(), tcp.contact_uri()];
    want.sort();
    assert_eq!(both, want, "the 200 lists every current binding");
    let expires: Vec<_> = resp
        .contacts()
        .filter_map(Result::ok)
        .filter_map(|c| match c {
            Contact::Addr(a) => a.expires().and_then(Result::ok),
            Contact::Star => None,
        })
        .collect();
    assert!(
        expires.iter().any(|e| (599..=600).contains(e))
            && expires.iter().any(|e| (3599..=3600).contains(e))
    );

    let items = published(&app, &alice, 2).await;
    let transports: Vec<_> = items
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert!(transports.contains(&"UDP") && transports.contains(&"TCP"));
    assert!(items
        .iter()
        .all(|r| r["aor"] == format!("sip:alice@{DOMAIN}")));
}

async fn bad_credentials_get_the_same_fresh_challenge(engine: Engine) {
    let Some((app, alice)) = with_alice(engine).await else {
        return;
    };
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let wrong = ua
        .register_with_auth("alice", "not-the-password", 3600)
        .await;
    let mut ua2 = SipUa::udp(app.sip).await.with_user("mallory", DOMAIN);
    let unknown = ua2
        .register_with_auth("mallory", "whatever-pass", 3600)
        .await;
    for resp in [&wrong, &unknown] {
        assert_eq!(resp.status(), Some(401));
        assert_eq!(resp.reason(), Some(&b"Unauthorized"[..]));
        let ch = Challenge::all_from(resp);
        assert_eq!(ch.len(), 1, "the first algorithm's challenge alone");
        assert!(ch.iter().all(|c| !c.stale));
    }
    // A disabled client with the right password is refused outright.
    app.admin(
        Method::PATCH,
        &format!("/v1/clients/{alice}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let mut ua3 = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    assert_eq!(
        ua3.register_with_auth("alice", PASSWORD, 3600)
            .await
            .status(),
        Some(403)
    );
    // Registering someone else's address of record is refused.
    app.admin(
        Method::PATCH,
        &format!("/v1/clients/{alice}"),
        Some(json!({"enabled": true})),
    )
    .await;
    let mut ua4 = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let mut req = ua4.register(3600);
    req.to = format!("<sip:bob@{DOMAIN}>");
    let (_, resp) = ua4
        .transact_with_auth(&req, "alice", PASSWORD, &AuthOptions::default())
        .await;
    assert_eq!(resp.status(), Some(403));
    published(&app, &alice, 0).await;
}

async fn replayed_nonce_count_is_refused(engine: Engine) {
    let Some((app, _)) = with_alice(engine).await else {
        return;
    };
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let req = ua.register(3600);
    let challenge = ua.transact(&req).await;
    let pinned = AuthOptions {
        nc: Some(1),
        cnonce: Some("fixed-cnonce".into()),
        ..AuthOptions::default()
    };
    let signed = ua.authorize(&req, &challenge, "alice", PASSWORD, &pinned);
    assert_eq!(ua.transact(&signed).await.status(), Some(200));
    // The same nonce and nonce-count again, in a new transaction.
    let replay = ua.authorize(&signed, &challenge, "alice", PASSWORD, &pinned);
    let resp = ua.transact(&replay).await;
    assert_eq!(resp.status(), Some(401), "a replayed nc must be challenged");
    // A higher nonce-count on the same nonce is fine.
    let next = AuthOptions {
        nc: Some(2),
        ..AuthOptions::default()
    };
    let again = ua.authorize(&replay, &challenge, "alice", PASSWORD, &next);
    assert_eq!(ua.transact(&again).await.status(), Some(200));
}

async fn interval_rules_and_unregister(engine: Engine) {
    let Some((app, alice)) = with_alice(engine).await else {
        return;
    };
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let brief = ua.register_with_auth("alice", PASSWORD, 30).await;
    assert_eq!(brief.status(), Some(423));
    assert_eq!(brief.header_value("Min-Expires"), Some(&b"60"[..]));

    assert_eq!(
        ua.register_with_auth("alice", PASSWORD, 120).await.status(),
        Some(200)
    );
    let mut other = SipUa::tcp(app.sip).await.with_user("alice", DOMAIN);
    assert_eq!(
        other
            .register_with_auth("alice", PASSWORD, 120)
            .await
            .status(),
        Some(200)
    );
    published(&app, &alice, 2).await;

    // Expires: 0 removes that contact only.
    let resp = ua.register_with_auth("alice", PASSWORD, 0).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(contacts(&resp), [other.contact_uri()]);
    published(&app, &alice, 1).await;

    // "*" with Expires: 0 removes all; "*" with another expiry is refused.
    let mut star = other.register(0);
    star.contact = Some("*".into());
    let (_, resp) = other
        .transact_with_auth(&star, "alice", PASSWORD, &AuthOptions::default())
        .await;
    assert_eq!(resp.status(), Some(200));
    assert!(contacts(&resp).is_empty());
    published(&app, &alice, 0).await;
    let mut bad_star = other.register(60);
    bad_star.contact = Some("*".into());
    let (_, resp) = other
        .transact_with_auth(&bad_star, "alice", PASSWORD, &AuthOptions::default())
        .await;
    assert_eq!(resp.status(), Some(400));
}

async fn bindings_are_published_and_removable_over_rest(engine: Engine) {
    let Some((app, alice)) = with_alice(engine).await else {
        return;
    };
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    assert_eq!(
        ua.register_with_auth("alice", PASSWORD, 300).await.status(),
        Some(200)
    );
    let items = published(&app, &alice, 1).await;
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["contact"], ua.contact_uri());
    assert_eq!(items[0]["source"], ua.local_addr().to_string());
    assert_eq!(items[0]["node"], "test-node");
    let (s, one) = app
        .admin(Method::GET, &format!("/v1/registrations/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["id"], id);

    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/registrations/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    published(&app, &alice, 0).await;
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/registrations/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The registrar forgot it too: a REGISTER without Contact lists nothing.
    let mut query = ua.register(300);
    query.contact = None;
    let (_, resp) = ua
        .transact_with_auth(&query, "alice", PASSWORD, &AuthOptions::default())
        .await;
    assert_eq!(resp.status(), Some(200));
    assert!(contacts(&resp).is_empty());
}

async fn registrations_survive_a_restart(engine: Engine) {
    let Some((mut app, alice)) = with_alice(engine).await else {
        return;
    };
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    assert_eq!(
        ua.register_with_auth("alice", PASSWORD, 300).await.status(),
        Some(200)
    );
    published(&app, &alice, 1).await;
    app.restart().await;
    ua.set_server(app.sip);
    let mut query = ua.register(300);
    query.contact = None;
    let (_, resp) = ua
        .transact_with_auth(&query, "alice", PASSWORD, &AuthOptions::default())
        .await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(contacts(&resp), [ua.contact_uri()]);
}

async fn sipp_registers_with_digest(engine: Engine) {
    let Some((app, alice)) = with_alice(engine).await else {
        return;
    };
    let args = [
        "-s", "alice", "-au", "alice", "-ap", PASSWORD, "-key", "domain", DOMAIN,
    ];
    let Some(outcome) = common::sipp::run_sipp("register_auth.xml", app.sip, &args).await else {
        return;
    };
    assert!(outcome.success, "{}", outcome.report());
    let items = published(&app, &alice, 1).await;
    assert_eq!(items[0]["user_agent"], "sipp");
    // A second sipp (another port) registers, then removes its own contact:
    // the first binding stays.
    let Some(outcome) = common::sipp::run_sipp("register_unregister.xml", app.sip, &args).await
    else {
        return;
    };
    assert!(outcome.success, "{}", outcome.report());
    assert!(outcome.messages.contains(";expires=0") || outcome.messages.contains("Expires: 0"));
    let left = published(&app, &alice, 1).await;
    assert_eq!(left[0]["id"], items[0]["id"]);
}

#[tokio::test]
async fn stale_nonce_gets_stale_true() {
    let db = common::TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.nonce_ttl_seconds = 1;
    let app = TestApp::spawn_with(db, settings).await;
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let mut ua = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let req = ua.register(300);
    let challenge = ua.transact(&req).await;
    // Nonces carry wall-clock time; this waits past their lifetime.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let late = ua.authorize(&req, &challenge, "alice", PASSWORD, &AuthOptions::default());
    let resp = ua.transact(&late).await;
    assert_eq!(resp.status(), Some(401));
    assert!(
        Challenge::all_from(&resp).iter().all(|c| c.stale),
        "stale=true expected"
    );
    // The client answers the fresh nonce without asking its user again.
    let fresh = ua.authorize(&late, &resp, "alice", PASSWORD, &AuthOptions::default());
    assert_eq!(ua.transact(&fresh).await.status(), Some(200));
}

#[tokio::test]
async fn password_guessing_is_cut_off_per_source() {
    let Some((app, _)) = with_alice(Engine::Sqlite).await else {
        return;
    };
    let mut guesser = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    for i in 0..switchboard::relay::auth::digest::MAX_FAILURES {
        let resp = guesser
            .register_with_auth("alice", &format!("guess-{i}"), 300)
            .await;
        assert_eq!(resp.status(), Some(401), "attempt {i}");
    }
    // Now even the right password is refused from this source.
    let resp = guesser.register_with_auth("alice", PASSWORD, 300).await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(
        resp.reason(),
        Some(&b"Too many failed authentication attempts"[..])
    );
    // (Per source address: the limiter's unit test shows other sources
    // unaffected; here every test UA shares 127.0.0.1.)
}

/// `digest_challenges = all`: one challenge per algorithm, in the
/// configured order (RFC 8760 §2.4), each answerable.
async fn every_algorithm_is_challenged_when_asked(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut settings = test_settings(&db.url);
    settings.digest_algorithms = vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5];
    settings.digest_challenges = DigestChallenges::All;
    let app = TestApp::spawn_with(db, settings).await;
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let mut udp = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let req = udp.register(3600);
    let first = udp.transact(&req).await;
    assert_eq!(first.status(), Some(401));
    let algorithms: Vec<_> = Challenge::all_from(&first)
        .iter()
        .map(|c| c.algorithm())
        .collect();
    assert_eq!(
        algorithms,
        [Some(DigestAlgorithm::Sha256), Some(DigestAlgorithm::Md5)]
    );
    for alg in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        let resp = udp
            .register_with_opts("alice", PASSWORD, 3600, &opts(alg))
            .await;
        assert_eq!(resp.status(), Some(200), "{alg:?}");
    }
}
