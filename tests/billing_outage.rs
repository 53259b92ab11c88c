//! The database goes away in the middle of traffic and comes back: calls
//! keep working (the SIP path never waits on the database), CDRs wait in
//! the spool, and in the end every call has exactly one CDR.
//!
//! The outage is real on both engines: on SQLite another connection holds
//! an exclusive lock on the database file (every write is refused as
//! "database is locked"); on PostgreSQL the test's database stops accepting
//! connections and the existing ones are terminated.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::sipp::{spawn_answering_as, AuthenticatedCalls};
use common::{Engine, TestApp, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

both_engines!(every_cdr_arrives_once_across_a_database_outage);

const PASSWORD: &str = "alice-secret";
const CALLS: usize = 60;

/// An outage of the test's database, ended by [`Outage::end`].
enum Outage {
    Sqlite(sqlx::SqliteConnection),
    Postgres { admin_url: String, name: String },
}

impl Outage {
    async fn begin(app: &TestApp, engine: Engine) -> Outage {
        match engine {
            Engine::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url)
                    .await
                    .expect("second connection to the SQLite file");
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .expect("exclusive lock");
                Outage::Sqlite(conn)
            }
            Engine::Postgres => {
                let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let name = app
                    .db
                    .url
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.split('?').next())
                    .expect("database name")
                    .to_string();
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("admin connection");
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                    .execute(&mut conn)
                    .await
                    .expect("refuse connections");
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .execute(&mut conn)
                .await
                .expect("terminate connections");
                Outage::Postgres { admin_url, name }
            }
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("release the lock");
                conn.close().await.expect("close");
            }
            Outage::Postgres { admin_url, name } => {
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("admin connection");
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .execute(&mut conn)
                    .await
                    .expect("accept connections again");
            }
        }
    }
}

async fn every_cdr_arrives_once_across_a_database_outage(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let tariff = app.per_second_tariff().await;
    let alice = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let Some((uas, uas_port)) = spawn_answering_as(CALLS, Duration::from_secs(30)).await else {
        return;
    };
    app.catch_all_service(&format!("sip:127.0.0.1:{uas_port}"), &tariff)
        .await;

    // 60 calls at 15/s, each held 700 ms: traffic for about 5 s.
    let calls = AuthenticatedCalls {
        server: app.sip,
        service: "svc",
        user: "alice",
        password: PASSWORD,
        domain: DOMAIN,
        calls: CALLS,
        rate: 15,
        hold_ms: 700,
        within: Duration::from_secs(30),
    };
    let Some(uac) = calls.spawn().await else {
        return;
    };

    // The outage covers the middle of the traffic: calls end meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let outage = Outage::begin(&app, engine).await;
    let spool = app.db.spool_dir.join("cdrs.spool");
    let mut spooled = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        spooled = spooled.max(std::fs::metadata(&spool).map_or(0, |m| m.len()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outage.end().await;

    let uac = uac.wait().await;
    assert!(
        uac.success,
        "calls failed during the outage:\n{}",
        uac.report()
    );
    let uas = uas.wait().await;
    assert!(uas.success, "sipp UAS:\n{}", uas.report());
    assert!(
        spooled > 0,
        "no CDR was spooled during the outage: the test did not cut the database"
    );

    // Every call has exactly one CDR once the spool is replayed.
    let mut cdrs: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (s, page) = app.admin(Method::GET, "/v1/cdrs?limit=500", None).await;
        if s == StatusCode::OK {
            cdrs = page["items"].as_array().cloned().unwrap_or_default();
            if cdrs.len() >= CALLS && std::fs::metadata(&spool).map_or(0, |m| m.len()) == 0 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} CDRs of {CALLS} after the outage ended",
            cdrs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(cdrs.len(), CALLS, "one CDR per call, none twice");
    let sessions: HashSet<&str> = cdrs
        .iter()
        .map(|c| c["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(sessions.len(), CALLS, "no session billed twice");
    let seqs: HashSet<i64> = cdrs.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs.len(), CALLS);
    for c in &cdrs {
        assert_eq!(c["end_reason"], "client_bye", "{c:#}");
        assert_eq!(c["client_id"], alice["id"], "{c:#}");
        let ms = c["duration_ms"].as_i64().unwrap();
        assert!((600..5_000).contains(&ms), "duration {ms} ms: {c:#}");
        // 1/1 at 0.6 per minute: one cent per started second.
        let billed = c["billed_seconds"].as_i64().unwrap();
        assert_eq!(billed, (ms + 999) / 1000, "{c:#}");
        assert!(billed < 100);
        assert_eq!(c["amount"], format!("0.{billed:02}"), "{c:#}");
    }
    let rejected = app.db.spool_dir.join("cdrs.rejected");
    assert!(!rejected.exists(), "records were rejected");
}
