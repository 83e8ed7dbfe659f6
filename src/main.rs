//! The `rtmpgate` binary: parse, validate, set up logging, bind, run.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rtmpgate::cli::{Cli, LogFormat};
use rtmpgate::metrics::Metrics;
use rtmpgate::{Config, Gateway};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("rtmpgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line with the whole chain: what failed and what to fix.
            eprintln!("rtmpgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let config = Config::from_sources(&cli).context("configuration refused")?;
    if cli.check_config {
        rtmpgate::server::tls_state(&config, &Arc::new(Metrics::default()))
            .context("configuration refused")?;
        rtmpgate::auth::Authorizer::build(&config.auth).context("configuration refused")?;
        rtmpgate::upstream::tls::client_config(&config.upstream_trust, &config.upstream_pins)
            .context("configuration refused")?;
        println!("configuration OK");
        return Ok(());
    }
    let gateway = Gateway::bind(config, Arc::new(Metrics::default()))
        .await
        .context("cannot start")?;
    gateway.run(shutdown_signal()).await;
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
