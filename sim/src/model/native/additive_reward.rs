//! Additive rewards: for an action whose episode-ending rewards come in several sizes (partial
//! credit, WebShop's "0.2 per criterion met"), a linear model of the reward over relational
//! features between the instruction and the state — for each word position of the instruction
//! and each kind of state line, whether that word occurs in a line of that kind (plural-tolerant),
//! and for numbers whether some number in such a line is below it. It is fitted by least squares
//! on the training transitions of that action and used only when, rounded to the nearest reward
//! seen, it reproduces at least 99.5% of them (WebShop: 1,908 of 1,909).

use crate::model::words;
use dreamgym_buffer::{Observation, Step};
use std::collections::HashMap;

/// Least number of training transitions behind a model.
const MIN_EXAMPLES: usize = 20;
/// Least number of distinct reward sizes that make a reward worth modelling additively.
const MIN_LEVELS: usize = 3;
/// Share of the action's training transitions a model must reproduce to be used.
const MIN_REPRODUCED: f64 = 0.995;

/// One fitted model: feature weights by (instruction length, feature), and the reward sizes seen.
struct Fitted {
    weights: HashMap<Feature, f64>,
    bias: f64,
    levels: Vec<f32>,
}

/// A feature: (instruction length, word position, line kind, relation).
type Feature = (usize, usize, String, Relation);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Relation {
    /// The instruction's word occurs in a line of the kind.
    Mentions,
    /// Some number in a line of the kind is below the instruction's number.
    Below,
}

/// What the additive-reward stage learnt: per action, the fitted model (if any fits).
#[derive(Default)]
pub(crate) struct AdditiveRewards {
    examples: HashMap<String, Vec<(Vec<Feature>, f32)>>,
    fitted: HashMap<String, Fitted>,
}

fn number(w: &str) -> Option<f64> {
    w.parse::<f64>().ok()
}

fn alike(a: &str, b: &str) -> bool {
    a == b || a.strip_suffix('s') == Some(b) || b.strip_suffix('s') == Some(a)
}

/// The features of a state under an instruction (distinct: at most one per word position, line
/// kind and relation).
fn features(state: &Observation) -> Vec<Feature> {
    let inst: Vec<String> = words(&state.instruction).collect();
    let mut by_kind: HashMap<&str, Vec<String>> = HashMap::new();
    for l in &state.lines {
        let Some((_, rest)) = l.split_once("] ") else {
            continue;
        };
        let Some((kind, text)) = rest.split_once(':') else {
            continue;
        };
        by_kind.entry(kind).or_default().extend(words(text));
    }
    let mut out = vec![];
    for (i, w) in inst.iter().enumerate() {
        for (kind, ws) in &by_kind {
            match number(w) {
                Some(x) => {
                    if ws.iter().filter_map(|v| number(v)).any(|y| y < x) {
                        out.push((inst.len(), i, kind.to_string(), Relation::Below));
                    }
                }
                None => {
                    if ws.iter().any(|v| alike(v, w)) {
                        out.push((inst.len(), i, kind.to_string(), Relation::Mentions));
                    }
                }
            }
        }
    }
    out
}

/// Solves `a x = b` (square, symmetric positive definite after the ridge) by Gaussian
/// elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for (k, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            if f != 0.0 {
                for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * p;
                }
                b[c + 1 + k] -= f * b[c];
            }
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    Some(x)
}

impl AdditiveRewards {
    /// Learns from one transition (episode-ending ones only).
    pub(crate) fn learn(&mut self, s: &Step) {
        if s.done {
            self.examples
                .entry(s.action.clone())
                .or_default()
                .push((features(&s.state), s.reward));
        }
    }

    /// Fits a model per action whose ending rewards come in several sizes; keeps those that
    /// reproduce (nearly) every training transition.
    pub(crate) fn fit(&mut self) {
        for (action, ex) in std::mem::take(&mut self.examples) {
            let mut levels: Vec<f32> = ex.iter().map(|e| e.1).collect();
            levels.sort_by(f32::total_cmp);
            levels.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
            if ex.len() < MIN_EXAMPLES || levels.len() < MIN_LEVELS {
                continue;
            }
            let mut index: HashMap<Feature, usize> = HashMap::new();
            for (fs, _) in &ex {
                for f in fs {
                    let n = index.len();
                    index.entry(f.clone()).or_insert(n);
                }
            }
            let n = index.len() + 1; // + bias
            let mut ata = vec![vec![0.0; n]; n];
            let mut atb = vec![0.0; n];
            for (fs, r) in &ex {
                // a state's features are distinct (one per word position, line kind, relation)
                let mut cols: Vec<usize> = fs.iter().map(|f| index[f]).collect();
                cols.push(n - 1);
                for &i in &cols {
                    atb[i] += f64::from(*r);
                    for &j in &cols {
                        ata[i][j] += 1.0;
                    }
                }
            }
            for (i, row) in ata.iter_mut().enumerate() {
                row[i] += 1e-6;
            }
            let Some(x) = solve(ata, atb) else {
                continue;
            };
            let fitted = Fitted {
                weights: index.iter().map(|(f, &i)| (f.clone(), x[i])).collect(),
                bias: x[n - 1],
                levels,
            };
            let bad = ex
                .iter()
                .filter(|(fs, r)| (fitted.predict(fs) - r).abs() >= 1e-4)
                .count();
            if bad as f64 <= (1.0 - MIN_REPRODUCED) * ex.len() as f64 {
                self.fitted.insert(action, fitted);
            }
        }
    }

    /// The reward of ending the episode with `action` in `state`, where a model fits.
    pub(crate) fn reward(&self, state: &Observation, action: &str) -> Option<f32> {
        let m = self.fitted.get(action)?;
        Some(m.predict(&features(state)))
    }
}

impl Fitted {
    /// The linear prediction rounded to the nearest reward size seen in training.
    fn predict(&self, fs: &[Feature]) -> f32 {
        let y: f64 = self.bias
            + fs.iter()
                .map(|f| self.weights.get(f).copied().unwrap_or(0.0))
                .sum::<f64>();
        *self
            .levels
            .iter()
            .min_by(|a, b| {
                (f64::from(**a) - y)
                    .abs()
                    .total_cmp(&(f64::from(**b) - y).abs())
            })
            .expect("at least MIN_LEVELS levels")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(instruction: &str, lines: &[&str]) -> Observation {
        Observation {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            instruction: instruction.into(),
            admissible: vec![],
            feedback: String::new(),
        }
    }

    #[test]
    fn partial_credit_is_a_sum_of_criteria() {
        let mut m = AdditiveRewards::default();
        let materials = ["cotton", "wool", "linen"];
        let colours = ["red", "blue", "green"];
        let mut k = 0;
        for (mi, want_m) in materials.iter().enumerate() {
            for (ci, want_c) in colours.iter().enumerate() {
                for price in [10, 50] {
                    for (has_m, has_c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        k += 1;
                        let m_line = materials[(mi + 1 - has_m) % 3];
                        let c_line = colours[(ci + 1 - has_c) % 3];
                        let item = format!("[p{k}] item page: a {m_line} shirt, ${price}");
                        let sel = format!("[c_{c_line}] selected: color {c_line}");
                        let inst =
                            format!("i want a {want_m} shirt in {want_c} color under 30 dollars");
                        let reward = 0.25 * (has_m + has_c + usize::from(price < 30) + 1) as f32;
                        m.learn(&Step {
                            state: obs(&inst, &[&item, &sel]),
                            action: "buy now".into(),
                            reward,
                            next_state: obs(&inst, &[]),
                            done: true,
                            truncated: false,
                            reasoning: None,
                            provenance: dreamgym_buffer::Provenance::Real,
                            reward_known: true,
                        });
                    }
                }
            }
        }
        m.fit();
        let s = obs(
            "i want a silk shirt in yellow color under 30 dollars",
            &[
                "[p1] item page: a silk shirt, $12",
                "[c_red] selected: color red",
            ],
        );
        assert_eq!(
            m.reward(&s, "buy now"),
            Some(0.75),
            "material, shirt and price"
        );
        let s = obs(
            "i want a silk shirt in yellow color under 30 dollars",
            &[
                "[p1] item page: a wool shirt, $40",
                "[c_yellow] selected: color yellow",
            ],
        );
        assert_eq!(m.reward(&s, "buy now"), Some(0.5), "shirt and colour");
        assert_eq!(m.reward(&s, "sell"), None);
    }
}
