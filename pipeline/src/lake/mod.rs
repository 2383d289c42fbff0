//! The lake: Delta tables on object storage, one per [`LakeTable`].
//!
//! [`Lake`] knows where the tables live and opens or creates them; [`writer`] commits
//! batches exactly once with the source positions they cover; [`maintenance`] compacts
//! and checkpoints. The Delta log is the source of truth for positions: nothing else
//! records how far a source has been written.

pub mod maintenance;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::StructType;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use url::Url;

use crate::model::schema::LakeTable;

/// Errors reaching or changing the lake, each naming the table or URL concerned.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake URL {url:?} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("table {table}: {}", describe(error))]
    Table { table: LakeTable, error: DeltaTableError },
    /// The first contact with a table's storage failed: the location names the bucket.
    #[error("cannot open {location}: {}", describe(error))]
    Open { location: String, error: DeltaTableError },
    #[error("table {table}: {message}")]
    Data { table: LakeTable, message: String },
    /// A table derived from the event tables (a KPI rollup), by name.
    #[error("table {name}: {message}")]
    Derived { name: String, message: String },
    /// A failure that concerns no single table (a query over several, a task that died).
    #[error("{what}: {message}")]
    Other { what: &'static str, message: String },
}

impl LakeError {
    pub(crate) fn table(table: LakeTable) -> impl FnOnce(DeltaTableError) -> LakeError {
        move |error| LakeError::Table { table, error }
    }
}

/// One line that says what went wrong with the store. Object-store errors carry the
/// whole HTTP exchange (an S3 error is an XML document); people need its code and
/// message, and which bucket.
fn describe(error: &DeltaTableError) -> String {
    let text = error.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_owned())
    };
    if let Some(code) = tag("Code") {
        let message = tag("Message").unwrap_or_default();
        let bucket = tag("BucketName").map(|b| format!(" (bucket {b})")).unwrap_or_default();
        return format!("the object store refused the request: {code}: {message}{bucket}");
    }
    if text.contains("Connection refused") || text.contains("error sending request") || text.contains("dns error") {
        return format!("cannot reach the object store: {}", first_line(&text));
    }
    first_line(&text)
}

/// The first line of a message, with runs of white space folded.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a table could not be opened: its handle, or the first contact with its storage.
enum OpenError {
    Table(DeltaTableError),
    Open(DeltaTableError),
}

/// Where the lake lives, and how to open its tables.
///
/// Cheap to clone (an `Arc` inside for the in-memory store); every component that reads
/// or writes the lake holds one.
#[derive(Clone, Debug)]
pub struct Lake {
    root: Url,
    storage_options: HashMap<String, String>,
    /// For `memory://` lakes: the one store every table shares, so a table written by the
    /// ingest loop is the table the SQL engine reads.
    memory: Option<Arc<InMemory>>,
}

impl Lake {
    /// Resolves a lake location: `file:///abs`, a plain (relative) path, `memory://`, or
    /// `s3://bucket/prefix`. A local lake's folder is created if missing.
    pub fn open(location: &str, storage_options: HashMap<String, String>) -> Result<Lake, LakeError> {
        let bad = |reason: String| LakeError::BadUrl { url: location.to_owned(), reason };
        let root = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // No scheme (or a Windows drive letter): a local path.
            _ => {
                let absolute = std::path::absolute(Path::new(location)).map_err(|e| bad(e.to_string()))?;
                Url::from_directory_path(&absolute).map_err(|()| bad("not an absolute path".into()))?
            }
        };
        let memory = match root.scheme() {
            "file" => {
                let path = root.to_file_path().map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&path).map_err(|e| bad(format!("cannot create {}: {e}", path.display())))?;
                None
            }
            "memory" => Some(Arc::new(InMemory::new())),
            "s3" | "s3a" => {
                deltalake::aws::register_handlers(None);
                None
            }
            other => return Err(bad(format!("unsupported scheme {other:?} (use file, memory or s3)"))),
        };
        let mut root = root;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Lake { root, storage_options, memory })
    }

    /// The lake's root URL (ends with `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of one table: its folder under the root.
    pub fn table_url(&self, table: LakeTable) -> Url {
        self.url_of(table.name())
    }

    fn url_of(&self, name: &str) -> Url {
        self.root.join(&format!("{name}/")).expect("a table name is a valid URL segment")
    }

    fn builder(&self, name: &str) -> Result<DeltaTableBuilder, DeltaTableError> {
        let url = self.url_of(name);
        let builder = DeltaTableBuilder::from_url(url.clone())?;
        Ok(match &self.memory {
            Some(store) => builder.with_storage_backend(store.clone() as Arc<dyn ObjectStore>, url),
            None => builder.with_storage_options(self.storage_options.clone()),
        })
    }

    /// The local folder of a table, for `file://` lakes.
    fn local_folder(&self, name: &str) -> Option<std::path::PathBuf> {
        (self.root.scheme() == "file").then(|| self.url_of(name).to_file_path().ok()).flatten()
    }

    /// Opens a table if it exists; `None` if it was never created.
    pub async fn open_table(&self, table: LakeTable) -> Result<Option<DeltaTable>, LakeError> {
        self.open_named(table.name()).await.map_err(|error| match error {
            OpenError::Table(error) => LakeError::Table { table, error },
            OpenError::Open(error) => LakeError::Open { location: self.table_url(table).to_string(), error },
        })
    }

    /// Opens a derived table (a KPI rollup) if it exists.
    pub async fn open_derived(&self, name: &str) -> Result<Option<DeltaTable>, LakeError> {
        self.open_named(name).await.map_err(|error| match error {
            OpenError::Table(error) => LakeError::Derived { name: name.to_owned(), message: describe(&error) },
            OpenError::Open(error) => LakeError::Open { location: self.url_of(name).to_string(), error },
        })
    }

    /// A handle on a derived table that may not exist yet: writing to it creates it.
    pub async fn derived(&self, name: &str) -> Result<DeltaTable, LakeError> {
        if let Some(delta) = self.open_derived(name).await? {
            return Ok(delta);
        }
        if let Some(folder) = self.local_folder(name) {
            std::fs::create_dir_all(&folder).map_err(|e| LakeError::Derived { name: name.to_owned(), message: e.to_string() })?;
        }
        self.builder(name).and_then(|b| b.build()).map_err(|e| LakeError::Derived { name: name.to_owned(), message: describe(&e) })
    }

    async fn open_named(&self, name: &str) -> Result<Option<DeltaTable>, OpenError> {
        if self.local_folder(name).is_some_and(|folder| !folder.join("_delta_log").exists()) {
            return Ok(None);
        }
        let mut delta = self.builder(name).and_then(|b| b.build()).map_err(OpenError::Table)?;
        match delta.load().await {
            Ok(()) => Ok(Some(delta)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(error) => Err(OpenError::Open(error)),
        }
    }

    /// The object store under `name` (a table's folder, or any other folder of the lake),
    /// with paths relative to it.
    pub fn object_store(&self, name: &str) -> Result<Arc<dyn ObjectStore>, LakeError> {
        let delta = self.builder(name).and_then(|b| b.build()).map_err(|e| LakeError::Derived { name: name.to_owned(), message: describe(&e) })?;
        Ok(delta.object_store())
    }

    /// Deletes the folder `name` of the lake and everything in it (a derived table, the
    /// stream processor's checkpoints); returns how many objects it held. Nothing else
    /// may be writing there.
    pub async fn delete_folder(&self, name: &str) -> Result<usize, LakeError> {
        let failed = |message: String| LakeError::Other { what: "deleting a lake folder", message: format!("{}: {message}", self.url_of(name)) };
        let store = self.object_store(name)?;
        // The store deletes in bulk where it can (S3: a thousand keys a request).
        let listed = store.list(None).map_ok(|meta| meta.location).boxed();
        let deleted: Vec<object_store::path::Path> = store.delete_stream(listed).try_collect().await.map_err(|e| failed(e.to_string()))?;
        // A local folder would keep its (empty) directories, and an empty `_delta_log`
        // does not read as "no table".
        if let Some(folder) = self.local_folder(name) {
            match std::fs::remove_dir_all(&folder) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(failed(error.to_string())),
                _ => {}
            }
        }
        Ok(deleted.len())
    }

    /// Opens a table, creating it (empty, with its schema and partitioning) if needed.
    pub async fn open_or_create(&self, table: LakeTable) -> Result<DeltaTable, LakeError> {
        if let Some(delta) = self.open_table(table).await? {
            return Ok(delta);
        }
        let schema: StructType = table.schema().as_ref().try_into_kernel().map_err(|e| LakeError::Data { table, message: format!("schema: {e}") })?;
        if let Some(folder) = self.local_folder(table.name()) {
            std::fs::create_dir_all(&folder)
                .map_err(|e| LakeError::BadUrl { url: folder.display().to_string(), reason: format!("cannot create the table folder: {e}") })?;
        }
        let delta = self.builder(table.name()).and_then(|b| b.build()).map_err(LakeError::table(table))?;
        let created = delta
            .create()
            .with_table_name(table.name())
            .with_columns(schema.fields().cloned())
            .with_partition_columns(table.partition_columns().iter().copied())
            .with_comment(format!("orderpulse {} table", table.name()))
            .await;
        match created {
            Ok(delta) => Ok(delta),
            // Another process may have created it first: use theirs.
            Err(error) => self.open_table(table).await?.ok_or(LakeError::Table { table, error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_to_table_urls() {
        let dir = tempfile::tempdir().unwrap();
        let relative = Lake::open(dir.path().join("lake").to_str().unwrap(), HashMap::new()).unwrap();
        assert_eq!(relative.root().scheme(), "file");
        assert!(relative.table_url(LakeTable::OrderEvents).as_str().ends_with("/lake/order_events/"));
        let memory = Lake::open("memory:///", HashMap::new()).unwrap();
        assert_eq!(memory.table_url(LakeTable::Quarantine).as_str(), "memory:///quarantine/");
        let err = Lake::open("ftp://example/lake", HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("ftp"), "{err}");
    }
}
