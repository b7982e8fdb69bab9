//! The `ward-proxy` binary: parse arguments, run, and turn any error into one line on stderr
//! (exit 1 for a refused operation or a failed check, 2 for a malformed command line or a
//! `policy test` that could not decide).

use std::process::ExitCode;

use ward_proxy::cli::{run, Cli, Outcome};

/// jemalloc (the `jemalloc` feature, on by default): flat RSS under churn, and memory that
/// goes back to the system after a burst (docs/benchmarks.md, "Allocator").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One jemalloc background thread purges pages unused for 10 s (`dirty_decay_ms`) while the
/// process idles: without it jemalloc purges only when it allocates, so what a burst of
/// connections took stays resident after the burst (docs/benchmarks.md, "Allocator").
#[cfg(feature = "jemalloc")]
fn return_idle_memory() {
    let _ = tikv_jemalloc_ctl::max_background_threads::write(1);
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
}

fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    return_idle_memory();
    let cli = match ward_cli::parse::<Cli>("ward-proxy") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // An unlocked handle: `run` prints from other threads while this call runs.
    match run(cli, &mut std::io::stdout()) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ward-proxy: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
