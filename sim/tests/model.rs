//! The native experience model learns dynamics and rewards from trajectories alone and
//! generalises to task instances it has not seen.

use dreamgym_buffer::Trajectory;
use dreamgym_sim::model::fidelity::evaluate;
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::{ExperienceModel, ModelContext};
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{ScenarioEnv, TaskSpec};
use rand::SeedableRng;
use std::path::Path;

fn data(scenario: &str, seeds: std::ops::Range<u64>) -> Vec<Trajectory> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(scenario);
    let mut env = ScenarioEnv::load(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seeds.start);
    seeds
        .map(|s| {
            let policy = match s % 3 {
                0 => BehaviourPolicy::Expert,
                1 => BehaviourPolicy::NoisyExpert { epsilon: 0.3 },
                _ => BehaviourPolicy::Random,
            };
            collect_episode(&mut env, &TaskSpec::default(), s, policy, &mut rng).unwrap()
        })
        .collect()
}

#[test]
fn generalises_to_unseen_task_instances() {
    let train = data("webshop.ron", 0..900);
    let held = data("webshop.ron", 10_000..10_150);
    let model = NativeModel::fit(&train);
    let r = evaluate(&model, &train, &held, 0.9);
    assert_eq!(
        r.unseen_tasks.transitions, r.all.transitions,
        "held-out instances are all new"
    );
    assert!(r.all.next_state_exact >= 0.85, "{:?}", r.all);
    // partial credit (0.2 per criterion met) is learnt as a sum of criteria
    eprintln!("webshop reward accuracy {:.4}", r.all.reward_accuracy);
    assert!(r.all.reward_accuracy >= 0.99, "{:?}", r.all);
    assert!(r.all.false_success_rate <= 0.02, "{:?}", r.all);
    // without rule induction the model can only recall: much worse on new instances
    let memory = NativeModel::fit_with(&train, false);
    let m = evaluate(&memory, &train, &held, 0.9);
    assert!(
        m.all.next_state_exact + 0.05 < r.all.next_state_exact,
        "memory {} vs rules {}",
        m.all.next_state_exact,
        r.all.next_state_exact
    );
}

#[test]
fn household_moves_generalise_beyond_the_shapes_seen() {
    // household's moves remove every line of the place left (any number of objects) and name
    // the place reached by an id spelt from the action: derived ids and rules read as sets
    let train = data("household.ron", 0..900);
    let held = data("household.ron", 10_000..10_150);
    let model = NativeModel::fit(&train);
    let r = evaluate(&model, &train, &held, 0.9);
    eprintln!(
        "household unseen: exact {:.3}, on the rest {:.3}",
        r.all.next_state_exact, r.all.next_state_exact_closed
    );
    // measured 0.846 and 0.945 (0.63 and 0.68 before derived ids and rules as sets, 0.744 and
    // 0.832 before recall by place)
    assert!(r.all.next_state_exact >= 0.80, "{:?}", r.all);
    assert!(r.all.next_state_exact_closed >= 0.90, "{:?}", r.all);
    assert!(
        r.all.revealing > 0.05 && r.all.revealing < 0.2,
        "{:?}",
        r.all
    );
    assert!(r.all.reward_accuracy >= 0.98, "{:?}", r.all);
    assert!(r.all.false_success_rate <= 0.005, "{:?}", r.all);
}

#[test]
fn on_training_instances_places_hold_what_their_real_episodes_found() {
    use dreamgym_sim::model::fidelity::evaluate_with;
    // new trajectories (another policy) on the instances of the training data: the real episodes
    // of each instance, given as retrieved experience, show what its places hold
    let train = data("household.ron", 0..300);
    let held = household_by(BehaviourPolicy::NoisyExpert { epsilon: 0.6 }, 0..100);
    let model = NativeModel::fit(&train);
    use dreamgym_sim::model::retrieval::RetrievalMode;
    let with = evaluate_with(&model, &train, &held, 0.9, RetrievalMode::Instance);
    let without = evaluate_with(&model, &train, &held, 0.9, RetrievalMode::Off);
    eprintln!(
        "household seen instances: exact {:.3} with retrieval, {:.3} without",
        with.seen_tasks.next_state_exact, without.seen_tasks.next_state_exact
    );
    assert_eq!(with.seen_tasks.transitions, with.all.transitions);
    // measured 0.921 and 0.854 (one real trajectory per instance here; with three, as in
    // scripts/model-fidelity.sh, 0.98)
    assert!(
        with.seen_tasks.next_state_exact >= 0.90,
        "{:?}",
        with.seen_tasks
    );
    assert!(
        with.seen_tasks.next_state_exact >= without.seen_tasks.next_state_exact + 0.05,
        "with {:?} without {:?}",
        with.seen_tasks,
        without.seen_tasks
    );
    assert!(
        with.seen_tasks.reward_accuracy >= 0.99,
        "{:?}",
        with.seen_tasks
    );
}

#[test]
fn on_its_own_training_data_only_hidden_information_is_missed() {
    // the scenarios are partially observable (what a closed room holds is not in the lines), so
    // even recall of the training data cannot be perfect; everything else must be
    let train = data("keys_doors.ron", 0..60);
    let model = NativeModel::fit(&train);
    let r = evaluate(&model, &train, &train, 0.9);
    assert!(r.all.next_state_exact >= 0.95, "{:?}", r.all);
    assert_eq!(r.all.reward_accuracy, 1.0);
    assert_eq!(r.all.eps_r, 0.0);
    let expected = 2.0 * (2.0 * 0.9 * r.all.eps_p / (0.1f64 * 0.1));
    assert!(
        (r.all.bound_penalty - expected).abs() < 1e-6,
        "{} vs {expected}",
        r.all.bound_penalty
    );
    assert_eq!(r.unseen_tasks.transitions, 0);
}

#[test]
fn failure_semantics_and_a_readable_trace() {
    let train = data("keys_doors.ron", 0..300);
    let model = NativeModel::fit(&train);
    let held = data("keys_doors.ron", 5_000..5_001);
    let t = &held[0];
    let s = &t.steps[0];
    // an action that is not admissible: nothing changes, reward 0
    let ctx = ModelContext {
        task: &t.task,
        history: &[],
        state: &s.state,
        action: "fly to the moon",
        retrieved: &[],
    };
    let p = model.predict(&ctx).unwrap();
    assert_eq!(p.next_state.lines, s.state.lines);
    assert_eq!((p.reward, p.done, p.success), (0.0, false, false));
    assert!(p.reasoning.contains("not admissible"), "{}", p.reasoning);
    // a real action of an unseen instance: the prediction names its evidence
    let ctx = ModelContext {
        task: &t.task,
        history: &[],
        state: &s.state,
        action: &s.action,
        retrieved: &[],
    };
    let p = model.predict(&ctx).unwrap();
    assert!(
        p.reasoning.starts_with("Rule induced from") || p.reasoning.starts_with("Seen before"),
        "{}",
        p.reasoning
    );
    assert!(p.confidence > 0.0 && p.confidence <= 1.0);
}

/// Episodes of household by one policy on the instances of `seeds`.
fn household_by(policy: BehaviourPolicy, seeds: std::ops::Range<u64>) -> Vec<Trajectory> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/household.ron");
    let mut env = ScenarioEnv::load(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seeds.start);
    seeds
        .map(|s| collect_episode(&mut env, &TaskSpec::default(), s, policy, &mut rng).unwrap())
        .collect()
}

#[test]
fn a_model_env_shows_what_real_episodes_of_the_instance_found() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::env::ModelEnv;
    use std::sync::Arc;
    // real data: noisy episodes; replayed: the expert's episodes of the same instances, which
    // go where the objects are — places whose contents only the real data of the instance show
    let real = household_by(BehaviourPolicy::NoisyExpert { epsilon: 0.5 }, 0..300);
    let expert = household_by(BehaviourPolicy::Expert, 0..300);
    let model = Arc::new(NativeModel::fit(&real));
    let mut right = [0usize; 2];
    let mut steps = 0;
    for (i, retrieval) in [true, false].into_iter().enumerate() {
        let mut sim = ModelEnv::new(model.clone(), &real, 60);
        sim.set_retrieval(retrieval);
        for t in &expert {
            sim.reset_to(&t.task).unwrap();
            for s in &t.steps {
                let r = sim.step(&s.action).unwrap();
                right[i] += (r.observation.lines == s.next_state.lines) as usize;
                steps += (i == 0) as usize;
                if r.done || r.truncated {
                    break;
                }
            }
        }
    }
    assert!(
        right[0] > right[1] + steps / 20,
        "with retrieval {} / without {} of {steps} steps",
        right[0],
        right[1]
    );
}

#[test]
fn a_model_env_rolls_out_like_the_real_one() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::env::ModelEnv;
    use std::sync::Arc;
    let train = data("keys_doors.ron", 0..600);
    let model = Arc::new(NativeModel::fit(&train));
    let mut sim = ModelEnv::new(model, &train, 30);
    // replaying real successful episodes in the model reproduces them
    let (mut same, mut n) = (0, 0);
    for t in train.iter().filter(|t| t.outcome.success).take(40) {
        n += 1;
        assert_eq!(sim.reset_to(&t.task).unwrap(), t.steps[0].state);
        let mut ok = true;
        let mut last = None;
        for s in &t.steps {
            let r = sim.step(&s.action).unwrap();
            ok &= r.observation.lines == s.next_state.lines;
            last = Some(r);
        }
        let last = last.unwrap();
        assert!(last.info["reasoning"].len() > 10);
        same += (ok && last.done && last.success) as usize;
    }
    // (not all: an instance can hide room contents that differ from episodes with the same view)
    assert!(same * 10 >= n * 8, "{same}/{n} episodes reproduced");
    // a task never seen starts from the most similar real task's initial state, with its own instruction
    let new = data("keys_doors.ron", 50_000..50_001).remove(0);
    let obs = sim.reset_to(&new.task).unwrap();
    assert_eq!(obs.instruction, new.task.instruction);
    assert!(!obs.lines.is_empty());
    // seeded resets are reproducible and respect the spec
    let spec = TaskSpec {
        template: None,
        difficulty: Some(2),
        posed: None,
    };
    let a = sim.reset(&spec, 7).unwrap();
    assert_eq!(a, sim.reset(&spec, 7).unwrap());
    assert_eq!(sim.task().unwrap().difficulty, 2);
    let err = sim
        .reset(
            &TaskSpec {
                template: Some("nope".into()),
                difficulty: None,
                posed: None,
            },
            1,
        )
        .unwrap_err();
    assert!(err.to_string().contains("no real initial state"), "{err}");
    // a generated task (an LLM's instruction) starts from its base task's real initial state;
    // real envs refuse it
    let base = &train[5];
    let posed = TaskSpec {
        posed: Some(dreamgym_sim::PosedTask {
            base: base.task.id.clone(),
            instruction: "open every door, then pick up the key".into(),
        }),
        ..TaskSpec::default()
    };
    let obs = sim.reset(&posed, 9).unwrap();
    assert_eq!(obs.lines, base.steps[0].state.lines);
    assert_eq!(obs.instruction, "open every door, then pick up the key");
    let task = sim.task().unwrap().clone();
    assert!(
        task.id.starts_with(&format!("{}/posed/", base.task.id)),
        "{}",
        task.id
    );
    assert_eq!(
        task.origin,
        dreamgym_buffer::TaskOrigin::GeneratedFrom {
            parent: base.task.id.clone()
        }
    );
    sim.step(&base.steps[0].action).unwrap();
    let unknown = TaskSpec {
        posed: Some(dreamgym_sim::PosedTask {
            base: "no/such/task".into(),
            instruction: "x".into(),
        }),
        ..TaskSpec::default()
    };
    let err = sim.reset(&unknown, 1).unwrap_err().to_string();
    assert!(err.contains("no real initial state here"), "{err}");
    let mut real = ScenarioEnv::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/keys_doors.ron"),
    )
    .unwrap();
    let err = real.reset(&posed, 1).unwrap_err().to_string();
    assert!(
        err.contains("can only be played in an experience model"),
        "{err}"
    );
    // the step limit truncates
    sim.reset(&spec, 3).unwrap();
    let mut truncated = false;
    for _ in 0..30 {
        let r = sim.step("fly to the moon").unwrap();
        assert_eq!(r.reward, 0.0);
        if r.truncated {
            truncated = true;
            break;
        }
    }
    assert!(truncated);
}

#[test]
fn returning_to_a_place_recalls_what_was_seen_there() {
    let train = data("keys_doors.ron", 0..900);
    let held = data("keys_doors.ron", 30_000..30_300);
    let model = NativeModel::fit(&train);
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    let (mut recalled, mut right_with, mut right_without) = (0, 0, 0);
    for t in &held {
        for (i, s) in t.steps.iter().enumerate() {
            let ctx = ModelContext::at_step(t, i);
            let p = model.predict(&ctx).unwrap();
            if p.reasoning.contains("recalled what was seen there") {
                recalled += 1;
                right_with += (set(&p.next_state.lines) == set(&s.next_state.lines)) as usize;
                let blind = model.predict_native(&ModelContext {
                    history: &[],
                    ..ctx
                });
                right_without +=
                    (set(&blind.next_state.lines) == set(&s.next_state.lines)) as usize;
            }
        }
    }
    eprintln!("recalls: {recalled}, right with history {right_with}, without {right_without}");
    assert!(recalled >= 20, "only {recalled} recalls");
    // the episode's own history is better evidence than other episodes for hidden contents
    assert!(
        right_with >= 2 * right_without.max(1),
        "with history {right_with}/{recalled}, without {right_without}/{recalled}"
    );
}

/// A predicted state that offers no admissible action (a model error) ends the synthetic
/// episode as truncated and is counted; the env can be reset and used again.
#[test]
fn a_dead_end_state_cuts_the_episode_and_is_counted() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::env::{ModelEnv, ModelFailures};
    use dreamgym_sim::model::{ExperienceModel, ModelContext, ModelError, Prediction};
    use std::sync::Arc;
    struct DeadEnds;
    impl ExperienceModel for DeadEnds {
        fn name(&self) -> &str {
            "dead-ends"
        }
        fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
            let mut next = ctx.state.clone();
            next.admissible.clear();
            Ok(Prediction {
                reasoning: "nowhere to go".into(),
                next_state: next,
                reward: 0.0,
                done: false,
                success: false,
                confidence: 0.5,
            })
        }
    }
    let train = data("keys_doors.ron", 0..20);
    let failures = Arc::new(ModelFailures::default());
    let mut sim = ModelEnv::new(Arc::new(DeadEnds), &train, 30);
    sim.count_failures_in(failures.clone());
    for round in 1..=2u64 {
        let obs = sim.reset_to(&train[0].task).unwrap();
        let r = sim.step(&obs.admissible[0]).unwrap();
        assert!(r.truncated && !r.done, "a dead end cuts the episode");
        assert!(r.info.contains_key("dead_end"), "{:?}", r.info);
        assert!(sim.step(&obs.admissible[0]).is_err(), "the episode is over");
        let c = failures.counts();
        assert_eq!((c.rejected, c.dead_ends, c.predicted), (0, round, 0));
    }
    assert_eq!(failures.counts().share(), 1.0);
}

/// The uncertainty penalty takes `penalty x (1 - confidence)` off the reward the learner gets,
/// says so in the step's info, and changes nothing when 0.
#[test]
fn the_uncertainty_penalty_pays_less_where_the_model_is_unsure() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::env::ModelEnv;
    use dreamgym_sim::model::{ExperienceModel, ModelContext, ModelError, Prediction};
    use std::sync::Arc;
    struct Unsure;
    impl ExperienceModel for Unsure {
        fn name(&self) -> &str {
            "unsure"
        }
        fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
            Ok(Prediction {
                reasoning: "a guess".into(),
                next_state: ctx.state.clone(),
                reward: 1.0,
                done: true,
                success: true,
                confidence: 0.4,
            })
        }
    }
    let train = data("keys_doors.ron", 0..5);
    let reward = |penalty: f32| {
        let mut sim = ModelEnv::new(Arc::new(Unsure), &train, 30);
        sim.set_uncertainty_penalty(penalty);
        let obs = sim.reset_to(&train[0].task).unwrap();
        let r = sim.step(&obs.admissible[0]).unwrap();
        assert_eq!(r.info.contains_key("uncertainty_penalty"), penalty > 0.0);
        if penalty > 0.0 {
            assert_eq!(r.info["model_reward"], "1", "the prediction, for records");
        }
        assert!(r.done && r.success, "the penalty changes the reward only");
        r.reward
    };
    assert_eq!(reward(0.0), 1.0);
    assert!((reward(0.5) - 0.7).abs() < 1e-6, "1 - 0.5 x 0.6");
}

#[test]
fn a_sampled_world_is_consistent_within_an_episode_and_varies_across_episodes() {
    use dreamgym_buffer::Observation;
    use dreamgym_sim::Env;
    use dreamgym_sim::model::env::{ModelEnv, WorldSampling};
    use dreamgym_sim::model::world::WorldPrior;
    use std::collections::HashSet;
    use std::sync::Arc;
    // level 1 (objects on surfaces), as `dreamgym run` trains on one level
    let spec = TaskSpec {
        template: None,
        difficulty: Some(1),
        posed: None,
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/household.ron");
    let mut env = ScenarioEnv::load(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let real: Vec<Trajectory> = (0..300)
        .map(|s| {
            let policy = if s % 2 == 0 {
                BehaviourPolicy::NoisyExpert { epsilon: 0.5 }
            } else {
                BehaviourPolicy::Random
            };
            collect_episode(&mut env, &spec, s, policy, &mut rng).unwrap()
        })
        .collect();
    let model = Arc::new(NativeModel::fit(&real));
    let prior = Arc::new(WorldPrior::fit(&real));
    let mut sim = ModelEnv::new(model, &real, 60);
    // every episode plays a sampled world, the instance's own evidence ignored
    sim.sample_worlds(WorldSampling {
        prior,
        evidence_dropout: 1.0,
        seed: 3,
    });
    // search every place for the instruction's object: where it was, and what was shown there
    let search = |sim: &mut ModelEnv, first: Observation| -> Option<(String, Vec<String>)> {
        let object = sim.task().unwrap().params["?o"].clone();
        if first
            .lines
            .iter()
            .any(|l| l.starts_with(&format!("[{object}] item:")))
        {
            return Some(("where it starts".into(), first.lines.clone()));
        }
        let places: Vec<&String> = first
            .admissible
            .iter()
            .filter(|a| a.starts_with("go to "))
            .collect();
        for go in places {
            let mut r = sim.step(go).unwrap();
            // a closed place is opened
            let open = format!("open {}", &go["go to ".len()..]);
            if !(r.done || r.truncated) && r.observation.admissible.contains(&open) {
                r = sim.step(&open).unwrap();
            }
            if r.observation
                .lines
                .iter()
                .any(|l| l.starts_with(&format!("[{object}] item:")))
            {
                return Some((go.clone(), r.observation.lines));
            }
            if r.done || r.truncated {
                break;
            }
        }
        None
    };
    let (mut found, mut back_checked) = (0, 0);
    for seed in 0..40 {
        let first = sim.reset(&spec, seed).unwrap();
        let Some((place, lines)) = search(&mut sim, first) else {
            continue;
        };
        found += 1;
        if place == "where it starts" {
            continue;
        }
        // consistent: leaving and coming back shows the place as it was
        let away = if place == "go to shelf 1" {
            "go to countertop 1"
        } else {
            "go to shelf 1"
        };
        let r = sim.step(away).unwrap();
        if !(r.done || r.truncated) {
            let back = sim.step(&place).unwrap();
            assert_eq!(
                back.observation.lines, lines,
                "{place} shows what it showed"
            );
            back_checked += 1;
        }
        // reproducible: the same reset seed draws the same world
        let first = sim.reset(&spec, seed).unwrap();
        assert_eq!(search(&mut sim, first).map(|x| x.0), Some(place));
    }
    assert_eq!(found, 40, "the object was found in {found} of 40 episodes");
    assert!(back_checked >= 30, "{back_checked}");
    // one instance, many episodes: its object lies in different places
    let task = real
        .iter()
        .find(|t| t.task.difficulty == 1)
        .unwrap()
        .task
        .clone();
    let mut places = HashSet::new();
    for _ in 0..20 {
        let first = sim.reset_to(&task).unwrap();
        places.extend(search(&mut sim, first).map(|x| x.0));
    }
    assert!(places.len() >= 3, "the object was only ever at {places:?}");
}

#[test]
fn a_heat_task_does_not_pay_for_a_cold_object_put_away() {
    // the success rule of "put it in/on" learns that the state word follows the instruction's
    // verb (heat → hot, cool → cold): the same last step under another verb pays nothing
    let train = data("household.ron", 0..900);
    let model = NativeModel::fit(&train);
    let (mut paid, mut tried) = (0, 0);
    for t in data("household.ron", 20_000..20_200)
        .iter()
        .filter(|t| t.outcome.success && t.task.instruction.starts_with("cool some "))
    {
        let last = t.steps.last().unwrap();
        let swap = |s: &str| s.replacen("cool some ", "heat some ", 1);
        let mut state = last.state.clone();
        state.instruction = swap(&state.instruction);
        let mut task = t.task.clone();
        task.instruction = swap(&task.instruction);
        let ctx = ModelContext {
            task: &task,
            history: &[],
            state: &state,
            action: &last.action,
            retrieved: &[],
        };
        let same = ModelContext::at_step(t, t.steps.len() - 1);
        assert_eq!(model.predict(&same).unwrap().reward, 1.0, "{}", last.action);
        tried += 1;
        let p = model.predict(&ctx).unwrap();
        paid += usize::from(p.reward > 0.0);
    }
    assert!(tried >= 5, "{tried} cool episodes");
    assert_eq!(
        paid, 0,
        "{paid} of {tried} cold objects paid under a heat task"
    );
}

/// An ensemble env pays a success only where all but one member predicts it; elsewhere the
/// episode halts (reward 0, done, no success, `info.halt`), counted; the member that plays is
/// drawn per episode, the same for the same reset seed.
#[test]
fn an_ensemble_halts_where_its_members_disagree_and_pays_only_a_consensus_success() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::ensemble::{Ensemble, HaltRule};
    use dreamgym_sim::model::env::{ModelEnv, ModelFailures};
    use dreamgym_sim::model::{ModelError, Prediction};
    use std::sync::Arc;
    /// Pays on "win" when `pays`; names itself in the feedback so the test sees who played.
    struct Member {
        pays: bool,
        name: String,
    }
    impl ExperienceModel for Member {
        fn name(&self) -> &str {
            "member"
        }
        fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
            let win = ctx.action == "win" && self.pays;
            Ok(Prediction {
                reasoning: self.name.clone(),
                next_state: ctx.state.clone(),
                reward: if win { 1.0 } else { 0.0 },
                done: win,
                success: win,
                confidence: 1.0,
            })
        }
    }
    let train = data("keys_doors.ron", 0..5);
    let env_of = |paying: usize, failures: &Arc<ModelFailures>| {
        let members = (0..5)
            .map(|i| {
                Arc::new(Member {
                    pays: i < paying,
                    name: format!("member {i}"),
                }) as Arc<dyn ExperienceModel>
            })
            .collect();
        let mut sim = ModelEnv::new(Arc::new(NativeModel::fit(&train)), &train, 30);
        sim.play_ensemble(Arc::new(Ensemble::new(members, HaltRule::default())), 11);
        sim.count_failures_in(failures.clone());
        sim
    };
    // who plays: the member named in the reasoning of a step all agree on
    let failures = Arc::new(ModelFailures::default());
    let mut sim = env_of(4, &failures);
    let mut played = std::collections::BTreeSet::new();
    for seed in 0..40 {
        sim.reset(&TaskSpec::default(), seed).unwrap();
        let r = sim.step("wait").unwrap();
        assert!(!r.done && !r.info.contains_key("halt"), "{:?}", r.info);
        assert_eq!(r.info["confidence"], "1.000");
        played.insert(r.info["reasoning"].clone());
        sim.reset(&TaskSpec::default(), seed).unwrap();
        assert_eq!(
            sim.step("wait").unwrap().info["reasoning"],
            r.info["reasoning"],
            "the same reset seed, the same member"
        );
    }
    assert_eq!(
        played.len(),
        5,
        "every member plays some episode: {played:?}"
    );
    // 4 of 5 pay: a paying member's success is paid; the one that does not halts
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 0..40 {
        sim.reset(&TaskSpec::default(), seed).unwrap();
        let r = sim.step("win").unwrap();
        assert!(r.done);
        outcomes.insert(
            r.info["reasoning"].lines().next().unwrap().to_string(),
            (r.success, r.reward, r.info.contains_key("halt")),
        );
    }
    for (who, o) in &outcomes {
        let want = if who == "member 4" {
            (false, 0.0, true)
        } else {
            (true, 1.0, false)
        };
        assert_eq!(*o, want, "{who}");
    }
    let halted = failures.counts().halted;
    assert!(halted > 0, "halts are counted");
    // 3 of 5 pay: no success is ever paid
    let failures = Arc::new(ModelFailures::default());
    let mut sim = env_of(3, &failures);
    for seed in 0..40 {
        sim.reset(&TaskSpec::default(), seed).unwrap();
        let r = sim.step("win").unwrap();
        assert!(r.done && !r.success && r.reward == 0.0, "{:?}", r.info);
        assert!(r.info["halt"].contains("other members"), "{:?}", r.info);
    }
    assert_eq!(failures.counts().halted, 40);
}

/// Fit on bootstrap resamples of household's episodes, an ensemble agrees where the data
/// agree: replaying real episodes of training instances (whose real transitions it retrieves),
/// few steps halt and most real successes are paid; on held-out instances, where what a place
/// holds is left open, the members disagree on what arrival reveals and halt there.
#[test]
fn a_native_ensemble_halts_where_the_data_leave_the_outcome_open() {
    use dreamgym_sim::Env;
    use dreamgym_sim::model::ensemble::{Ensemble, HaltRule, bootstrap};
    use dreamgym_sim::model::env::{ModelEnv, ModelFailures};
    use std::sync::Arc;
    let train = household_by(BehaviourPolicy::NoisyExpert { epsilon: 0.3 }, 0..200);
    let members: Vec<Arc<dyn ExperienceModel>> = bootstrap(&train, 5, 3)
        .iter()
        .map(|r| Arc::new(NativeModel::fit(r)) as Arc<dyn ExperienceModel>)
        .collect();
    let rule = HaltRule {
        next_state: true,
        ..HaltRule::default()
    };
    let ensemble = Arc::new(Ensemble::new(members, rule));
    // (steps, steps halted, real successes, successes paid) replaying `episodes`
    let replay = |episodes: &[Trajectory]| {
        let failures = Arc::new(ModelFailures::default());
        let mut sim = ModelEnv::new(Arc::new(NativeModel::fit(&train)), &train, 60);
        sim.play_ensemble(ensemble.clone(), 5);
        sim.count_failures_in(failures.clone());
        let (mut steps, mut wins, mut paid) = (0, 0, 0);
        for t in episodes {
            sim.reset_to(&t.task).unwrap();
            for s in &t.steps {
                let r = sim.step(&s.action).unwrap();
                steps += 1;
                if r.done || r.truncated {
                    paid += usize::from(r.success);
                    break;
                }
            }
            wins += usize::from(t.outcome.success);
        }
        (steps, failures.counts().halted as usize, wins, paid)
    };
    let (steps, halted, wins, paid) = replay(&household_by(BehaviourPolicy::Expert, 0..60));
    assert!(wins >= 50, "{wins} expert successes");
    assert!(
        halted * 20 <= steps,
        "training instances: {halted} of {steps} steps halted"
    );
    // (measured: 14 of 386 steps halted, 46 of 60 successes paid)
    assert!(
        paid * 10 >= wins * 7,
        "{paid} of {wins} real successes paid"
    );
    let (steps, halted, _, _) = replay(&household_by(BehaviourPolicy::Expert, 10_000..10_060));
    assert!(
        halted * 10 >= steps,
        "held-out instances: {halted} of {steps} steps halted"
    );
}
