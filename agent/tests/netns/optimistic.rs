//! Issue test 4: with optimistic DAD, X answers pings within 100 ms of the call, long before DAD ends.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::capture::pinger;
use crate::harness::{v6, Dad, Topo, TopoOpts, DEV, X};

#[test]
fn optimistic_add_answers_pings_within_100ms_while_dad_still_runs() {
    // B keeps the kernel's default DAD timing (1–2 s), which is what
    // optimistic DAD is for.
    let t = Topo::with(TopoOpts {
        dad_b: Dad::Default,
        optimistic_b: true,
    });
    // The move of design §4: A held X (C's cache points at A) and removed it.
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    assert!(pinger(
        &t.c.ns,
        v6(X),
        Duration::from_millis(20),
        Duration::from_secs(5)
    )
    .join()
    .unwrap()
    .is_some());
    t.a.agent(&["del", "--dev", DEV, X]).assert_code(0);

    let ping = pinger(
        &t.c.ns,
        v6(X),
        Duration::from_millis(5),
        Duration::from_secs(3),
    );
    let called = Instant::now();
    let child =
        t.b.agent_cmd(&["add", "--dev", DEV, X, "--dad", "optimistic"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let answered = ping.join().unwrap().expect("X never answered");
    let run = crate::harness::AgentRun::from(child.wait_with_output().unwrap());
    run.assert_code(0);
    let lag = answered - called;
    assert!(
        lag < Duration::from_millis(100),
        "first reply {lag:?} after the call"
    );

    let lines = run.lines();
    assert_eq!(lines.len(), 2, "{run:#?}");
    assert_eq!(lines[0]["outcome"], "optimistic");
    assert_eq!(lines[0]["na_sent"], 1);
    assert_eq!(lines[1]["outcome"], "active");
    let dad_ms = lines[1]["dad_ms"].as_u64().unwrap();
    assert!(dad_ms >= 900, "default DAD takes 1–2 s, got {dad_ms} ms");
    assert!(
        lag < Duration::from_millis(dad_ms),
        "answered before the DAD verdict"
    );
    eprintln!("optimistic: first reply after {lag:?}, dad_ms with default sysctls = {dad_ms}");
}

#[test]
fn optimistic_add_is_refused_when_the_interface_has_optimistic_dad_off() {
    let t = Topo::new();
    let run = t.b.agent(&["add", "--dev", DEV, X, "--dad", "optimistic"]);
    run.assert_code(2);
    assert!(run.stderr.contains("optimistic_dad"), "{}", run.stderr);
    assert!(!t.b.has_addr(X));
}

#[test]
fn optimistic_add_of_an_address_held_elsewhere_reports_the_late_failure() {
    let t = Topo::with(TopoOpts {
        dad_b: Dad::Fast,
        optimistic_b: true,
    });
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    let run = t.b.agent(&["add", "--dev", DEV, X, "--dad", "optimistic"]);
    run.assert_code(3);
    let lines = run.lines();
    assert_eq!(lines.len(), 2, "{run:#?}");
    assert_eq!(lines[0]["outcome"], "optimistic");
    assert_eq!(lines[1]["outcome"], "dad_failed");
    assert_eq!(lines[1]["defender_mac"], t.a.mac.as_str());
    assert!(!t.b.has_addr(X), "dadfailed copy left on B");
    assert!(t.a.has_addr(X));
}

/// Issue 10 item 8: with a finite lifetime (as the daemon adds), the
/// kernel deletes a copy that loses DAD at once, sometimes before the
/// first NA. That is a DAD failure with the defender's MAC, every time;
/// before the fix it was sometimes "not present" (exit 2).
#[test]
fn an_optimistic_add_with_a_lifetime_that_loses_dad_is_always_a_dad_failure() {
    let t = Topo::with(TopoOpts {
        dad_b: Dad::Fast,
        optimistic_b: true,
    });
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);
    for round in 0..6 {
        let run = t.b.agent(&[
            "add",
            "--dev",
            DEV,
            X,
            "--dad",
            "optimistic",
            "--lifetime-s",
            "30",
        ]);
        assert_eq!(run.code, 3, "round {round}: {run:#?}");
        let last = run.last();
        assert_eq!(last["outcome"], "dad_failed", "round {round}: {run:#?}");
        assert_eq!(last["defender_mac"], t.a.mac.as_str(), "round {round}");
        assert!(!t.b.has_addr(X), "round {round}: a copy left on B");
    }
}
