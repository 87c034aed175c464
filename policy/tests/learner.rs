//! The learner end to end on the real scenario engine: PPO and GRPO learn, checkpoints round-trip
//! and resume exactly, damaged or foreign checkpoints are refused with a reason, a non-finite loss
//! stops the update and keeps the last good checkpoint, and the backends agree.

use dreamgym_buffer::{Observation, Task};
use dreamgym_policy::{
    Algo, BackendChoice, BackendKind, PolicyError, Split, TaskSampler, TrainConfig, Trainer,
    select_device, vocab_from_env,
};
use dreamgym_sim::{Env, EnvError, ScenarioEnv, StepResult, TaskSpec};
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.ron"))
}

fn envs(name: &str, n: usize) -> Vec<Box<dyn Env>> {
    (0..n)
        .map(|_| Box::new(ScenarioEnv::load(&scenario(name)).unwrap()) as Box<dyn Env>)
        .collect()
}

fn sampler(split: Split, difficulty: u32) -> TaskSampler {
    TaskSampler {
        spec: TaskSpec {
            template: None,
            difficulty: Some(difficulty),
            posed: None,
        },
        split,
    }
}

fn cpu() -> dreamgym_policy::SelectedDevice {
    select_device(BackendChoice::Cpu).unwrap()
}

fn small_ppo(iterations: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        iterations,
        seed,
        num_steps: 64,
        lr: 1e-3,
        vocab_episodes: 16,
        ..TrainConfig::default()
    }
}

fn trainer_for(name: &str, cfg: TrainConfig, n: usize) -> (Trainer, Vec<Box<dyn Env>>) {
    let mut e = envs(name, n);
    let vocab =
        vocab_from_env(e[0].as_mut(), &sampler(Split::Train, LEVEL), &cfg, cfg.seed).unwrap();
    (Trainer::new(cfg, vocab, &cpu()).unwrap(), e)
}

/// keys_doors level 2: a uniformly random policy succeeds in about 45% of episodes.
const LEVEL: u32 = 2;

fn held_out_success(t: &Trainer, name: &str) -> f32 {
    let mut env = envs(name, 1).pop().unwrap();
    t.evaluate(
        env.as_mut(),
        &sampler(Split::HeldOut, LEVEL),
        100,
        false,
        99,
    )
    .unwrap()
    .success
}

#[test]
fn ppo_learns_keys_doors_well_above_random() {
    let (mut t, mut e) = trainer_for("keys_doors", small_ppo(80, 3), 4);
    let before = held_out_success(&t, "keys_doors");
    let train = sampler(Split::Train, LEVEL);
    while !t.finished() {
        t.iterate(&mut e, &train).unwrap();
    }
    let after = held_out_success(&t, "keys_doors");
    eprintln!("PPO keys_doors d2 held-out success: untrained {before:.2}, trained {after:.2}");
    assert!(
        after >= before + 0.2 && after >= 0.7,
        "untrained {before}, trained {after}"
    );
}

#[test]
fn grpo_learns_keys_doors_well_above_random() {
    let cfg = TrainConfig {
        iterations: 60,
        seed: 5,
        lr: 1e-3,
        vocab_episodes: 16,
        ..TrainConfig::grpo()
    };
    let (mut t, mut e) = trainer_for("keys_doors", cfg, 1);
    let before = held_out_success(&t, "keys_doors");
    let train = sampler(Split::Train, LEVEL);
    while !t.finished() {
        t.iterate(&mut e, &train).unwrap();
    }
    let after = held_out_success(&t, "keys_doors");
    eprintln!("GRPO keys_doors d2 held-out success: untrained {before:.2}, trained {after:.2}");
    assert!(
        after >= before + 0.2 && after >= 0.7,
        "untrained {before}, trained {after}"
    );
}

#[test]
fn resume_reproduces_the_uninterrupted_run_exactly() {
    for algo in [Algo::Ppo, Algo::Grpo] {
        let mut cfg = if algo == Algo::Grpo {
            TrainConfig::grpo()
        } else {
            small_ppo(4, 11)
        };
        cfg.iterations = 4;
        cfg.seed = 11;
        cfg.num_steps = 32;
        cfg.groups = 2;
        cfg.group_size = 4;
        cfg.vocab_episodes = 8;
        let train = sampler(Split::Train, 1);
        let (mut straight, mut e1) = trainer_for("keys_doors", cfg.clone(), 2);
        let mut want = vec![];
        while !straight.finished() {
            want.push(straight.iterate(&mut e1, &train).unwrap().deterministic());
        }

        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt.bin");
        let (mut first, mut e2) = trainer_for("keys_doors", cfg.clone(), 2);
        let vocab = first.featurizer().vocab().clone();
        let mut got = vec![];
        for _ in 0..2 {
            got.push(first.iterate(&mut e2, &train).unwrap().deterministic());
        }
        first.save(&ckpt).unwrap();
        drop(first);
        let mut resumed = Trainer::resume(&ckpt, &cpu(), Some(&vocab), Some(cfg.hidden)).unwrap();
        assert_eq!(resumed.counters().iteration, 2);
        let mut e3 = envs("keys_doors", 2);
        while !resumed.finished() {
            got.push(resumed.iterate(&mut e3, &train).unwrap().deterministic());
        }
        assert_eq!(
            got, want,
            "{algo:?}: resumed metrics differ from the uninterrupted run"
        );
        let a = dreamgym_policy::NativeNet::from_net(straight.net());
        let b = dreamgym_policy::NativeNet::from_net(resumed.net());
        let s: dreamgym_policy::text::SparseVec = vec![(0, 1.0), (3, 0.5)];
        assert_eq!(a.value(&s), b.value(&s), "{algo:?}: weights differ");
    }
}

#[test]
fn damaged_and_foreign_checkpoints_are_refused_with_the_reason() {
    let cfg = small_ppo(1, 2);
    let (mut t, mut e) = trainer_for(
        "keys_doors",
        TrainConfig {
            num_steps: 16,
            vocab_episodes: 8,
            ..cfg
        },
        1,
    );
    t.iterate(&mut e, &sampler(Split::Train, 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt.bin");
    t.save(&ckpt).unwrap();
    let vocab = t.featurizer().vocab().clone();
    assert!(Trainer::resume(&ckpt, &cpu(), Some(&vocab), Some(64)).is_ok());

    let err = Trainer::resume(&ckpt, &cpu(), Some(&vocab), Some(128))
        .err()
        .unwrap();
    assert!(
        matches!(err, PolicyError::MismatchedCheckpoint { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("hidden"), "{err}");

    let mut other_env = envs("household", 1);
    let other = vocab_from_env(
        other_env[0].as_mut(),
        &sampler(Split::Train, 1),
        &t.config().clone(),
        2,
    )
    .unwrap();
    let err = Trainer::resume(&ckpt, &cpu(), Some(&other), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("vocabulary"), "{err}");

    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Trainer::resume(&cut, &cpu(), None, None).err().unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    let flipped = dir.path().join("flipped.bin");
    let mut b = bytes.clone();
    let mid = b.len() - 100;
    b[mid] ^= 0x10;
    std::fs::write(&flipped, &b).unwrap();
    let err = Trainer::resume(&flipped, &cpu(), None, None).err().unwrap();
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// An env whose rewards are NaN: the loss becomes NaN.
struct NanEnv(ScenarioEnv);

impl Env for NanEnv {
    fn id(&self) -> &str {
        "nan"
    }
    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        self.0.reset(spec, seed)
    }
    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let mut r = self.0.step(action)?;
        r.reward = f32::NAN;
        Ok(r)
    }
    fn task(&self) -> Option<&Task> {
        self.0.task()
    }
}

#[test]
fn a_non_finite_loss_stops_the_update_and_keeps_the_last_checkpoint() {
    let (mut t, mut e) = trainer_for(
        "keys_doors",
        TrainConfig {
            num_steps: 16,
            vocab_episodes: 8,
            ..small_ppo(3, 4)
        },
        1,
    );
    let train = sampler(Split::Train, 1);
    t.iterate(&mut e, &train).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt.bin");
    t.save(&ckpt).unwrap();
    let saved = std::fs::read(&ckpt).unwrap();
    let probe: dreamgym_policy::text::SparseVec = vec![(1, 1.0)];
    let before = t.policy().value(&probe);
    let mut bad: Vec<Box<dyn Env>> = vec![Box::new(NanEnv(
        ScenarioEnv::load(&scenario("keys_doors")).unwrap(),
    ))];
    let err = t.iterate(&mut bad, &train).err().unwrap();
    assert!(matches!(err, PolicyError::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), saved, "checkpoint untouched");
    assert_eq!(t.counters().iteration, 1);
    assert_eq!(
        dreamgym_policy::NativeNet::from_net(t.net()).value(&probe),
        before,
        "weights untouched"
    );
}

#[test]
fn auto_falls_back_to_cpu_when_no_adapter_is_allowed() {
    // SAFETY: the variable is only read by select_device; tests in this binary do not race on it
    // because this is the only test that sets it and wgpu tests live in their own binary.
    unsafe { std::env::set_var("DREAMGYM_NO_WGPU", "1") };
    let d = select_device(BackendChoice::Auto).unwrap();
    assert_eq!(d.kind, BackendKind::Cpu);
    let err = select_device(BackendChoice::Wgpu).err().unwrap();
    assert!(err.to_string().contains("no usable wgpu adapter"), "{err}");
    unsafe { std::env::remove_var("DREAMGYM_NO_WGPU") };
}

/// keys_doors joined after one action and cut after one step, as a branched rollout of an
/// experience model is: truncated, never terminal.
struct Branched {
    env: ScenarioEnv,
    joined: Vec<String>,
}

impl Env for Branched {
    fn id(&self) -> &str {
        "branched"
    }
    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        let first = self.env.reset(spec, seed)?;
        self.joined = vec![first.admissible[0].clone()];
        Ok(first)
    }
    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let mut r = self.env.step(action)?;
        r.done = false;
        r.success = false;
        r.truncated = true;
        Ok(r)
    }
    fn task(&self) -> Option<&Task> {
        self.env.task()
    }
    fn joined_after(&self) -> Option<&[String]> {
        Some(&self.joined)
    }
}

#[test]
fn a_cut_branch_bootstraps_from_the_critic_and_remembers_what_was_done_before_it() {
    use dreamgym_policy::rollout::VecCollector;
    use dreamgym_policy::text::EpisodeMemory;
    use rand::SeedableRng;
    let (mut t, _) = trainer_for("keys_doors", small_ppo(2, 6), 1);
    let train = sampler(Split::Train, LEVEL);
    let mut branched: Vec<Box<dyn Env>> = vec![Box::new(Branched {
        env: ScenarioEnv::load(&scenario("keys_doors")).unwrap(),
        joined: vec![],
    })];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let net = t.policy().clone();
    let featurizer = t.featurizer().clone();
    let samplers = [train.clone()];
    let mut collector = VecCollector {
        envs: &mut branched,
        samplers: &samplers,
        featurizer: &featurizer,
    };
    let segs = collector.collect(&net, 4, &mut rng).unwrap();
    assert_eq!(segs.episodes.len(), 4, "every step ends a branch");
    assert!(segs.episodes.iter().all(|e| e.branched));
    for d in &segs.segments[0] {
        assert!(d.cut);
        assert_ne!(
            d.next_value, 0.0,
            "truncated: the critic's value, not a terminal 0"
        );
    }
    // the agent decided with the joined episode's action in its memory, as in the real env
    let mut env = ScenarioEnv::load(&scenario("keys_doors")).unwrap();
    let (first, _) = train
        .reset(&mut env, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))
        .unwrap();
    let joined = EpisodeMemory::joined(Some(&[first.admissible[0].clone()]));
    assert_eq!(
        segs.segments[0][0].encoded.state,
        featurizer.encode(&first, &joined).state
    );
    assert_ne!(
        featurizer.encode(&first, &joined).state,
        featurizer.encode(&first, &EpisodeMemory::default()).state,
        "the memory shows in the features"
    );
    // an iteration of only branches still reports (their) success and gives no curriculum outcome
    let m = t.iterate(&mut branched, &train).unwrap();
    assert!(m.episodes > 0);
    assert!(
        m.outcomes.is_empty(),
        "a branch says nothing of its task from the start"
    );
}

#[test]
fn a_frozen_policy_trains_its_critic_and_leaves_the_actor_untouched() {
    let (mut t, mut e) = trainer_for("keys_doors", small_ppo(6, 8), 2);
    let train = sampler(Split::Train, LEVEL);
    // moments in the optimizer for every parameter, as after training in a model
    t.iterate(&mut e, &train).unwrap();
    let mut probe_env = ScenarioEnv::load(&scenario("keys_doors")).unwrap();
    let (first, _) = train
        .reset(
            &mut probe_env,
            &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3),
        )
        .unwrap();
    let enc = t
        .featurizer()
        .encode(&first, &dreamgym_policy::text::EpisodeMemory::default());
    let before = t.policy().decide(&enc.state, &enc.actions);
    t.freeze_policy(true);
    for _ in 0..2 {
        t.iterate(&mut e, &train).unwrap();
    }
    let frozen = t.policy().decide(&enc.state, &enc.actions);
    assert_eq!(frozen.log_probs, before.log_probs, "the actor is untouched");
    assert_ne!(frozen.value, before.value, "the critic trained");
    t.freeze_policy(false);
    t.iterate(&mut e, &train).unwrap();
    let thawed = t.policy().decide(&enc.state, &enc.actions);
    assert_ne!(
        thawed.log_probs, before.log_probs,
        "thawed, the actor trains again"
    );
}
