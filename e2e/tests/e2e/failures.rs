//! Issue tests 3–6: a killed agent, a host cut off (failover), an agent
//! restart (adoption) and a fipd restart in the middle of a move.

use std::time::{Duration, Instant};

use fip_agent::net::netlink::AddrEvent;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::{find_event, ms_of, now_ms, print_timeline, wait_until, Cluster};
use crate::harness::{start_fipd, wait_for, FipdOpts, F};
use crate::moves::{active_on_a, f, move_and_watch};
use crate::observe::{assert_no_double_holder, usable_intervals, AddrMonitor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t3_killed_agent_b_gets_f_only_after_lease_and_grace_and_a_kernel_drops_it() {
    let opts = FipdOpts::default();
    let mut c = Cluster::start(opts.clone(), false).await;
    let id = active_on_a(&c).await;
    let mut agent_a = c.agent_a.take_agent();
    agent_a.signal(libc::SIGKILL);
    assert_eq!(
        agent_a.wait_exit(Duration::from_secs(5)).unwrap(),
        None,
        "killed by a signal"
    );
    let killed = now_ms();
    let killed_at = Instant::now();
    let mon_a = AddrMonitor::start(&c.topo.a.ns);
    let mon_b = AddrMonitor::start(&c.topo.b.ns);
    let started = Instant::now();
    // A's lease as fipd knows it: it was renewed at most a third of a TTL ago.
    c.api.associate(&id, Some(&c.vm_b)).await;
    let budget = Duration::from_millis(opts.lease_ttl_ms + opts.fence_grace_ms + 5000);
    let fip = c.wait_active_on(&id, &c.topo.b.name, budget).await;
    let end = Instant::now();
    let host_a = c.api.host_state(&c.topo.a.name).await;
    let expired_at = ms_of(&host_a["lease_expires_at"]);
    assert!(
        expired_at <= killed + opts.lease_ttl_ms as i64,
        "lease not renewed after the kill"
    );
    let ev = c.api.events(&id).await;
    print_timeline("t3 agent A killed, move to B", &ev);
    let asked = find_event(&ev, "add_requested", Some(&c.topo.b.name), 2).expect("B asked");
    let asked_at = ms_of(&asked["at"]);
    println!(
        "B asked {} ms after A's lease expired (grace {} ms); B's DAD {} ms",
        asked_at - expired_at,
        opts.fence_grace_ms,
        Cluster::binding(&fip, &c.topo.b.name)["dad_ms"]
    );
    assert!(
        asked_at >= expired_at + opts.fence_grace_ms as i64,
        "B was asked before A's lease + grace ran out"
    );
    assert!(find_event(&ev, "removal_assumed", Some(&c.topo.a.name), 2).is_some());
    // Nobody removed F on A but its kernel: the lifetime ran out.
    wait_for("A's kernel to expire F", Duration::from_secs(5), || {
        !c.topo.a.has_addr(F)
    });
    let ev_a = mon_a.stop();
    let ev_b = mon_b.stop();
    let gone = ev_a
        .iter()
        .find(|(_, e)| matches!(e, AddrEvent::Del(k) if k.addr == f()))
        .map(|(t, _)| *t)
        .expect("RTM_DELADDR for F on A");
    println!(
        "A's kernel dropped F {} ms after the agent was killed",
        (gone - killed_at).as_millis()
    );
    let a = usable_intervals(&ev_a, f(), Some(started), end);
    let b = usable_intervals(&ev_b, f(), None, end);
    assert_no_double_holder(&a, &b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_failover_to_the_standby_when_a_is_cut_off() {
    let opts = FipdOpts::default();
    let c = Cluster::start(opts.clone(), false).await;
    let id = active_on_a(&c).await;
    c.api
        .admin(
            Method::PATCH,
            &format!("/v1/floating-ips/{id}"),
            Some(json!({ "standby_instance_ids": [c.vm_b] })),
            StatusCode::OK,
        )
        .await;
    let mon_b = AddrMonitor::start(&c.topo.b.ns);
    let cut = Instant::now();
    c.topo.cut_off(&c.topo.a);
    // No API call from here on but reads.
    let bound = Duration::from_millis(opts.lease_ttl_ms + opts.fence_grace_ms + 1000)
        + Duration::from_millis(200); // DAD with the lowered sysctls (100 ms) and its report
    let fip = c
        .wait_active_on(&id, &c.topo.b.name, bound + Duration::from_secs(5))
        .await;
    let took = cut.elapsed();
    let ev = c.api.events(&id).await;
    print_timeline("t4 failover", &ev);
    println!(
        "failover: ACTIVE on B {} ms after A was cut off (bound {} ms); B's DAD {} ms",
        took.as_millis(),
        bound.as_millis(),
        Cluster::binding(&fip, &c.topo.b.name)["dad_ms"]
    );
    assert!(took <= bound, "failover took {took:?}, bound {bound:?}");
    assert!(find_event(&ev, "failover", Some(&c.topo.b.name), 2).is_some());
    // A's agent fenced itself: it cannot reach fipd either. (Its kernel
    // lifetime would expire F too, but only ceil(TTL) after the last
    // refresh, later than the agent's own deadline.)
    wait_for("A to fence itself", Duration::from_secs(5), || {
        !c.topo.a.has_addr(F)
    });
    let log = c.agent_a.as_ref().unwrap().log_text();
    assert!(
        log.contains("(self-fencing)"),
        "A's agent did not fence: {log}"
    );
    assert!(
        log.contains("fenced: removed"),
        "A's agent removed F itself: {log}"
    );
    assert!(c.topo.b.has_addr(F));
    // A comes back: its agent renews, leaves the fenced state, and does
    // not take F back (fipd moved it; A's desired state no longer has it).
    c.topo.reconnect(&c.topo.a);
    let api = c.api.clone();
    let host_a = c.topo.a.name.clone();
    wait_until("A alive again", Duration::from_secs(10), || {
        let api = api.clone();
        let h = host_a.clone();
        async move { (api.host_state(&h).await["state"] == "alive").then_some(()) }
    })
    .await;
    wait_for(
        "A's agent to leave the fenced state",
        Duration::from_secs(5),
        || {
            c.agent_a
                .as_ref()
                .unwrap()
                .log_text()
                .contains("a new lease: fetching the desired state again")
        },
    );
    assert!(!c.topo.a.has_addr(F));
    let fip = c.api.fip(&id).await;
    assert_eq!(fip["status"], "ACTIVE");
    assert_eq!(fip["host"], c.topo.b.name.as_str());
    drop(mon_b.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_agent_restart_adopts_f_without_deladdr_or_dad() {
    let opts = FipdOpts::default();
    let mut c = Cluster::start(opts.clone(), false).await;
    let id = active_on_a(&c).await;
    let dad_events =
        |ev: &[serde_json::Value]| ev.iter().filter(|e| e["kind"] == "dad_started").count();
    let before = dad_events(&c.api.events(&id).await);
    let mon = AddrMonitor::start(&c.topo.a.ns);
    let mut old = c.agent_a.take_agent();
    old.signal(libc::SIGTERM);
    assert_eq!(
        old.wait_exit(Duration::from_secs(5)).unwrap(),
        Some(0),
        "SIGTERM exits 0"
    );
    assert!(c.topo.a.has_addr(F), "SIGTERM leaves F in place");
    let restarted = now_ms();
    c.agent_a = Some(c.spawn_agent('a', &c.url.clone()));
    // The new agent has renewed its lease and reported F (adopted).
    let api = c.api.clone();
    let host = c.topo.a.name.clone();
    wait_until("the new agent to report F", Duration::from_secs(10), || {
        let api = api.clone();
        let id = id.clone();
        let host = host.clone();
        async move {
            let f = api.fip(&id).await;
            let b = Cluster::binding(&f, &host);
            (b["reported_at"].is_string() && ms_of(&b["reported_at"]) > restarted).then_some(())
        }
    })
    .await;
    // Two renewals later the lifetimes were refreshed in place too.
    std::thread::sleep(Duration::from_millis(opts.lease_ttl_ms));
    let events = mon.stop();
    let ours: Vec<_> = events
        .iter()
        .filter(|(_, e)| matches!(e, AddrEvent::New(k) | AddrEvent::Del(k) if k.addr == f()))
        .collect();
    assert!(
        !ours.iter().any(|(_, e)| matches!(e, AddrEvent::Del(_))),
        "RTM_DELADDR for F during the restart: {ours:?}"
    );
    assert!(
        !ours
            .iter()
            .any(|(_, e)| matches!(e, AddrEvent::New(k) if k.flags.tentative())),
        "F went tentative (new DAD): {ours:?}"
    );
    let fip = c.api.fip(&id).await;
    assert_eq!(fip["status"], "ACTIVE");
    let ev = c.api.events(&id).await;
    assert_eq!(dad_events(&ev), before, "no new DAD started");
    let log = c.agent_a.as_ref().unwrap().log_text();
    assert!(
        log.contains("adopted=true"),
        "the new agent adopted F: {log}"
    );
    print_timeline("t5 agent restart", &ev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t6_fipd_restart_in_the_middle_of_a_move_completes_it() {
    // A longer lease: the agents must not fence while fipd restarts.
    let opts = FipdOpts {
        lease_ttl_ms: 4000,
        ..FipdOpts::default()
    };
    let mut c = Cluster::start(opts.clone(), false).await;
    let id = active_on_a(&c).await;
    let mon_a = AddrMonitor::start(&c.topo.a.ns);
    let mon_b = AddrMonitor::start(&c.topo.b.ns);
    let started = Instant::now();
    c.api.associate(&id, Some(&c.vm_b)).await;
    // Kill fipd at once: the move is somewhere between A's removal and B's add.
    let mut old = c.fipd.take().unwrap();
    old.signal(libc::SIGKILL);
    old.wait_exit(Duration::from_secs(5)).unwrap();
    let port: u16 = c.url.rsplit(':').next().unwrap().parse().unwrap();
    let (fipd, url) = start_fipd(
        "fipd-restarted",
        &c.topo.mgmt_ip,
        c.dir.path(),
        &FipdOpts { port, ..opts },
    );
    assert_eq!(url, c.url, "same address after the restart");
    c.fipd = Some(fipd);
    drop(old);
    let fip = c
        .wait_active_on(&id, &c.topo.b.name, Duration::from_secs(15))
        .await;
    let end = Instant::now();
    assert!(!c.topo.a.has_addr(F));
    assert!(c.topo.b.has_addr(F));
    let a = usable_intervals(&mon_a.stop(), f(), Some(started), end);
    let b = usable_intervals(&mon_b.stop(), f(), None, end);
    assert_no_double_holder(&a, &b);
    println!(
        "t6: move completed across a fipd restart at revision {}",
        fip["revision"]
    );
    print_timeline("t6 fipd restart mid-move", &c.api.events(&id).await);
    // And the system still works: move back.
    move_and_watch(&c, &c.api, &id, &c.vm_a, 'a').await;
}

/// `Option<Proc>::take` with a message.
trait TakeAgent {
    fn take_agent(&mut self) -> crate::harness::Proc;
}

impl TakeAgent for Option<crate::harness::Proc> {
    fn take_agent(&mut self) -> crate::harness::Proc {
        self.take().expect("agent running")
    }
}
