//! `dreamgym serve`: checks the flags, builds the env (real, or the synthetic world fit on the
//! offline data) and runs the server of [`crate::serve`].

use crate::cli::{ServeArgs, ServeModel};
use crate::envs::EnvFactory;
use crate::serve::session::Source;
use crate::serve::synthetic::SyntheticWorld;
use crate::serve::{ServeConfig, run as serve};
use anyhow::{Context, Result, bail};
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::native::NativeModel;
use std::sync::Arc;
use std::time::Duration;

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
    let id = crate::envs::env_id_of(&a.env);
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
