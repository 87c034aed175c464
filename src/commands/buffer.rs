//! `dreamgym buffer ...`: the durable replay buffer — import, stats, export, repair.

use crate::cli::BufferCmd;
use anyhow::{Context, Result, bail};
use dreamgym_buffer::{BufferConfig, CapacityOnOpen, ReplayBuffer, TailRule};

/// Capacity of a buffer created without `--capacity`.
const DEFAULT_CAPACITY: usize = 1_000_000;

/// Opens the buffer log at `path` as it was logged, with `capacity` where the log records
/// none, and what recovery found; a path with no log is an error (reading commands must never
/// create an empty buffer at a mistyped path).
pub(crate) fn open_existing(
    path: &std::path::Path,
    capacity: usize,
) -> Result<(ReplayBuffer, dreamgym_buffer::Recovery)> {
    if !path.exists() {
        bail!("{}: no such buffer", path.display());
    }
    let cfg = BufferConfig {
        capacity,
        ..Default::default()
    };
    ReplayBuffer::open_as_logged(path, cfg)
        .with_context(|| format!("opening buffer {}", path.display()))
}

/// Runs one `buffer` subcommand.
pub fn run(cmd: BufferCmd) -> Result<()> {
    let cfg = |capacity| BufferConfig {
        capacity,
        ..Default::default()
    };
    match cmd {
        BufferCmd::Stats { buffer, json } => {
            let (b, rec) = open_existing(&buffer, DEFAULT_CAPACITY)?;
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
            // exporting must neither create a log at a mistyped path (`open_existing` refuses
            // it) nor overwrite the log it reads
            if crate::files::same_file(&buffer, &out) {
                bail!(
                    "{} is the buffer being exported: give another output file",
                    out.display()
                );
            }
            let (b, _) = open_existing(&buffer, DEFAULT_CAPACITY)?;
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
            let (b, _) = open_existing(&buffer, DEFAULT_CAPACITY)?;
            let trajectories = b.trajectories();
            let env = match env {
                Some(e) => crate::envs::env_id_of(&e),
                None => trajectories
                    .iter()
                    .find(|t| t.provenance == dreamgym_buffer::Provenance::Real)
                    .map(|t| t.env_id.clone())
                    .with_context(|| {
                        format!(
                            "{}: no real episode names the env; give --env",
                            buffer.display()
                        )
                    })?,
            };
            let factory = crate::envs::EnvFactory::new(&env, bridge_cmd.as_deref())?;
            let r = crate::synthetic_replay::replay_synthetic_successes(
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
            let (_, rec) = ReplayBuffer::open_with(
                &buffer,
                cfg(DEFAULT_CAPACITY),
                TailRule::CutAtFirstBad,
                CapacityOnOpen::AsLogged,
            )?;
            println!("{}: {rec}", buffer.display());
            Ok(())
        }
    }
}
