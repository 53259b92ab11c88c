//! The OpenAPI document: committed copy current, served copy identical,
//! every route documented with its auth and errors, Swagger UI offline.

mod common;

use common::{Engine, TestApp};
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_document_is_current() {
    let generated = switchboard::api::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, format!("{generated}\n")).expect("write openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json differs from the code: regenerate it with \
         `cargo run -- openapi > openapi/openapi.json` (or UPDATE_OPENAPI=1 cargo test --test openapi)"
    );
}

#[test]
fn every_operation_documents_auth_and_errors() {
    let doc: Value = serde_json::from_str(&switchboard::api::openapi_json()).expect("valid JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                !id.is_empty() && operation_ids.insert(id.clone()),
                "{method} {path}: operationId {id:?} missing or not unique"
            );
            let responses = op["responses"].as_object().expect("responses");
            let public = path.starts_with("/healthz")
                || path.starts_with("/readyz")
                || path == "/v1/auth/token";
            if public {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{}]),
                    "{method} {path} should need no token"
                );
                continue;
            }
            assert!(
                op.get("security").is_none(),
                "{method} {path} must inherit bearer security"
            );
            for code in ["401", "403"] {
                let r = responses
                    .get(code)
                    .unwrap_or_else(|| panic!("{method} {path} lacks {code}"));
                assert!(
                    r["content"]["application/problem+json"].is_object(),
                    "{method} {path} {code} is not problem+json"
                );
            }
            if method == "post" || method == "patch" {
                assert!(responses.contains_key("422"), "{method} {path} lacks 422");
                assert!(
                    op["requestBody"].is_object(),
                    "{method} {path} lacks a request body"
                );
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{method} {path} lacks 404");
            }
        }
    }
    assert!(operations >= 25, "only {operations} operations documented");
}

#[tokio::test]
async fn served_document_and_swagger_ui() {
    let Some(app) = TestApp::spawn(Engine::Sqlite).await else {
        return;
    };
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: Value = serde_json::from_str(&switchboard::api::openapi_json()).unwrap();
    assert_eq!(served, generated);
    // Swagger UI and its assets come from the binary (no CDN).
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything from the network"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let r = app
            .http
            .get(format!("{}/docs/{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 100, "{asset} is empty");
    }
}
