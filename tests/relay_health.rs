//! App server health: OPTIONS probes mark a silent app server down (seen
//! over REST and skipped by routing) and up again when it answers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, TestApp, TestDb, DOMAIN};
use reqwest::Method;
use serde_json::json;
use tokio::net::UdpSocket;

async fn health_of(app: &TestApp, id: &str, want: &str) {
    for _ in 0..200 {
        let (_, a) = app
            .admin(Method::GET, &format!("/v1/app-servers/{id}"), None)
            .await;
        if a["health"] == want {
            assert!(a["health_changed_at"].is_string());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("app server {id} never became {want}");
}

/// A minimal app server: records the method of every request and answers
/// OPTIONS with 200 while `answering` is set.
struct FakeAs {
    addr: std::net::SocketAddr,
    answering: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn fake_as(answering: bool) -> FakeAs {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let answering = Arc::new(AtomicBool::new(answering));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (flag, log) = (answering.clone(), seen.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let method = text.split(' ').next().unwrap_or_default().to_string();
            log.lock().unwrap().push(method.clone());
            if method != "OPTIONS" || !flag.load(Ordering::SeqCst) {
                continue;
            }
            let mut reply = String::from("SIP/2.0 200 OK\r\n");
            for line in text.split("\r\n").skip(1) {
                let lower = line.to_ascii_lowercase();
                if ["via:", "from:", "to:", "call-id:", "cseq:"]
                    .iter()
                    .any(|h| lower.starts_with(h))
                {
                    reply.push_str(line);
                    reply.push_str("\r\n");
                }
            }
            reply.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(reply.as_bytes(), from).await;
        }
    });
    FakeAs {
        addr,
        answering,
        seen,
        task,
    }
}

#[tokio::test]
async fn silent_app_server_goes_down_and_comes_back() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.as_probe_interval_seconds = 1;
    settings.as_probe_failures = 2;
    let app = TestApp::spawn_with(db, settings).await;
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": "alice-secret"}),
    )
    .await;
    let silent = fake_as(false).await;
    let healthy = fake_as(true).await;
    let down = app
        .create(
            "/v1/app-servers",
            json!({"name": "silent", "uri": format!("sip:{}", silent.addr), "priority": 1}),
        )
        .await;
    let up = app
        .create(
            "/v1/app-servers",
            json!({"name": "healthy", "uri": format!("sip:{}", healthy.addr), "priority": 2}),
        )
        .await;
    let (down_id, up_id) = (
        down["id"].as_str().unwrap().to_string(),
        up["id"].as_str().unwrap().to_string(),
    );
    let service = app
        .create(
            "/v1/services",
            json!({"name": "vm", "app_server_ids": [down_id, up_id]}),
        )
        .await;
    app.create("/v1/rules", json!({"service_id": service["id"]}))
        .await;

    health_of(&app, &up_id, "up").await;
    health_of(&app, &down_id, "down").await;
    let (_, listed) = app
        .admin(Method::GET, "/v1/app-servers?health=down", None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Routing skips the down app server although it has the lower priority.
    let mut client = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let invite = client.invite(&format!("sip:anything@{DOMAIN}"), &offer);
    let challenge = client.transact(&invite).await;
    let invite = client.authorize(
        &invite,
        &challenge,
        "alice",
        "alice-secret",
        &Default::default(),
    );
    client.send(&invite).await;
    for _ in 0..100 {
        if healthy.seen.lock().unwrap().iter().any(|m| m == "INVITE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        healthy.seen.lock().unwrap().iter().any(|m| m == "INVITE"),
        "the healthy app server got the INVITE"
    );
    assert!(
        silent.seen.lock().unwrap().iter().all(|m| m == "OPTIONS"),
        "a down app server got only probes"
    );

    // It answers again: up.
    silent.answering.store(true, Ordering::SeqCst);
    health_of(&app, &down_id, "up").await;
    silent.task.abort();
    healthy.task.abort();
}
