//! `orderpulse simulate`: a scenario's streams as NDJSON, to a file or stdout, as fast as
//! possible or at a rate, with its ground truth beside it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::source::simulator::scenario::Faults;
use crate::source::simulator::{Scenario, Simulator};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML, see data/scenarios/); the built-in default when absent.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the number of days.
    #[arg(long)]
    days: Option<u32>,
    /// Override the orders per day.
    #[arg(long)]
    orders_per_day: Option<f64>,
    /// Override the first day (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long)]
    start: Option<chrono::DateTime<chrono::Utc>>,
    /// Output file; - (the default) for stdout.
    #[arg(long, short, default_value = "-")]
    out: String,
    /// Produce into Kafka instead (kafka://host:port[,host:port]), one topic per stream
    /// as `[kafka.topics]` names them, keyed by order id.
    #[arg(long, conflicts_with = "out")]
    to: Option<String>,
    /// Where to write the ground truth (JSON); defaults to OUT.truth.json for a file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Lines per second; as fast as possible when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Share of events delivered twice.
    #[arg(long)]
    duplicates: Option<f64>,
    /// Share of events delivered out of order.
    #[arg(long)]
    out_of_order: Option<f64>,
    /// Share of events delivered late (see --late-hours).
    #[arg(long)]
    late: Option<f64>,
    /// How late a late event arrives, in hours of event time.
    #[arg(long, default_value_t = 6.0)]
    late_hours: f64,
    /// Malformed lines added per event.
    #[arg(long)]
    malformed: Option<f64>,
}

/// Loads a scenario file, or the built-in default.
pub fn load_scenario(path: Option<&PathBuf>) -> anyhow::Result<Scenario> {
    match path {
        None => Ok(Scenario::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read scenario {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("scenario {}", path.display()))
        }
    }
}

pub fn execute(args: Args, config: &Config) -> anyhow::Result<()> {
    let mut scenario = load_scenario(args.scenario.as_ref().or(config.simulator.scenario.as_ref()))?;
    scenario.seed = args.seed.unwrap_or(scenario.seed);
    scenario.days = args.days.unwrap_or(scenario.days);
    scenario.orders_per_day = args.orders_per_day.unwrap_or(scenario.orders_per_day);
    scenario.start = args.start.unwrap_or(scenario.start);
    let faults = &scenario.faults;
    scenario.faults = Faults {
        duplicate_rate: args.duplicates.unwrap_or(faults.duplicate_rate),
        out_of_order_rate: args.out_of_order.unwrap_or(faults.out_of_order_rate),
        late_rate: args.late.unwrap_or(faults.late_rate),
        late_hours: if args.late.is_some() { args.late_hours } else { faults.late_hours },
        malformed_rate: args.malformed.unwrap_or(faults.malformed_rate),
    };
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of lines per second");
    }
    let days = scenario.days;
    let mut simulator = Simulator::new(scenario).map_err(|e| anyhow::anyhow!("invalid scenario: {e}"))?;

    if let Some(target) = &args.to {
        let brokers = target.strip_prefix("kafka://").ok_or_else(|| anyhow::anyhow!("--to must be kafka://host:port, not {target:?}"))?;
        let mut kafka = config.kafka.clone();
        kafka.brokers = brokers.to_owned();
        let sent = produce(&mut simulator, &kafka, args.rate)?;
        eprintln!("produced {} messages to {brokers}", super::grouped(sent));
        return Ok(());
    }
    let to_file = args.out != "-";
    let mut out: Box<dyn Write> = if to_file {
        Box::new(BufWriter::with_capacity(1 << 20, File::create(&args.out).with_context(|| format!("cannot create {}", args.out))?))
    } else {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    };
    let progress = if to_file {
        ProgressBar::new(u64::from(days)).with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} day {pos}/{len}  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut written = 0u64;
    while let Some(line) = simulator.next() {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        written += 1;
        if let Some(rate) = args.rate {
            let due = started + Duration::from_secs_f64(written as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                out.flush()?;
                std::thread::sleep(wait);
            }
        }
        if written.is_multiple_of(50_000) {
            progress.set_position(u64::from(simulator.days_done()));
            progress.set_message(format!("{} lines", super::grouped(written)));
        }
    }
    out.flush()?;
    progress.finish_and_clear();

    let truth_path = args.truth.or_else(|| to_file.then(|| PathBuf::from(format!("{}.truth.json", args.out))));
    if let Some(path) = truth_path {
        std::fs::write(&path, serde_json::to_vec_pretty(&simulator.truth())?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if to_file {
        let truth = simulator.truth();
        eprintln!(
            "wrote {} lines ({} orders, {} events) to {} in {:.1} s",
            super::grouped(truth.lines),
            super::grouped(truth.orders),
            super::grouped(truth.events),
            args.out,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Sends every line to its stream's topic, keyed by order id (carrier scans without one:
/// by tracking number). Lines that do not decode go to the orders topic without a key,
/// where ingest quarantines them like any bad line. Waits until all are delivered.
fn produce(simulator: &mut Simulator, kafka: &crate::source::kafka::KafkaConfig, rate: Option<f64>) -> anyhow::Result<u64> {
    use crate::model::{decode_line, DecodeLimits, Stream};
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

    let producer: ThreadedProducer<DefaultProducerContext> = kafka.producer_config().create().context("creating the Kafka producer")?;
    let limits = DecodeLimits::default();
    let topic_of = |stream: Stream| kafka.topics.get(&stream).cloned().unwrap_or_else(|| stream.as_str().to_owned());
    let started = Instant::now();
    let mut sent = 0u64;
    for line in simulator.by_ref() {
        let (topic, key) = match decode_line(line.as_bytes(), &limits) {
            Ok(event) => (topic_of(event.stream()), crate::source::kafka::message_key(&event)),
            Err(_) => (topic_of(Stream::Orders), None),
        };
        let mut record = BaseRecord::to(&topic).payload(&line);
        if let Some(key) = &key {
            record = record.key(key.as_str());
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match producer.send(r) {
                Ok(()) => {}
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    std::thread::sleep(Duration::from_millis(5));
                    record = Some(r);
                }
                Err((e, _)) => anyhow::bail!("producing to {topic}: {e}"),
            }
        }
        sent += 1;
        if let Some(rate) = rate
            && let Some(wait) = (started + Duration::from_secs_f64(sent as f64 / rate)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
    }
    producer.flush(Duration::from_secs(60)).context("delivering the last messages to Kafka")?;
    Ok(sent)
}
