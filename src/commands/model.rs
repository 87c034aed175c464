//! `dreamgym model ...`: the experience models — fidelity of the native model on held-out data,
//! a check of an LLM server, and SFT data for an LLM experience model.

use crate::support::envs::EnvFactory;
use anyhow::{Result, bail};
use clap::Subcommand;
use dreamgym_sim::model::retrieval::{Retrievable, Retrieval, RetrievalMode};
use dreamgym_sim::policy::BehaviourPolicy;
use dreamgym_sim::{Env, TaskSpec};
use std::path::Path;
use std::path::PathBuf;

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
        /// Also score an ensemble: the model judged by this many native models fit on
        /// bootstrap resamples of the training episodes (seed 1), its confidence the share of
        /// them that agree with it (what `ensemble: true` uses); 0: none.
        #[arg(long, default_value_t = 0)]
        ensemble: usize,
    },
}

/// `dreamgym model ...`: runs one subcommand.
pub fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::LlmCheck {
            env,
            episodes,
            steps,
            max_tokens,
            attempts,
            seed,
        } => llm_check(&env, episodes, steps, max_tokens, attempts, seed),
        ModelCmd::ExportSft {
            data,
            out,
            k,
            history,
        } => export_sft(&data, &out, k, history),
        ModelCmd::Eval {
            train,
            heldout,
            gamma,
            no_rules,
            no_retrieval,
            retrieval,
            buffer,
            retrieve,
            show_errors,
            show,
            json,
            ensemble,
        } => eval(
            &train,
            &heldout,
            buffer.as_deref().map(|b| (b, retrieve)),
            gamma,
            (
                no_rules,
                if no_retrieval {
                    RetrievalMode::Off
                } else {
                    retrieval
                },
                ensemble,
            ),
            (show_errors, show),
            json,
        ),
    }
}

/// The episodes of the replay buffer at `path` (which must exist: a mistyped path is not an
/// empty buffer), none evicted.
fn buffer_trajectories(path: &Path) -> Result<Vec<dreamgym_buffer::Trajectory>> {
    let (b, _) = crate::support::files::open_existing_buffer(path, usize::MAX)?;
    Ok(b.trajectories())
}

/// `dreamgym model export-sft`: chat-format training examples from trajectories.
pub fn export_sft(data: &Path, out: &Path, k: usize, history: usize) -> Result<()> {
    crate::support::files::refuse_output_over_input(
        "model export-sft",
        ("--out", out),
        &[("--data", data)],
    )?;
    let d = dreamgym_buffer::jsonl::read_file(data)?;
    let s = crate::record::sft::export(&d, out, k, history)?;
    println!(
        "wrote {} examples to {} ({} with the native model's own reasoning, the rest with a factual account)",
        s.examples,
        out.display(),
        s.model_traces
    );
    Ok(())
}

/// `dreamgym model eval`: fit on one file, measure fidelity on another.
pub fn eval(
    train: &std::path::Path,
    heldout: &std::path::Path,
    buffer: Option<(&Path, Retrievable)>,
    gamma: f64,
    (no_rules, retrieval, ensemble): (bool, RetrievalMode, usize),
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
    let model = std::sync::Arc::new(NativeModel::fit_with(&tr, !no_rules));
    let fit_s = t0.elapsed().as_secs_f64();
    let index = match buffer {
        None => Retrieval::new(&tr, retrieval),
        Some((path, which)) => {
            let source: Vec<_> = buffer_trajectories(path)?
                .into_iter()
                .filter(|t| which.admits(t.provenance))
                .collect();
            eprintln!(
                "retrieving from {} ({which:?}): {} episodes, {} transitions",
                path.display(),
                source.len(),
                source.iter().map(|t| t.steps.len()).sum::<usize>()
            );
            Retrieval::new(&source, retrieval)
        }
    };
    let t1 = std::time::Instant::now();
    let r = fidelity::evaluate_with_index(model.as_ref(), &tr, &index, &ho, gamma);
    let eval_s = t1.elapsed().as_secs_f64();
    // the same model judged by bootstrap members: its confidence their agreement
    let judged = (ensemble > 0).then(|| {
        use dreamgym_sim::model::ensemble::{Ensemble, HaltRule, bootstrap};
        let judges = bootstrap(&tr, ensemble.max(2), 1)
            .iter()
            .map(|t| {
                std::sync::Arc::new(NativeModel::fit_with(t, !no_rules))
                    as std::sync::Arc<dyn dreamgym_sim::model::ExperienceModel>
            })
            .collect();
        let e = Ensemble::judged(model.clone(), judges, HaltRule::default());
        fidelity::evaluate_with_index(&e, &tr, &index, &ho, gamma)
    });
    if let Some(e) = &judged {
        let line = |f: &fidelity::Fidelity| {
            format!(
                "calibration_error {:.4}, false_success_rate {:.4}",
                f.calibration_error, f.false_success_rate
            )
        };
        eprintln!(
            "judged by {ensemble} bootstrap models, confidence = their agreement: all {}; seen tasks {}; unseen tasks {} (the model alone: calibration_error {:.4})",
            line(&e.all),
            line(&e.seen_tasks),
            line(&e.unseen_tasks),
            r.all.calibration_error
        );
    }
    // one-step predictions plus the open-loop ones of the drift measurement
    let predictions = r.all.transitions + r.drift.iter().map(|d| d.windows).sum::<usize>();
    if json {
        match &judged {
            None => println!("{}", serde_json::to_string_pretty(&r)?),
            Some(e) => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"model": r, "ensemble": e}))?
            ),
        }
        return Ok(());
    }
    eprintln!(
        "fitted {} on {} transitions ({} rules) in {fit_s:.2}s; {} predictions in {eval_s:.2}s ({:.0}/s)",
        dreamgym_sim::model::ExperienceModel::name(model.as_ref()),
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
    let rows: [(&str, Metric); 13] = [
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
        ("calibration_error", |f| f.calibration_error),
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
    let reliability: Vec<String> = r
        .all
        .reliability
        .iter()
        .map(|b| {
            format!(
                "{:.1}+: {} at {:.2} -> {:.2}",
                b.from, b.predictions, b.mean_confidence, b.accuracy
            )
        })
        .collect();
    println!(
        "reliability (confidence bin: predictions at mean confidence -> share right): {}",
        reliability.join(", ")
    );
    show_predictions(model.as_ref(), &ho, &index, show, false);
    show_predictions(model.as_ref(), &ho, &index, show_errors, true);
    Ok(())
}

/// Print up to `n` held-out predictions (only wrong ones with `wrong_only`), with the reasoning.
fn show_predictions(
    model: &dyn dreamgym_sim::model::ExperienceModel,
    heldout: &[dreamgym_buffer::Trajectory],
    retrieval: &Retrieval,
    n: usize,
    wrong_only: bool,
) {
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    let mut shown = 0;
    for t in heldout {
        let retrieved = match t.steps.first() {
            Some(first) => retrieval.for_instance(&t.task.id, &t.task.instruction, &first.state),
            None => vec![],
        };
        let retrieved = retrieved.as_slice();
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

pub fn llm_check(
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
