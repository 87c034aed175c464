use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: the experience model and the rollouts allocate many small strings and vectors,
/// where it is markedly faster than the system allocator (see benches/model.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("DREAMGYM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = dreamgym::cli::Cli::parse();
    match dreamgym::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
