//! `dreamgym serve`: checks the flags, builds the env (real, or the synthetic world fit on the
//! offline data) and runs the server of [`crate::serve`].

use crate::serve::session::Source;
use crate::serve::synthetic::SyntheticWorld;
use crate::serve::{ServeConfig, run as serve};
use crate::support::envs::EnvFactory;
use anyhow::{Context, Result, bail};
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::native::NativeModel;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The flags of `dreamgym serve` (see `commands::serve`).
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// A scenario file (scenarios/household.ron) or an env id (scenario:PATH, bridge:NAME).
    pub env: String,
    /// Serve a synthetic env with this experience model (needs --offline).
    #[arg(long, value_enum)]
    pub model: Option<ServeModel>,
    /// Real trajectories of ENV (JSONL, e.g. from `dreamgym collect`) the model is fit on.
    #[arg(long)]
    pub offline: Option<PathBuf>,
    /// Synthetic env: no curriculum (resets that name no task draw one uniformly).
    #[arg(long)]
    pub no_curriculum: bool,
    /// Synthetic env: finished episodes between the curriculum's expansions.
    #[arg(long, default_value_t = 64)]
    pub expand_every: usize,
    /// The durable replay buffer every served episode is written to (created if missing).
    #[arg(long, default_value = "serve.dglog")]
    pub buffer: PathBuf,
    /// Address to listen on (port 0: a free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: std::net::SocketAddr,
    /// Allow an address other than loopback (use with --token behind a trusted network).
    #[arg(long)]
    pub public: bool,
    /// Bearer token every request but /health must carry (default: $DREAMGYM_SERVE_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Most sessions at once (WebSocket and HTTP together).
    #[arg(long, default_value_t = 64)]
    pub max_sessions: usize,
    /// Seconds without a request after which a session is closed.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Connections open at once beyond --max-sessions (kept-alive HTTP clients, handshakes in
    /// progress); one more is closed at once, so idle connections cannot take every file handle.
    #[arg(long, default_value_t = 64)]
    pub max_pending_connections: usize,
    /// Seconds a new connection may take to send its first byte (its request or handshake).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: u64,
    /// What an inadmissible action gets: an error (no step taken) or a step the env fails.
    #[arg(long, value_enum, default_value = "error")]
    pub inadmissible: crate::serve::session::Inadmissible,
    /// Seed of the instance seeds of resets that give none.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// For bridge:NAME env ids: the command that runs your own bridge.
    #[arg(long)]
    pub bridge_cmd: Option<String>,
}

/// The experience model of a served synthetic env.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeModel {
    /// The native model, fit on the offline data (no LLM needed).
    Native,
    /// An OpenAI-compatible server (`DREAMGYM_LLM_URL`, `DREAMGYM_LLM_MODEL`, `DREAMGYM_LLM_KEY`).
    Llm,
}

/// Run `dreamgym serve`.
pub fn run(a: ServeArgs) -> Result<()> {
    if !a.addr.ip().is_loopback() && !a.public {
        bail!(
            "--addr {} is not a loopback address: pass --public to serve beyond this machine (and set --token)",
            a.addr
        );
    }
    if a.max_sessions == 0 {
        bail!("--max-sessions must be at least 1");
    }
    if a.idle_timeout == 0 {
        bail!("--idle-timeout must be at least 1 second");
    }
    let token = a
        .token
        .or_else(|| std::env::var("DREAMGYM_SERVE_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let id = crate::support::envs::env_id_of(&a.env);
    let factory = Arc::new(EnvFactory::new(&id, a.bridge_cmd.as_deref())?);
    let (source, buffer_seed) = match (a.model, &a.offline) {
        (None, None) => (Source::Real(factory.clone()), vec![]),
        (None, Some(_)) => bail!(
            "--offline is the data of a synthetic env's model: add --model native (or llm), or drop --offline to serve the real env"
        ),
        (Some(_), None) => bail!(
            "--model needs --offline DATA.jsonl: real trajectories of {id} to fit the model on (make them with `dreamgym collect --env {id} --out DATA.jsonl`)"
        ),
        (Some(kind), Some(path)) => {
            let offline = dreamgym_buffer::jsonl::read_file(path)?;
            if offline.is_empty() {
                bail!("{}: no trajectories to fit the model on", path.display());
            }
            factory.check_offline(path, &offline)?;
            let model: Arc<dyn ExperienceModel> = match kind {
                ServeModel::Native => Arc::new(NativeModel::fit(&offline)),
                ServeModel::Llm => Arc::new(
                    LlmModel::new(LlmConfig::from_env().context("--model llm")?)
                        .context("--model llm")?,
                ),
            };
            let world = SyntheticWorld::new(
                model,
                offline.clone(),
                &factory,
                !a.no_curriculum,
                a.expand_every,
                a.seed,
            )?
            .blocking(kind == ServeModel::Llm);
            (Source::Synthetic(Arc::new(world)), offline)
        }
    };
    let env_id = match &source {
        Source::Real(_) => id,
        Source::Synthetic(w) => format!("model:{} of {id}", w.model_name()),
    };
    serve(ServeConfig {
        addr: a.addr,
        source,
        env_id,
        buffer: a.buffer,
        buffer_seed,
        max_sessions: a.max_sessions,
        idle_timeout: Duration::from_secs(a.idle_timeout),
        max_pending_connections: a.max_pending_connections,
        handshake_timeout: Duration::from_secs(a.handshake_timeout),
        token,
        inadmissible: a.inadmissible,
        seed: a.seed,
    })
}
