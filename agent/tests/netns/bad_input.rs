//! Issue test 8: each kind of bad input gets a clear message and exit code 2, and changes nothing.

use crate::harness::{ip, sysctl, Topo, DEV};

fn assert_bad(t: &Topo, args: &[&str], needle: &str) {
    let before = t.a.addr_lines();
    let run = t.a.agent(args);
    run.assert_code(2);
    assert!(
        run.stderr.to_lowercase().contains(needle),
        "`{}`: expected {needle:?} in stderr, got {:?}",
        args.join(" "),
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "no result line for bad input: {:?}",
        run.stdout
    );
    assert_eq!(
        t.a.addr_lines(),
        before,
        "bad input must not change the kernel"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let t = Topo::new();
    assert_bad(
        &t,
        &["add", "--dev", "nosuch0", "2001:db8:1::100"],
        "no such interface",
    );
    assert_bad(&t, &["add", "--dev", DEV, "192.0.2.1"], "ipv4");
    assert_bad(&t, &["add", "--dev", DEV, "fe80::1"], "link-local");
    assert_bad(&t, &["add", "--dev", DEV, "ff02::1"], "multicast");
    assert_bad(
        &t,
        &["add", "--dev", DEV, "2001:db8:1::100/129"],
        "prefix length",
    );
    assert_bad(
        &t,
        &["add", "--dev", DEV, "2001:db8:1::100/0"],
        "prefix length",
    );
    assert_bad(
        &t,
        &["del", "--dev", "nosuch0", "2001:db8:1::100"],
        "no such interface",
    );
    assert_bad(&t, &["del", "--dev", DEV, "fe80::1"], "link-local");
    assert_bad(&t, &["announce", "--dev", DEV, "ff02::1"], "multicast");
    assert_bad(&t, &["check", "--dev", "nosuch0"], "no such interface");
    assert_bad(
        &t,
        &["check", "--dev", "../../all"],
        "not a valid interface name",
    );
    assert_bad(
        &t,
        &["add", "--dev", "a-name-far-too-long", "2001:db8:1::100"],
        "not a valid interface name",
    );
}

#[test]
fn interface_with_ipv6_disabled_is_bad_input() {
    let t = Topo::new();
    ip(&[
        "-n", &t.a.ns, "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ]);
    crate::harness::wait_for("dum0 conf", std::time::Duration::from_secs(5), || {
        let ns = t.a.ns.clone();
        crate::harness::in_ns(&ns, || {
            std::path::Path::new("/proc/sys/net/ipv6/conf/dum0").exists()
        })
        .join()
        .unwrap()
    });
    sysctl(&t.a.ns, "ipv6/conf/dum0/disable_ipv6", "1");
    ip(&["-n", &t.a.ns, "link", "set", "dum0", "up"]);
    let run = t.a.agent(&["add", "--dev", "dum0", "2001:db8:1::100"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("IPv6 is disabled on dum0"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("disable_ipv6"), "{}", run.stderr);
    let out = ip(&["-n", &t.a.ns, "-6", "addr", "show", "dev", "dum0"]);
    assert!(!out.contains("2001:db8"), "{out}");
}

#[test]
fn check_of_an_interface_with_ipv6_disabled_fails_as_bad_input() {
    let t = Topo::new();
    sysctl(&t.a.ns, &format!("ipv6/conf/{DEV}/disable_ipv6"), "1");
    let run = t.a.agent(&["check", "--dev", DEV]);
    run.assert_code(2);
    assert_eq!(run.last()["disable_ipv6"], true);
    assert!(run.stderr.contains("IPv6 is disabled"), "{}", run.stderr);
}
