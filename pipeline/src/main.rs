//! The `orderpulse` binary: every part of the pipeline behind one command line.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    orderpulse::cli::main()
}
