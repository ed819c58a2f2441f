//! Issue test 5: lifetimes as a dead-man switch; a refreshed address stays.

use std::time::{Duration, Instant};

use crate::harness::{Topo, DEV};

#[test]
fn unrefreshed_address_expires_within_4s_and_refreshed_one_stays() {
    let t = Topo::new();
    let (x, y) = ("2001:db8:1::101", "2001:db8:1::102");
    let start = Instant::now();
    for a in [x, y] {
        let run = t.a.agent(&[
            "add",
            "--dev",
            DEV,
            a,
            "--lifetime-s",
            "2",
            "--na-count",
            "0",
        ]);
        run.assert_code(0);
    }
    let listed = t.a.agent(&["list", "--dev", DEV]).lines();
    assert_eq!(listed.len(), 2);
    for l in &listed {
        assert!(l["valid_lft_s"].as_u64().unwrap() <= 2, "{l}");
        assert!(l["preferred_lft_s"].as_u64().unwrap() <= 2, "{l}");
    }

    let mut x_gone = None;
    let mut next_refresh = Instant::now() + Duration::from_millis(700);
    while start.elapsed() < Duration::from_millis(4500) {
        if x_gone.is_none() && !t.a.has_addr(x) {
            x_gone = Some(start.elapsed());
        }
        if Instant::now() >= next_refresh {
            let r = t.a.agent(&[
                "add",
                "--dev",
                DEV,
                y,
                "--lifetime-s",
                "2",
                "--na-count",
                "0",
            ]);
            r.assert_code(0);
            assert_eq!(r.last()["changed"], false, "a refresh is not a re-add");
            next_refresh += Duration::from_millis(700);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone = x_gone.expect("the kernel never expired the unrefreshed address");
    assert!(
        gone <= Duration::from_secs(4),
        "expired only after {gone:?}"
    );
    assert!(t.a.has_addr(y), "the refreshed address must stay");
}
