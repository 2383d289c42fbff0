//! `orderpulse run`: the whole product in one process on the embedded default: the
//! simulator streaming into the lake, HTTP ingest, the stream processor, and the HTTP API
//! over the lake and the processor's state.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::api::{serve, AppState};
use crate::config::Config;
use crate::ingest::http::{run_group_commits, HttpIngest};
use crate::ingest::{ingest_source, IngestOptions};
use crate::kpi::QueryLimits;
use crate::source::simulated::{source_id, stream_simulation};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lake: super::LakeArg,
    /// Address for the HTTP API (overrides api.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Address for Postgres clients, or `off` (overrides api.pg_listen).
    #[arg(long)]
    pg_listen: Option<String>,
    /// Simulated events per second (overrides simulator.rate).
    #[arg(long)]
    rate: Option<f64>,
    /// Scenario file for the simulator (overrides simulator.scenario).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Do not run the simulator: events arrive only through POST /v1/events.
    #[arg(long)]
    no_simulator: bool,
}

pub async fn execute(args: Args, mut config: Config) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.api.listen = listen;
    }
    if let Some(pg_listen) = args.pg_listen {
        config.api.pg_listen = pg_listen;
    }
    if let Some(rate) = args.rate {
        config.simulator.rate = rate;
    }
    config.validate()?;
    let lake = args.lake.open(&config)?;
    let scenario = super::simulate::load_scenario(args.scenario.as_ref().or(config.simulator.scenario.as_ref()))?;
    let listener = tokio::net::TcpListener::bind(&config.api.listen).await.with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))?;
    let address = listener.local_addr()?;

    // Every table exists before ingest starts and before the Postgres session is built
    // over them: created here, once, not raced by two creators (a lost race could leave
    // a second metadata commit that fails the writer's first commit).
    for table in crate::model::schema::LakeTable::ALL {
        lake.open_or_create(table).await?;
    }

    // Ingest runs on its own thread and runtime: Parquet encoding is CPU work that must
    // not hold up the API's requests. Two sources share it: the simulator (unless
    // disabled) and HTTP (`POST /v1/events`), each with its own positions in the lake.
    let (http_ingest, queue) = HttpIngest::channel(config.ingest.http_queue_requests);
    let ingest_lake = lake.clone();
    let options = IngestOptions::from(&config.ingest);
    let rate = config.simulator.rate;
    let simulate = !args.no_simulator;
    let http_source = format!("orderpulse:http:{}", config.api.listen);
    let window = config.ingest.group_commit_window;
    std::thread::Builder::new().name("orderpulse-ingest".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let simulation = async {
                if !simulate {
                    return;
                }
                let id = source_id(&scenario);
                let result =
                    ingest_source(&ingest_lake, &id, options.clone(), move |resume_after, tx| stream_simulation(scenario, rate, resume_after, &tx)).await;
                match result {
                    Ok(stats) => tracing::info!(accepted = stats.accepted, "the simulation has ended; the API keeps serving"),
                    Err(e) => tracing::error!(error = %e, "simulator ingest stopped; the API keeps serving what the lake holds"),
                }
            };
            let http = async {
                if let Err(e) = run_group_commits(ingest_lake.clone(), http_source, options.clone(), window, queue).await {
                    tracing::error!(error = %e, "HTTP ingest stopped; POST /v1/events answers 503");
                }
            };
            tokio::join!(simulation, http);
        });
        anyhow::Ok(())
    })?;

    let engine = super::sql_engine(lake.clone(), &config)?;
    let keys = crate::api::auth::Keys::new(&config.auth.keys).map_err(anyhow::Error::msg).context("auth.keys")?;
    if !keys.enabled() {
        tracing::warn!("no API keys configured (auth.keys): every caller is an admin; fine on localhost, not on a network");
    }
    let postgres = match config.api.pg_listen.as_str() {
        "off" => None,
        listen => {
            let address: std::net::SocketAddr = listen.parse().context("api.pg_listen")?;
            let (engine, keys, limits) = (engine.clone(), keys.clone(), QueryLimits::from_config(&config.api));
            Some((address, tokio::spawn(async move { crate::api::pgwire::serve(engine, keys, limits, address).await })))
        }
    };
    // The stream processor follows the lake beside the API, which reads its state for
    // order look-ups. It and the KPI rollups run on a runtime of their own at a lower CPU
    // priority (`background`): their checkpoints, merges and queries must not hold up
    // acknowledgements and answers.
    let processor = crate::stream::processor::Processor::open(&lake, config.stream.processor_options()).await?;
    let texts = crate::notify::status_text::StatusTexts::load(config.notify.status_templates_dir.as_deref()).context("notify.status_templates_dir")?;
    let lookup = crate::api::orders::OrderLookup { state: processor.shared_state(), processor: processor.status(), texts: std::sync::Arc::new(texts) };
    let rollups = (!config.kpi.rollup_interval.is_zero())
        .then(|| roll_up_periodically(engine.clone(), lake.clone(), config.kpi.clone(), QueryLimits::for_rollups(&config)));
    if rollups.is_none() {
        tracing::info!("KPI rollups are not scheduled (kpi.rollup_interval = 0s)");
    }
    let processor = async move {
        if let Err(error) = processor.run(std::future::pending()).await {
            tracing::error!(%error, "the stream processor stopped; order look-ups show the state it reached");
        }
    };
    let rollups = async move {
        if let Some(rollups) = rollups {
            rollups.await;
        }
    };
    crate::background::spawn_runtime("orderpulse-stream", crate::background::Priority::Deferred, async move {
        tokio::join!(processor, rollups);
    })
    .context("cannot start the stream processor's threads")?;
    let state = AppState::new(
        engine,
        QueryLimits::from_config(&config.api),
        Some(http_ingest),
        config.api.max_body_bytes,
        keys.clone(),
        config.carriers.generic.clone(),
    )
    .with_orders(lookup);
    let postgres_line = match &postgres {
        Some((pg, _)) => format!("psql -h {} -p {} -U orderpulse", pg.ip(), pg.port()),
        None => "off (api.pg_listen)".into(),
    };
    // A closed stdout must not stop the server, so write errors are ignored.
    let _ = writeln!(
        std::io::stdout(),
        "orderpulse is running\n  lake:   {}\n  API:    http://{address}  (health: http://{address}/healthz)\n  \
         SQL:    {postgres_line}\n  \
         try:    curl -s http://{address}/v1/sql -H 'content-type: application/json' \\\n            \
         -d '{{\"sql\": \"SELECT type, count(*) AS events FROM order_events GROUP BY type\"}}'\n  stop:   Ctrl-C",
        lake.root()
    );
    let server = tokio::spawn(serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    }));
    let Some((pg_address, postgres)) = postgres else {
        return server.await.context("the API task failed")?.context("the API server stopped");
    };
    tokio::select! {
        served = server => served.context("the API task failed")?.context("the API server stopped"),
        served = postgres => {
            let error = served.context("the Postgres task failed")?.err().unwrap_or_else(|| anyhow::anyhow!("it stopped"));
            Err(error.context(format!("cannot serve Postgres clients on {pg_address} (api.pg_listen)")))
        }
    }
}

/// Recomputes the KPI rollups every `kpi.rollup_interval`: the first time every day if a
/// rollup table is missing, then the last `kpi.rollup_days` days. A failed run is logged
/// and the next one tries again.
async fn roll_up_periodically(engine: crate::kpi::SqlEngine, lake: crate::lake::Lake, kpi: crate::config::KpiConfig, limits: QueryLimits) {
    use crate::kpi::rollup::{self, Window};
    let mut ticks = tokio::time::interval(kpi.rollup_interval);
    loop {
        ticks.tick().await;
        let mut missing = false;
        for (name, _) in engine.library().rollups() {
            missing |= lake.open_derived(name).await.map_or(true, |t| t.is_none());
        }
        let window = if missing { Window::Full } else { Window::trailing(kpi.rollup_days, chrono::Utc::now().date_naive()) };
        let started = std::time::Instant::now();
        match rollup::run(&engine, &lake, window, limits, kpi.rollup_joins).await {
            Ok(rolled) => tracing::info!(?window, rows = rolled.iter().map(|r| r.rows).sum::<usize>(), elapsed = ?started.elapsed(), "KPI rollups recomputed"),
            Err(error) => tracing::warn!(%error, "KPI rollups failed; the next run tries again"),
        }
    }
}
