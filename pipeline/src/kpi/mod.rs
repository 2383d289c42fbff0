//! SQL over the lake with DataFusion: the engine behind `orderpulse sql`, `/v1/sql`,
//! `orderpulse kpi` and `/v1/kpis`, with the KPI files of `queries/` ([`library`]).
//!
//! Every query gets a fresh session over the tables' latest committed versions, so a
//! query sees everything committed before it started and nothing half-written. The
//! session also has the library's views (`orders`, `parcels`, `tickets`). The tables'
//! snapshots are kept between queries and brought up to date for each ([`snapshots`]).

mod active;
mod first_last;
pub mod format;
mod latest;
pub mod library;
pub mod rollup;
mod snapshots;
mod tenancy;

pub use tenancy::Scope;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache, DEFAULT_METADATA_CACHE_LIMIT};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use self::library::{KpiError, KpiParams, Library};
use self::snapshots::{Snapshots, TableRef};
use crate::lake::{Lake, LakeError};
use crate::model::schema::LakeTable;

/// Why a query gave no result. `is_client_error` separates the user's mistakes (bad SQL,
/// too many rows, too slow) from the server's.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Sql(String),
    #[error("statement refused: {0}")]
    Refused(String),
    #[error("the result has more than {limit} rows; add a LIMIT or aggregate")]
    TooManyRows { limit: usize },
    #[error("the result is larger than {limit} bytes; select fewer columns or rows")]
    TooLarge { limit: usize },
    #[error("the query needs more than its memory budget of {limit} bytes and was cancelled: {detail}")]
    OverMemory { limit: usize, detail: String },
    #[error("the query ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    #[error(transparent)]
    Kpi(#[from] KpiError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("query failed: {0}")]
    Execution(String),
}

impl QueryError {
    pub fn is_client_error(&self) -> bool {
        !matches!(self, QueryError::Lake(_) | QueryError::Execution(_))
    }

    /// An over-budget error names the budget of `limits` (DataFusion's says only what
    /// was left).
    fn over(self, limits: QueryLimits) -> Self {
        match self {
            QueryError::OverMemory { detail, .. } => QueryError::OverMemory { limit: limits.max_memory_bytes, detail },
            other => other,
        }
    }

    fn from_datafusion(error: DataFusionError) -> Self {
        let root = error.find_root();
        let message = root.to_string();
        if is_refusal(&message) {
            return QueryError::Refused(message);
        }
        match root {
            DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => QueryError::Sql(message),
            DataFusionError::ResourcesExhausted(detail) => QueryError::OverMemory { limit: 0, detail: detail.clone() },
            _ => QueryError::Execution(error.to_string()),
        }
    }
}

/// Whether a planning error is a read-only session's refusal: `SQLOptions` refusals
/// arrive as plan errors with these words.
pub(crate) fn is_refusal(message: &str) -> bool {
    ["DDL not supported", "DML not supported", "Statement not supported"].iter().any(|words| message.contains(words))
}

/// The table a DataFusion "table 'datafusion.public.orders' not found" error names, without
/// its catalog and schema.
pub(crate) fn not_found_table(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("table '")?;
    let (qualified, _) = rest.split_once("' not found")?;
    qualified.rsplit('.').next()
}

/// Bounds on one query: a query past any of them is cancelled with a [`QueryError`]
/// that names the limit, and the server stays up.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_rows: usize,
    /// Bytes of the result (its Arrow arrays in memory, close to the size on the wire).
    pub max_result_bytes: usize,
    /// Memory the query's operators may hold (sorts spill to disk first).
    pub max_memory_bytes: usize,
    pub timeout: Duration,
}

impl QueryLimits {
    /// The limits the API applies to every query (`[api]` in the configuration).
    pub fn from_config(api: &crate::config::ApiConfig) -> Self {
        QueryLimits {
            max_rows: api.max_result_rows,
            max_result_bytes: api.max_result_bytes,
            max_memory_bytes: api.query_memory_bytes,
            timeout: api.query_timeout,
        }
    }

    /// Only a time limit: for the command line and internal queries, whose caller
    /// owns the machine.
    pub fn time_only(timeout: Duration) -> Self {
        QueryLimits { max_rows: usize::MAX, max_result_bytes: usize::MAX, max_memory_bytes: usize::MAX, timeout }
    }

    /// The limits of a rollup query: `kpi.rollup_memory_bytes` of memory, and twenty
    /// times an API query's time (a rollup reads every event of its window).
    pub fn for_rollups(config: &crate::config::Config) -> Self {
        QueryLimits { max_memory_bytes: config.kpi.rollup_memory_bytes, ..QueryLimits::time_only(config.api.query_timeout * 20) }
    }
}

/// How a query's joins are planned, and how its memory budget is shared
/// (`kpi.rollup_joins` for the rollups; every other query uses hash joins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joins {
    /// Hash joins (DataFusion's default): the fastest, but a join's build side must fit
    /// in the memory budget, since DataFusion's hash joins do not spill. The budget goes
    /// to whichever operator asks first. A rollup that runs out of it is run again with
    /// sort-merge joins.
    Hash,
    /// Sort-merge joins: slower, but their sorts spill to disk, so a join of any size
    /// finishes within the budget. For batch work that ran out of memory with hash joins.
    /// The budget is shared fairly between the spilling operators: first come, first
    /// served, the first sort took it all and the next one failed before it could spill
    /// (measured: a 384 MiB `--full` rollup of the 1M-order bench lake).
    SortMerge,
}

/// How many of the largest memory consumers an over-budget error names.
const TOP_CONSUMERS_NAMED: NonZeroUsize = NonZeroUsize::new(5).expect("not zero");

/// A query's rows, with the schema even when there are none.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs read-only SQL over the lake's tables and the KPI library's views.
#[derive(Clone, Debug)]
pub struct SqlEngine {
    /// The lake's tables, as loaded by this engine's earlier queries.
    snapshots: Snapshots,
    library: Arc<Library>,
    /// Whose rows the sessions show (see [`tenancy`]).
    scope: Scope,
    /// For a trailing rollup: only the events of what was active in its window (see
    /// [`active`]).
    active: Option<Arc<active::ActiveKeys>>,
    footers: FooterCache,
}

/// The Parquet footers earlier queries read, kept for the next ones (shared by every
/// clone and scope of one engine, within DataFusion's default 50 MiB): the lake's files
/// never change once written, and without it every query opens and parses the footer of
/// every file it scans again.
#[derive(Clone)]
struct FooterCache(Arc<FileMetadataCache>);

impl FooterCache {
    fn new() -> Self {
        FooterCache(Arc::new(DefaultCache::new(DEFAULT_METADATA_CACHE_LIMIT).with_name("parquet footers")))
    }
}

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterCache").field("files", &self.0.len()).finish()
    }
}

impl SqlEngine {
    /// An engine with the KPI library built into the binary.
    pub fn new(lake: Lake) -> Self {
        SqlEngine::with_library(lake, Library::builtin())
    }

    pub fn with_library(lake: Lake, library: Arc<Library>) -> Self {
        SqlEngine { snapshots: Snapshots::new(lake), library, scope: Scope::All, active: None, footers: FooterCache::new() }
    }

    /// The same engine, showing only what `scope` may see.
    pub fn scoped(&self, scope: Scope) -> Self {
        SqlEngine { scope, ..self.clone() }
    }

    /// The same engine, showing only the events of the orders, parcels and tickets in
    /// `keys` (a trailing rollup's).
    fn only_active(&self, keys: active::ActiveKeys) -> Self {
        SqlEngine { active: Some(Arc::new(keys)), ..self.clone() }
    }

    pub fn library(&self) -> &Library {
        &self.library
    }

    /// A session with every existing lake table registered under its name (at its
    /// latest snapshot), and the library's views over them.
    pub async fn session(&self) -> Result<SessionContext, LakeError> {
        self.build_session(false, None, Joins::Hash).await
    }

    /// A session for a long life (the Postgres wire protocol): each scan reads its
    /// table's latest snapshot, so the session sees every commit made after it was built.
    /// Tables created later are not in it (see [`SqlEngine::has_new_tables`]). Its
    /// queries hold at most `memory_limit` bytes together.
    pub async fn live_session(&self, memory_limit: usize) -> Result<SessionContext, LakeError> {
        self.build_session(true, Some(memory_limit), Joins::Hash).await
    }

    /// Whether the lake now has a table that `ctx`, a session built before, lacks (a new
    /// lake's first events, the first rollup, the stream processor's first output): a
    /// long-lived session should then be built again. Looks in the store only for the
    /// tables the session lacks.
    pub async fn has_new_tables(&self, ctx: &SessionContext) -> Result<bool, LakeError> {
        for table in self.tables() {
            if !ctx.table_exist(table.name()).map_err(|e| table.error(e))? && self.has(table).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A query naming a table orderpulse knows but the lake does not have yet is told
    /// what creates it (DataFusion says only that it is not found).
    async fn explain_not_found(&self, error: QueryError) -> QueryError {
        match error {
            QueryError::Sql(message) => QueryError::Sql(self.explain_absent_table(message).await),
            other => other,
        }
    }

    /// A planning error's `message`, with what would create the table it says is not
    /// found when orderpulse knows that table and the lake lacks it yet.
    pub async fn explain_absent_table(&self, message: String) -> String {
        if let Some(name) = not_found_table(&message)
            && let Some(reason) = self.why_absent(name).await
        {
            return format!("{message}: {reason}");
        }
        message
    }

    /// What would create `name`, if it is a table or view orderpulse knows and the lake
    /// does not have it (a merchant's session lacks the quarantine although the lake has
    /// it: no reason then).
    async fn why_absent(&self, name: &str) -> Option<&'static str> {
        const NO_EVENTS: &str =
            "the lake has no events yet (`orderpulse ingest`, `POST /v1/events`, the Kafka source or the simulator of `orderpulse run` bring them)";
        if self.library.views().iter().any(|(view, _)| view == name) {
            for table in LakeTable::EVENTS {
                if matches!(self.has(TableRef::Event(table)).await, Ok(false)) {
                    return Some(NO_EVENTS);
                }
            }
            return None;
        }
        let table = self.tables().into_iter().find(|table| table.name() == name)?;
        // A failure to look says nothing: no reason is given then.
        if !matches!(self.has(table).await, Ok(false)) {
            return None;
        }
        Some(match table {
            TableRef::Event(_) => NO_EVENTS,
            TableRef::Derived(name) if crate::stream::output::TABLES.contains(&name) => {
                "the stream processor has not written it yet (`orderpulse process`, or `orderpulse run`)"
            }
            TableRef::Derived(_) => "the KPI rollups have not run on this lake yet (`orderpulse kpi rollup`, or `orderpulse run` on its schedule)",
        })
    }

    /// Whether the lake has `table`.
    async fn has(&self, table: TableRef<'_>) -> Result<bool, LakeError> {
        Ok(self.snapshots.latest(table).await?.is_some())
    }

    /// Every table a session can have: the event tables, then the derived ones (the KPI
    /// rollups and the stream processor's outputs, each with a `merchant_id` column).
    fn tables(&self) -> Vec<TableRef<'_>> {
        let derived = self.library.rollups().iter().map(|(name, _)| name.as_str()).chain(crate::stream::output::TABLES);
        LakeTable::ALL.into_iter().map(TableRef::Event).chain(derived.map(TableRef::Derived)).collect()
    }

    /// `memory_limit`: the bytes the session's queries may hold together (none: unbounded).
    async fn build_session(&self, live: bool, memory_limit: Option<usize>, joins: Joins) -> Result<SessionContext, LakeError> {
        // Strings are read as plain `Utf8`, not as string views: a view array keeps the
        // whole buffers of the pages it was cut from, and a hash join's build side holds
        // its input's batches, so a join of the views over 8M scans held 10+ GB where
        // plain strings need 2 GB (measured on the 1M-order bench lake, DataFusion 55).
        //
        // The views group events by the entity they are about (an order, a parcel, a
        // ticket), a handful of events each, spread over many files: a partial aggregate
        // ahead of the repartition cannot shrink that input much and only hashes every key
        // twice. It is skipped as soon as its first rows show under ten rows per group
        // (DataFusion's default waits for under 1.25); low-cardinality groupings (by
        // carrier, day, merchant) keep it. Measured on the 1M-order bench lake: the
        // order-level KPIs (`time_to_ship`, `ticket_volume`, `wismo_share`) 0.6-0.8x of
        // the time, the parcel KPIs 0.65-0.9x.
        let mut config = SessionConfig::new().with_information_schema(true).set_bool("datafusion.execution.parquet.schema_force_view_types", false);
        config.options_mut().execution.skip_partial_aggregation_probe_ratio_threshold = 0.1;
        config.options_mut().optimizer.prefer_hash_join = joins == Joins::Hash;
        let runtime = match (memory_limit, joins) {
            (None, _) => RuntimeEnvBuilder::new(),
            (Some(bytes), Joins::Hash) => RuntimeEnvBuilder::new().with_memory_limit(bytes, 1.0),
            (Some(bytes), Joins::SortMerge) => {
                // Every sort sets aside room to merge what it spilled (10 MiB by default),
                // and a plan of sort-merge joins has dozens of sorts: the room a sort sets
                // aside is cut to a 64th of the budget, or the sorts of a small budget
                // would fail before any of them could spill.
                let execution = &mut config.options_mut().execution;
                execution.sort_spill_reservation_bytes = execution.sort_spill_reservation_bytes.min(bytes / 64);
                RuntimeEnvBuilder::new().with_memory_pool(Arc::new(TrackConsumersPool::new(FairSpillPool::new(bytes), TOP_CONSUMERS_NAMED)))
            }
        }
        .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(Some(self.footers.0.clone())))
        .build_arc()
        .map_err(|e| LakeError::Other { what: "a query's runtime", message: e.to_string() })?;
        // The lake's tables as they are. For a merchant they stay in a private catalog
        // and the session gets restricted views of them under the same names.
        let raw = SessionContext::new_with_config_rt(config.clone(), runtime.clone());
        // The tables' snapshots are brought up to date together: each lists its table's
        // log, and one after the other those listings were most of a small query's time.
        let tables = self.tables();
        let providers = futures::future::try_join_all(tables.iter().map(|table| async {
            let Some(delta) = self.snapshots.latest(*table).await? else { return Ok(None) };
            let provider = self.provider(&delta, table.name(), live, &raw).await.map_err(|e| table.error(e))?;
            Ok::<_, LakeError>(Some((*table, provider)))
        }))
        .await?;
        let mut present = Vec::new();
        for (table, provider) in providers.into_iter().flatten() {
            raw.register_table(table.name(), provider).map_err(|e| table.error(e))?;
            present.push(table);
        }
        let raw = match &self.active {
            None => raw,
            Some(active) => {
                active.restrict(&raw, &present).await.map_err(|e| LakeError::Other { what: "a trailing rollup's events", message: e.to_string() })?
            }
        };
        let ctx = match &self.scope {
            Scope::All => raw,
            Scope::Merchant(merchant) => {
                let ctx = SessionContext::new_with_config_rt(config, runtime);
                for table in present {
                    let view = match table {
                        TableRef::Event(event_table) => tenancy::restricted(&raw, event_table, merchant).await,
                        TableRef::Derived(name) => tenancy::restricted_derived(&raw, name, merchant).await,
                    };
                    ctx.register_table(table.name(), view.map_err(|e| table.error(e))?).map_err(|e| table.error(e))?;
                }
                ctx
            }
        };
        // Ordered `first_value`/`last_value` (the views' last status and pickup region)
        // with a faster grouped accumulator than DataFusion's; same names, same results.
        first_last::register(&ctx);
        for (name, statement) in self.library.views() {
            // A view over a table the lake does not have yet (a new lake) is left out; a
            // query naming it then says the table is not found.
            if let Err(error) = ctx.sql(statement).await {
                tracing::debug!(view = name, %error, "view not created");
            }
        }
        Ok(ctx)
    }

    /// A table's provider for a session over `ctx`: its current snapshot, or (`live`)
    /// whatever snapshot is latest at each scan.
    async fn provider(
        &self,
        delta: &deltalake::DeltaTable,
        name: &str,
        live: bool,
        ctx: &SessionContext,
    ) -> Result<Arc<dyn datafusion::datasource::TableProvider>, deltalake::DeltaTableError> {
        // The session's settings (plain strings) decide how the Delta scan reads, and its
        // runtime holds the footer cache the scan reads through; a state of those alone,
        // not of its tables, which would hold the provider itself.
        let settings = Arc::new(SessionStateBuilder::new().with_config(ctx.copied_config()).with_runtime_env(ctx.runtime_env()).build());
        let provider = delta.table_provider().with_session(settings.clone()).await?;
        delta.update_datafusion_session(&ctx.state())?;
        Ok(if live { Arc::new(latest::LatestSnapshot::new(self.snapshots.clone(), name, provider.schema(), settings)) } else { provider })
    }

    /// Runs one read-only statement and collects its rows, within `limits`.
    pub async fn query(&self, sql: &str, limits: QueryLimits) -> Result<QueryResult, QueryError> {
        self.execute(sql, None, limits, Joins::Hash).await
    }

    /// Runs the library's KPI `name` with `params`, within `limits`.
    pub async fn kpi(&self, name: &str, params: &KpiParams, limits: QueryLimits) -> Result<QueryResult, QueryError> {
        let kpi = self.library.get(name)?;
        let values = kpi.bind(params)?;
        self.execute(&kpi.sql, Some(values), limits, Joins::Hash).await
    }

    async fn execute(&self, sql: &str, params: Option<ParamValues>, limits: QueryLimits, joins: Joins) -> Result<QueryResult, QueryError> {
        let run = async {
            let memory_limit = (limits.max_memory_bytes < usize::MAX).then_some(limits.max_memory_bytes);
            let ctx = self.build_session(false, memory_limit, joins).await?;
            let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
            let mut frame = match ctx.sql_with_options(sql, read_only).await {
                Ok(frame) => frame,
                Err(error) => return Err(self.explain_not_found(QueryError::from_datafusion(error)).await),
            };
            if let Some(params) = params {
                frame = frame.with_param_values(params).map_err(QueryError::from_datafusion)?;
            }
            let mut stream = frame.execute_stream().await.map_err(QueryError::from_datafusion)?;
            // The executed plan's schema, which the batches have: the logical one may say
            // `Utf8` where an expression yields string views (a `CAST(... AS VARCHAR)`),
            // and an Arrow stream written under it would not read back.
            let schema: SchemaRef = stream.schema();
            let mut batches = Vec::new();
            let (mut rows, mut bytes) = (0, 0);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| QueryError::from_datafusion(e).over(limits))?;
                rows += batch.num_rows();
                bytes += batch.get_array_memory_size();
                if rows > limits.max_rows {
                    return Err(QueryError::TooManyRows { limit: limits.max_rows });
                }
                if bytes > limits.max_result_bytes {
                    return Err(QueryError::TooLarge { limit: limits.max_result_bytes });
                }
                batches.push(batch);
            }
            Ok(QueryResult { schema, batches })
        };
        tokio::time::timeout(limits.timeout, run).await.map_err(|_| QueryError::Timeout(limits.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_found_error_names_its_table() {
        let cases = [
            ("Error during planning: table 'datafusion.public.order_status' not found", Some("order_status")),
            ("table 'orders' not found", Some("orders")),
            ("Schema error: No field named carrier", None),
            ("table 'orders' is fine", None),
        ];
        for (message, table) in cases {
            assert_eq!(not_found_table(message), table, "{message}");
        }
    }
}
