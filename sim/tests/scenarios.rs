//! Integration tests over the shipped scenarios.

use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec};
use rand::SeedableRng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

const SCENARIOS: [&str; 4] = [
    "keys_doors.ron",
    "household.ron",
    "webshop.ron",
    "oncall.ron",
];

fn difficulties(env: &ScenarioEnv) -> Vec<u32> {
    let mut d: Vec<u32> = env
        .world()
        .tasks
        .iter()
        .flat_map(|t| t.levels.iter().map(|l| l.difficulty))
        .collect();
    d.sort();
    d.dedup();
    d
}

#[test]
fn expert_solves_every_generated_task_at_every_difficulty() {
    for name in SCENARIOS {
        let mut env = ScenarioEnv::load(&scenario(name)).unwrap();
        let diffs = difficulties(&env);
        assert!(
            diffs.len() >= 3,
            "{name}: needs at least three difficulty levels, has {diffs:?}"
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for t in env.world().tasks.clone() {
            for l in &t.levels {
                let spec = TaskSpec {
                    template: Some(t.id.clone()),
                    difficulty: Some(l.difficulty),
                    posed: None,
                };
                for seed in 0..100 {
                    let tr =
                        collect_episode(&mut env, &spec, seed, BehaviourPolicy::Expert, &mut rng)
                            .unwrap();
                    assert!(
                        tr.outcome.success,
                        "{name}: expert failed {} ({}): {:?}",
                        tr.task.id,
                        tr.task.instruction,
                        tr.steps
                            .iter()
                            .map(|s| (&s.action, &s.next_state.feedback))
                            .collect::<Vec<_>>()
                    );
                    assert_eq!(tr.steps.last().unwrap().reward, 1.0);
                    assert!(
                        tr.steps[..tr.steps.len() - 1]
                            .iter()
                            .all(|s| s.reward == 0.0 && !s.done)
                    );
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
            let mut init: Vec<usize> = (0..inst.num_facts())
                .filter(|&i| inst.init[i / 64] >> (i % 64) & 1 == 1)
                .collect();
            init.sort();
            let facts: Vec<String> = init
                .iter()
                .map(|&i| env.world().show_fact(&inst.fact(i)))
                .collect();
            seen.insert((obs.instruction.clone(), facts));
        }
        assert!(
            seen.len() >= 200,
            "{name}: only {} distinct instances",
            seen.len()
        );
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
                // every admissible action is applicable in the current state
                for a in &obs.admissible {
                    assert!(
                        inst.resolve(a, env.state()).is_some(),
                        "{name}: admissible `{a}` is not applicable"
                    );
                }
                // every ground action not admissible leaves the state unchanged with reward 0
                let all_texts: HashSet<&String> = inst.g.by_text.keys().collect();
                let bad: Vec<&&String> = all_texts
                    .iter()
                    .filter(|t| !obs.admissible.contains(t))
                    .take(5)
                    .collect();
                for b in bad {
                    let before_state = env.state().to_vec();
                    let before_steps = env.steps();
                    let r = env.step(b).unwrap();
                    assert_eq!(r.info["valid"], "false", "{name}: `{b}` was not admissible");
                    assert_eq!(
                        env.state(),
                        &before_state[..],
                        "{name}: `{b}` changed the state"
                    );
                    assert_eq!(r.reward, 0.0);
                    assert!(!r.observation.feedback.is_empty());
                    assert_eq!(env.steps(), before_steps + 1);
                    if r.truncated {
                        break;
                    }
                }
                if env.steps() >= inst.max_steps {
                    break;
                }
                let r = env.step("this is not an action at all").unwrap();
                assert_eq!(r.info["valid"], "false");
                assert_eq!(r.observation.feedback, env.world().default_fail);
                if r.truncated {
                    break;
                }
                let a = obs.admissible
                    [rand::RngExt::random_range(&mut rng, 0..obs.admissible.len())]
                .clone();
                let r = env.step(&a).unwrap();
                assert_eq!(
                    r.info["valid"], "true",
                    "{name}: admissible `{a}` failed: {}",
                    r.observation.feedback
                );
                obs = r.observation;
                if r.done || r.truncated {
                    break;
                }
            }
        }
    }
}

#[test]
fn inactive_places_are_out_of_reach_and_locked_doors_need_their_key() {
    let mut env = ScenarioEnv::load(&scenario("keys_doors.ron")).unwrap();
    // difficulty 1 of `goto` keeps one room: no door may be offered or opened
    let obs = env
        .reset(
            &TaskSpec {
                template: Some("goto".into()),
                difficulty: Some(1),
                posed: None,
            },
            3,
        )
        .unwrap();
    assert!(
        obs.admissible.iter().all(|a| !a.contains("door")),
        "{:?}",
        obs.admissible
    );
    assert!(
        obs.lines.iter().all(|l| !l.contains("door")),
        "{:?}",
        obs.lines
    );
    let r = env.step("open the red door").unwrap();
    assert_eq!(r.info["valid"], "false");
    // difficulty 3 locks the red door; the key lies in the first room
    let obs = env
        .reset(
            &TaskSpec {
                template: Some("goto".into()),
                difficulty: Some(3),
                posed: None,
            },
            3,
        )
        .unwrap();
    assert!(
        obs.lines
            .iter()
            .any(|l| l == "[door_ab] door: the red door to the middle room is locked"),
        "{:?}",
        obs.lines
    );
    let r = env.step("open the red door").unwrap();
    assert_eq!(r.observation.feedback, "The red door is locked.");
    let r = env.step("unlock the red door").unwrap();
    assert_eq!(
        r.observation.feedback,
        "You need the red key to unlock the red door."
    );
    for a in [
        "go to the red key",
        "pick up the red key",
        "unlock the red door",
        "go through the red door to the middle room",
    ] {
        let r = env.step(a).unwrap();
        assert_eq!(r.info["valid"], "true", "{a}: {}", r.observation.feedback);
    }
    assert!(
        env.step("go through the red door to the middle room")
            .unwrap()
            .info["valid"]
            == "false"
    );
}

#[test]
fn webshop_reward_is_the_share_of_matched_attributes() {
    let mut env = ScenarioEnv::load(&scenario("webshop.ron")).unwrap();
    let spec = TaskSpec {
        template: Some("buy".into()),
        difficulty: Some(1),
        posed: None,
    };
    let obs = env.reset(&spec, 11).unwrap();
    let task = env.task().unwrap().clone();
    let target = task.params["?t"].clone();
    let cat = task.params["?c"].clone();
    // buy the right product without choosing options: category, material, price match = 3/5
    let search = obs
        .admissible
        .iter()
        .find(|a| {
            a.starts_with("search ")
                && a.contains(&env.world().objects[env.world().obj_index[&cat] as usize].name)
        })
        .unwrap()
        .clone();
    env.step(&search).unwrap();
    let name = env.world().objects[env.world().obj_index[&target] as usize]
        .name
        .clone();
    let r = env.step(&format!("click {name}")).unwrap();
    assert_eq!(r.info["valid"], "true", "{}", r.observation.feedback);
    let r = env.step("buy now").unwrap();
    assert!(r.done && !r.success);
    assert!((r.reward - 0.6).abs() < 1e-6, "reward {}", r.reward);
}

/// A level's own instruction replaces its template's there and only there; a scenario-wide
/// `default_fail` is what a text no action has says (else "Nothing happens.").
#[test]
fn level_instructions_and_the_default_failure_message() {
    let src = std::fs::read_to_string(scenario("keys_doors.ron")).unwrap();
    let changed = src
        .replacen(
            "max_steps: 30,",
            "max_steps: 30,\n    default_fail: Some(\"That does not work here.\"),",
            1,
        )
        .replacen(
            "Level(difficulty: 2, knobs: {\"rooms\": 2, \"distractors\": 4}, setup: [\n                    Place(what: \"?o\"",
            "Level(difficulty: 2, knobs: {\"rooms\": 2, \"distractors\": 4}, instruction: Some(\"find the {o.name} in another room\"), setup: [\n                    Place(what: \"?o\"",
            1,
        );
    assert_eq!(
        changed.matches("default_fail").count(),
        1,
        "the copy changed"
    );
    assert_eq!(
        changed.matches("in another room").count(),
        1,
        "the copy changed"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.ron");
    std::fs::write(&path, changed).unwrap();
    let mut env = ScenarioEnv::load(&path).unwrap();
    let spec = |d| TaskSpec {
        template: Some("goto".into()),
        difficulty: Some(d),
        posed: None,
    };
    let l1 = env.reset(&spec(1), 3).unwrap();
    assert!(
        l1.instruction.starts_with("go to the "),
        "{}",
        l1.instruction
    );
    let l2 = env.reset(&spec(2), 3).unwrap();
    assert!(
        l2.instruction.starts_with("find the ") && l2.instruction.ends_with(" in another room"),
        "{}",
        l2.instruction
    );
    let r = env.step("dance").unwrap();
    assert_eq!(r.observation.feedback, "That does not work here.");
    // as shipped: the old message
    let mut shipped = ScenarioEnv::load(&scenario("keys_doors.ron")).unwrap();
    shipped.reset(&spec(2), 3).unwrap();
    assert_eq!(
        shipped.step("dance").unwrap().observation.feedback,
        "Nothing happens."
    );
}
