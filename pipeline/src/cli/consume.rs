//! `orderpulse consume`: the Kafka topics into the lake, as one member of the consumer
//! group, until Ctrl-C or SIGTERM.

use anyhow::Context;

use crate::config::Config;
use crate::ingest::kafka::consume;
use crate::ingest::IngestOptions;
use crate::source::kafka::ConsumerHooks;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lake: super::LakeArg,
    /// Brokers, host:port[,host:port] (overrides kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Consumer group (overrides kafka.group_id).
    #[arg(long)]
    group: Option<String>,
    /// Serve Prometheus metrics (consumer lag per partition) at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<String>,
}

pub async fn execute(args: Args, mut config: Config) -> anyhow::Result<()> {
    if let Some(brokers) = args.brokers {
        config.kafka.brokers = brokers;
    }
    if let Some(group) = args.group {
        config.kafka.group_id = group;
    }
    config.validate()?;
    let lake = args.lake.open(&config)?;
    tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, topics = ?config.kafka.topic_names(), "consuming");
    let shutdown = super::shutdown_signal();
    let hooks = ConsumerHooks::default();
    if let Some(address) = &args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?;
        let metrics = hooks.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let body = metrics.metrics();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    consume(&lake, &config.kafka, IngestOptions::from(&config.ingest), hooks, shutdown).await?;
    Ok(())
}
