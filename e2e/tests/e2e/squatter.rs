//! Issue test 8: an unmanaged holder of F's address on the link.

use std::time::Duration;

use crate::cluster::{print_timeline, wait_until, Cluster};
use crate::harness::{ip, FipdOpts, DEV, F};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t8_squatter_makes_f_error_with_its_mac_and_f_recovers_when_it_leaves() {
    let c = Cluster::start(FipdOpts::default(), true).await;
    let s = c.topo.s.as_ref().unwrap();
    // S holds F, added by hand: no fip-agent, no mark.
    ip(&[
        "-n",
        &s.ns,
        "-6",
        "addr",
        "add",
        &format!("{F}/64"),
        "dev",
        DEV,
        "nodad",
    ]);
    let id = c.create_fip(Some(&c.vm_b)).await;
    let api = c.api.clone();
    let fip = wait_until("F in ERROR", Duration::from_secs(10), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let f = api.fip(&id).await;
            (f["status"] == "ERROR").then_some(f)
        }
    })
    .await;
    let detail = fip["status_detail"].as_str().unwrap_or_default().to_owned();
    println!("ERROR detail: {detail}");
    assert!(
        detail.contains(&s.mac),
        "names the squatter's MAC: {detail}"
    );
    assert!(detail.contains(&c.topo.b.name), "names the host: {detail}");
    let b = Cluster::binding(&fip, &c.topo.b.name);
    assert_eq!(b["state"], "dad_failed");
    assert_eq!(b["defender_mac"], s.mac.as_str());
    assert!(!c.topo.b.has_addr(F), "B deleted its dadfailed copy");
    // The squatter leaves; no API call from here on but reads.
    ip(&[
        "-n",
        &s.ns,
        "-6",
        "addr",
        "del",
        &format!("{F}/64"),
        "dev",
        DEV,
    ]);
    let fip = c
        .wait_active_on(&id, &c.topo.b.name, Duration::from_secs(10))
        .await;
    assert!(c.topo.b.has_addr(F));
    println!(
        "F ACTIVE on B after the squatter left; DAD {} ms",
        Cluster::binding(&fip, &c.topo.b.name)["dad_ms"]
    );
    print_timeline("t8 squatter", &c.api.events(&id).await);
}
