//! `socketfleet-sidecar`: reads its configuration from the environment and serves until
//! SIGTERM or Ctrl-C. See `socketfleet_sidecar::config` for every variable.

use std::process::ExitCode;

use socketfleet_sidecar::app::{self, Listeners};
use socketfleet_sidecar::config::Config;

/// EX_USAGE: the configuration is wrong; restarting will not help.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("socketfleet-sidecar: invalid configuration:");
            for e in errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("socketfleet-sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(&config).await?;
        app::run(config, listeners, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socketfleet-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SF_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("SF_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
