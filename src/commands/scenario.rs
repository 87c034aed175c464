//! `dreamgym scenario check` and `dreamgym play`: a scenario file checked, or played by hand.

use crate::envs::{load_world, open_scenario};
use anyhow::Result;
use dreamgym_sim::{Env, TaskSpec};
use std::io::{BufRead, Write};

/// `dreamgym scenario check FILE`: compile the scenario and print what it holds.
pub fn check(file: &std::path::Path) -> Result<()> {
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

/// `dreamgym play FILE`: play a scenario from stdin, one action per line.
pub fn play(file: &std::path::Path, spec: TaskSpec, seed: u64) -> Result<()> {
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
