//! Command-line interface: the clap types and the dispatch to `commands/`.

use crate::commands;
use anyhow::Result;
use clap::{Parser, Subcommand};
use dreamgym_sim::TaskSpec;
use std::path::PathBuf;

/// Which tasks of an env a command uses (flattened into the commands that take it).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks of this template.
    #[arg(long)]
    pub template: Option<String>,
    /// Only this difficulty level.
    #[arg(long)]
    pub difficulty: Option<u32>,
}

impl TaskFilter {
    /// The task spec these flags ask for.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            template: self.template.clone(),
            difficulty: self.difficulty,
            posed: None,
        }
    }
}

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
        #[command(flatten)]
        tasks: TaskFilter,
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
        #[command(flatten)]
        tasks: TaskFilter,
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
        /// Stop with an error once more than this share of task instances had an expert that
        /// raised, hung or crashed (counted by kind; the instance is given up, or a noisy
        /// expert's step played at random).
        #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
        max_expert_failure_share: f64,
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
    Run(crate::commands::run::RunArgs),
    /// How many real interactions DreamGym saves: real_only trained at a ladder of real budgets
    /// up to convergence (one run per budget), DreamGym with no online real step, DreamGym-S2R
    /// at small real budgets, over several seeds; writes summary.json (headline figures: real
    /// only's converged success, DreamGym's share of it, the saving factor), report.html and
    /// efficiency.svg (success against real interactions, log axis).
    Efficiency(crate::commands::efficiency::EfficiencyArgs),
    /// Serve an env over the OpenEnv protocol (WebSocket /ws and HTTP) for trainers in any
    /// language: the real env, or with --model a synthetic one (an experience model fit on
    /// --offline real trajectories, the curriculum choosing the tasks). Every episode played is
    /// recorded in the durable replay buffer --buffer. Stops cleanly on SIGTERM / Ctrl-C.
    Serve(ServeArgs),
    /// One DreamGym training run from an experiment file, checkpointed every iteration: seed
    /// data, the native model, the policy in it with the curriculum, then optional sim-to-real.
    Train(crate::commands::train::TrainArgs),
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
        cmd: crate::commands::data::DataCmd,
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

/// `dreamgym scenario ...`
#[derive(Subcommand, Debug)]
pub enum ScenarioCmd {
    /// Validate a scenario and summarise it.
    Check {
        /// Scenario file.
        file: PathBuf,
        /// Also play N instances of every template and level with the expert and with a random
        /// policy: solved share, plan lengths, random success, distinct instances, warnings.
        #[arg(long, value_name = "N")]
        expert: Option<usize>,
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
        /// Give the model no retrieved transitions (ablation; the same as --retrieval off).
        #[arg(long)]
        no_retrieval: bool,
        /// What each held-out episode is shown: off, instance (the training transitions of its
        /// task instance, as in training in the model) or similar (those, then the most similar
        /// other instances').
        #[arg(long, default_value = "instance")]
        retrieval: dreamgym_sim::model::retrieval::RetrievalMode,
        /// Retrieve from this replay buffer (e.g. a run's `buffer.dglog`) instead of the
        /// training file.
        #[arg(long, value_name = "FILE.dglog")]
        buffer: Option<PathBuf>,
        /// Which of the buffer's episodes are retrievable: real, synthetic or all.
        #[arg(long, default_value = "real", requires = "buffer")]
        retrieve: dreamgym_sim::model::retrieval::Retrievable,
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

/// A share in [0, 1] (clap value parser).
fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{text}`: expected a share in [0, 1]")),
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Scenario {
            cmd: ScenarioCmd::Check { file, expert },
        } => commands::scenario::check(&file, expert),
        Command::Play { file, tasks, seed } => commands::scenario::play(&file, tasks.spec(), seed),
        Command::Collect {
            env,
            policy,
            episodes,
            seed,
            out,
            tasks,
            workers,
            bridge_cmd,
            max_steps,
            max_expert_failure_share,
        } => commands::collect::run(
            &env,
            bridge_cmd.as_deref(),
            &tasks.spec(),
            crate::collect::CollectPlan {
                policy: policy.parse().map_err(anyhow::Error::msg)?,
                episodes,
                seed,
                workers,
                max_steps,
                max_expert_failure_share,
            },
            &out,
        ),
        Command::Buffer { cmd } => commands::buffer::run(cmd),
        Command::Data { cmd } => commands::data::run(cmd),
        Command::Policy { cmd } => commands::policy::run(cmd),
        Command::Train(args) => commands::train::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Efficiency(args) => commands::efficiency::run(args),
        Command::Model { cmd } => commands::model::run(cmd),
    }
}
