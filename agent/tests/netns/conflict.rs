//! Issue test 1: adding an address another host holds fails DAD and names the defender.

use crate::harness::{Topo, DEV, X};

#[test]
fn add_of_an_address_held_by_a_exits_3_naming_a_as_defender_and_leaves_nothing() {
    let t = Topo::new();
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);

    let run = t.b.agent(&["add", "--dev", DEV, X, "--na-count", "0"]);
    run.assert_code(3);
    let out = run.last();
    assert_eq!(out["outcome"], "dad_failed");
    assert_eq!(out["address"], X);
    assert_eq!(out["dev"], DEV);
    assert_eq!(out["defender_mac"], t.a.mac.as_str(), "{run:#?}");
    assert!(out["dad_ms"].as_u64().is_some());
    assert_eq!(out["na_sent"], 0);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);

    assert!(
        !t.b.has_addr(X),
        "dadfailed copy left on B: {:?}",
        t.b.addr_lines()
    );
    assert!(t.b.agent(&["list"]).stdout.is_empty());
    // A still holds X, untouched.
    assert!(t.a.has_addr(X));
}
