//! `socketfleet local <fleet.yaml> [--port 8000] [--www demo]`. Errors are one line.

use std::path::PathBuf;
use std::process::ExitCode;

use socketfleet_cli::{fleet_file, local};

const USAGE: &str = "usage: socketfleet local <fleet.yaml> [--port 8000] [--www <dir with the demo pages>]";

fn parse_args(args: &[String]) -> Result<(PathBuf, local::Options), String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("local") => {}
        Some("-h" | "--help") | None => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown command {other:?}; {USAGE}")),
    }
    let mut file = None;
    let mut opts = local::Options { port: 8000, www: PathBuf::from("demo") };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => opts.port = it.next().and_then(|p| p.parse().ok()).ok_or("--port needs a port number")?,
            "--www" => opts.www = it.next().map(PathBuf::from).ok_or("--www needs a directory")?,
            f if file.is_none() && !f.starts_with('-') => file = Some(PathBuf::from(f)),
            other => return Err(format!("unexpected argument {other:?}; {USAGE}")),
        }
    }
    Ok((file.ok_or(USAGE)?, opts))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, opts) = match parse_args(&args) {
        Ok(a) => a,
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
