//! `fip-faults`: runs the fault-injection suite (docs/testing.md) as long
//! as asked, with a seed that replays, and prints the schedule, a summary
//! per fault and the checker's verdict. Needs root and the workspace's
//! binaries (`cargo build --workspace`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fip_e2e::faults::{self, Options};

#[derive(Parser)]
#[command(
    name = "fip-faults",
    about = "Fault-injection runs against real agents and fipd replicas"
)]
struct Cli {
    /// Seed of the first run; each further run uses the next one. Default:
    /// from the clock (printed, so a failing run replays).
    #[arg(long)]
    seed: Option<u64>,
    /// Total time to keep running, across runs.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Faults per run before it is checked, in seconds.
    #[arg(long, default_value_t = 120)]
    run_seconds: u64,
    /// DAD mode: strict, optimistic, off, or all (in turn).
    #[arg(long, default_value = "all")]
    dad: String,
    /// One short run per DAD mode with seed 1 (as CI runs it).
    #[arg(long)]
    quick: bool,
    /// Print each run's schedule and every injection and heal.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let modes: Vec<String> = match cli.dad.as_str() {
        "all" => vec!["strict".into(), "optimistic".into(), "off".into()],
        m @ ("strict" | "optimistic" | "off") => vec![m.into()],
        other => {
            eprintln!("fip-faults: --dad {other}: expected strict, optimistic, off or all");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut seed = if cli.quick {
        1
    } else {
        cli.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        })
    };
    let run_for = if cli.quick {
        Duration::from_secs(40)
    } else {
        Duration::from_secs(cli.run_seconds)
    };
    let until = std::time::Instant::now() + Duration::from_secs(cli.minutes * 60);
    let mut failed = 0;
    let mut runs = 0;
    let mut i = 0;
    loop {
        let dad = modes[i % modes.len()].clone();
        println!("== run {} (seed {seed}, dad {dad}) ==", runs + 1);
        let dir = std::env::temp_dir().join(format!("fip-faults-{}-{runs}", std::process::id()));
        let opts = Options {
            seed,
            duration: run_for,
            dad,
            converge_within: Duration::from_secs(60),
            dir: dir.clone(),
            verbose: cli.verbose,
        };
        match rt.block_on(faults::run(&opts)) {
            Ok(o) => {
                print!("{}", o.report());
                if !o.passed() {
                    failed += 1;
                    println!(
                        "logs kept in {}; replay with --seed {seed} --dad {}",
                        dir.display(),
                        o.dad
                    );
                } else {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            Err(e) => {
                failed += 1;
                println!("run failed to play: {e:#}\nlogs kept in {}", dir.display());
            }
        }
        runs += 1;
        i += 1;
        seed = seed.wrapping_add(1);
        if (cli.quick && i == modes.len()) || (!cli.quick && std::time::Instant::now() >= until) {
            break;
        }
    }
    println!("{runs} runs, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
