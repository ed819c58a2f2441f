//! Issue tests 2 and 3: a clean move A → B, with and without unsolicited NAs.

use std::time::Duration;

use crate::capture::{pinger, unsolicited_nas, Capture, NeighMonitor};
use crate::harness::{mac_bytes, v6, Topo, DEV, X};

/// A holds X and C has a REACHABLE neighbour entry for X pointing at A.
fn client_reaches_x_on_a(t: &Topo) {
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    let reply = pinger(
        &t.c.ns,
        v6(X),
        Duration::from_millis(20),
        Duration::from_secs(5),
    )
    .join()
    .unwrap();
    assert!(reply.is_some(), "C cannot ping X on A");
    let (mac, state) = t.c.neigh(X).expect("C has a neighbour entry for X");
    assert_eq!(mac, t.a.mac);
    assert_eq!(state, "REACHABLE");
    let del = t.a.agent(&["del", "--dev", DEV, X]);
    del.assert_code(0);
    assert_eq!(del.last()["outcome"], "removed");
    assert!(!t.a.has_addr(X));
}

#[test]
fn clean_move_repoints_the_client_to_b_within_100ms_of_the_first_na() {
    let t = Topo::new();
    client_reaches_x_on_a(&t);

    let cap = Capture::start(&t.c.ns);
    let neigh = NeighMonitor::start(&t.c.ns, v6(X));
    let run = t.b.agent(&["add", "--dev", DEV, X]);
    run.assert_code(0);
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{run:#?}");
    let out = &lines[0];
    assert_eq!(out["outcome"], "active");
    assert_eq!(out["defender_mac"], serde_json::Value::Null);
    assert_eq!(
        out["na_sent"], 1,
        "the line is printed once the first NA is out"
    );
    let dad_ms = out["dad_ms"].as_u64().unwrap();
    // Lowered sysctls: one probe after retrans_time_ms=100.
    assert!((80..1000).contains(&dad_ms), "implausible dad_ms {dad_ms}");

    let x = v6(X);
    cap.wait_until("3 NAs on C", Duration::from_secs(2), |f| {
        unsolicited_nas(f, x).len() >= 3
    });
    let frames = cap.stop();
    let events = neigh.stop();
    let nas = unsolicited_nas(&frames, x);
    assert_eq!(nas.len(), 3, "default is 3 NAs: {nas:#?}");
    let b_mac = mac_bytes(&t.b.mac);
    for na in &nas {
        assert_eq!(na.eth_dst, [0x33, 0x33, 0, 0, 0, 1], "to the all-nodes MAC");
        assert_eq!(na.eth_src, b_mac, "from B's interface");
        assert_eq!(na.ip_dst, v6("ff02::1"));
        assert_eq!(na.ip_src, x, "source is the floating address");
        assert_eq!(na.hop_limit, 255);
        assert_eq!(na.code, 0);
        assert!(na.checksum_ok, "kernel-computed checksum verifies");
        assert!(na.override_flag, "Override set");
        assert!(!na.solicited, "Solicited clear");
        assert!(!na.router, "Router clear: B does not forward");
        assert_eq!(na.target, x);
        assert_eq!(
            na.tlla,
            Some(b_mac),
            "Target Link-Layer Address option carries B's MAC"
        );
    }
    for w in nas.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "NAs 1 s apart, got {gap:?}"
        );
    }

    let first_na = nas[0].at;
    let switched = events
        .iter()
        .find(|(_, ll)| *ll == Some(b_mac))
        .unwrap_or_else(|| panic!("C never switched X to B's MAC: {events:?}"))
        .0;
    let lag = switched.saturating_duration_since(first_na);
    assert!(
        lag < Duration::from_millis(100),
        "C switched {lag:?} after the first NA"
    );
    assert!(
        first_na.saturating_duration_since(switched) < Duration::from_millis(50),
        "C switched before the first NA arrived: something else repointed it"
    );
    assert_eq!(t.c.neigh(X).unwrap().0, t.b.mac);
}

#[test]
fn move_without_nas_leaves_the_client_pointing_at_a() {
    let t = Topo::new();
    client_reaches_x_on_a(&t);

    let cap = Capture::start(&t.c.ns);
    let run = t.b.agent(&["add", "--dev", DEV, X, "--na-count", "0"]);
    run.assert_code(0);
    assert_eq!(run.last()["outcome"], "active");
    assert_eq!(run.last()["na_sent"], 0);
    // Nothing tells C that X moved: one second later it still sends to A.
    std::thread::sleep(Duration::from_secs(1));
    let frames = cap.stop();
    assert!(unsolicited_nas(&frames, v6(X)).is_empty());
    let (mac, _) = t.c.neigh(X).unwrap();
    assert_eq!(mac, t.a.mac, "without an NA, C keeps the stale MAC");
}
