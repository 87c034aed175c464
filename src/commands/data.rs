//! `dreamgym data`: trajectories in and out of standard formats — the Agent Data Protocol (ADP)
//! today (mapping in `docs/formats.md`).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use dreamgym_buffer::adp::{self, ImportOptions};
use dreamgym_buffer::{BufferConfig, JsonlWriter, ReplayBuffer, Trajectory};
use std::path::{Path, PathBuf};

/// `dreamgym data ...`
#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Convert Agent Data Protocol trajectories (JSONL, or a JSON array as ADP's sample_std.json)
    /// into dreamgym JSONL and/or a durable buffer.
    ImportAdp {
        /// ADP file: one trajectory per line, or one JSON array of them.
        input: PathBuf,
        /// dreamgym JSONL to write.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Durable buffer to append to (created if missing).
        #[arg(long)]
        buffer: Option<PathBuf>,
        /// Env id to file the trajectories under.
        #[arg(long, default_value = "adp:import")]
        env_id: String,
        /// Drop a last observation that is only a converter's boilerplate ending ("Task
        /// completed successfully."): not evidence of what the environment did.
        #[arg(long)]
        drop_boilerplate: bool,
        /// Skip invalid trajectories (counted and listed) instead of stopping at the first.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write trajectories (dreamgym JSONL, or a durable buffer `*.dglog`) as ADP 1.5.0 JSONL.
    ExportAdp {
        /// dreamgym JSONL file or buffer log.
        input: PathBuf,
        /// ADP JSONL to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `dreamgym data` command.
pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::ImportAdp {
            input,
            out,
            buffer,
            env_id,
            drop_boilerplate,
            skip_invalid,
        } => import(
            &input,
            out.as_deref(),
            buffer.as_deref(),
            &ImportOptions {
                env_id,
                drop_boilerplate,
            },
            skip_invalid,
        ),
        DataCmd::ExportAdp { input, out } => export(&input, &out),
    }
}

fn import(
    input: &Path,
    out: Option<&Path>,
    buffer: Option<&Path>,
    opts: &ImportOptions,
    skip_invalid: bool,
) -> Result<()> {
    if out.is_none() && buffer.is_none() {
        bail!("import-adp: give --out FILE.jsonl, --buffer PATH, or both");
    }
    if let Some(o) = out {
        let mut inputs = vec![("INPUT", input)];
        inputs.extend(buffer.map(|b| ("--buffer", b)));
        crate::support::files::refuse_output_over_input("import-adp", ("--out", o), &inputs)?;
    }
    if let Some(b) = buffer {
        crate::support::files::refuse_output_over_input(
            "import-adp",
            ("--buffer", b),
            &[("INPUT", input)],
        )?;
    }
    // everything is converted (and refused) before anything is written
    let (trajectories, report) = adp::read_file(input, opts, skip_invalid)?;
    for s in &report.skipped {
        eprintln!("skipped: {s}");
    }
    if let Some(out) = out {
        let mut w = JsonlWriter::create(out)?;
        for t in &trajectories {
            w.write(t)?;
        }
        w.finish()?;
    }
    if let Some(path) = buffer {
        let (mut b, rec) = ReplayBuffer::open_as_logged(path, BufferConfig::default())
            .with_context(|| format!("opening buffer {}", path.display()))?;
        eprintln!("{}: {rec}", path.display());
        for t in &trajectories {
            b.push_trajectory(t)
                .with_context(|| format!("appending {} to {}", t.task.id, path.display()))?;
        }
        b.sync()?;
    }
    println!(
        "imported {} ADP trajectories ({} transitions, {} without a stated reward){}{}",
        report.trajectories,
        report.transitions,
        report.unknown_reward_steps,
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped {} invalid", report.skipped.len())
        },
        if report.boilerplate_dropped > 0 {
            format!(
                "; dropped {} boilerplate ending(s)",
                report.boilerplate_dropped
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The trajectories of a dreamgym JSONL file or a buffer log (`.dglog`).
fn read_trajectories(input: &Path) -> Result<Vec<Trajectory>> {
    if !input.exists() {
        bail!("{}: no such file", input.display());
    }
    if input.extension().is_some_and(|e| e == "dglog") {
        let (b, _) =
            crate::support::files::open_existing_buffer(input, BufferConfig::default().capacity)?;
        return Ok(b.trajectories());
    }
    Ok(dreamgym_buffer::jsonl::read_file(input)?)
}

fn export(input: &Path, out: &Path) -> Result<()> {
    crate::support::files::refuse_output_over_input(
        "export-adp",
        ("--out", out),
        &[("INPUT", input)],
    )?;
    let trajectories = read_trajectories(input)?;
    let mut text = String::new();
    for (i, t) in trajectories.iter().enumerate() {
        let id = format!("{}#{}", t.task.id, i + 1);
        let v = adp::to_adp(t, &id);
        adp::validate(&v).map_err(|e| {
            anyhow::anyhow!(
                "trajectory {id}: the ADP written fails the schema at {}: {}",
                e.field,
                e.message
            )
        })?;
        text.push_str(&serde_json::to_string(&v)?);
        text.push('\n');
    }
    crate::support::files::replace_file(out, &text)?;
    println!(
        "exported {} trajectories as ADP {} to {}",
        trajectories.len(),
        adp::EXPORT_SCHEMA_VERSION,
        out.display()
    );
    Ok(())
}
