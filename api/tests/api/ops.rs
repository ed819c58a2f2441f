//! Health, readiness and metrics.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::*;

async fn health_readiness_and_metrics_answer(b: Backend) {
    let app = TestApp::spawn(b).await;
    for path in ["/healthz", "/readyz"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/120").await;
    app.fip(&net, "p").await;
    app.app.refresh_pool_stats().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("fipd_http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/v1/networks\""), "requests by route");
    assert!(text.contains("status=\"201\""), "requests by status");
    assert!(
        text.contains("fipd_http_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(text.contains("fipd_allocations_total"), "allocations");
    assert!(
        text.contains(&format!("fipd_pool_allocated{{pool_id=\"{pool}\"}} 1")),
        "pool usage"
    );
    assert!(
        text.contains(&format!("fipd_pool_capacity{{pool_id=\"{pool}\"}} 255")),
        "pool capacity"
    );
}

/// Issue 9 item 10: a scrape costs no database work (a closed database
/// does not stop it), and a deleted pool's series disappear.
async fn metrics_cost_no_queries_and_forget_deleted_pools(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/120").await;
    app.app.refresh_pool_stats().await.unwrap();
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(scrape().await.contains(&format!("pool_id=\"{pool}\"")));
    let r = app.delete(&format!("/v1/pools/{pool}"), ADMIN).await;
    expect(r, StatusCode::NO_CONTENT).await;
    app.app.refresh_pool_stats().await.unwrap();
    assert!(
        !scrape().await.contains(&format!("pool_id=\"{pool}\"")),
        "a deleted pool's gauges are gone"
    );
    app.store.close().await;
    let text = scrape().await;
    assert!(
        text.contains("fipd_http_requests_total"),
        "scraped without the database"
    );
}

async fn readiness_fails_when_the_database_is_gone(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.store.close().await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    expect_problem(r, StatusCode::SERVICE_UNAVAILABLE, "database_unreachable").await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the process itself is up");
}

both_backends!(
    health_readiness_and_metrics_answer,
    metrics_cost_no_queries_and_forget_deleted_pools,
    readiness_fails_when_the_database_is_gone
);
