//! Integration tests over the shipped scenarios.

use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec};
use rand::SeedableRng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(name)
}

const SCENARIOS: [&str; 3] = ["keys_doors.ron", "household.ron", "webshop.ron"];

fn difficulties(env: &ScenarioEnv) -> Vec<u32> {
    let mut d: Vec<u32> = env.world().tasks.iter().flat_map(|t| t.levels.iter().map(|l| l.difficulty)).collect();
    d.sort();
    d.dedup();
    d
}

#[test]
fn expert_solves_every_generated_task_at_every_difficulty() {
    for name in SCENARIOS {
        let mut env = ScenarioEnv::load(&scenario(name)).unwrap();
        let diffs = difficulties(&env);
        assert!(diffs.len() >= 3, "{name}: needs at least three difficulty levels, has {diffs:?}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for t in env.world().tasks.clone() {
            for l in &t.levels {
                let spec = TaskSpec { template: Some(t.id.clone()), difficulty: Some(l.difficulty) };
                for seed in 0..25 {
                    let tr = collect_episode(&mut env, &spec, seed, BehaviourPolicy::Expert, &mut rng).unwrap();
                    assert!(tr.outcome.success, "{name}: expert failed {} ({}): {:?}", tr.task.id, tr.task.instruction,
                        tr.steps.iter().map(|s| (&s.action, &s.next_state.feedback)).collect::<Vec<_>>());
                    assert_eq!(tr.steps.last().unwrap().reward, 1.0);
                    assert!(tr.steps[..tr.steps.len() - 1].iter().all(|s| s.reward == 0.0 && !s.done));
                }
            }
        }
    }
}

#[test]
fn each_scenario_has_at_least_200_distinct_task_instances() {
    for name in SCENARIOS {
        let mut env = ScenarioEnv::load(&scenario(name)).unwrap();
        let mut seen = HashSet::new();
        for seed in 0..1500 {
            let obs = env.reset(&TaskSpec::default(), seed).unwrap();
            let inst = env.instance().unwrap();
            let mut init: Vec<usize> = (0..inst.facts.len()).filter(|&i| inst.init[i / 64] >> (i % 64) & 1 == 1).collect();
            init.sort();
            let facts: Vec<String> = init.iter().map(|&i| env.world().show_fact(&inst.facts[i])).collect();
            seen.insert((obs.instruction.clone(), facts));
        }
        assert!(seen.len() >= 200, "{name}: only {} distinct instances", seen.len());
    }
}

#[test]
fn admissible_actions_apply_and_others_fail_cleanly() {
    for name in SCENARIOS {
        let mut env = ScenarioEnv::load(&scenario(name)).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for seed in 0..30u64 {
            let obs = env.reset(&TaskSpec::default(), seed).unwrap();
            let inst = env.instance().unwrap().clone();
            let mut obs = obs;
            for _ in 0..inst.max_steps.min(12) {
                // every ground action not admissible leaves the state unchanged with reward 0
                let all_texts: HashSet<&String> = inst.by_text.keys().collect();
                let bad: Vec<&&String> = all_texts.iter().filter(|t| !obs.admissible.contains(t)).take(5).collect();
                for b in bad {
                    let before_state = env.state().to_vec();
                    let before_steps = env.steps();
                    let r = env.step(b).unwrap();
                    assert_eq!(r.info["valid"], "false", "{name}: `{b}` was not admissible");
                    assert_eq!(env.state(), &before_state[..], "{name}: `{b}` changed the state");
                    assert_eq!(r.reward, 0.0);
                    assert!(!r.observation.feedback.is_empty());
                    assert_eq!(env.steps(), before_steps + 1);
                    if r.truncated { break; }
                }
                if env.steps() >= inst.max_steps { break; }
                let r = env.step("this is not an action at all").unwrap();
                assert_eq!(r.info["valid"], "false");
                assert_eq!(r.observation.feedback, "Nothing happens.");
                if r.truncated { break; }
                let a = obs.admissible[rand::RngExt::random_range(&mut rng, 0..obs.admissible.len())].clone();
                let r = env.step(&a).unwrap();
                assert_eq!(r.info["valid"], "true", "{name}: admissible `{a}` failed: {}", r.observation.feedback);
                obs = r.observation;
                if r.done || r.truncated { break; }
            }
        }
    }
}
