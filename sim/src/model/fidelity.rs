//! Fidelity of an experience model on held-out real data: how far its predictions are from what
//! the real environment did (the eps_R and eps_P of the DreamGym bound).

use super::retrieval::{Retrieval, RetrievalMode};
use super::{ExperienceModel, ModelContext};
use dreamgym_buffer::Trajectory;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};

/// Fidelity metrics over a set of held-out transitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fidelity {
    /// Transitions evaluated.
    pub transitions: usize,
    /// Share whose predicted next state has exactly the real state's lines (as a set).
    pub next_state_exact: f64,
    /// Mean line-level F1 of predicted against real next-state lines.
    pub next_state_f1: f64,
    /// Share whose predicted admissible actions are exactly the real ones (as a set).
    pub admissible_exact: f64,
    /// Share with the real reward (within 1e-3), over the transitions whose reward is known.
    pub reward_accuracy: f64,
    /// Transitions whose real reward the data does not state (imported without rewards): left
    /// out of `reward_accuracy`, `eps_r` and `false_success_rate`.
    pub reward_unknown: usize,
    /// Predicted success where the real step was not a success, over such steps.
    pub false_success_rate: f64,
    /// Share with the real `done`.
    pub done_accuracy: f64,
    /// Mean absolute reward error (eps_R), over the transitions whose reward is known.
    pub eps_r: f64,
    /// Share of wrong next states (eps_P: the total-variation distance for deterministic dynamics).
    pub eps_p: f64,
    /// The model term of the DreamGym bound, 2 (eps_R/(1-g) + 2 g R_max eps_P/(1-g)^2), R_max = 1.
    pub bound_penalty: f64,
    /// The discount used for the bound.
    pub gamma: f64,
    /// Mean confidence the model gave.
    pub mean_confidence: f64,
    /// Predictions the model refused or could not make (scored as the unchanged state).
    pub rejected: usize,
    /// Share of transitions whose real next state adds a line about an entity (the line's `[id]`,
    /// or the whole line when it has none) that nothing shown so far mentions — not the action,
    /// the instruction, the current lines or admissible actions, nor anything earlier in the
    /// episode (compared on lowercase letters and digits, so `dining table 1` mentions
    /// `diningtable_1`): the contents of a place visited for the first time. Where such contents
    /// are drawn anew per instance (household, keys_doors) no model can know them, so
    /// `1 - revealing` bounds `next_state_exact` there; where the world is fixed across
    /// instances (webshop's catalogue) they can be learnt.
    pub revealing: f64,
    /// `next_state_exact` over the other transitions: those whose outcome mentions only
    /// entities the episode has already shown or named.
    pub next_state_exact_closed: f64,
    /// Expected calibration error of the model's confidence: over ten equal-width confidence
    /// bins, the share-weighted gap between the mean confidence and the share of predictions
    /// that were right (next state exact, `done` right, and the reward where known). 0 for a
    /// model whose confidence is the probability of being right.
    pub calibration_error: f64,
    /// The reliability diagram behind it: per non-empty bin, its predictions, mean confidence
    /// and share right.
    pub reliability: Vec<ReliabilityBin>,
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin's confidence range (width 0.1; the last bin includes 1.0).
    pub from: f64,
    /// Predictions whose confidence fell in the bin.
    pub predictions: usize,
    /// Their mean confidence.
    pub mean_confidence: f64,
    /// The share of them that were right.
    pub accuracy: f64,
}

/// Confidence bins of the reliability diagram.
const BINS: usize = 10;

/// Per bin: predictions, summed confidence, predictions right.
#[derive(Default, Clone, Copy)]
struct Bin {
    n: usize,
    conf: f64,
    right: usize,
}

/// The reliability diagram and expected calibration error of `bins` over `n` predictions.
fn calibration(bins: &[Bin; BINS], n: usize) -> (f64, Vec<ReliabilityBin>) {
    let mut ece = 0.0;
    let mut diagram = vec![];
    for (i, b) in bins.iter().enumerate().filter(|(_, b)| b.n > 0) {
        let (conf, acc) = (b.conf / b.n as f64, b.right as f64 / b.n as f64);
        ece += b.n as f64 / n.max(1) as f64 * (conf - acc).abs();
        diagram.push(ReliabilityBin {
            from: i as f64 / BINS as f64,
            predictions: b.n,
            mean_confidence: conf,
            accuracy: acc,
        });
    }
    (ece, diagram)
}

#[derive(Default)]
struct Acc {
    n: usize,
    exact: usize,
    f1: f64,
    adm: usize,
    rewarded: usize,
    reward: usize,
    not_success: usize,
    false_success: usize,
    done: usize,
    abs_r: f64,
    conf: f64,
    rejected: usize,
    revealing: usize,
    closed_exact: usize,
    bins: [Bin; BINS],
}

impl Acc {
    fn finish(&self, gamma: f64) -> Fidelity {
        let (calibration_error, reliability) = calibration(&self.bins, self.n);
        let n = self.n.max(1) as f64;
        let rewarded = self.rewarded.max(1) as f64;
        let eps_r = self.abs_r / rewarded;
        // (no transitions: every share 0, no error either)
        let eps_p = if self.n == 0 {
            0.0
        } else {
            1.0 - self.exact as f64 / n
        };
        Fidelity {
            transitions: self.n,
            next_state_exact: self.exact as f64 / n,
            next_state_f1: self.f1 / n,
            admissible_exact: self.adm as f64 / n,
            reward_accuracy: self.reward as f64 / rewarded,
            reward_unknown: self.n - self.rewarded,
            false_success_rate: self.false_success as f64 / self.not_success.max(1) as f64,
            done_accuracy: self.done as f64 / n,
            eps_r,
            eps_p,
            bound_penalty: 2.0
                * (eps_r / (1.0 - gamma) + 2.0 * gamma * eps_p / (1.0 - gamma).powi(2)),
            gamma,
            mean_confidence: self.conf / n,
            rejected: self.rejected,
            revealing: self.revealing as f64 / n,
            next_state_exact_closed: self.closed_exact as f64
                / (self.n - self.revealing).max(1) as f64,
            calibration_error,
            reliability,
        }
    }
}

fn f1(pred: &[String], real: &[String]) -> f64 {
    let p: BTreeSet<&String> = pred.iter().collect();
    let r: BTreeSet<&String> = real.iter().collect();
    if p.is_empty() && r.is_empty() {
        return 1.0;
    }
    let tp = p.intersection(&r).count() as f64;
    if tp == 0.0 {
        return 0.0;
    }
    let (prec, rec) = (tp / p.len() as f64, tp / r.len() as f64);
    2.0 * prec * rec / (prec + rec)
}

/// Lowercase letters and digits of a text (`[diningtable_1]` and `dining table 1` agree).
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The entity a state line is about, squashed: its `[id]` prefix, or the whole line.
fn entity(line: &str) -> String {
    squash(super::lines::line_id(line).unwrap_or(line))
}

/// Whether step `s` adds a line about an entity that nothing in `shown` (the squashed texts the
/// episode showed before it) nor the step's own state and action mentions.
fn reveals(s: &dreamgym_buffer::Step, shown: &str) -> bool {
    let mut context = format!(
        "{}|{}|{}",
        squash(&s.action),
        squash(&s.state.instruction),
        shown
    );
    for l in s.state.lines.iter().chain(&s.state.admissible) {
        context.push('|');
        context.push_str(&squash(l));
    }
    super::lines::diff(&s.next_state.lines, &s.state.lines)
        .into_iter()
        .any(|l| !context.contains(&entity(l)))
}

/// Whether two states hold the same lines, as sets: the comparison behind `next_state_exact`
/// (and `admissible_exact`), for other tools that must judge a predicted state the same way.
pub fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// A fidelity report: all held-out transitions, those of task instances that are in training
/// (new trajectories on seen instances) and those of task instances not in training.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityReport {
    /// Over all held-out transitions.
    #[serde(flatten)]
    pub all: Fidelity,
    /// Over the transitions of held-out trajectories whose task instance occurs in training.
    pub seen_tasks: Fidelity,
    /// Over the transitions of held-out task instances whose id never occurs in training.
    pub unseen_tasks: Fidelity,
    /// Open-loop drift: for k = 1..=5, the share of k-step windows of held-out episodes where the
    /// model, fed its own predictions and the real actions, ends in the real state (as a set).
    pub drift: Vec<Drift>,
}

/// Open-loop accuracy after `k` steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// Steps rolled out on the model's own predictions.
    pub k: usize,
    /// Windows evaluated.
    pub windows: usize,
    /// Share of windows whose final predicted state is the real one.
    pub exact: f64,
}

/// Longest open-loop rollout measured.
pub const MAX_DRIFT_K: usize = 5;

/// Open-loop drift of `model` over k-step windows of `heldout` (see [`FidelityReport::drift`]),
/// given what `retrieval` retrieves for each instance.
pub fn drift(
    model: &dyn ExperienceModel,
    heldout: &[Trajectory],
    retrieval: &Retrieval,
) -> Vec<Drift> {
    let mut right = [0usize; MAX_DRIFT_K];
    let mut windows = [0usize; MAX_DRIFT_K];
    for t in heldout {
        let retrieved = match t.steps.first() {
            Some(first) => retrieval.for_instance(&t.task.id, &t.task.instruction, &first.state),
            None => vec![],
        };
        let retrieved = retrieved.as_slice();
        for start in 0..t.steps.len() {
            let mut state = t.steps[start].state.clone();
            let mut history: Vec<dreamgym_buffer::Step> = t.steps[..start].to_vec();
            for k in 0..MAX_DRIFT_K.min(t.steps.len() - start) {
                let real = &t.steps[start + k];
                let p = model.predict(&ModelContext {
                    task: &t.task,
                    history: &history,
                    state: &state,
                    action: &real.action,
                    retrieved,
                });
                windows[k] += 1;
                let Ok(p) = p else { break };
                right[k] += same_set(&p.next_state.lines, &real.next_state.lines) as usize;
                history.push(dreamgym_buffer::Step {
                    state: state.clone(),
                    action: real.action.clone(),
                    reward: p.reward,
                    next_state: p.next_state.clone(),
                    done: p.done,
                    truncated: false,
                    reasoning: None,
                    provenance: dreamgym_buffer::Provenance::Synthetic,
                    reward_known: true,
                });
                if p.done {
                    break;
                }
                state = p.next_state;
            }
        }
    }
    (0..MAX_DRIFT_K)
        .map(|k| Drift {
            k: k + 1,
            windows: windows[k],
            exact: right[k] as f64 / windows[k].max(1) as f64,
        })
        .collect()
}

/// Evaluate `model` one step at a time on `heldout` (each prediction starts from the real state),
/// with retrieval: each step is given the real transitions of its task instance in `train`, as
/// [`super::env::ModelEnv`] gives them when training in the model (none for unseen instances).
pub fn evaluate(
    model: &dyn ExperienceModel,
    train: &[Trajectory],
    heldout: &[Trajectory],
    gamma: f64,
) -> FidelityReport {
    evaluate_with(model, train, heldout, gamma, RetrievalMode::Instance)
}

/// [`evaluate`] with a retrieval mode (`Off`: nothing retrieved, the ablation; `Similar`: the
/// nearest other instances' transitions too, see [`super::retrieval`]).
pub fn evaluate_with(
    model: &dyn ExperienceModel,
    train: &[Trajectory],
    heldout: &[Trajectory],
    gamma: f64,
    retrieval: RetrievalMode,
) -> FidelityReport {
    evaluate_with_index(
        model,
        train,
        &Retrieval::new(train, retrieval),
        heldout,
        gamma,
    )
}

/// Like [`evaluate_with`], with retrieval from `index` (built on any data, e.g. a run's replay
/// buffer); `train` still decides which held-out tasks count as seen.
pub fn evaluate_with_index(
    model: &dyn ExperienceModel,
    train: &[Trajectory],
    index: &Retrieval,
    heldout: &[Trajectory],
    gamma: f64,
) -> FidelityReport {
    let seen: HashSet<&str> = train.iter().map(|t| t.task.id.as_str()).collect();
    let (mut all, mut seen_acc, mut unseen) = (Acc::default(), Acc::default(), Acc::default());
    for t in heldout {
        let is_unseen = !seen.contains(t.task.id.as_str());
        let retrieved = match t.steps.first() {
            Some(first) => index.for_instance(&t.task.id, &t.task.instruction, &first.state),
            None => vec![],
        };
        let retrieved = retrieved.as_slice();
        let mut shown = String::new();
        for (i, s) in t.steps.iter().enumerate() {
            let reveals = reveals(s, &shown);
            for l in s
                .state
                .lines
                .iter()
                .chain(&s.next_state.lines)
                .chain(&s.next_state.admissible)
            {
                shown.push('|');
                shown.push_str(&squash(l));
            }
            let ctx = ModelContext {
                retrieved,
                ..ModelContext::at_step(t, i)
            };
            let (p, rejected) = match model.predict(&ctx) {
                Ok(p) => (p, false),
                // a rejected reply scores as the failure state it would have to be replaced by
                Err(e) => (
                    super::Prediction {
                        reasoning: e.to_string(),
                        next_state: s.state.clone(),
                        reward: 0.0,
                        done: false,
                        success: false,
                        confidence: 0.0,
                    },
                    true,
                ),
            };
            let real_success = dreamgym_buffer::is_success(s.done, s.reward);
            let part = if is_unseen {
                &mut unseen
            } else {
                &mut seen_acc
            };
            let done_right = p.done == s.done;
            let reward_right = (p.reward - s.reward).abs() < 1e-3;
            for acc in [&mut all, part] {
                acc.n += 1;
                acc.rejected += rejected as usize;
                let exact = same_set(&p.next_state.lines, &s.next_state.lines);
                acc.exact += exact as usize;
                acc.revealing += reveals as usize;
                acc.closed_exact += (exact && !reveals) as usize;
                acc.f1 += f1(&p.next_state.lines, &s.next_state.lines);
                acc.adm += same_set(&p.next_state.admissible, &s.next_state.admissible) as usize;
                acc.done += done_right as usize;
                acc.conf += p.confidence as f64;
                let right = exact && done_right && (!s.reward_known || reward_right);
                let c = f64::from(p.confidence).clamp(0.0, 1.0);
                let bin = &mut acc.bins[((c * BINS as f64) as usize).min(BINS - 1)];
                bin.n += 1;
                bin.conf += c;
                bin.right += right as usize;
                if !s.reward_known {
                    continue;
                }
                acc.rewarded += 1;
                acc.reward += reward_right as usize;
                acc.abs_r += (p.reward - s.reward).abs() as f64;
                if !real_success {
                    acc.not_success += 1;
                    acc.false_success += p.success as usize;
                }
            }
        }
    }
    FidelityReport {
        all: all.finish(gamma),
        seen_tasks: seen_acc.finish(gamma),
        unseen_tasks: unseen.finish(gamma),
        drift: drift(model, heldout, index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_buffer::Step;

    #[test]
    fn calibration_error_is_the_weighted_gap_per_bin() {
        // bin 0.9: 4 predictions at 0.95, 3 right (gap 0.2); bin 0.1: 6 at 0.1, 3 right (0.4)
        let mut bins = [Bin::default(); BINS];
        bins[9] = Bin {
            n: 4,
            conf: 3.8,
            right: 3,
        };
        bins[1] = Bin {
            n: 6,
            conf: 0.6,
            right: 3,
        };
        let (ece, diagram) = calibration(&bins, 10);
        // 0.4 * |0.95 - 0.75| + 0.6 * |0.1 - 0.5| = 0.08 + 0.24
        assert!((ece - 0.32).abs() < 1e-9, "{ece}");
        assert_eq!(diagram.len(), 2);
        assert_eq!(diagram[0].from, 0.1);
        assert_eq!(diagram[1].predictions, 4);
        assert!((diagram[1].accuracy - 0.75).abs() < 1e-12);
        // a model right exactly as often as it says it is: no error
        let honest = {
            let mut b = [Bin::default(); BINS];
            b[5] = Bin {
                n: 10,
                conf: 5.0,
                right: 5,
            };
            b
        };
        assert!(calibration(&honest, 10).0.abs() < 1e-9);
        assert_eq!(calibration(&[Bin::default(); BINS], 0).0, 0.0);
    }

    fn step(lines: &[&str], action: &str, next: &[&str]) -> Step {
        let obs = |l: &[&str]| super::super::test_observation(l, "find the knife");
        super::super::test_step(obs(lines), action, obs(next))
    }

    #[test]
    fn revealing_steps_show_entities_nothing_mentioned() {
        let here = "[countertop_2] location: you are at countertop 2";
        let there = "[diningtable_1] location: you are at dining table 1";
        let knife = "[knife_1] item: a knife in/on dining table 1";
        // the new place is named by the action: not revealing
        assert!(!reveals(
            &step(&[here], "go to dining table 1", &[there]),
            ""
        ));
        // what lies there is not
        assert!(reveals(
            &step(&[here], "go to dining table 1", &[there, knife]),
            ""
        ));
        // unless the episode showed it before
        assert!(!reveals(
            &step(&[here], "go to dining table 1", &[there, knife]),
            &squash(knife)
        ));
    }
}
