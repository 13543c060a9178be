//! Entry point of `aimass-inference-server`.

use std::net::SocketAddr;

use aimass_engine::validation;
use aimass_inference_server::config::Config;
use aimass_inference_server::server;
use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if aimass_batch::command::Command::named(std::env::args().nth(1).as_deref()) {
        let code = aimass_batch::command::Command::parse().run().await;
        std::process::exit(code);
    }
    let config = Config::parse();
    if config.validate_only {
        let model_uri = config
            .model_uri
            .as_deref()
            .context("--validate-only validates one --model-uri")?;
        let mut report = validation::run(
            model_uri,
            config.model_sha256.clone(),
            config.max_model_bytes,
        )
        .await;
        if let validation::Report::Valid(artifact) = &mut report
            && artifact.baseline.is_none()
            && let Some(plan) = &config.baseline_plan
        {
            let computed = match serde_json::from_str(plan) {
                Ok(plan) => {
                    aimass_batch::baseline::complete(
                        artifact,
                        model_uri,
                        config.max_model_bytes,
                        &plan,
                    )
                    .await
                }
                Err(e) => Err(format!("the baseline plan does not parse: {e}")),
            };
            if let Err(message) = computed {
                report = validation::Report::Invalid(message);
            }
        }
        println!("{}", report.to_line());
        return Ok(());
    }
    config.logging.init().map_err(anyhow::Error::msg)?;
    let optional = async |port: Option<u16>| match port {
        Some(port) => server::bind(SocketAddr::new(config.address, port))
            .await
            .map(Some),
        None => Ok(None),
    };
    let listeners = server::Listeners {
        api: server::bind(SocketAddr::new(config.address, config.port)).await?,
        grpc: optional(config.grpc_port).await?,
        admin: optional(config.admin_port).await?,
    };
    let service = server::prepare(&config).await?;
    if config.fault_latency_on_signal_millis > 0 {
        let service = std::sync::Arc::clone(&service);
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .context("cannot listen for SIGUSR1")?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                let on = service.faults.toggle();
                tracing::warn!(on, "rehearsal latency toggled by SIGUSR1");
            }
        });
    }
    // The trail's shipper outlives the drain, to ship its last records.
    let (stop_shipping, stop) = tokio::sync::watch::channel(false);
    let shipping = server::archiver(&config)?.map(|archiver| {
        tokio::spawn(archiver.run(
            std::time::Duration::from_secs(config.audit_archive_interval_seconds),
            std::sync::Arc::clone(&service.metrics),
            stop,
        ))
    });
    server::serve(
        service,
        listeners,
        shutdown_signal(),
        std::time::Duration::from_secs(config.drain_timeout_seconds),
    )
    .await;
    let _ = stop_shipping.send(true);
    if let Some(shipping) = shipping {
        let _ = shipping.await;
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
