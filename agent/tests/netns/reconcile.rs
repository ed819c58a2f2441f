//! The library's reconcile API as the daemon will drive it: observe, plan, apply, in a host's namespace.

use std::time::Duration;

use fip_agent::{apply, plan, AddrState, AddressManager, ApplyOptions, DesiredAddr, NaOptions};

use crate::harness::{in_ns, ip, Topo, DEV, X};

const Y: &str = "2001:db8:1::101"; // held by B: A's add must fail DAD
const Z: &str = "2001:db8:1::102"; // managed on A, no longer desired
const W: &str = "2001:db8:1::103"; // foreign on A, desired: blocked

fn desired(a: &str, lifetime_s: Option<u32>) -> DesiredAddr {
    DesiredAddr {
        dev: DEV.into(),
        addr: a.parse().unwrap(),
        lifetime_s,
    }
}

#[test]
fn apply_removes_stale_adds_desired_reports_conflicts_and_leaves_foreign_alone() {
    let t = Topo::new();
    t.a.agent(&["add", "--dev", DEV, Z, "--na-count", "0"])
        .assert_code(0);
    ip(&[
        "-n",
        &t.a.ns,
        "-6",
        "addr",
        "add",
        &format!("{W}/128"),
        "dev",
        DEV,
        "nodad",
    ]);
    t.b.agent(&["add", "--dev", DEV, Y, "--na-count", "0"])
        .assert_code(0);

    let want = vec![desired(X, Some(60)), desired(Y, None), desired(W, None)];
    let (first, second) = in_ns(&t.a.ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mgr = AddressManager::new().unwrap();
            let opts = ApplyOptions {
                na: NaOptions {
                    count: 1,
                    interval: Duration::from_millis(100),
                },
                ..ApplyOptions::default()
            };
            let p1 = plan(&want, &mgr.observed(Some(DEV)).await.unwrap());
            let s1 = apply(&mgr, &p1, &opts).await;
            let p2 = plan(&want, &mgr.observed(Some(DEV)).await.unwrap());
            let s2 = apply(&mgr, &p2, &opts).await;
            ((p1, s1), (p2, s2))
        })
    })
    .join()
    .unwrap();

    let (p1, s1) = first;
    assert_eq!(p1.to_remove.len(), 1, "{p1:#?}");
    assert_eq!(p1.to_add.len(), 2, "{p1:#?}");
    assert_eq!(p1.blocked.len(), 1, "{p1:#?}");
    let status = |s: &[fip_agent::AddressStatus], a: &str| {
        s.iter()
            .find(|st| st.address.to_string() == a)
            .unwrap_or_else(|| panic!("no status for {a}: {s:#?}"))
            .clone()
    };
    assert_eq!(status(&s1, Z).state, AddrState::Absent);
    let x = status(&s1, X);
    assert_eq!(x.state, AddrState::Active, "{x:#?}");
    assert!(x.dad_ms.is_some() && x.na_sent == 1, "{x:#?}");
    let y = status(&s1, Y);
    assert_eq!(y.state, AddrState::DadFailed, "{y:#?}");
    assert_eq!(y.defender_mac.map(|m| m.to_string()), Some(t.b.mac.clone()));
    let w = status(&s1, W);
    assert_eq!(w.state, AddrState::Error);
    assert!(w.detail.unwrap().contains("not managed"));

    assert!(t.a.has_addr(X) && t.a.has_addr(W));
    assert!(!t.a.has_addr(Z) && !t.a.has_addr(Y));

    // Second pass: X is adopted (lifetime refreshed, no DAD); Y is retried
    // and fails again; W stays blocked.
    let (p2, s2) = second;
    assert_eq!(p2.unchanged.len(), 1, "{p2:#?}");
    assert!(p2.unchanged[0].refresh_lifetime);
    let x2 = status(&s2, X);
    assert_eq!(x2.state, AddrState::Active);
    assert_eq!(x2.dad_ms, None, "no new DAD for an adopted address");
    assert_eq!(status(&s2, Y).state, AddrState::DadFailed);
    assert!(t.a.has_addr(W));
}
