//! Embeds the KPI library (`queries/*.sql`), its views (`queries/views/*.sql`) and its
//! rollups (`queries/rollups/*.sql`) in the binary, so an installed `orderpulse` carries the same definitions as the repository.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it is compiled: cargo may reuse a compiled
    // build script for another checkout of the same sources.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let queries = Path::new(&manifest).join("../queries");
    println!("cargo:rerun-if-changed={}", queries.display());
    println!("cargo:rerun-if-changed={}", queries.join("views").display());
    println!("cargo:rerun-if-changed={}", queries.join("rollups").display());
    let mut out = String::new();
    for (name, folder) in [("KPI_FILES", queries.clone()), ("VIEW_FILES", queries.join("views")), ("ROLLUP_FILES", queries.join("rollups"))] {
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        writeln!(out, "pub static {name}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("SQL file names are UTF-8");
            let path = path.canonicalize().expect("the file exists");
            println!("cargo:rerun-if-changed={}", path.display());
            writeln!(out, "    ({stem:?}, include_str!({:?})),", path.display().to_string()).unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("queries.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
