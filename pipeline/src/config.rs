//! Configuration: one TOML file, overridden by `ORDERPULSE_SECTION__KEY` environment
//! variables, overridden by command-line flags. A bad value stops start-up with an error
//! that names the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything orderpulse can be told, with production-sane defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub lake: LakeConfig,
    pub ingest: IngestConfig,
    pub api: ApiConfig,
    pub simulator: SimulatorConfig,
    pub kafka: crate::source::kafka::KafkaConfig,
    pub kpi: KpiConfig,
    pub stream: StreamConfig,
    pub notify: NotifyConfig,
    pub carriers: CarriersConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Where the lake lives: `file:///abs/path` or a relative path, `memory://`, `s3://bucket/prefix`.
    pub url: String,
    /// Settings for `s3://` lakes on AWS or any S3-compatible store.
    pub s3: S3Config,
    /// Raw object-store options passed to the backend as they are (they win over `s3`).
    pub storage_options: HashMap<String, String>,
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig { url: "data/lake".into(), s3: S3Config::default(), storage_options: HashMap::new() }
    }
}

impl LakeConfig {
    /// The object-store options for the lake: the `s3` settings as the backend's keys,
    /// overridden by any explicit `storage_options`. Unset values fall back to the
    /// standard `AWS_*` environment variables and credential chain.
    pub fn object_store_options(&self) -> HashMap<String, String> {
        let s3 = &self.s3;
        let mut options = HashMap::new();
        let mut set = |key: &str, value: Option<&String>| {
            if let Some(value) = value {
                options.insert(key.to_owned(), value.clone());
            }
        };
        set("AWS_ENDPOINT_URL", s3.endpoint.as_ref());
        set("AWS_REGION", s3.region.as_ref());
        set("AWS_ACCESS_KEY_ID", s3.access_key_id.as_ref());
        set("AWS_SECRET_ACCESS_KEY", s3.secret_access_key.as_ref());
        if s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
            options.insert("AWS_ALLOW_HTTP".into(), "true".into());
        }
        if let Some(path_style) = s3.path_style {
            options.insert("AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into(), (!path_style).to_string());
        }
        options.extend(self.storage_options.clone());
        options
    }
}

/// Where and how to reach an S3 API. Commits use S3 conditional writes, so no lock
/// service (DynamoDB) is needed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `http(s)://host:port` of an S3-compatible store; AWS when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO, Ceph and most non-AWS
    /// stores want; virtual-hosted style when false.
    pub path_style: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Lines longer than this are quarantined as `line_too_long` without being parsed.
    pub max_line_bytes: usize,
    /// A batch is committed once it holds this many lines...
    pub batch_max_events: usize,
    /// ...or once its oldest line has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_max_age: Duration,
    /// How long (in arrival time) an event's id is remembered for deduplication...
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// ...and how many ids at most (16 bytes and some overhead each).
    pub dedup_max_ids: usize,
    /// HTTP ingest: how long a group commit waits for more requests after the first.
    #[serde(with = "humantime_serde")]
    pub group_commit_window: Duration,
    /// HTTP ingest: requests that may wait for a commit; more are answered 429.
    pub http_queue_requests: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_line_bytes: 1 << 20,
            batch_max_events: 250_000,
            batch_max_age: Duration::from_secs(2),
            dedup_window: Duration::from_secs(7 * 24 * 3600),
            dedup_max_ids: 10_000_000,
            group_commit_window: Duration::from_millis(10),
            http_queue_requests: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Address for Postgres clients (psql, psycopg, BI tools), or `off`.
    pub pg_listen: String,
    /// Most rows one `/v1/sql` answer returns; more is an error asking for a `LIMIT`.
    pub max_result_rows: usize,
    /// A result larger than this (in memory, close to its size on the wire) is refused.
    pub max_result_bytes: usize,
    /// Memory one query's operators may hold; past it the query is cancelled.
    pub query_memory_bytes: usize,
    /// A query running longer than this is cancelled.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// `POST /v1/events` bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            pg_listen: "127.0.0.1:5433".into(),
            max_result_rows: 100_000,
            max_result_bytes: 64 << 20,
            query_memory_bytes: 512 << 20,
            query_timeout: Duration::from_secs(30),
            max_body_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// The scenario file (`data/scenarios/*.toml`); the built-in default when absent.
    pub scenario: Option<PathBuf>,
    /// Events per second `orderpulse run` feeds into the lake.
    pub rate: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig { scenario: None, rate: 200.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// A folder laid out like the repository's `queries/` (KPI files, `views/`,
    /// `rollups/`) to use instead of the library built into the binary.
    pub queries_dir: Option<PathBuf>,
    /// How often `orderpulse run` recomputes the rollups (`kpi_daily_*`); `0s`: never
    /// (run `orderpulse kpi rollup` on a schedule of your own instead).
    #[serde(with = "humantime_serde")]
    pub rollup_interval: Duration,
    /// How many recent days each rollup run recomputes: the window in which late events
    /// correct past days (`orderpulse kpi rollup --full` recomputes all).
    pub rollup_days: u32,
    /// Memory one rollup query may hold (sorts spill to disk first); past it the run
    /// fails with an error naming the budget instead of exhausting the machine.
    pub rollup_memory_bytes: usize,
    /// How rollup queries join: `hash` (fastest; a query whose hash joins outgrow
    /// `rollup_memory_bytes` runs again with sort-merge joins) or `sort_merge` (always
    /// the joins that spill: for a budget known to be too small for hash joins).
    pub rollup_joins: crate::kpi::Joins,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            queries_dir: None,
            rollup_interval: Duration::from_secs(300),
            rollup_days: 35,
            rollup_memory_bytes: 4 << 30,
            rollup_joins: crate::kpi::Joins::Hash,
        }
    }
}

/// The stream processor: event time, timers, state retention and checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// How late (behind the largest event time seen) an event may arrive and still be
    /// placed before any timer reads it.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// After this long without new events the watermark advances with the clock.
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// A shipped parcel with no moving scan after this long fires `label_not_scanned`.
    #[serde(with = "humantime_serde")]
    pub label_scan_after: Duration,
    /// An undelivered parcel with no scan for this long fires `no_scan_for`.
    #[serde(with = "humantime_serde")]
    pub no_scan_after: Duration,
    /// A parcel scanned this long ago that no `order.shipped` names fires
    /// `parcel_unclaimed` (its scans stay held for the order).
    #[serde(with = "humantime_serde")]
    pub unclaimed_after: Duration,
    /// How long a finished order (delivered, completed, cancelled, returned) stays in the
    /// hot state after its last event.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long any order stays after its last event.
    #[serde(with = "humantime_serde")]
    pub max_idle: Duration,
    /// How long an order may lack its `order.created` before it is flagged.
    #[serde(with = "humantime_serde")]
    pub missing_created_grace: Duration,
    /// How often the state is checkpointed (and `order_status` updated).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// How often the processor looks for new commits when caught up.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        StreamConfig {
            allowed_lateness: hour,
            idle_after: Duration::from_secs(30),
            label_scan_after: 24 * hour,
            no_scan_after: 72 * hour,
            unclaimed_after: 48 * hour,
            retention: 30 * 24 * hour,
            max_idle: 60 * 24 * hour,
            missing_created_grace: 6 * hour,
            checkpoint_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl StreamConfig {
    /// The processor's options from this section.
    pub fn processor_options(&self) -> crate::stream::processor::ProcessorOptions {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        crate::stream::processor::ProcessorOptions {
            settings: crate::stream::StreamSettings {
                allowed_lateness: micros(self.allowed_lateness),
                label_scan_after: micros(self.label_scan_after),
                no_scan_after: micros(self.no_scan_after),
                unclaimed_after: micros(self.unclaimed_after),
                retention: micros(self.retention),
                max_idle: micros(self.max_idle),
                missing_created_grace: micros(self.missing_created_grace),
            },
            poll_interval: self.poll_interval,
            checkpoint_interval: self.checkpoint_interval,
            idle_after: self.idle_after,
        }
    }
}

/// Texts for customers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// A folder of `<language>.jinja` order-status templates, added to (and overriding)
    /// the built-in ones (`en`, `de`); see `pipeline/templates/status/`.
    pub status_templates_dir: Option<PathBuf>,
}

/// Carriers beyond the built-in adapters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarriersConfig {
    /// `[carriers.generic.<code>]`: a mapping table per carrier (see `carriers::generic`).
    pub generic: crate::carriers::GenericCarriers,
}

/// Who may call the API and the Postgres port. No keys: authentication is off and every
/// caller is an admin (the local default; `orderpulse run` warns about it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `[[auth.keys]]` entries: name, role (admin, analyst, merchant), merchant, sha256.
    pub keys: Vec<crate::api::auth::ApiKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `orderpulse=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "warn,orderpulse=info,buoyant_kernel=off,deltalake_core::writer::stats=error".into() }
    }
}

/// A configuration that could not be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}` {problem}")]
    BadValue { key: &'static str, problem: String },
}

impl Config {
    /// Defaults, then the file (if given), then `ORDERPULSE_SECTION__KEY` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only double-underscore names are sections; `ORDERPULSE_LAKE` is the flag's.
        figment = figment.merge(Env::prefixed("ORDERPULSE_").filter(|key| key.as_str().contains("__")).split("__"));
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: &str| Err(ConfigError::BadValue { key, problem: problem.to_owned() });
        if self.lake.url.trim().is_empty() {
            return bad("lake.url", "is empty");
        }
        if let Some(endpoint) = &self.lake.s3.endpoint
            && !url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return bad("lake.s3.endpoint", &format!("{endpoint:?} is not an http(s) URL"));
        }
        if self.ingest.batch_max_events == 0 {
            return bad("ingest.batch_max_events", "must be at least 1");
        }
        if self.ingest.max_line_bytes < 64 {
            return bad("ingest.max_line_bytes", "must be at least 64 bytes");
        }
        if self.ingest.http_queue_requests == 0 {
            return bad("ingest.http_queue_requests", "must be at least 1");
        }
        if self.ingest.dedup_max_ids == 0 {
            return bad("ingest.dedup_max_ids", "must be at least 1");
        }
        if self.ingest.batch_max_age.is_zero() {
            return bad("ingest.batch_max_age", "must be longer than zero");
        }
        if !(self.simulator.rate.is_finite() && self.simulator.rate > 0.0) {
            return bad("simulator.rate", "must be a positive number of events per second");
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("api.listen", &format!("{:?} is not an address such as 127.0.0.1:8080", self.api.listen));
        }
        if self.api.pg_listen != "off" && self.api.pg_listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("api.pg_listen", &format!("{:?} is neither an address such as 127.0.0.1:5433 nor `off`", self.api.pg_listen));
        }
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers", "is empty");
        }
        if self.kafka.group_id.trim().is_empty() {
            return bad("kafka.group_id", "is empty");
        }
        if self.kpi.rollup_memory_bytes < 16 << 20 {
            return bad("kpi.rollup_memory_bytes", "must be at least 16 MiB (16777216)");
        }
        let stream = &self.stream;
        let positive = [
            ("stream.label_scan_after", stream.label_scan_after),
            ("stream.no_scan_after", stream.no_scan_after),
            ("stream.unclaimed_after", stream.unclaimed_after),
            ("stream.retention", stream.retention),
            ("stream.max_idle", stream.max_idle),
            ("stream.checkpoint_interval", stream.checkpoint_interval),
            ("stream.poll_interval", stream.poll_interval),
            ("stream.idle_after", stream.idle_after),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return bad(key, "must be longer than zero");
            }
        }
        if stream.max_idle < stream.retention {
            return bad("stream.max_idle", "must be at least stream.retention");
        }
        if self.kpi.rollup_days == 0 {
            return bad("kpi.rollup_days", "must be at least 1");
        }
        if let Some(dir) = &self.notify.status_templates_dir
            && !dir.is_dir()
        {
            return bad("notify.status_templates_dir", &format!("{} is not a folder", dir.display()));
        }
        if let Some(dir) = &self.kpi.queries_dir
            && !dir.is_dir()
        {
            return bad("kpi.queries_dir", &format!("{} is not a folder", dir.display()));
        }
        for (carrier, mapping) in &self.carriers.generic {
            if let Err(problem) = mapping.check() {
                return Err(ConfigError::Invalid(format!("`carriers.generic.{carrier}`: {problem}")));
            }
        }
        if let Err(problem) = crate::api::auth::Keys::new(&self.auth.keys) {
            return bad("auth.keys", &problem);
        }
        if self.api.max_result_rows == 0 {
            return bad("api.max_result_rows", "must be at least 1");
        }
        if self.api.max_result_bytes < 1024 {
            return bad("api.max_result_bytes", "must be at least 1024");
        }
        if self.api.query_memory_bytes < 1 << 20 {
            return bad("api.query_memory_bytes", "must be at least 1 MiB (1048576)");
        }
        Ok(())
    }
}

/// Names each bad key as `section.key` (figment reports environment keys in upper case)
/// with where the value came from.
fn describe(errors: figment::Error) -> ConfigError {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let origin = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
            if key.is_empty() {
                format!("{}{origin}", e.kind)
            } else {
                format!("`{key}`: {}{origin}", e.kind)
            }
        })
        .collect();
    ConfigError::Invalid(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderpulse.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn the_example_file_in_the_repository_loads() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../orderpulse.example.toml");
        let config = Config::load(Some(Path::new(example))).unwrap();
        assert_eq!(config.ingest.batch_max_age, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[ingest]\nbatch_max_events = \"many\"", "batch_max_events"),
            ("[ingest]\nbatch_max_events = 0", "ingest.batch_max_events"),
            ("[ingest]\ndedup_window = \"a while\"", "dedup_window"),
            ("[api]\nlisten = \"localhost\"", "api.listen"),
            ("[simulator]\nrate = -5", "simulator.rate"),
            ("[lake]\nurll = \"x\"", "urll"),
            ("[lake.s3]\nendpoint = \"localhost:9000\"", "lake.s3.endpoint"),
        ];
        for (text, key) in cases {
            let err = load_text(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} gave {err:?}, which does not name {key}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Config::load(Some(Path::new("/nonexistent/orderpulse.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/orderpulse.toml"));
    }
}
