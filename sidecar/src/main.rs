//! `socketfleet-sidecar`: reads its configuration from the environment and serves until
//! SIGTERM or Ctrl-C. See `socketfleet_api::settings` for every variable.

use std::process::ExitCode;

use socketfleet_api::settings::SidecarSettings;
use socketfleet_sidecar::app::{self, Listeners};

/// EX_USAGE: the configuration is wrong; restarting will not help.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let config = match SidecarSettings::from_env() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("socketfleet-sidecar: invalid configuration:");
            for e in errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // A key file that cannot be read or parsed is a configuration error like any other.
    let auth = match socketfleet_sidecar::edge::auth::Authenticator::from_settings(&config.auth) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("socketfleet-sidecar: invalid configuration:\n  {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("socketfleet-sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(&config).await?;
        app::run(config, auth, listeners, shutdown_signal()).await
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
    let filter = tracing_subscriber::EnvFilter::try_from_env(socketfleet_api::settings::ENV_LOG).unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal: a log file or a collector gets plain text.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if std::env::var(socketfleet_api::settings::ENV_LOG_FORMAT).as_deref() == Ok("json") {
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
