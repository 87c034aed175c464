//! `dreamgym scenario check` and `dreamgym play`: a scenario file checked, or played by hand.

use crate::commands::flags::TaskFilter;
use crate::support::envs::{load_world, open_scenario};
use anyhow::Result;
use clap::Subcommand;
use dreamgym_sim::{Env, TaskSpec};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The flags of `dreamgym play`.
#[derive(clap::Args, Debug)]
pub struct PlayArgs {
    /// Scenario file.
    pub file: PathBuf,
    #[command(flatten)]
    pub tasks: TaskFilter,
    /// Seed of the task instance.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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

/// Runs one `scenario` subcommand.
pub fn run(cmd: ScenarioCmd) -> Result<()> {
    match cmd {
        ScenarioCmd::Check { file, expert } => check(&file, expert),
    }
}

/// `dreamgym scenario check FILE [--expert N]`: compile the scenario and print what it holds;
/// with `--expert N`, play N instances of every template and level (see [`expert_table`]).
pub fn check(file: &std::path::Path, expert: Option<usize>) -> Result<()> {
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
    if let Some(n) = expert {
        expert_table(file, &w, n)?;
    }
    Ok(())
}

/// What N instances of one template and level showed.
#[derive(Default)]
struct LevelCheck {
    solved: usize,
    plan_steps: Vec<usize>,
    random_wins: usize,
    distinct: std::collections::HashSet<(String, Vec<String>)>,
    trivial: usize,
    errors: Vec<String>,
}

/// Instances `0..n` of every template and level, each played by the expert (the generic
/// planner) and, from the same seed, by a uniformly random admissible policy: the expert's
/// solved share and plan lengths, the random policy's success, how many distinct instances
/// (instruction and first observation) the seeds gave; warnings for goals that hold at the start,
/// instances the expert cannot solve, levels a random policy solves (>= 90%) and levels with few
/// distinct instances.
fn expert_table(file: &std::path::Path, w: &dreamgym_sim::World, n: usize) -> Result<()> {
    use rand::{RngExt, SeedableRng};
    let n = n.max(1);
    let mut env = open_scenario(&file.display().to_string())?;
    println!(
        "\n  expert check, {n} instances per template and level (seeds 0..{n}); random = uniform over admissible actions, same seeds:"
    );
    println!(
        "    {:<14} {:>5} {:>8} {:>14} {:>8} {:>10}",
        "template", "level", "solved", "plan mean/max", "random", "distinct"
    );
    let mut warnings = vec![];
    for t in &w.tasks {
        for level in &t.levels {
            let spec = TaskSpec {
                template: Some(t.id.clone()),
                difficulty: Some(level.difficulty),
                posed: None,
            };
            let mut c = LevelCheck::default();
            for seed in 0..n as u64 {
                let obs = match env.reset(&spec, seed) {
                    Ok(o) => o,
                    Err(e) => {
                        c.errors.push(e.to_string());
                        continue;
                    }
                };
                c.distinct
                    .insert((obs.instruction.clone(), obs.lines.clone()));
                if env.goal_holds() {
                    c.trivial += 1;
                }
                // the expert
                let mut steps = 0;
                while let Ok(Some(a)) = env.expert_action() {
                    steps += 1;
                    let r = env.step(&a)?;
                    if r.success {
                        c.solved += 1;
                        c.plan_steps.push(steps);
                    }
                    if r.done || r.truncated {
                        break;
                    }
                }
                // a random policy on the same instance
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut obs = env.reset(&spec, seed)?;
                while !obs.admissible.is_empty() {
                    let a = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
                    let r = env.step(&a)?;
                    if r.done || r.truncated {
                        c.random_wins += usize::from(r.success);
                        break;
                    }
                    obs = r.observation;
                }
            }
            let played = n - c.errors.len();
            let mean = c.plan_steps.iter().sum::<usize>() as f64 / c.plan_steps.len().max(1) as f64;
            let max = c.plan_steps.iter().max().copied().unwrap_or(0);
            println!(
                "    {:<14} {:>5} {:>7.1}% {:>14} {:>8.3} {:>10}",
                t.id,
                level.difficulty,
                100.0 * c.solved as f64 / played.max(1) as f64,
                format!("{mean:.1} / {max}"),
                c.random_wins as f64 / played.max(1) as f64,
                format!("{} / {played}", c.distinct.len()),
            );
            let at = format!("{} level {}", t.id, level.difficulty);
            if let Some(e) = c.errors.first() {
                warnings.push(format!(
                    "{at}: {} of {n} seeds could not be set up (first: {e})",
                    c.errors.len()
                ));
            }
            if c.trivial > 0 {
                warnings.push(format!(
                    "{at}: the goal holds at the start in {} of {played} instances (nothing to do)",
                    c.trivial
                ));
            }
            let unsolved = played.saturating_sub(c.solved + c.trivial);
            if unsolved > 0 {
                warnings.push(format!(
                    "{at}: the expert solves {} of {played} instances; {unsolved} have no plan within the step limit (an unreachable goal, or one reachable only if deletions were ignored); `collect` skips such instances",
                    c.solved
                ));
            }
            if played > 0 && c.random_wins * 10 >= played * 9 {
                warnings.push(format!(
                    "{at}: a random policy solves {} of {played} instances: too easy to tell learners apart",
                    c.random_wins
                ));
            }
            if played >= 20 && c.distinct.len() * 4 < played {
                warnings.push(format!(
                    "{at}: only {} distinct instances in {played} seeds (held-out evaluation and the model's generalisation need variety)",
                    c.distinct.len()
                ));
            }
        }
    }
    if warnings.is_empty() {
        println!("  no warnings");
    } else {
        println!("  warnings:");
        for w in warnings {
            println!("    {w}");
        }
    }
    Ok(())
}

/// `dreamgym play FILE`: play a scenario from stdin, one action per line.
pub fn play(args: PlayArgs) -> Result<()> {
    let (file, spec, seed) = (&args.file, args.tasks.spec(), args.seed);
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
