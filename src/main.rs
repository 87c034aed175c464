use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: the experience model and the rollouts allocate many small strings and vectors,
/// where it is markedly faster than the system allocator (see benches/model.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a closed stdout (`dreamgym buffer stats B | head -1`) made
    // `println!` panic; with the default action the process ends quietly, as `cat` does.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
