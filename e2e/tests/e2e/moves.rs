//! Issue tests 1, 2 and 7: association, a clean move A → B, and two racing moves.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::cluster::{find_event, ms_of, print_timeline, Client, Cluster};
use crate::harness::{wait_for, FipdOpts, F};
use crate::observe::{assert_no_double_holder, longest_gap, usable_intervals, AddrMonitor, Pinger};

pub fn f() -> Ipv6Addr {
    F.parse().unwrap()
}

/// F associated with an instance on A ends up ACTIVE there and C reaches
/// it at A's MAC. Returns F's id.
pub async fn active_on_a(c: &Cluster) -> String {
    let id = c.create_fip(Some(&c.vm_a)).await;
    let fip = c
        .wait_active_on(&id, &c.topo.a.name, Duration::from_secs(10))
        .await;
    let b = Cluster::binding(&fip, &c.topo.a.name);
    assert_eq!(b["state"], "active");
    println!("DAD on A took {} ms", b["dad_ms"]);
    assert!(c.topo.a.has_addr(F), "A's kernel holds F");
    assert!(!c.topo.b.has_addr(F), "B's kernel does not");
    let line = c.topo.a.addr_line(F).unwrap();
    // Kernel lifetimes tied to the lease: at most ceil(TTL) seconds left.
    let lft: u64 = line
        .split("valid_lft ")
        .nth(1)
        .and_then(|r| r.split("sec").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no finite valid_lft: {line}"));
    assert!(
        (1..=c.opts.lease_ttl_ms.div_ceil(1000)).contains(&lft),
        "lease-tied lifetime: {line}"
    );
    let t0 = Instant::now();
    let ping = Pinger::start(&c.topo.c.ns, f(), Duration::from_millis(20));
    wait_for(
        "C to get ping replies from F",
        Duration::from_secs(5),
        || ping.replies_after(t0) >= 3,
    );
    ping.stop();
    assert_eq!(
        c.topo.c.neigh_mac(F).as_deref(),
        Some(c.topo.a.mac.as_str())
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_associate_makes_f_active_on_a_and_c_reaches_a() {
    let c = Cluster::start(FipdOpts::default(), false).await;
    let id = active_on_a(&c).await;
    let ev = c.api.events(&id).await;
    for kind in [
        "add_requested",
        "dad_started",
        "dad_passed",
        "announced",
        "active",
    ] {
        assert!(
            find_event(&ev, kind, Some(&c.topo.a.name), 1).is_some(),
            "no {kind}: {ev:#?}"
        );
    }
    print_timeline("t1 associate", &ev);
}

/// Moves F to `to` (the PATCH sent through `api`) while monitors watch
/// both hosts and C pings F every 10 ms; asserts no double holder and C
/// ending at `to`'s MAC. Returns the outage C saw.
pub async fn move_and_watch(
    c: &Cluster,
    api: &Client,
    id: &str,
    instance: &str,
    to: char,
) -> Duration {
    let (from_h, to_h) = if to == 'b' {
        (&c.topo.a, &c.topo.b)
    } else {
        (&c.topo.b, &c.topo.a)
    };
    let mon_from = AddrMonitor::start(&from_h.ns);
    let mon_to = AddrMonitor::start(&to_h.ns);
    let started = Instant::now();
    let ping = Pinger::start(&c.topo.c.ns, f(), Duration::from_millis(10));
    let patched = Instant::now();
    let fip = api.associate(id, Some(instance)).await;
    let rev = fip["revision"].as_i64().unwrap();
    let fip = c
        .wait_active_on(id, &to_h.name, Duration::from_secs(10))
        .await;
    assert!(fip["revision"].as_i64().unwrap() >= rev);
    // C follows B once an NA arrives; pings resume.
    wait_for(
        "C's neighbour entry to switch",
        Duration::from_secs(5),
        || c.topo.c.neigh_mac(F).as_deref() == Some(to_h.mac.as_str()),
    );
    let switched = Instant::now();
    wait_for(
        "C to get replies from the new holder",
        Duration::from_secs(5),
        || ping.replies_after(switched) >= 5,
    );
    let replies = ping.stop();
    let end = Instant::now();
    let ev_from = mon_from.stop();
    let ev_to = mon_to.stop();
    assert!(!from_h.has_addr(F), "{} still holds F", from_h.name);
    assert!(to_h.has_addr(F));
    let a = usable_intervals(&ev_from, f(), Some(started), end);
    let b = usable_intervals(&ev_to, f(), None, end);
    assert!(!b.is_empty(), "no usable F seen on {}", to_h.name);
    assert_no_double_holder(&a, &b);
    assert!(
        replies.iter().any(|r| *r > b[0].0),
        "C got no reply from F after the move"
    );
    let outage = longest_gap(&replies, patched);
    let to_binding = Cluster::binding(&fip, &to_h.name).clone();
    println!(
        "move to {}: outage seen by C (10 ms pings) {} ms; DAD on {} {} ms",
        to_h.name,
        outage.as_millis(),
        to_h.name,
        to_binding["dad_ms"]
    );
    outage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_move_to_b_is_break_before_make_and_c_follows() {
    let c = Cluster::start(FipdOpts::default(), false).await;
    let id = active_on_a(&c).await;
    let outage = move_and_watch(&c, &c.api, &id, &c.vm_b, 'b').await;
    let ev = c.api.events(&id).await;
    print_timeline("t2 move A → B", &ev);
    // The order of design §4: A confirmed before B was asked.
    let confirmed =
        find_event(&ev, "removal_confirmed", Some(&c.topo.a.name), 2).expect("A confirmed");
    let asked = find_event(&ev, "add_requested", Some(&c.topo.b.name), 2).expect("B asked");
    assert!(ms_of(&confirmed["at"]) <= ms_of(&asked["at"]));
    assert!(outage < Duration::from_secs(5), "outage {outage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_concurrent_moves_end_at_the_last_accepted_revision() {
    let c = Cluster::start(FipdOpts::default(), false).await;
    let id = active_on_a(&c).await;
    let vm_a2 = Cluster::make_instance(&c.api, "vm-a2", &c.topo.a.name).await;
    let mon_a = AddrMonitor::start(&c.topo.a.ns);
    let mon_b = AddrMonitor::start(&c.topo.b.ns);
    let started = Instant::now();
    let (r1, r2) = tokio::join!(
        c.api.associate(&id, Some(&c.vm_b)),
        c.api.associate(&id, Some(&vm_a2))
    );
    let (rev1, rev2) = (
        r1["revision"].as_i64().unwrap(),
        r2["revision"].as_i64().unwrap(),
    );
    assert_ne!(rev1, rev2, "each PATCH gets its own revision");
    let last = if rev1 > rev2 { &r1 } else { &r2 };
    let want_host = last["host"].as_str().unwrap().to_owned();
    let want_instance = last["instance_id"].as_str().unwrap().to_owned();
    println!("PATCH revisions {rev1} (→ vm-b) and {rev2} (→ vm-a2); last accepted: {want_host}");
    let fip = c
        .wait_active_on(&id, &want_host, Duration::from_secs(15))
        .await;
    assert_eq!(fip["instance_id"], want_instance.as_str());
    assert_eq!(fip["revision"].as_i64().unwrap(), rev1.max(rev2));
    // Let any stray work settle, then check the kernels and the monitors.
    std::thread::sleep(Duration::from_millis(300));
    let end = Instant::now();
    let (ev_a, ev_b) = (mon_a.stop(), mon_b.stop());
    let on_a = want_host == c.topo.a.name;
    assert_eq!(c.topo.a.has_addr(F), on_a);
    assert_eq!(c.topo.b.has_addr(F), !on_a);
    let a = usable_intervals(&ev_a, f(), Some(started), end);
    let b = usable_intervals(&ev_b, f(), None, end);
    assert_no_double_holder(&a, &b);
    print_timeline("t7 concurrent PATCHes", &c.api.events(&id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_on_a_network_the_agent_does_not_serve_is_an_agent_error() {
    use reqwest::{Method, StatusCode};
    use serde_json::json;
    let c = Cluster::start(FipdOpts::default(), false).await;
    let other = c
        .api
        .admin(
            Method::POST,
            "/v1/networks",
            Some(json!({ "name": "other" })),
            StatusCode::CREATED,
        )
        .await;
    let other_id = other["id"].as_str().unwrap();
    c.api
        .admin(
            Method::POST,
            "/v1/pools",
            Some(json!({ "network_id": other_id, "cidr": "2001:db8:2::/64" })),
            StatusCode::CREATED,
        )
        .await;
    let fip = c
        .api
        .admin(
            Method::POST,
            "/v1/floating-ips",
            Some(json!({ "network_id": other_id, "project_id": "p", "instance_id": c.vm_a })),
            StatusCode::CREATED,
        )
        .await;
    let id = fip["id"].as_str().unwrap().to_owned();
    let api = c.api.clone();
    let f = crate::cluster::wait_until("F in ERROR", Duration::from_secs(10), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let f = api.fip(&id).await;
            (f["status"] == "ERROR").then_some(f)
        }
    })
    .await;
    let detail = f["status_detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("network other is not served by this agent"),
        "{detail}"
    );
    assert_eq!(Cluster::binding(&f, &c.topo.a.name)["state"], "error");
    // Nothing was added anywhere.
    let addr = f["address"].as_str().unwrap();
    assert!(!c.topo.a.has_addr(addr) && !c.topo.b.has_addr(addr));
}
