//! `dreamgym buffer ...`: the durable replay buffer — import, stats, export, repair.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use dreamgym_buffer::{BufferConfig, ReplayBuffer};
use std::path::PathBuf;

/// `dreamgym buffer ...`
#[derive(Subcommand, Debug)]
pub enum BufferCmd {
    /// Show counts of a durable buffer (recovering it if needed).
    Stats {
        /// Buffer log file.
        buffer: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Append the trajectories of a JSONL file to a durable buffer (created if missing).
    Import {
        /// Buffer log file.
        buffer: PathBuf,
        /// JSONL file of trajectories.
        jsonl: PathBuf,
        /// Capacity (records); default: what the buffer's log says, 1,000,000 for a new buffer.
        /// Real records are never evicted; the oldest synthetic ones make room.
        #[arg(long)]
        capacity: Option<usize>,
    },
    /// Write the live records of a durable buffer as trajectories in JSONL.
    Export {
        /// Buffer log file.
        buffer: PathBuf,
        /// Output JSONL.
        out: PathBuf,
    },
    /// Replay synthetic episodes that succeeded in the experience model in the real env, and
    /// count how many the real env confirms (does the policy exploit the model's errors?). Spends
    /// real env steps, counted in the output.
    Replay {
        /// Buffer log file (a run's `OUT/buffer.dglog`).
        buffer: PathBuf,
        /// The real env (default: the env id the buffer's real episodes name).
        #[arg(long)]
        env: Option<String>,
        /// How many synthetic successes to draw.
        #[arg(long, default_value_t = 200)]
        episodes: usize,
        /// Seed of the draw.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A command that speaks the bridge protocol, for `bridge:` envs (docs/bridge.md).
        #[arg(long)]
        bridge_cmd: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Repair a log after an error from `stats`: skip damaged stretches (resynchronising at the
    /// next valid record), drop the episodes the damage broke and records that cannot be read,
    /// keep everything else, and report what was skipped.
    Repair {
        /// Buffer log file.
        buffer: PathBuf,
    },
}

/// Capacity of a buffer created without `--capacity`.
const DEFAULT_CAPACITY: usize = 1_000_000;

/// Runs one `buffer` subcommand.
pub fn run(cmd: BufferCmd) -> Result<()> {
    let cfg = |capacity| BufferConfig {
        capacity,
        ..Default::default()
    };
    match cmd {
        BufferCmd::Stats { buffer, json } => {
            let (b, rec) = crate::support::files::open_existing_buffer(&buffer, DEFAULT_CAPACITY)?;
            let s = b.stats();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"stats": s, "recovery": rec.to_string()})
                    )?
                );
            } else {
                eprintln!("{}: {rec}", buffer.display());
                println!("steps:     {}", s.records);
                println!("  real:      {}", s.real);
                println!("  synthetic: {}", s.synthetic);
                if s.unknown_reward > 0 {
                    println!("  without a stated reward: {}", s.unknown_reward);
                }
                println!(
                    "episodes:  {} ({} successful)",
                    s.episodes, s.successful_episodes
                );
                println!("tasks:     {}", s.tasks);
                println!("envs:      {}", s.envs);
            }
            Ok(())
        }
        BufferCmd::Import {
            buffer,
            jsonl,
            capacity,
        } => {
            let (mut b, rec) = match capacity {
                Some(c) => ReplayBuffer::open(&buffer, cfg(c)),
                None => ReplayBuffer::open_as_logged(&buffer, cfg(DEFAULT_CAPACITY)),
            }
            .with_context(|| format!("opening buffer {}", buffer.display()))?;
            eprintln!("{}: {rec}", buffer.display());
            let (t, s) = b.import_jsonl(&jsonl)?;
            b.sync()?;
            println!(
                "imported {t} trajectories ({s} steps) into {}; buffer now holds {} steps",
                buffer.display(),
                b.len()
            );
            Ok(())
        }
        BufferCmd::Export { buffer, out } => {
            // exporting must neither create a log at a mistyped path (`open_existing_buffer` refuses
            // it) nor overwrite the log it reads
            crate::support::files::refuse_output_over_input(
                "buffer export",
                ("OUT", &out),
                &[("BUFFER", &buffer)],
            )?;
            let (b, _) = crate::support::files::open_existing_buffer(&buffer, DEFAULT_CAPACITY)?;
            let n = b.export_jsonl(&out)?;
            println!(
                "exported {n} trajectories ({} steps) to {}",
                b.len(),
                out.display()
            );
            Ok(())
        }
        BufferCmd::Replay {
            buffer,
            env,
            episodes,
            seed,
            bridge_cmd,
            json,
        } => {
            let (b, _) = crate::support::files::open_existing_buffer(&buffer, DEFAULT_CAPACITY)?;
            let trajectories = b.trajectories();
            let envs = crate::record::replay::real_envs(&trajectories);
            let env = match (env, envs.len()) {
                (Some(e), _) => crate::support::envs::env_id_of(&e),
                (None, 1) => envs.keys().next().expect("one env").to_string(),
                (None, 0) => bail!(
                    "{}: no real episode names the env; give --env",
                    buffer.display()
                ),
                (None, _) => bail!(
                    "{}: the buffer holds real episodes of {} envs ({}); give --env to say which to replay in",
                    buffer.display(),
                    envs.len(),
                    envs.iter()
                        .map(|(e, n)| format!("{e}: {n} episodes"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let factory = crate::support::envs::EnvFactory::new(&env, bridge_cmd.as_deref())?;
            let r = crate::record::replay::replay_synthetic_successes(
                &trajectories,
                &factory,
                episodes,
                seed,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "synthetic successes in the buffer: {}; drawn {} (seed {seed}); replayed in {env}: {}",
                    r.synthetic_successes, r.drawn, r.replayed
                );
                if r.no_real_instance + r.other_start > 0 {
                    println!(
                        "  not replayable: {} with no real episode of their instance, {} whose real reset showed another first state",
                        r.no_real_instance, r.other_start
                    );
                }
                println!(
                    "confirmed by the real env: {} of {} ({:.3}); real steps spent: {}",
                    r.confirmed,
                    r.replayed,
                    r.confirmed_share(),
                    r.real_steps
                );
                if !r.first_wrong.is_empty() {
                    println!(
                        "where the others first went wrong (after it the real state differed, or the real episode ended):"
                    );
                    for (action, n) in r.first_wrong.iter().take(10) {
                        println!("  {n:>5}  {action}");
                    }
                }
            }
            Ok(())
        }
        BufferCmd::Repair { buffer } => {
            if !buffer.exists() {
                bail!("{}: no such buffer", buffer.display());
            }
            let report = ReplayBuffer::repair(&buffer)
                .with_context(|| format!("repairing {}", buffer.display()))?;
            println!("{}: {report}", buffer.display());
            // what a plain open now finds (nothing left to cut)
            let (b, rec) = crate::support::files::open_existing_buffer(&buffer, DEFAULT_CAPACITY)?;
            println!(
                "{}: {rec}; {} steps in {} episodes",
                buffer.display(),
                b.stats().records,
                b.stats().episodes
            );
            Ok(())
        }
    }
}
