//! Command-line interface: the top-level command and the dispatch to `commands/`, where each
//! command owns its flags.

use crate::commands;
use anyhow::Result;
use clap::{Parser, Subcommand};

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
        cmd: crate::commands::scenario::ScenarioCmd,
    },
    /// Play a scenario in the terminal (for scenario authors).
    Play(crate::commands::scenario::PlayArgs),
    /// Collect offline trajectories with a behaviour policy.
    Collect(crate::commands::collect::CollectArgs),
    /// Experience models.
    Model {
        /// The model command.
        #[command(subcommand)]
        cmd: crate::commands::model::ModelCmd,
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
    Serve(crate::commands::serve::ServeArgs),
    /// One DreamGym training run from an experiment file, checkpointed every iteration: seed
    /// data, the native model, the policy in it with the curriculum, then optional sim-to-real.
    Train(crate::commands::train::TrainArgs),
    /// Train and evaluate policies with the burn learner (PPO, GRPO) in a real env.
    Policy {
        /// The policy command.
        #[command(subcommand)]
        cmd: crate::commands::policy::PolicyCmd,
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
        cmd: crate::commands::buffer::BufferCmd,
    },
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Scenario { cmd } => commands::scenario::run(cmd),
        Command::Play(args) => commands::scenario::play(args),
        Command::Collect(args) => commands::collect::run(args),
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
