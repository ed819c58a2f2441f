//! Issue test 9: two fipd replicas on one PostgreSQL, A's agent on one and
//! B's on the other; a move crosses replicas through LISTEN/NOTIFY.

use sqlx::{Connection, Executor, PgConnection};

use crate::cluster::{find_event, ms_of, now_ms, print_timeline, Client, Cluster};
use crate::harness::{start_fipd, FipdOpts, Topo};
use crate::moves::{active_on_a, move_and_watch};

fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database for one test, dropped afterwards.
struct TestDb {
    url: String,
    name: String,
}

impl TestDb {
    async fn new() -> Self {
        let admin = pg_admin_url();
        let name = format!("fipd_e2e_{}_{}", std::process::id(), now_ms());
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is needed (set DATABASE_URL; scripts/test.sh starts one): {e}")
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').expect("URL names a database").0;
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (pg_admin_url(), self.name.clone());
        // Drop runs outside any runtime we can rely on: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin).await {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_two_replicas_on_postgres_move_with_cross_replica_wakeups() {
    let db = TestDb::new().await;
    let topo = Topo::new(false);
    let dir = tempfile::tempdir().unwrap();
    let opts = FipdOpts {
        database_url: Some(db.url.clone()),
        ..FipdOpts::default()
    };
    let d1 = dir.path().join("r1");
    let d2 = dir.path().join("r2");
    let (fipd1, url1) = start_fipd("fipd-replica-1", &topo.mgmt_ip, &d1, &opts);
    let (fipd2, url2) = start_fipd("fipd-replica-2", &topo.mgmt_ip, &d2, &opts);
    assert_ne!(url1, url2);
    let mut c = Cluster::setup(topo, dir, fipd1, url1.clone(), Client::new(&url1), opts).await;
    let _replica2 = fipd2;
    // A's agent talks to replica 1, B's to replica 2.
    c.start_agents(Some(&url2)).await;
    let id = active_on_a(&c).await;
    // The move is requested on replica 2; A learns of it on replica 1, and
    // B learns of A's confirmation (made on replica 1) on replica 2.
    let r2 = Client::new(&url2);
    let before = now_ms();
    let outage = move_and_watch(&c, &r2, &id, &c.vm_b, 'b').await;
    let ev = c.api.events(&id).await;
    print_timeline("t9 move across replicas", &ev);
    let requested =
        find_event(&ev, "removal_requested", Some(&c.topo.a.name), 2).expect("removal requested");
    let confirmed =
        find_event(&ev, "removal_confirmed", Some(&c.topo.a.name), 2).expect("A confirmed");
    let asked = find_event(&ev, "add_requested", Some(&c.topo.b.name), 2).expect("B asked");
    let (t_req, t_conf, t_ask) = (
        ms_of(&requested["at"]),
        ms_of(&confirmed["at"]),
        ms_of(&asked["at"]),
    );
    assert!(t_req >= before - 1000);
    let to_a = t_conf - t_req;
    let to_b = t_ask - t_conf;
    println!(
        "t9 latencies: PATCH on replica 2 → A (on replica 1) removed F and confirmed: {to_a} ms; \
         A's confirmation on replica 1 → B's long poll on replica 2 delivered the add: {to_b} ms; \
         outage seen by C {} ms",
        outage.as_millis()
    );
    // Long polls wait 25 s: arriving within 5 s proves a wake-up by
    // notification, not a poll timeout. The figures above are the real ones.
    assert!(to_a < 5000, "A learned of the move only after {to_a} ms");
    assert!(
        to_b < 5000,
        "B learned of A's confirmation only after {to_b} ms"
    );
    drop(c);
    drop(db);
}
