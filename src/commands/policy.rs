//! `dreamgym policy train` and `dreamgym policy eval`: the burn learner on a real env.

use crate::commands::flags::TaskFilter;
use crate::support::envs::EnvFactory;
use crate::training::checkpointed::Checkpointed;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use dreamgym_policy::{
    BackendChoice, EvalReport, IterationMetrics, TaskSampler, TrainConfig, Trainer, select_device,
    vocab_from_env,
};
use dreamgym_sim::{Env, TaskSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `dreamgym policy ...`
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Train a policy (PPO or GRPO) in a real env; writes OUT/checkpoint.bin, metrics.jsonl/csv
    /// and eval.json (held-out success).
    Train {
        /// Env id, e.g. scenario:scenarios/keys_doors.ron
        #[arg(long)]
        env: String,
        #[command(flatten)]
        tasks: TaskFilter,
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
        #[command(flatten)]
        tasks: TaskFilter,
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
        #[command(flatten)]
        tasks: TaskFilter,
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

/// Options of `dreamgym policy train`.
#[derive(Debug, Clone)]
pub struct TrainArgs {
    /// Env id.
    pub env: String,
    /// Bridge command for `bridge:` ids.
    pub bridge_cmd: Option<String>,
    /// Task template filter.
    pub template: Option<String>,
    /// Difficulty filter.
    pub difficulty: Option<u32>,
    /// The run's configuration.
    pub config: TrainConfig,
    /// Whether the network size was given explicitly (`--config`): a resumed run must match it.
    pub hidden_given: bool,
    /// `--iterations` as given (with `--resume` it extends the checkpoint's run).
    pub iterations_override: Option<usize>,
    /// Stop after this many iterations in this invocation (the run stays resumable).
    pub stop_after: Option<usize>,
    /// Backend.
    pub backend: BackendChoice,
    /// Run directory.
    pub out: PathBuf,
    /// Continue from `out/checkpoint.bin`.
    pub resume: bool,
    /// Held-out evaluation episodes at the end (0 = none).
    pub eval_episodes: usize,
    /// No progress bar.
    pub quiet: bool,
    /// Demonstrations (JSONL) to behaviour-clone before RL (successful ones are imitated).
    pub demos: Option<PathBuf>,
    /// Behaviour-cloning epochs over the demonstrations.
    pub bc_epochs: usize,
}

/// Loads a training configuration from a RON file, naming the file and position on error.
pub fn load_config(path: &Path) -> Result<TrainConfig> {
    let cfg: TrainConfig =
        crate::support::ron_file::load(path, "a TrainConfig, e.g. `(algo: ppo, iterations: 50)`")?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// Path of a run's checkpoint.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.bin")
}

#[derive(Serialize)]
struct EvalFile {
    env: String,
    split: &'static str,
    sampled: EvalReport,
    greedy: EvalReport,
    iterations: usize,
    env_steps: u64,
    backend: String,
}

/// Runs `dreamgym policy train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let _lock = crate::support::run_lock::RunLock::acquire(&args.out)?;
    let factory = EnvFactory::new(&args.env, args.bridge_cmd.as_deref())?;
    let device = select_device(args.backend)?;
    let spec = TaskSpec {
        template: args.template.clone(),
        difficulty: args.difficulty,
        posed: None,
    };
    let train_split = TaskSampler::train(spec.clone());
    let ckpt = checkpoint_path(&args.out);

    // a resumed run rebuilds the vocabulary the way the checkpoint's run did, to check it matches
    let vocab_cfg = if args.resume && ckpt.exists() {
        dreamgym_policy::checkpoint_config(&ckpt)?
    } else {
        args.config.clone()
    };
    let mut envs: Vec<Box<dyn Env>> = (0..vocab_cfg.num_envs.max(1))
        .map(|_| factory.open())
        .collect();
    let vocab = vocab_from_env(envs[0].as_mut(), &train_split, &vocab_cfg, vocab_cfg.seed)
        .context("building the vocabulary from random-policy episodes")?;
    let mut trainer = start_trainer(&args, &ckpt, vocab, &device)?;
    tracing::info!(
        "training {:?} on {} ({} words + {} buckets, backend {})",
        trainer.config().algo,
        args.env,
        trainer.featurizer().vocab().known_words(),
        args.config.vocab_oov_buckets,
        trainer.backend()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut run = Checkpointed::open(
        &args.out,
        ckpt,
        &trainer,
        trainer.config().iterations,
        args.quiet,
        args.stop_after,
    )?;
    while !trainer.finished() && !run.stopped() {
        let m: IterationMetrics = trainer.iterate(&mut envs, &train_split).with_context(|| {
            format!(
                "iteration {} (the last good checkpoint is {})",
                trainer.counters().iteration + 1,
                run.path().display()
            )
        })?;
        let line = format!(
            "it {:>4} steps {:>7} {}",
            m.iteration,
            m.env_steps,
            iteration_line(&m)
        );
        run.commit(&trainer, &m, || Ok(serde_json::Value::Null), &line)?;
    }
    run.finish();
    if args.eval_episodes > 0 {
        let report = evaluate_run(&trainer, &factory, &spec, args.eval_episodes)?;
        std::fs::write(
            args.out.join("eval.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        println!(
            "held-out success: {:.3} sampled, {:.3} greedy ({} episodes each); {} env steps",
            report.sampled.success, report.greedy.success, args.eval_episodes, report.env_steps
        );
    }
    Ok(())
}

/// One iteration's figures as `policy train` logs them.
fn iteration_line(m: &IterationMetrics) -> String {
    format!(
        "success {:.2} return {:.2} len {:.1} | pg {:.3} v {:.3} ent {:.2} kl {:.4} | {:.0} steps/s, {:.0} upd samples/s",
        m.success,
        m.mean_return,
        m.mean_length,
        m.update.policy_loss,
        m.update.value_loss,
        m.update.entropy,
        m.update.approx_kl,
        m.rollout_steps_per_s,
        m.update_samples_per_s
    )
}

/// The learner of `policy train`: resumed from `ckpt`, or new and (with `--demos`) warm-started
/// by behaviour cloning on the demonstrations' training-fold episodes.
fn start_trainer(
    args: &TrainArgs,
    ckpt: &Path,
    vocab: dreamgym_policy::Vocab,
    device: &dreamgym_policy::SelectedDevice,
) -> Result<Trainer> {
    let mut trainer = if args.resume {
        if !ckpt.exists() {
            bail!(
                "--resume: no checkpoint at {} (refusing to start from scratch)",
                ckpt.display()
            );
        }
        let hidden = args.hidden_given.then_some(args.config.hidden);
        let t = Trainer::resume(ckpt, device, Some(&vocab), hidden)?;
        tracing::info!(
            "resumed {} at iteration {} ({} env steps)",
            ckpt.display(),
            t.counters().iteration,
            t.counters().env_steps
        );
        t
    } else {
        Trainer::new(args.config.clone(), vocab, device)?
    };
    if let Some(n) = args.iterations_override {
        trainer.set_iterations(n);
    }
    if let (Some(demos), false) = (&args.demos, args.resume) {
        let all = dreamgym_buffer::jsonl::read_file(demos)?;
        // never imitate held-out instances: evaluation on them must stay honest
        let trajectories: Vec<_> = all
            .into_iter()
            .filter(dreamgym_policy::rollout::on_training_instance)
            .collect();
        let losses = trainer
            .behaviour_clone(&trajectories, args.bc_epochs, 64, 1e-3)
            .with_context(|| format!("behaviour cloning on {}", demos.display()))?;
        tracing::info!(
            "behaviour cloning on {} trajectories ({} successful): NLL {:.3} -> {:.3}",
            trajectories.len(),
            trajectories.iter().filter(|t| t.outcome.success).count(),
            losses.first().copied().unwrap_or(0.0),
            losses.last().copied().unwrap_or(0.0)
        );
    }
    Ok(trainer)
}

fn evaluate_run(
    trainer: &Trainer,
    factory: &EnvFactory,
    spec: &TaskSpec,
    episodes: usize,
) -> Result<EvalFile> {
    let held = TaskSampler::held_out(spec.clone());
    let mut env = factory.open();
    let seed = trainer.config().seed.wrapping_add(0xe7a1);
    let sampled = trainer.evaluate(env.as_mut(), &held, episodes, false, seed)?;
    let greedy = trainer.evaluate(env.as_mut(), &held, episodes, true, seed)?;
    Ok(EvalFile {
        env: factory.id().to_string(),
        split: "held-out",
        sampled,
        greedy,
        iterations: trainer.counters().iteration,
        env_steps: trainer.counters().env_steps,
        backend: trainer.backend().to_string(),
    })
}

/// Runs `dreamgym policy eval`: a checkpoint on held-out instances.
pub fn eval(
    env: &str,
    bridge_cmd: Option<&str>,
    spec: TaskSpec,
    checkpoint: &Path,
    episodes: usize,
    json: bool,
) -> Result<()> {
    let factory = EnvFactory::new(env, bridge_cmd)?;
    let device = select_device(BackendChoice::Cpu)?;
    let trainer = Trainer::resume(checkpoint, &device, None, None)?;
    let report = evaluate_run(&trainer, &factory, &spec, episodes)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: held-out success {:.3} sampled / {:.3} greedy over {} episodes (mean length {:.1})",
            factory.id(),
            report.sampled.success,
            report.greedy.success,
            episodes,
            report.sampled.mean_length
        );
    }
    Ok(())
}

/// Runs `dreamgym policy serve-env`: the env and the text featurizer behind a JSON-lines pipe, so
/// a Python learner (the PyTorch side of `benches/compare/`) sees exactly the features the burn
/// learner sees. Requests on stdin: `reset SEED [train|heldout]` (an instance of that split drawn
/// from SEED; training by default) or `step INDEX`; one JSON reply per line on stdout. The first line announces the dimensions.
pub fn serve_env(env: &str, spec: TaskSpec, vocab_seed: u64) -> Result<()> {
    use dreamgym_policy::text::{EpisodeMemory, Featurizer};
    use rand::SeedableRng;
    use std::io::{BufRead, Write};
    let factory = EnvFactory::new(env, None)?;
    let mut env = factory.open();
    let sampler = TaskSampler::train(spec.clone());
    let held_out = TaskSampler::held_out(spec);
    let cfg = TrainConfig {
        seed: vocab_seed,
        ..TrainConfig::default()
    };
    let featurizer = Featurizer::new(vocab_from_env(env.as_mut(), &sampler, &cfg, vocab_seed)?);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(
        out,
        "{}",
        serde_json::json!({"state_dim": featurizer.state_dim(), "action_dim": featurizer.action_dim()})
    )?;
    out.flush()?;
    let mut obs = None;
    let mut memory = EpisodeMemory::default();
    let encode = |o: &dreamgym_buffer::Observation, m: &EpisodeMemory| {
        let e = featurizer.encode(o, m);
        serde_json::json!({"state": e.state, "actions": e.actions})
    };
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next().map(str::parse::<u64>)) {
            (Some("reset"), Some(Ok(seed))) => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let split = match words.next() {
                    None | Some("train") => &sampler,
                    Some("heldout") => &held_out,
                    Some(other) => {
                        bail!("serve-env: unknown split `{other}`: expected train or heldout")
                    }
                };
                let (o, _) = split.reset(env.as_mut(), &mut rng)?;
                memory = EpisodeMemory::default();
                let r = encode(&o, &memory);
                obs = Some(o);
                r
            }
            (Some("step"), Some(Ok(index))) => {
                let Some(o) = obs.as_ref() else {
                    bail!("serve-env: `step` before `reset`")
                };
                let Some(action) = o.admissible.get(index as usize).cloned() else {
                    bail!(
                        "serve-env: action index {index} out of range ({} admissible)",
                        o.admissible.len()
                    )
                };
                let res = env.step(&action)?;
                memory.record(&action);
                let mut r = encode(&res.observation, &memory);
                r["reward"] = res.reward.into();
                r["done"] = res.done.into();
                r["truncated"] = res.truncated.into();
                r["success"] = res.success.into();
                obs = Some(res.observation);
                r
            }
            _ => bail!(
                "serve-env: expected `reset SEED [train|heldout]` or `step INDEX`, got `{line}`"
            ),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// Runs one `policy` subcommand.
pub fn run(cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Train {
            env,
            tasks,
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
                (Some(path), _) => load_config(path)?,
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
            train(TrainArgs {
                env,
                bridge_cmd,
                template: tasks.template,
                difficulty: tasks.difficulty,
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
            tasks,
            vocab_seed,
        } => serve_env(&env, tasks.spec(), vocab_seed),
        PolicyCmd::Eval {
            env,
            checkpoint,
            tasks,
            episodes,
            json,
            bridge_cmd,
        } => eval(
            &env,
            bridge_cmd.as_deref(),
            tasks.spec(),
            &checkpoint,
            episodes,
            json,
        ),
    }
}
