//! `dreamgym serve`: a real env or a synthetic one (an experience model fit on offline data, with
//! the curriculum) served over the OpenEnv protocol, for trainers in any language.
//!
//! **The contract** (what `openenv-core` 0.3's `EnvClient`/`GenericEnvClient` expect):
//! * `GET /ws` upgrades to a WebSocket; each connection is one session with its own env.
//!   Messages are `{"type": "reset" | "step" | "state" | "close", "data": {...}}`; a reset takes
//!   `seed`, `episode_id`, `template`, `difficulty` (all optional: a synthetic env's curriculum
//!   chooses the task of a reset that names none); a step's data is `{"action": "<text>"}`. See
//!   [`protocol`] for the answers and `GET /schema` for the JSON schemas.
//! * `POST /reset`, `POST /step`, `GET /state` serve the same over plain HTTP. OpenEnv's own HTTP
//!   endpoints are stateless (each request a fresh env), which cannot play a text episode; here
//!   `/reset` opens an HTTP session whose `episode_id` (in the observation) the client passes to
//!   `/step` (`{"action": {"action": "..."}, "episode_id": "..."}`) and `/state?episode_id=...`;
//!   a `/reset` naming a live session's `episode_id` restarts that session.
//! * `GET /health` (never needs the token), `GET /metadata`, `GET /schema`, `GET /stats` (ours:
//!   sessions, what the recorder made durable, the curriculum's pool — each family's recent
//!   outcomes — and `curriculum_episodes`, every finished episode it was told of).
//!
//! **Errors** keep the session open: bad JSON, an unknown `type`, a step before reset or after the
//! episode ended, an inadmissible action (unless `--inadmissible step`) are answered
//! `{"type": "error", "data": {"message", "code"}}` with OpenEnv's codes (HTTP: the same body under
//! `detail`, with a 4xx/5xx status). Over the session limit a WebSocket gets `CAPACITY_REACHED`
//! and a close; an HTTP reset a 503. A session idle for `idle_timeout` gets `SESSION_ERROR` and a
//! close (HTTP sessions are dropped); its episode is recorded as `idle`.
//!
//! **Recording**: every episode played is written to the durable replay buffer (see
//! [`crate::record::recorder`]) with its session, episode id and how it ended.
//!
//! **Shutdown**: SIGTERM or Ctrl-C stops accepting, closes every session (WebSocket close 1001),
//! records the episodes in play as `shutdown`, writes and syncs the buffer, and exits 0.
//!
//! **Threads**: a multi-threaded tokio runtime; an env's reset and step (a bridged env's child,
//! the model's prediction) run on the session's task inside `block_in_place`, so a slow env holds
//! its own worker and never the others' I/O.

mod connections;
pub mod protocol;
mod routes;
pub mod session;
mod sessions;
pub mod synthetic;

use anyhow::{Context, Result};
use dreamgym_buffer::Trajectory;
use session::{Inadmissible, Source};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `dreamgym serve` needs.
pub struct ServeConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port; the address is printed).
    pub addr: SocketAddr,
    /// The env each session gets.
    pub source: Source,
    /// The env's id (reported by `/metadata` and `/stats`).
    pub env_id: String,
    /// The durable replay buffer every episode is written to.
    pub buffer: PathBuf,
    /// Real trajectories the buffer starts with when it is new (a synthetic env's offline data).
    pub buffer_seed: Vec<Trajectory>,
    /// Most sessions at once (WebSocket and HTTP together).
    pub max_sessions: usize,
    /// Sessions with no request for this long are closed.
    pub idle_timeout: Duration,
    /// Connections open at once beyond the sessions' own (kept-alive HTTP connections, clients
    /// in their handshake); one more is closed at once.
    pub max_pending_connections: usize,
    /// A connection that sends no byte for this long after its accept is closed.
    pub handshake_timeout: Duration,
    /// The bearer token every request but `/health` must carry, if any.
    pub token: Option<String>,
    /// What an inadmissible action gets.
    pub inadmissible: Inadmissible,
    /// Seed of the sessions' instance seeds.
    pub seed: u64,
}

/// Serve until SIGTERM / Ctrl-C (or until `stop` resolves, for tests), then shut down cleanly.
pub fn run(cfg: ServeConfig) -> Result<()> {
    let recorder = crate::record::recorder::RecorderThread::start(&cfg.buffer, &cfg.buffer_seed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dreamgym-serve")
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(routes::serve(cfg, recorder.handle()));
    // sessions are gone (or abandoned after the grace period): write what they handed over
    drop(runtime);
    let stopped = recorder.stop();
    served?;
    stopped
}
