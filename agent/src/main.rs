//! `fip-agent` entry point: parses the command line and runs it on a single-threaded runtime.

use clap::Parser;
use fip_agent::cli::{run, Cli};

fn main() -> std::process::ExitCode {
    // clap exits with 2 on bad arguments (including an invalid ADDR),
    // which is our bad-input code.
    let cli = Cli::parse();
    // The daemon logs what it does; one-shot commands only warnings.
    let default_level = match cli.command {
        fip_agent::cli::Command::Run(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIP_AGENT_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .init();
    // One thread is plenty for a command, and it keeps every socket in the
    // namespace the process was started in.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fip-agent: error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let code = rt.block_on(run(cli));
    std::process::ExitCode::from(code as u8)
}
