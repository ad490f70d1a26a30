//! `socketfleet local <fleet.yaml> [options]` (`--help` lists them). Errors are one line.

use std::path::PathBuf;
use std::process::ExitCode;

use socketfleet_api::duration;
use socketfleet_cli::{fleet_file, local};

const USAGE: &str = "usage: socketfleet local <fleet.yaml> [--port 8000] [--www <dir with the demo pages>] [--redis-only] [--restart-after 5s] [--keep-logs]";

const HELP: &str = "\
Runs the fleet a SocketFleet file describes on this machine: its Redis (real redis-server
processes), its sidecars, and one port for clients and the demo pages.

  --port N            the port clients and browsers use (default 8000; 0 picks a free one
                      and prints it)
  --www DIR           the demo pages served on that port (default demo)
  --redis-only        start Redis only, no sidecars (other servers can use it: the address
                      of every process is in /fleet.json)
  --restart-after D   a Redis process that exits on its own is started again after D
                      (default 5s); a sidecar that does is started again at once
  --keep-logs         keep the run's folder (every process's log) when it stops and say
                      where; without it the folder is removed

Environment: SOCKETFLEET_REDIS_PASSWORD (the local Redis password; generated when unset),
SOCKETFLEET_JWT_SECRET / SOCKETFLEET_JWT_PUBLIC_KEY_FILE (for auth Secrets the file names),
SF_LOG (the sidecars' log filter). Type + and Enter to add a sidecar, - to drain the one
with the most clients, - <name> to drain that one. Ctrl-C, SIGTERM or SIGHUP drains and
stops everything, twice stops at once.";

/// What the command line asks for.
enum Asked {
    Run(PathBuf, local::Options),
    Help,
}

fn parse_args(args: &[String]) -> Result<Asked, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Asked::Help);
    }
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("local") => {}
        None => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown command {other:?}; {USAGE}")),
    }
    let mut file = None;
    let mut opts = local::Options::default();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => opts.port = it.next().and_then(|p| p.parse().ok()).ok_or("--port needs a port number")?,
            "--www" => opts.www = it.next().map(PathBuf::from).ok_or("--www needs a directory")?,
            "--redis-only" => opts.redis_only = true,
            "--keep-logs" => opts.keep_logs = true,
            "--restart-after" => {
                let ms = it.next().and_then(|d| duration::parse_millis(d)).ok_or("--restart-after needs a duration like 5s or 500ms")?;
                opts.restart_after = std::time::Duration::from_millis(ms);
            }
            f if file.is_none() && !f.starts_with('-') => file = Some(PathBuf::from(f)),
            other => return Err(format!("unexpected argument {other:?}; {USAGE}")),
        }
    }
    Ok(Asked::Run(file.ok_or(USAGE)?, opts))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, opts) = match parse_args(&args) {
        Ok(Asked::Run(file, opts)) => (file, opts),
        Ok(Asked::Help) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("socketfleet: {e}");
            return ExitCode::from(64);
        }
    };
    let fleet = match fleet_file::load(&file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("socketfleet: {e}");
            return ExitCode::from(65);
        }
    };
    let code = match local::run(fleet, opts).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("socketfleet: {e}");
            1
        }
    };
    // Exit here: the runtime would otherwise wait for its blocking stdin reader, which a
    // pipe that stays open (a test harness, a supervisor) never releases.
    std::process::exit(code)
}
