//! Issue test 10: what project and agent tokens may see.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cluster::{Client, Cluster};
use crate::harness::{start_fipd, FipdOpts, NET, POOL};

async fn create(api: &Client, path: &str, body: Value) -> Value {
    api.admin(Method::POST, path, Some(body), StatusCode::CREATED)
        .await
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x[if key == "items" {
                "id"
            } else {
                "floating_ip_id"
            }]
            .as_str()
            .unwrap()
            .to_owned()
        })
        .collect()
}

/// No namespaces needed: fipd on loopback, tokens only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_project_and_agent_tokens_see_only_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_fipd, url) = start_fipd("fipd", "::1", dir.path(), &FipdOpts::default());
    let api = Client::new(&url);
    let net = create(&api, "/v1/networks", json!({ "name": NET })).await;
    let net_id = net["id"].as_str().unwrap();
    create(
        &api,
        "/v1/pools",
        json!({ "network_id": net_id, "cidr": POOL }),
    )
    .await;
    let tok_a = create(&api, "/v1/hosts", json!({ "name": "host-a" })).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tok_b = create(&api, "/v1/hosts", json!({ "name": "host-b" })).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let vm_p = Cluster::make_instance(&api, "vm-p", "host-a").await;
    let vm_q = create(
        &api,
        "/v1/instances",
        json!({ "name": "vm-q", "project_id": "q", "host": "host-b" }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f_p = create(
        &api,
        "/v1/floating-ips",
        json!({ "network_id": net_id, "project_id": "p", "instance_id": vm_p }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f_q = create(
        &api,
        "/v1/floating-ips",
        json!({ "network_id": net_id, "project_id": "q", "instance_id": vm_q }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tok_p = create(&api, "/v1/tokens", json!({ "project_id": "p" })).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A project token: no hosts, only its own project's floating IPs.
    let (st, _) = api.call(Method::GET, "/v1/hosts", &tok_p, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "project token on /v1/hosts");
    let (st, list) = api
        .call(Method::GET, "/v1/floating-ips", &tok_p, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&list, "items"), vec![f_p.clone()]);
    let (st, _) = api
        .call(
            Method::GET,
            &format!("/v1/floating-ips/{f_q}"),
            &tok_p,
            None,
        )
        .await;
    assert!(
        st == StatusCode::NOT_FOUND || st == StatusCode::FORBIDDEN,
        "project p reading q's floating IP: {st}"
    );
    let (st, _) = api
        .call(
            Method::GET,
            &format!("/v1/floating-ips/{f_q}/events"),
            &tok_p,
            None,
        )
        .await;
    assert!(
        st == StatusCode::NOT_FOUND || st == StatusCode::FORBIDDEN,
        "{st}"
    );
    let (st, _) = api
        .call(
            Method::GET,
            "/v1/agent/desired-state?wait_ms=0",
            &tok_p,
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "project token on agent endpoints"
    );

    // An agent token: agent endpoints only, and only its own host's state.
    for path in [
        "/v1/hosts",
        "/v1/floating-ips",
        "/v1/instances",
        "/v1/networks",
    ] {
        let (st, _) = api.call(Method::GET, path, &tok_a, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "agent token on {path}");
    }
    let (st, _) = api
        .call(
            Method::GET,
            &format!("/v1/floating-ips/{f_q}"),
            &tok_a,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    for (tok, host, mine, other) in [
        (&tok_a, "host-a", &f_p, &f_q),
        (&tok_b, "host-b", &f_q, &f_p),
    ] {
        let (st, ds) = api
            .call(
                Method::GET,
                "/v1/agent/desired-state?after=0&wait_ms=0",
                tok,
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(ds["host"], host);
        let got = ids(&ds, "addresses");
        assert_eq!(&got, &vec![mine.clone()], "{host} sees only its own: {ds}");
        assert!(!got.contains(other));
        // There is no way to name another host: an extra parameter is refused.
        let (st, _) = api
            .call(
                Method::GET,
                "/v1/agent/desired-state?after=0&wait_ms=0&host=host-b",
                tok,
                None,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "unknown query parameter");
    }
    // A report about another host's floating IP changes nothing.
    let (st, res) = api
        .call(
            Method::POST,
            "/v1/agent/reports",
            &tok_a,
            Some(json!({ "reports": [{
                "floating_ip_id": f_q, "revision": 99, "state": "active",
                "dad_ms": null, "defender_mac": null, "na_sent": null, "detail": null,
                "observed_at": chrono::Utc::now().to_rfc3339(),
            }] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(res["accepted"], 0, "{res}");
    let f = api.fip(&f_q).await;
    assert_ne!(f["status"], "ACTIVE");
}
