//! The remaining command behaviour: check, del of an absent address, announce, --dad off, DAD timeout.

use std::time::Duration;

use crate::capture::{unsolicited_nas, Capture};
use crate::harness::{ip, mac_bytes, v6, Topo, DEV, X};

#[test]
fn check_reports_the_settings_that_matter_for_dad_and_na() {
    let t = Topo::new();
    let run = t.a.agent(&["check", "--dev", DEV]);
    run.assert_code(0);
    let r = run.last();
    assert_eq!(r["dev"], DEV);
    assert_eq!(r["mac"], t.a.mac.as_str());
    assert_eq!(r["mtu"], 1500);
    assert_eq!(r["admin_up"], true);
    assert_eq!(r["carrier"], true);
    assert_eq!(r["accept_dad"], 1);
    assert_eq!(r["dad_transmits"], 1);
    assert_eq!(r["retrans_time_ms"], 100);
    assert_eq!(r["router_solicitation_delay"], 0);
    assert_eq!(r["optimistic_dad"], false);
    assert_eq!(r["enhanced_dad"], true);
    assert_eq!(r["forwarding"], false);
    assert_eq!(r["disable_ipv6"], false);
    let warnings = r["warnings"].as_array().unwrap();
    assert!(warnings
        .iter()
        .any(|w| w.as_str().unwrap().contains("optimistic_dad")));
    assert!(
        run.stderr.contains("warning"),
        "warnings are echoed on stderr"
    );

    crate::harness::sysctl(&t.a.ns, "ipv6/conf/all/accept_dad", "0");
    crate::harness::sysctl(&t.a.ns, &format!("ipv6/conf/{DEV}/accept_dad"), "0");
    let r = t.a.agent(&["check", "--dev", DEV]).last();
    assert_eq!(r["accept_dad"], 0);
    assert!(r["warnings"].to_string().contains("DAD is off"), "{r}");
}

#[test]
fn del_of_an_absent_address_succeeds_and_says_absent() {
    let t = Topo::new();
    let run = t.a.agent(&["del", "--dev", DEV, X]);
    run.assert_code(0);
    assert_eq!(run.last()["outcome"], "absent");
}

#[test]
fn announce_sends_the_requested_nas_for_a_managed_active_address() {
    let t = Topo::new();
    t.b.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    let cap = Capture::start(&t.c.ns);
    let run = t.b.agent(&[
        "announce",
        "--dev",
        DEV,
        X,
        "--na-count",
        "2",
        "--na-interval-ms",
        "100",
    ]);
    run.assert_code(0);
    assert_eq!(run.last()["na_sent"], 2);
    assert_eq!(run.last()["router"], false);
    let x = v6(X);
    cap.wait_until("2 NAs", Duration::from_secs(2), |f| {
        unsolicited_nas(f, x).len() >= 2
    });
    let nas = unsolicited_nas(&cap.stop(), x);
    assert_eq!(nas.len(), 2);
    assert!(nas
        .iter()
        .all(|n| n.tlla == Some(mac_bytes(&t.b.mac)) && n.override_flag));
    assert!(nas[1].at - nas[0].at >= Duration::from_millis(90));
}

#[test]
fn announce_sets_the_router_flag_when_the_interface_forwards() {
    let t = Topo::new();
    t.b.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    crate::harness::sysctl(&t.b.ns, &format!("ipv6/conf/{DEV}/forwarding"), "1");
    let cap = Capture::start(&t.c.ns);
    let run = t.b.agent(&["announce", "--dev", DEV, X, "--na-count", "1"]);
    run.assert_code(0);
    assert_eq!(run.last()["router"], true);
    let x = v6(X);
    cap.wait_until("1 NA", Duration::from_secs(2), |f| {
        !unsolicited_nas(f, x).is_empty()
    });
    assert!(unsolicited_nas(&cap.stop(), x)[0].router);
}

#[test]
fn announce_refuses_absent_and_foreign_addresses() {
    let t = Topo::new();
    let run = t.b.agent(&["announce", "--dev", DEV, X]);
    run.assert_code(2);
    assert!(run.stderr.contains("not present"), "{}", run.stderr);

    ip(&[
        "-n",
        &t.b.ns,
        "-6",
        "addr",
        "add",
        &format!("{X}/128"),
        "dev",
        DEV,
        "nodad",
    ]);
    let run = t.b.agent(&["announce", "--dev", DEV, X]);
    run.assert_code(2);
    assert!(run.stderr.contains("not managed"), "{}", run.stderr);
}

#[test]
fn dad_off_adds_with_nodad_and_warns() {
    let t = Topo::new();
    let run =
        t.a.agent(&["add", "--dev", DEV, X, "--dad", "off", "--na-count", "0"]);
    run.assert_code(0);
    assert!(run.stderr.contains("without DAD"), "{}", run.stderr);
    assert_eq!(run.last()["outcome"], "active");
    let listed = t.a.agent(&["list"]).last();
    let flags = listed["flags"].to_string();
    assert!(flags.contains("nodad"), "{flags}");
}

#[test]
fn dad_that_never_ends_times_out_and_leaves_nothing() {
    let t = Topo::new();
    // DAD does not start on an interface that is administratively down
    // (this kernel has no dummy driver, so a veth pair stands in).
    ip(&[
        "-n", &t.a.ns, "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ]);
    ip(&["-n", &t.a.ns, "link", "set", "dum0", "down"]);
    crate::harness::wait_for("dum0 conf", Duration::from_secs(5), || {
        crate::harness::in_ns(&t.a.ns, || {
            std::path::Path::new("/proc/sys/net/ipv6/conf/dum0").exists()
        })
        .join()
        .unwrap()
    });
    let run =
        t.a.agent(&["add", "--dev", "dum0", X, "--timeout-ms", "300"]);
    run.assert_code(1);
    assert!(run.stderr.contains("no DAD verdict"), "{}", run.stderr);
    let out = ip(&["-n", &t.a.ns, "-6", "addr", "show", "dev", "dum0"]);
    assert!(
        !out.contains("2001:db8"),
        "timed-out address left behind: {out}"
    );
}

#[test]
fn strict_add_never_announces_while_tentative() {
    use std::process::Stdio;
    use std::time::Instant;
    // B at default DAD timing: 1–2 s tentative, long enough to look inside.
    let t = Topo::with(crate::harness::TopoOpts {
        dad_b: crate::harness::Dad::Default,
        optimistic_b: false,
    });
    let cap = Capture::start(&t.c.ns);
    let called = Instant::now();
    let child =
        t.b.agent_cmd(&[
            "add",
            "--dev",
            DEV,
            X,
            "--na-count",
            "2",
            "--na-interval-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::harness::wait_for("X tentative on B", Duration::from_secs(2), || {
        t.b.addr_lines()
            .iter()
            .any(|l| l.contains(X) && l.contains("tentative"))
    });
    // Asking to announce it now is refused.
    let early = t.b.agent(&["announce", "--dev", DEV, X]);
    early.assert_code(1);
    assert!(early.stderr.contains("tentative"), "{}", early.stderr);

    let run = crate::harness::AgentRun::from(child.wait_with_output().unwrap());
    run.assert_code(0);
    let dad_ms = run.last()["dad_ms"].as_u64().unwrap();
    assert!(dad_ms >= 900, "default DAD takes 1–2 s, got {dad_ms}");
    let x = v6(X);
    cap.wait_until("2 NAs", Duration::from_secs(2), |f| {
        unsolicited_nas(f, x).len() >= 2
    });
    let nas = unsolicited_nas(&cap.stop(), x);
    assert_eq!(nas.len(), 2, "the refused announce sent nothing");
    let first = nas[0].at - called;
    assert!(
        first >= Duration::from_millis(dad_ms),
        "first NA {first:?} after the call, but DAD took {dad_ms} ms"
    );
}
