//! The fault-injection suite in its quick mode: a fixed seed per DAD
//! mode, 40 s of faults, then the checker's verdict (docs/testing.md; long
//! runs with `fip-faults --seed N --minutes M`).

use std::time::Duration;

use fip_e2e::faults::{self, Options};

async fn quick(dad: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        seed,
        duration: Duration::from_secs(40),
        dad: dad.into(),
        converge_within: Duration::from_secs(60),
        dir: dir.path().to_owned(),
        verbose: false,
    };
    let out = faults::run(&opts)
        .await
        .unwrap_or_else(|e| panic!("the run did not play: {e:#}"));
    println!("{}", out.report());
    assert!(
        out.passed(),
        "seed {seed}, dad {dad}: replay with `fip-faults --seed {seed} --dad {dad} --minutes 0 --run-seconds 40 --verbose`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_faults_with_strict_dad() {
    quick("strict", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_faults_with_optimistic_dad() {
    quick("optimistic", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_faults_with_dad_off() {
    quick("off", 3).await;
}
