//! The checked-in OpenAPI document matches the code; the UI is self-contained.

use reqwest::StatusCode;

use crate::helpers::*;

const REGENERATE: &str = "cargo run -q -p fipd -- openapi > openapi/fipd.json";

#[test]
fn checked_in_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/fipd.json");
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    let current = serde_json::to_string_pretty(&fipd::http::openapi()).unwrap();
    assert!(
        stored.trim_end() == current.trim_end(),
        "openapi/fipd.json is stale; regenerate it with: {REGENERATE}"
    );
}

#[test]
fn every_operation_has_one_tag_a_summary_and_error_responses() {
    let doc = fipd::http::openapi();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let tags = op["tags"].as_array().unwrap();
            assert_eq!(tags.len(), 1, "{method} {path}: one tag");
            assert!(
                !op["summary"].as_str().unwrap_or("").is_empty(),
                "{method} {path}: summary"
            );
            let id = op["operationId"].as_str().unwrap();
            assert!(
                id.contains('_') && ids.insert(id.to_owned()),
                "{id}: resource_verb, unique"
            );
            if path.starts_with("/v1/") {
                let responses = op["responses"].as_object().unwrap();
                let problem = &responses["401"]["content"]["application/problem+json"];
                assert!(
                    problem.is_object(),
                    "{method} {path}: 401 problem documented"
                );
            }
        }
    }
    for p in [
        "/v1/networks",
        "/v1/pools/{id}/usage",
        "/v1/floating-ips/{id}/events",
        "/v1/tokens/{id}",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
}

#[tokio::test]
async fn served_document_and_swagger_ui_need_no_internet() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, fipd::http::openapi());
    let r = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the UI page");
    for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !html.contains(attr),
            "index references an external host: {attr}"
        );
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(
        init.contains("\"validatorUrl\": \"none\"") || init.contains("\"validatorUrl\":\"none\""),
        "{init}"
    );
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bundle.status(),
        StatusCode::OK,
        "assets are served from the binary"
    );
}
