//! Command-line interface.

use crate::collect::collect;
use crate::envs::{EnvFactory, load_world, open_scenario};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dreamgym_buffer::{BufferConfig, CapacityOnOpen, ReplayBuffer, TailRule};

/// Capacity of a buffer created without `--capacity`.
const DEFAULT_CAPACITY: usize = 1_000_000;
use dreamgym_sim::policy::BehaviourPolicy;
use dreamgym_sim::{Env, TaskSpec};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// dreamgym: synthetic experience for training agents with RL.
#[derive(Parser, Debug)]
#[command(name = "dreamgym", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Work with scenario files.
    Scenario {
        /// The scenario command.
        #[command(subcommand)]
        cmd: ScenarioCmd,
    },
    /// Play a scenario in the terminal (for scenario authors).
    Play {
        /// Scenario file.
        file: PathBuf,
        /// Task template id.
        #[arg(long)]
        template: Option<String>,
        /// Difficulty level.
        #[arg(long)]
        difficulty: Option<u32>,
        /// Seed of the task instance.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Collect offline trajectories with a behaviour policy.
    Collect {
        /// Env id, e.g. scenario:scenarios/household.ron
        #[arg(long)]
        env: String,
        /// expert | random | noisy-expert[:EPS]
        #[arg(long, default_value = "expert")]
        policy: String,
        /// Number of episodes.
        #[arg(long, default_value_t = 100)]
        episodes: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
        /// Only this task template.
        #[arg(long)]
        template: Option<String>,
        /// Only this difficulty.
        #[arg(long)]
        difficulty: Option<u32>,
        /// Environments run in parallel (each bridge is its own process).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// For bridge:NAME env ids: the command that runs your own bridge (docs/bridge.md).
        #[arg(long)]
        bridge_cmd: Option<String>,
        /// Cut an episode the env has not ended after this many steps (marked truncated).
        /// Scenarios end theirs far sooner; this bounds bridged envs that never report `done`.
        #[arg(long, default_value_t = dreamgym_sim::policy::MAX_EPISODE_STEPS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        max_steps: usize,
    },
    /// Experience models.
    Model {
        /// The model command.
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// The whole DreamGym job on one env: offline seed data (collected if not given), the native
    /// experience model, curriculum training in it, sim-to-real, the real-only and behaviour-cloning
    /// baselines, ablations, held-out evaluation over seeds; writes OUT/summary.json and report.html.
    Run {
        /// A scenario file (scenarios/household.ron) or an env id (scenario:PATH, bridge:NAME).
        env: String,
        /// Settings in RON (see `pipeline::RunConfig`; fields not given take the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "runs/latest")]
        out: PathBuf,
        /// auto | wgpu | cpu
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Seeds, comma-separated (overrides the config).
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<u64>>,
        /// Policy iterations (overrides the config).
        #[arg(long)]
        iterations: Option<usize>,
        /// Skip the ablations.
        #[arg(long)]
        no_ablations: bool,
    },
    /// One DreamGym training run from an experiment file, checkpointed every iteration: seed
    /// data, the native model, the policy in it with the curriculum, then optional sim-to-real.
    Train {
        /// Experiment file (RON), e.g. experiments/keys-doors.ron
        #[arg(long)]
        config: PathBuf,
        /// Output directory (default: runs/<config file name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from OUT/checkpoint.bin.
        #[arg(long)]
        resume: bool,
        /// Stop after this many iterations now (resumable).
        #[arg(long)]
        stop_after: Option<usize>,
        /// auto | wgpu | cpu
        #[arg(long, default_value = "auto")]
        backend: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Train and evaluate policies with the burn learner (PPO, GRPO) in a real env.
    Policy {
        /// The policy command.
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// Trajectories in and out of standard formats (the Agent Data Protocol).
    Data {
        /// The data command.
        #[command(subcommand)]
        cmd: crate::data_cmd::DataCmd,
    },
    /// Inspect and fill replay buffers.
    Buffer {
        /// The buffer command.
        #[command(subcommand)]
        cmd: BufferCmd,
    },
}

/// `dreamgym policy ...`
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Train a policy (PPO or GRPO) in a real env; writes OUT/checkpoint.bin, metrics.jsonl/csv
    /// and eval.json (held-out success).
    Train {
        /// Env id, e.g. scenario:scenarios/keys_doors.ron
        #[arg(long)]
        env: String,
        /// Only this task template.
        #[arg(long)]
        template: Option<String>,
        /// Only this difficulty.
        #[arg(long)]
        difficulty: Option<u32>,
        /// ppo | grpo (overrides the config file)
        #[arg(long)]
        algo: Option<String>,
        /// A TrainConfig in RON (fields not given take their defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Iterations (overrides the config; with --resume, extends the run).
        #[arg(long)]
        iterations: Option<usize>,
        /// Seed (overrides the config).
        #[arg(long)]
        seed: Option<u64>,
        /// auto | wgpu | cpu
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Run directory.
        #[arg(long)]
        out: PathBuf,
        /// Continue the run in OUT from its checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this many iterations now (the run stays resumable with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
        /// Held-out evaluation episodes at the end (0: none).
        #[arg(long, default_value_t = 100)]
        eval_episodes: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// For bridge:NAME env ids: the command that runs your own bridge.
        #[arg(long)]
        bridge_cmd: Option<String>,
        /// Demonstrations (JSONL, e.g. from `dreamgym collect`) to behaviour-clone before RL.
        #[arg(long)]
        demos: Option<PathBuf>,
        /// Behaviour-cloning epochs over --demos.
        #[arg(long, default_value_t = 20)]
        bc_epochs: usize,
    },
    /// Serve an env and the policy's featurizer over JSON lines on stdin/stdout (used by the
    /// PyTorch side of benches/compare/).
    ServeEnv {
        /// Env id.
        #[arg(long)]
        env: String,
        /// Only this task template.
        #[arg(long)]
        template: Option<String>,
        /// Only this difficulty.
        #[arg(long)]
        difficulty: Option<u32>,
        /// Seed of the vocabulary-building episodes.
        #[arg(long, default_value_t = 1)]
        vocab_seed: u64,
    },
    /// Evaluate a checkpoint on held-out task instances.
    Eval {
        /// Env id.
        #[arg(long)]
        env: String,
        /// Checkpoint file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Only this task template.
        #[arg(long)]
        template: Option<String>,
        /// Only this difficulty.
        #[arg(long)]
        difficulty: Option<u32>,
        /// Episodes.
        #[arg(long, default_value_t = 100)]
        episodes: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// For bridge:NAME env ids: the command that runs your own bridge.
        #[arg(long)]
        bridge_cmd: Option<String>,
    },
}

/// `dreamgym scenario ...`
#[derive(Subcommand, Debug)]
pub enum ScenarioCmd {
    /// Validate a scenario and summarise it.
    Check {
        /// Scenario file.
        file: PathBuf,
    },
}

/// `dreamgym model ...`
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Roll out a few synthetic episodes through the LLM model at $DREAMGYM_LLM_URL and report,
    /// as JSON, how many replies were valid, truncated or rejected (a structural check).
    LlmCheck {
        /// Env whose real expert episodes give the initial states.
        #[arg(long)]
        env: String,
        /// Synthetic episodes.
        #[arg(long, default_value_t = 2)]
        episodes: usize,
        /// Steps per episode.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Token limit per reply.
        #[arg(long, default_value_t = 512)]
        max_tokens: u32,
        /// Attempts per prediction.
        #[arg(long, default_value_t = 2)]
        attempts: u32,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write chat-format SFT data (prompt: task, history, retrieved demos, state, action; target:
    /// reasoning, next state, reward, done) for training an LLM experience model.
    ExportSft {
        /// Trajectories (JSONL).
        #[arg(long)]
        data: PathBuf,
        /// Output JSONL.
        #[arg(long)]
        out: PathBuf,
        /// Retrieved demonstrations per example.
        #[arg(long, default_value_t = 3)]
        k: usize,
        /// Steps of history per example.
        #[arg(long, default_value_t = 4)]
        history: usize,
    },
    /// Fit the native model on one file of trajectories and measure its fidelity on another.
    Eval {
        /// Training trajectories (JSONL).
        #[arg(long)]
        train: PathBuf,
        /// Held-out trajectories (JSONL).
        #[arg(long)]
        heldout: PathBuf,
        /// Discount for the bound's model term.
        #[arg(long, default_value_t = 0.99)]
        gamma: f64,
        /// Exact memory only (ablation: no rule induction).
        #[arg(long)]
        no_rules: bool,
        /// Give the model no retrieved transitions (ablation; by default each held-out step is
        /// given the training transitions of its task instance, as in training in the model).
        #[arg(long)]
        no_retrieval: bool,
        /// Also print this many wrong predictions with their reasoning.
        #[arg(long, default_value_t = 0)]
        show_errors: usize,
        /// Also print the first this many predictions (right or wrong) with their reasoning.
        #[arg(long, default_value_t = 0)]
        show: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

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
    /// Cut a log at its first corrupted record (after an error from `stats`).
    Repair {
        /// Buffer log file.
        buffer: PathBuf,
    },
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Scenario {
            cmd: ScenarioCmd::Check { file },
        } => check(&file),
        Command::Play {
            file,
            template,
            difficulty,
            seed,
        } => play(
            &file,
            TaskSpec {
                template,
                difficulty,
                posed: None,
            },
            seed,
        ),
        Command::Collect {
            env,
            policy,
            episodes,
            seed,
            out,
            template,
            difficulty,
            workers,
            bridge_cmd,
            max_steps,
        } => {
            let policy: BehaviourPolicy = policy.parse().map_err(anyhow::Error::msg)?;
            let envs = EnvFactory::new(&env, bridge_cmd.as_deref())?;
            let spec = TaskSpec {
                template,
                difficulty,
                posed: None,
            };
            let plan = crate::collect::CollectPlan {
                policy,
                episodes,
                seed,
                workers,
                max_steps,
            };
            let s = collect(&envs, &spec, plan, &out, true)?;
            println!(
                "wrote {} episodes ({} steps, success {:.1}%) to {}",
                s.episodes,
                s.steps,
                100.0 * s.successes as f64 / s.episodes.max(1) as f64,
                out.display()
            );
            Ok(())
        }
        Command::Buffer { cmd } => buffer(cmd),
        Command::Data { cmd } => crate::data_cmd::run(cmd),
        Command::Policy { cmd } => policy(cmd),
        Command::Train {
            config,
            out,
            resume,
            stop_after,
            backend,
            quiet,
        } => {
            let cfg = crate::experiment::load(&config)?;
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(config.file_stem().unwrap_or_default())
            });
            let device =
                dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
            crate::experiment::train(&cfg, &out, &device, resume, stop_after, quiet)
        }
        Command::Run {
            env,
            config,
            out,
            backend,
            seeds,
            iterations,
            no_ablations,
        } => run_job(
            &env,
            config.as_deref(),
            &out,
            &backend,
            seeds,
            iterations,
            no_ablations,
        ),
        Command::Model {
            cmd:
                ModelCmd::LlmCheck {
                    env,
                    episodes,
                    steps,
                    max_tokens,
                    attempts,
                    seed,
                },
        } => llm_check(&env, episodes, steps, max_tokens, attempts, seed),
        Command::Model {
            cmd:
                ModelCmd::ExportSft {
                    data,
                    out,
                    k,
                    history,
                },
        } => {
            let d = dreamgym_buffer::jsonl::read_file(&data)?;
            let s = crate::sft::export(&d, &out, k, history)?;
            println!(
                "wrote {} examples to {} ({} with the native model's own reasoning, the rest with a factual account)",
                s.examples,
                out.display(),
                s.model_traces
            );
            Ok(())
        }
        Command::Model {
            cmd:
                ModelCmd::Eval {
                    train,
                    heldout,
                    gamma,
                    no_rules,
                    no_retrieval,
                    show_errors,
                    show,
                    json,
                },
        } => model_eval(
            &train,
            &heldout,
            gamma,
            (no_rules, no_retrieval),
            (show_errors, show),
            json,
        ),
    }
}

fn check(file: &std::path::Path) -> Result<()> {
    let w = load_world(file)?;
    println!("{}: ok — {}", file.display(), w.description);
    let statics = w.preds.iter().filter(|p| p.is_static).count();
    println!(
        "  types: {}",
        w.types
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  objects: {}", w.objects.len());
    for (i, t) in w.types.iter().enumerate() {
        let n = w.objects.iter().filter(|o| o.ty as usize == i).count();
        if n > 0 {
            println!("    {:<12} {n}", t.name);
        }
    }
    println!("  predicates: {} ({} static)", w.preds.len(), statics);
    if let Some(p) = &w.places {
        println!(
            "  places: {} connected by {} links",
            p.graph.node_count(),
            p.graph.edge_count()
        );
    }
    println!(
        "  actions: {}",
        w.actions
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  render rules: {}", w.render.len());
    println!("  task templates:");
    for t in &w.tasks {
        let levels: Vec<String> = t.levels.iter().map(|l| l.difficulty.to_string()).collect();
        println!(
            "    {:<14} difficulties {}  vars {}",
            t.id,
            levels.join(","),
            t.vars
                .iter()
                .map(|v| format!("?{}", v.0))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!("  max steps: {}", w.max_steps);
    Ok(())
}

fn play(file: &std::path::Path, spec: TaskSpec, seed: u64) -> Result<()> {
    let mut env = open_scenario(&file.display().to_string())?;
    let mut obs = env.reset(&spec, seed)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    println!(
        "task: {}  ({})",
        obs.instruction,
        env.task().map(|t| t.id.as_str()).unwrap_or("")
    );
    println!("type an action, its number, `expert` for a hint, or `quit`.");
    loop {
        println!();
        for l in &obs.lines {
            println!("  {l}");
        }
        for (i, a) in obs.admissible.iter().enumerate() {
            println!("  {:>2}) {a}", i + 1);
        }
        print!("> ");
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim();
        let action = match line {
            "quit" | "exit" => return Ok(()),
            "expert" => {
                match env.expert_action()? {
                    Some(a) => println!("expert: {a}"),
                    None => println!("expert: no plan found"),
                }
                continue;
            }
            _ => match line.parse::<usize>() {
                Ok(n) if n >= 1 && n <= obs.admissible.len() => obs.admissible[n - 1].clone(),
                _ => line.to_string(),
            },
        };
        let r = env.step(&action)?;
        if !r.observation.feedback.is_empty() {
            println!("{}", r.observation.feedback);
        }
        obs = r.observation;
        if r.done || r.truncated {
            println!(
                "episode over: {} (reward {}, {} steps)",
                if r.success {
                    "success"
                } else if r.truncated {
                    "out of steps"
                } else {
                    "failed"
                },
                r.reward,
                env.steps()
            );
            return Ok(());
        }
    }
}

fn buffer(cmd: BufferCmd) -> Result<()> {
    let cfg = |capacity| BufferConfig {
        capacity,
        ..Default::default()
    };
    match cmd {
        BufferCmd::Stats { buffer, json } => {
            if !buffer.exists() {
                bail!("{}: no such buffer", buffer.display());
            }
            let (b, rec) = ReplayBuffer::open_as_logged(&buffer, cfg(DEFAULT_CAPACITY))
                .with_context(|| format!("opening buffer {}", buffer.display()))?;
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
            // exporting must neither create a log at a mistyped path nor overwrite the log it reads
            if !buffer.exists() {
                bail!("{}: no such buffer", buffer.display());
            }
            if crate::files::same_file(&buffer, &out) {
                bail!(
                    "{} is the buffer being exported: give another output file",
                    out.display()
                );
            }
            let (b, _) = ReplayBuffer::open_as_logged(&buffer, cfg(DEFAULT_CAPACITY))
                .with_context(|| format!("opening buffer {}", buffer.display()))?;
            let n = b.export_jsonl(&out)?;
            println!(
                "exported {n} trajectories ({} steps) to {}",
                b.len(),
                out.display()
            );
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

fn model_eval(
    train: &std::path::Path,
    heldout: &std::path::Path,
    gamma: f64,
    (no_rules, no_retrieval): (bool, bool),
    (show_errors, show): (usize, usize),
    json: bool,
) -> Result<()> {
    use dreamgym_sim::model::{fidelity, native::NativeModel};
    if !(0.0..1.0).contains(&gamma) {
        bail!("--gamma must be in [0, 1), got {gamma}");
    }
    let tr = dreamgym_buffer::jsonl::read_file(train)?;
    let ho = dreamgym_buffer::jsonl::read_file(heldout)?;
    let t0 = std::time::Instant::now();
    let model = NativeModel::fit_with(&tr, !no_rules);
    let fit_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let r = fidelity::evaluate_with(&model, &tr, &ho, gamma, !no_retrieval);
    let eval_s = t1.elapsed().as_secs_f64();
    // one-step predictions plus the open-loop ones of the drift measurement
    let predictions = r.all.transitions + r.drift.iter().map(|d| d.windows).sum::<usize>();
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    eprintln!(
        "fitted {} on {} transitions ({} rules) in {fit_s:.2}s; {} predictions in {eval_s:.2}s ({:.0}/s)",
        dreamgym_sim::model::ExperienceModel::name(&model),
        model.transitions(),
        model.rules(),
        predictions,
        predictions as f64 / eval_s.max(1e-9)
    );
    println!(
        "{:<24} {:>10} {:>12} {:>14}",
        "metric", "all", "seen tasks", "unseen tasks"
    );
    type Metric = fn(&fidelity::Fidelity) -> f64;
    let rows: [(&str, Metric); 12] = [
        ("transitions", |f| f.transitions as f64),
        ("next_state_exact", |f| f.next_state_exact),
        ("revealing", |f| f.revealing),
        ("next_state_exact_closed", |f| f.next_state_exact_closed),
        ("next_state_f1", |f| f.next_state_f1),
        ("admissible_exact", |f| f.admissible_exact),
        ("reward_accuracy", |f| f.reward_accuracy),
        ("false_success_rate", |f| f.false_success_rate),
        ("done_accuracy", |f| f.done_accuracy),
        ("eps_r", |f| f.eps_r),
        ("eps_p", |f| f.eps_p),
        ("bound_penalty", |f| f.bound_penalty),
    ];
    for (name, get) in rows {
        println!(
            "{name:<24} {:>10.4} {:>12.4} {:>14.4}",
            get(&r.all),
            get(&r.seen_tasks),
            get(&r.unseen_tasks)
        );
    }
    let drift: Vec<String> = r
        .drift
        .iter()
        .map(|d| format!("k={}: {:.3}", d.k, d.exact))
        .collect();
    println!(
        "open-loop next-state exact after k steps: {}",
        drift.join(", ")
    );
    let index = if no_retrieval {
        Default::default()
    } else {
        dreamgym_sim::model::env::retrieval_index(&tr)
    };
    show_predictions(&model, &ho, &index, show, false);
    show_predictions(&model, &ho, &index, show_errors, true);
    Ok(())
}

/// Print up to `n` held-out predictions (only wrong ones with `wrong_only`), with the reasoning.
fn show_predictions(
    model: &dyn dreamgym_sim::model::ExperienceModel,
    heldout: &[dreamgym_buffer::Trajectory],
    retrieval: &std::collections::HashMap<String, Vec<dreamgym_buffer::Step>>,
    n: usize,
    wrong_only: bool,
) {
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    let mut shown = 0;
    for t in heldout {
        let retrieved = retrieval.get(&t.task.id).map_or(&[][..], Vec::as_slice);
        for (i, s) in t.steps.iter().enumerate() {
            if shown >= n {
                return;
            }
            let ctx = dreamgym_sim::model::ModelContext {
                retrieved,
                ..dreamgym_sim::model::ModelContext::at_step(t, i)
            };
            let p = match model.predict(&ctx) {
                Ok(p) => p,
                Err(e) => {
                    println!("\n--- {} step {i}: rejected: {e}", t.task.id);
                    shown += 1;
                    continue;
                }
            };
            let wrong =
                set(&p.next_state.lines) != set(&s.next_state.lines) || p.reward != s.reward;
            if wrong || !wrong_only {
                shown += 1;
                println!(
                    "\n--- {} step {i}{}",
                    t.task.id,
                    if wrong { " (wrong)" } else { "" }
                );
                println!("state:     {:?}\naction:    {}", s.state.lines, s.action);
                println!("predicted: {:?} reward {}", p.next_state.lines, p.reward);
                println!("real:      {:?} reward {}", s.next_state.lines, s.reward);
                let (pa, ra) = (set(&p.next_state.admissible), set(&s.next_state.admissible));
                if pa != ra {
                    println!(
                        "admissible: missing {:?}, extra {:?}",
                        ra.difference(&pa).collect::<Vec<_>>(),
                        pa.difference(&ra).collect::<Vec<_>>()
                    );
                }
                println!("reasoning: {}", p.reasoning);
            }
        }
    }
}

fn llm_check(
    env: &str,
    episodes: usize,
    steps: usize,
    max_tokens: u32,
    attempts: u32,
    seed: u64,
) -> Result<()> {
    use dreamgym_sim::model::env::ModelEnv;
    use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
    use rand::{RngExt, SeedableRng};
    use std::sync::atomic::Ordering;
    let envs = EnvFactory::new(env, None)?;
    let mut real_env = envs.open();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut real = vec![];
    for i in 0..3 {
        real.push(dreamgym_sim::policy::collect_episode(
            real_env.as_mut(),
            &TaskSpec::default(),
            seed * 100 + i,
            BehaviourPolicy::Expert,
            &mut rng,
        )?);
    }
    let mut cfg = LlmConfig::from_env()?;
    cfg.max_tokens = max_tokens;
    cfg.attempts = attempts;
    let model = std::sync::Arc::new(LlmModel::new(cfg)?);
    let mut sim = ModelEnv::new(model.clone(), &real, steps as u32 + 1);
    let (mut valid, mut rejected, mut recorded) = (0usize, 0usize, vec![]);
    let mut errors = vec![];
    for ep in 0..episodes {
        let mut obs = sim.reset(&TaskSpec::default(), seed + ep as u64)?;
        for _ in 0..steps {
            if obs.admissible.is_empty() {
                break;
            }
            let a = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
            match sim.step(&a) {
                // the model env ends the episode at a rejected reply, recording nothing
                Ok(r) if r.info.contains_key("rejected") => {
                    rejected += 1;
                    errors.push(r.info["rejected"].clone());
                    break;
                }
                // a predicted state without an admissible action is a model error too
                Ok(r) if r.info.contains_key("dead_end") => {
                    rejected += 1;
                    errors.push(format!("after `{a}`: {}", r.info["dead_end"]));
                    break;
                }
                Ok(r) => {
                    anyhow::ensure!(
                        (0.0..=1.0).contains(&r.reward),
                        "reward {} out of range",
                        r.reward
                    );
                    anyhow::ensure!(!r.observation.lines.is_empty(), "empty next state");
                    valid += 1;
                    recorded.push(a);
                    let end = r.done || r.truncated;
                    obs = r.observation;
                    if end {
                        break;
                    }
                }
                Err(e) => {
                    rejected += 1;
                    errors.push(e.to_string());
                    break; // the episode cannot go on without a state; nothing was recorded
                }
            }
        }
    }
    let st = model.stats();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "valid": valid,
            "rejected": rejected,
            "requests": st.requests.load(Ordering::Relaxed),
            "retries": st.retries.load(Ordering::Relaxed),
            "truncated": st.truncated.load(Ordering::Relaxed),
            "invalid": st.invalid.load(Ordering::Relaxed),
            "errors": errors,
        }))?
    );
    Ok(())
}

fn policy(cmd: PolicyCmd) -> Result<()> {
    use crate::policy_cmd;
    match cmd {
        PolicyCmd::Train {
            env,
            template,
            difficulty,
            algo,
            config,
            iterations,
            seed,
            backend,
            out,
            resume,
            stop_after,
            eval_episodes,
            quiet,
            bridge_cmd,
            demos,
            bc_epochs,
        } => {
            let algo = algo
                .map(|a| a.parse::<dreamgym_policy::Algo>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let mut cfg = match (&config, algo) {
                (Some(path), _) => policy_cmd::load_config(path)?,
                (None, Some(dreamgym_policy::Algo::Grpo)) => dreamgym_policy::TrainConfig::grpo(),
                (None, _) => dreamgym_policy::TrainConfig::default(),
            };
            if let Some(a) = algo {
                cfg.algo = a;
            }
            if let Some(s) = seed {
                cfg.seed = s;
            }
            if let Some(n) = iterations {
                cfg.iterations = n;
            }
            cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            policy_cmd::train(policy_cmd::TrainArgs {
                env,
                bridge_cmd,
                template,
                difficulty,
                config: cfg,
                hidden_given: config.is_some(),
                iterations_override: iterations,
                stop_after,
                backend: backend.parse().map_err(anyhow::Error::msg)?,
                out,
                resume,
                eval_episodes,
                quiet,
                demos,
                bc_epochs,
            })
        }
        PolicyCmd::ServeEnv {
            env,
            template,
            difficulty,
            vocab_seed,
        } => policy_cmd::serve_env(
            &env,
            TaskSpec {
                template,
                difficulty,
                posed: None,
            },
            vocab_seed,
        ),
        PolicyCmd::Eval {
            env,
            checkpoint,
            template,
            difficulty,
            episodes,
            json,
            bridge_cmd,
        } => policy_cmd::eval(
            &env,
            bridge_cmd.as_deref(),
            TaskSpec {
                template,
                difficulty,
                posed: None,
            },
            &checkpoint,
            episodes,
            json,
        ),
    }
}

fn run_job(
    env: &str,
    config: Option<&std::path::Path>,
    out: &std::path::Path,
    backend: &str,
    seeds: Option<Vec<u64>>,
    iterations: Option<usize>,
    no_ablations: bool,
) -> Result<()> {
    use crate::pipeline::RunConfig;
    let mut cfg = match config {
        Some(path) => crate::ron_file::load_checked::<RunConfig>(
            path,
            "a RunConfig, e.g. `(seeds: [1, 2, 3], iterations: 60)`",
            RunConfig::validate,
        )?,
        None => RunConfig::default(),
    };
    if let Some(s) = seeds {
        cfg.seeds = s;
    }
    if let Some(n) = iterations {
        cfg.iterations = n;
    }
    if no_ablations {
        cfg.ablations = false;
    }
    let id = if env.starts_with("scenario:") || env.starts_with("bridge:") {
        env.to_string()
    } else {
        format!("scenario:{env}")
    };
    let _lock = crate::run_lock::RunLock::acquire(out)?;
    let device = dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
    let progress = crate::progress::Progress::new(crate::pipeline::planned_iterations(&cfg), false);
    let summary = crate::pipeline::run(&id, &cfg, &device, &progress, &mut |partial| {
        crate::report::write(out, partial)?;
        progress.suspend(|| {
            tracing::info!(
                "seeds {:?} done: partial results in {} (complete: false)",
                partial.seeds_done,
                out.join("summary.json").display()
            )
        });
        Ok(())
    })?;
    progress.finish();
    crate::report::write(out, &summary)?;
    println!(
        "{:<32}{:>9}{:>20}{:>12}{:>12}{:>12}",
        "method", "success", "95% CI", "real", "offline", "synthetic"
    );
    for (name, m) in &summary.methods {
        println!(
            "{:<32}{:>9.3}{:>20}{:>12}{:>12}{:>12}",
            name,
            m.success,
            format!("[{:.3}, {:.3}]", m.ci_low, m.ci_high),
            m.real_steps,
            m.offline_steps,
            m.synthetic_steps
        );
    }
    println!(
        "wrote {} and {} ({:.0} s)",
        out.join("summary.json").display(),
        out.join("report.html").display(),
        summary.seconds
    );
    Ok(())
}
