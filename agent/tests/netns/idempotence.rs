//! Issue test 6: a second add of a healthy managed address deletes nothing and runs no DAD.

use std::time::Duration;

use fip_agent::net::netlink::AddrEvent;

use crate::capture::{dad_probes, AddrMonitor, Capture};
use crate::harness::{v6, Topo, DEV, X};

#[test]
fn second_add_causes_no_deladdr_and_no_new_dad() {
    let t = Topo::new();
    let first = t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"]);
    first.assert_code(0);
    assert_eq!(first.last()["changed"], true);

    let mon = AddrMonitor::start(&t.a.ns);
    let cap = Capture::start(&t.c.ns);
    for extra in [&[][..], &["--lifetime-s", "60"][..]] {
        let mut args = vec!["add", "--dev", DEV, X, "--na-count", "0"];
        args.extend_from_slice(extra);
        let run = t.a.agent(&args);
        run.assert_code(0);
        let out = run.last();
        assert_eq!(out["outcome"], "active");
        assert_eq!(out["changed"], false);
        assert_eq!(out["dad_ms"], serde_json::Value::Null);
    }
    // A DAD run with the lowered sysctls probes at once and ends in ~100 ms;
    // watch three times that long for any sign of one.
    std::thread::sleep(Duration::from_millis(300));
    let events = mon.stop();
    let frames = cap.stop();

    let x = v6(X);
    let ours: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, AddrEvent::New(a) | AddrEvent::Del(a) if a.addr == x))
        .collect();
    assert!(
        !ours.iter().any(|e| matches!(e, AddrEvent::Del(_))),
        "RTM_DELADDR seen: {ours:?}"
    );
    assert!(
        !ours
            .iter()
            .any(|e| matches!(e, AddrEvent::New(a) if a.flags.tentative())),
        "X went tentative again: {ours:?}"
    );
    assert_eq!(dad_probes(&frames, x), 0, "a DAD probe for X went out");
    // The lifetime refresh did reach the kernel.
    let listed = t.a.agent(&["list", "--dev", DEV]).last();
    assert!(listed["valid_lft_s"].as_u64().unwrap() <= 60);
}
