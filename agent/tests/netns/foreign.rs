//! Issue test 7: addresses the agent did not add are invisible to `list` and safe from `del`.

use crate::harness::{ip, Topo, DEV, X};

const FOREIGN: &str = "2001:db8:1::200";

#[test]
fn list_ignores_and_del_refuses_an_address_added_with_ip() {
    let t = Topo::new();
    ip(&[
        "-n",
        &t.a.ns,
        "-6",
        "addr",
        "add",
        &format!("{FOREIGN}/128"),
        "dev",
        DEV,
        "nodad",
    ]);
    t.a.agent(&["add", "--dev", DEV, X, "--na-count", "0"])
        .assert_code(0);

    let listed = t.a.agent(&["list"]);
    listed.assert_code(0);
    let addrs: Vec<_> = listed
        .lines()
        .iter()
        .map(|l| l["address"].clone())
        .collect();
    assert_eq!(
        addrs,
        vec![serde_json::json!(X)],
        "only the managed address is listed"
    );

    let del = t.a.agent(&["del", "--dev", DEV, FOREIGN]);
    del.assert_code(2);
    assert!(del.stderr.contains("not managed"), "{}", del.stderr);
    assert!(del.stderr.contains("--force"), "{}", del.stderr);
    assert!(
        t.a.has_addr(FOREIGN),
        "a refused del must leave the address"
    );

    // add must not adopt it either.
    let add = t.a.agent(&["add", "--dev", DEV, FOREIGN]);
    add.assert_code(2);
    assert!(add.stderr.contains("not managed"), "{}", add.stderr);
    assert!(t.a.has_addr(FOREIGN));

    let forced = t.a.agent(&["del", "--dev", DEV, FOREIGN, "--force"]);
    forced.assert_code(0);
    assert_eq!(forced.last()["outcome"], "removed");
    assert!(!t.a.has_addr(FOREIGN));
    assert!(t.a.has_addr(X), "the managed address is untouched");
}
