//! The KPI library: one SQL file per KPI in `queries/`, the views they share in
//! `queries/views/`, and the daily rollups in `queries/rollups/` (see [`super::rollup`]).
//!
//! A KPI file starts with a comment block: its title on the first line, a
//! `group_by: a, b, ...` line naming the groupings it supports (the first is the
//! default), and its definition in words. The SQL takes four named parameters, bound as
//! values (never pasted into the text), so the same file runs unchanged in DuckDB:
//!
//! | parameter   | type                | meaning                                   |
//! |-------------|---------------------|-------------------------------------------|
//! | `$merchant` | text or NULL        | one merchant's rows; NULL for all         |
//! | `$from`     | timestamp (UTC)     | start of the period, inclusive            |
//! | `$to`       | timestamp (UTC)     | end of the period, exclusive; the "as of" |
//! | `$group_by` | text                | one of the file's `group_by` values       |
//!
//! The files are embedded in the binary at build time; `kpi.queries_dir` in the
//! configuration loads another folder instead (same layout), so analysts can add a KPI
//! without a rebuild.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/queries.rs"));
}

/// Why a KPI could not be loaded or run with the given parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KpiError {
    #[error("no KPI named {name:?}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("{name}: {problem}")]
    BadFile { name: String, problem: String },
    #[error("reading the KPI folder {path}: {message}")]
    Folder { path: String, message: String },
    #[error("parameter {parameter}: {problem}")]
    BadParameter { parameter: &'static str, problem: String },
}

/// One KPI: its SQL and what its header says about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kpi {
    pub name: String,
    pub title: String,
    /// The definition in words, as written at the top of the file.
    pub definition: String,
    /// Supported values of `$group_by`; the first is the default.
    pub group_by: Vec<String>,
    #[serde(skip)]
    pub sql: String,
}

impl Kpi {
    /// Reads a KPI file: the header comment, then the query.
    pub fn parse(name: &str, text: &str) -> Result<Kpi, KpiError> {
        let bad = |problem: &str| KpiError::BadFile { name: name.to_owned(), problem: problem.to_owned() };
        let header: Vec<&str> =
            text.lines().map_while(|line| line.trim_start().strip_prefix("--")).map(|line| line.strip_prefix(' ').unwrap_or(line)).collect();
        let title = header.first().map(|t| t.trim()).filter(|t| !t.is_empty()).ok_or_else(|| bad("the first line must be `-- <title>`"))?;
        let group_by: Vec<String> = header
            .iter()
            .find_map(|line| line.strip_prefix("group_by:"))
            .ok_or_else(|| bad("the header has no `-- group_by: ...` line"))?
            .split(',')
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        if group_by.is_empty() {
            return Err(bad("`group_by:` names no grouping"));
        }
        let definition = header.iter().skip(1).filter(|line| !line.starts_with("group_by:")).copied().collect::<Vec<_>>().join("\n").trim().to_owned();
        if definition.is_empty() {
            return Err(bad("the header must define the KPI in words"));
        }
        Ok(Kpi { name: name.to_owned(), title: title.to_owned(), definition, group_by, sql: text.to_owned() })
    }

    /// The parameter values for one run, checked against what this KPI supports.
    pub fn bind(&self, params: &KpiParams) -> Result<ParamValues, KpiError> {
        let group_by = params.group_by.as_deref().unwrap_or(&self.group_by[0]);
        if !self.group_by.iter().any(|g| g == group_by) {
            return Err(KpiError::BadParameter {
                parameter: "group_by",
                problem: format!("{} cannot be grouped by {group_by:?}; choose one of {}", self.name, self.group_by.join(", ")),
            });
        }
        if params.from >= params.to {
            return Err(KpiError::BadParameter { parameter: "from", problem: format!("{} is not before to ({})", params.from, params.to) });
        }
        if let Some(merchant) = &params.merchant
            && (merchant.is_empty() || merchant.len() > 128)
        {
            return Err(KpiError::BadParameter { parameter: "merchant", problem: "a merchant id has 1 to 128 bytes".into() });
        }
        Ok(ParamValues::from(vec![
            ("merchant", ScalarValue::Utf8(params.merchant.clone())),
            ("from", utc_parameter(params.from)),
            ("to", utc_parameter(params.to)),
            ("group_by", ScalarValue::Utf8(Some(group_by.to_owned()))),
        ]))
    }
}

/// The parameters of one KPI run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiParams {
    /// One merchant, or all (`None`).
    pub merchant: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// One of the KPI's groupings; `None` for its default.
    pub group_by: Option<String>,
}

impl KpiParams {
    /// Parameters as people write them (command line, query string). `from` and `to`
    /// are RFC 3339 timestamps or dates; a date `from` starts at its midnight (UTC), a
    /// date `to` includes its whole day. Defaults: `to` = `now`, `from` = 30 days before
    /// `to`.
    pub fn parse(merchant: Option<&str>, from: Option<&str>, to: Option<&str>, group_by: Option<&str>, now: DateTime<Utc>) -> Result<KpiParams, KpiError> {
        let to = to.map(|t| parse_instant("to", t, true)).transpose()?.unwrap_or(now);
        let from = from.map(|f| parse_instant("from", f, false)).transpose()?.unwrap_or(to - chrono::Duration::days(30));
        let present = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(KpiParams { merchant: present(merchant), from, to, group_by: present(group_by) })
    }
}

/// A UTC instant as a query parameter, typed like the lake's timestamp columns.
pub fn utc_parameter(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some(Arc::from("UTC")))
}

/// An RFC 3339 timestamp, or a date: its start, or (`end_of_day`) the next day's start.
fn parse_instant(parameter: &'static str, text: &str, end_of_day: bool) -> Result<DateTime<Utc>, KpiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| KpiError::BadParameter {
        parameter,
        problem: format!("{text:?} is neither a date (2026-11-30) nor an RFC 3339 timestamp (2026-11-30T12:00:00Z)"),
    })?;
    let date = if end_of_day { date.succ_opt().unwrap_or(date) } else { date };
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Every KPI, and the views they are written over.
#[derive(Debug, Clone)]
pub struct Library {
    kpis: BTreeMap<String, Kpi>,
    /// `CREATE VIEW` statements, in file-name order (a view may use the ones before it).
    views: Vec<(String, String)>,
    /// Rollup queries by table name: daily rows for `$from <= day < $to`.
    rollups: Vec<(String, String)>,
}

impl Library {
    /// The library embedded in the binary at build time (`queries/`).
    pub fn builtin() -> Arc<Library> {
        static BUILTIN: OnceLock<Arc<Library>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let files = embedded::KPI_FILES.iter().map(|(n, t)| (n.to_string(), t.to_string()));
                let owned = |files: &[(&str, &str)]| files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
                // The embedded files are checked by a unit test; a broken one is a build defect.
                Arc::new(Library::new(files, owned(embedded::VIEW_FILES), owned(embedded::ROLLUP_FILES)).expect("the embedded KPI files parse"))
            })
            .clone()
    }

    /// A library read from a folder laid out like `queries/` (KPIs at the top, views in
    /// `views/`, rollups in `rollups/`).
    pub fn from_dir(path: &Path) -> Result<Library, KpiError> {
        let read = |folder: &Path| -> Result<Vec<(String, String)>, KpiError> {
            let failed = |e: std::io::Error| KpiError::Folder { path: folder.display().to_string(), message: e.to_string() };
            let mut files = Vec::new();
            if !folder.exists() && folder != path {
                return Ok(files);
            }
            for entry in std::fs::read_dir(folder).map_err(failed)? {
                let file = entry.map_err(failed)?.path();
                if file.extension().is_some_and(|e| e == "sql") {
                    let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
                    files.push((name, std::fs::read_to_string(&file).map_err(failed)?));
                }
            }
            files.sort();
            Ok(files)
        };
        Library::new(read(path)?, read(&path.join("views"))?, read(&path.join("rollups"))?)
    }

    fn new(files: impl IntoIterator<Item = (String, String)>, views: Vec<(String, String)>, rollups: Vec<(String, String)>) -> Result<Library, KpiError> {
        let kpis = files.into_iter().map(|(name, text)| Ok((name.clone(), Kpi::parse(&name, &text)?))).collect::<Result<_, KpiError>>()?;
        for (name, sql) in &rollups {
            if !(sql.contains("$from") && sql.contains("$to") && sql.contains(" AS day")) {
                return Err(KpiError::BadFile { name: name.clone(), problem: "a rollup selects a `day` and takes $from and $to".into() });
            }
        }
        Ok(Library { kpis, views, rollups })
    }

    pub fn get(&self, name: &str) -> Result<&Kpi, KpiError> {
        self.kpis.get(name).ok_or_else(|| KpiError::Unknown { name: name.to_owned(), known: self.kpis.keys().cloned().collect::<Vec<_>>().join(", ") })
    }

    pub fn kpis(&self) -> impl Iterator<Item = &Kpi> {
        self.kpis.values()
    }

    /// The `CREATE VIEW` statements every SQL session starts with, in order.
    pub fn views(&self) -> &[(String, String)] {
        &self.views
    }

    /// The rollup tables' names and queries.
    pub fn rollups(&self) -> &[(String, String)] {
        &self.rollups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_kpi_has_a_title_groupings_and_a_definition() {
        let library = Library::builtin();
        assert!(library.kpis().count() >= 14, "{:?}", library.kpis().map(|k| &k.name).collect::<Vec<_>>());
        for kpi in library.kpis() {
            assert!(kpi.definition.len() > 80, "{}: definition too short", kpi.name);
            for parameter in ["$from", "$to", "$merchant", "$group_by"] {
                assert!(kpi.sql.contains(parameter), "{} does not use {parameter}", kpi.name);
            }
            for group in &kpi.group_by {
                assert!(group == "all" || kpi.sql.contains(&format!("WHEN $group_by = '{group}'")), "{}: group_by {group} is not in the query", kpi.name);
            }
        }
        let views: Vec<&str> = library.views().iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(views, ["orders", "parcel_etas", "parcels", "tickets"]);
        let rollups: Vec<&str> = library.rollups().iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(rollups, ["kpi_daily_deliveries", "kpi_daily_orders", "kpi_daily_shipments", "kpi_daily_tickets"]);
    }

    #[test]
    fn a_header_is_read_or_refused_with_the_reason() {
        let ok = "-- Title\n-- group_by: a, b\n--\n-- What it means.\nSELECT 1";
        let cases: &[(&str, Result<(&str, &[&str], &str), &str>)] = &[
            (ok, Ok(("Title", &["a", "b"], "What it means."))),
            ("SELECT 1", Err("the first line must be `-- <title>`")),
            ("-- Title\n-- What.\nSELECT 1", Err("the header has no `-- group_by: ...` line")),
            ("-- Title\n-- group_by: ,\n-- What.\nSELECT 1", Err("`group_by:` names no grouping")),
            ("-- Title\n-- group_by: a\nSELECT 1", Err("the header must define the KPI in words")),
        ];
        for (text, expected) in cases {
            let got = Kpi::parse("k", text);
            match expected {
                Ok((title, group_by, definition)) => {
                    let kpi = got.unwrap_or_else(|e| panic!("{text:?}: {e}"));
                    assert_eq!((kpi.title.as_str(), kpi.definition.as_str()), (*title, *definition));
                    assert_eq!(kpi.group_by, group_by.iter().map(|g| g.to_string()).collect::<Vec<_>>());
                }
                Err(problem) => assert_eq!(got, Err(KpiError::BadFile { name: "k".into(), problem: problem.to_string() }), "{text:?}"),
            }
        }
    }

    #[test]
    fn periods_are_read_from_dates_or_timestamps() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T06:00:00Z").unwrap().with_timezone(&Utc);
        let cases: &[(Option<&str>, Option<&str>, Result<(&str, &str), &str>)] = &[
            (None, None, Ok(("2026-10-25T06:00:00Z", "2026-11-24T06:00:00Z"))),
            (Some("2026-11-01"), Some("2026-11-07"), Ok(("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"))),
            (Some("2026-11-01T10:00:00+01:00"), Some("2026-11-02T00:00:00Z"), Ok(("2026-11-01T09:00:00Z", "2026-11-02T00:00:00Z"))),
            (Some("yesterday"), None, Err("from")),
            (None, Some("2026-13-01"), Err("to")),
        ];
        for (from, to, expected) in cases {
            let got = KpiParams::parse(Some(" "), *from, *to, None, now);
            match (got, expected) {
                (Ok(p), Ok((f, t))) => {
                    assert_eq!(
                        (p.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), p.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        (f.to_string(), t.to_string())
                    );
                    assert_eq!(p.merchant, None, "a blank merchant means all");
                }
                (Err(KpiError::BadParameter { parameter, .. }), Err(expected)) => assert_eq!(parameter, *expected),
                (got, expected) => panic!("{from:?}..{to:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn parameters_are_checked_before_a_run() {
        let kpi = Kpi::parse("k", "-- T\n-- group_by: carrier, day\n-- Defined.\nSELECT 1").unwrap();
        let at = |day: u32| DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T00:00:00Z")).unwrap().with_timezone(&Utc);
        let params = |merchant: Option<&str>, from, to, group_by: Option<&str>| KpiParams {
            merchant: merchant.map(str::to_owned),
            from: at(from),
            to: at(to),
            group_by: group_by.map(str::to_owned),
        };
        let cases = [
            (params(None, 1, 8, None), None),
            (params(Some("m1"), 1, 8, Some("day")), None),
            (params(None, 1, 8, Some("lane")), Some("group_by")),
            (params(None, 8, 8, None), Some("from")),
            (params(Some(""), 1, 8, None), Some("merchant")),
        ];
        for (params, refused) in cases {
            match (kpi.bind(&params), refused) {
                (Ok(_), None) => {}
                (Err(KpiError::BadParameter { parameter, .. }), Some(expected)) => assert_eq!(parameter, expected, "{params:?}"),
                (got, expected) => panic!("{params:?}: got {got:?}, expected refusal of {expected:?}"),
            }
        }
    }
}
