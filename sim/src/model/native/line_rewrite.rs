//! Per-line rewrites: the native model's stage for worlds where an action rewrites every line
//! (egocentric views: "a red ball, 2 steps forward" becomes "1 step forward" after `go forward`),
//! which whole-state rules cannot cover.
//!
//! A `[id] kind: text` line is read through a **shape**: its text with the words of its id
//! masked (`[blue_ball_2] ball: a blue ball, 2 steps forward` has the shape
//! `<1>: a <0> <1>, 2 steps forward`), so what is learnt for one object holds for every object.
//! From training transitions it learns, per action and shape:
//! * the **rewrite**: the shape the line has after the action, or that it went;
//! * **blocking**: shapes whose presence means the action changes nothing (a wall right in
//!   front, an object one step forward);
//! * **goal shapes**: the shapes of lines naming the task's objects (every word of the line's id
//!   is in the instruction) in next states, and how often a next state showing one paid and ended.
//!
//! Lines that come into view are not predicted (nothing shown tells what they are).
//!
//! The stage is **on only in worlds where actions usually rewrite most lines**: where, in at
//! least half of the training transitions that change anything, most lines that stay (by id)
//! change their text (BabyAI's egocentric view: 0.72 of them; household 0.04, keys_doors 0.13,
//! webshop 0.38). Elsewhere rules cover the dynamics, and rewriting lines by shape in states the
//! rules cannot explain (those a policy reaches off the data) did harm: household success after
//! training in the model 0.574 without the stage, 0.496 with it (5 seeds).

use crate::model::words;
use dreamgym_buffer::{Observation, Step};
use std::collections::HashMap;
use std::fmt::Write;

/// Least number of training examples behind a blocking shape or a goal shape.
const MIN_SUPPORT: usize = 5;
/// Share of no-change outcomes that makes a shape blocking.
const BLOCKING_SHARE: f64 = 0.95;

/// Outcome counts of one (action, shape): the next shape (`None`: the line went) and how often.
type Outcomes = Vec<(Option<String>, usize)>;

/// What the line-rewrite stage learnt.
#[derive(Default)]
pub(crate) struct LineRewrites {
    /// action -> shape -> outcomes.
    rewrites: HashMap<String, HashMap<String, Outcomes>>,
    /// action -> shape -> (transitions that changed nothing, transitions) with the shape present.
    blocking: HashMap<String, HashMap<String, (usize, usize)>>,
    /// goal shape in a next state -> (paying and ending transitions, transitions, reward sum).
    goals: HashMap<String, (usize, usize, f64)>,
    /// Training transitions that changed the state.
    changed: usize,
    /// Of those, the ones that changed the text of most lines they kept (by id).
    mostly_rewritten: usize,
}

/// A prediction of the stage.
pub(crate) struct Rewritten {
    pub next: Observation,
    pub reward: f32,
    pub done: bool,
    pub reasoning: String,
    pub confidence: f32,
}

/// A line's id and the text after it.
fn split_id(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (id, text) = rest.split_once("] ")?;
    (!id.is_empty()).then_some((id, text))
}

/// The words of an id that can be masked: its alphabetic parts (`blue_ball_2` -> blue, ball).
fn id_words(id: &str) -> Vec<&str> {
    id.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
        .collect()
}

/// Runs of alphanumeric characters and of the rest, in order (together, `text` again).
fn runs(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut start = 0;
    let mut prev = None;
    for (i, c) in text.char_indices() {
        let alnum = c.is_alphanumeric();
        if prev.is_some_and(|p| p != alnum) {
            out.push(&text[start..i]);
            start = i;
        }
        prev = Some(alnum);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The shape of `text` with `words` masked as `<k>`.
fn mask(text: &str, words: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    for r in runs(text) {
        match words.iter().position(|w| w.eq_ignore_ascii_case(r)) {
            Some(k) => {
                let _ = write!(out, "<{k}>");
            }
            None => out.push_str(r),
        }
    }
    out
}

/// The text of `shape` with `<k>` filled by `words[k]` (None if a mask has no word).
pub(super) fn unmask(shape: &str, words: &[&str]) -> Option<String> {
    let mut out = String::with_capacity(shape.len() + 16);
    let mut rest = shape;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.split_once('>') {
            Some((k, tail)) if k.chars().all(|c| c.is_ascii_digit()) && !k.is_empty() => {
                out.push_str(words.get(k.parse::<usize>().ok()?)?);
                rest = tail;
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// A line's id, the words of its id, and its shape (`None` for lines without an id).
pub(super) fn parse(line: &str) -> Option<(&str, Vec<&str>, String)> {
    let (id, text) = split_id(line)?;
    let words = id_words(id);
    let shape = mask(text, &words);
    Some((id, words, shape))
}

/// The shapes of a state's id lines, with their ids.
fn shapes(lines: &[String]) -> Vec<(&str, String)> {
    lines
        .iter()
        .filter_map(|l| parse(l))
        .map(|(id, _, shape)| (id, shape))
        .collect()
}

/// Whether every maskable word of `id` occurs among the instruction's words.
fn names_task_object(id: &str, instruction_words: &[String]) -> bool {
    let w = id_words(id);
    !w.is_empty()
        && w.iter()
            .all(|x| instruction_words.iter().any(|i| i.eq_ignore_ascii_case(x)))
}

impl LineRewrites {
    /// Learns from one transition.
    pub(crate) fn learn(&mut self, s: &Step) {
        let before = shapes(&s.state.lines);
        let after: HashMap<&str, String> = shapes(&s.next_state.lines).into_iter().collect();
        let unchanged = s.state.lines == s.next_state.lines;
        if !unchanged {
            self.changed += 1;
            let kept: Vec<bool> = before
                .iter()
                .filter_map(|(id, shape)| after.get(id).map(|next| next != shape))
                .collect();
            let rewritten = kept.iter().filter(|c| **c).count();
            self.mostly_rewritten += usize::from(rewritten * 2 > kept.len());
        }
        let rewrites = self.rewrites.entry(s.action.clone()).or_default();
        let blocking = self.blocking.entry(s.action.clone()).or_default();
        for (id, shape) in &before {
            let next = after.get(id).cloned();
            let outcomes = rewrites.entry(shape.clone()).or_default();
            match outcomes.iter_mut().find(|(o, _)| *o == next) {
                Some((_, n)) => *n += 1,
                None => outcomes.push((next, 1)),
            }
            let b = blocking.entry(shape.clone()).or_default();
            b.0 += usize::from(unchanged);
            b.1 += 1;
        }
        let instruction: Vec<String> = words(&s.state.instruction).collect();
        let paid = s.done && s.reward > 0.0;
        let mut goal_shapes: Vec<&String> = after
            .iter()
            .filter(|(id, _)| names_task_object(id, &instruction))
            .map(|(_, shape)| shape)
            .collect();
        goal_shapes.sort();
        goal_shapes.dedup();
        for shape in goal_shapes {
            let g = self.goals.entry(shape.clone()).or_default();
            g.0 += usize::from(paid);
            g.1 += 1;
            if paid {
                g.2 += f64::from(s.reward);
            }
        }
    }

    /// Whether the stage is on: in at least half of the training transitions that changed the
    /// state, most lines kept (by id) changed their text.
    pub(crate) fn applies(&self) -> bool {
        self.changed > 0 && self.mostly_rewritten * 2 >= self.changed
    }

    /// The stage's prediction for `action` in `state`, if it is on and knows the rewrite of most
    /// lines.
    pub(crate) fn predict(&self, state: &Observation, action: &str) -> Option<Rewritten> {
        if !self.applies() {
            return None;
        }
        let parsed: Vec<Option<(&str, Vec<&str>, String)>> =
            state.lines.iter().map(|l| parse(l)).collect();
        let with_id = parsed.iter().flatten().count();
        if with_id == 0 {
            return None;
        }
        let rewrites = self.rewrites.get(action);
        let blocking = self.blocking.get(action);
        let mut why = String::new();
        // a shape whose presence has always meant that this action changes nothing
        for (id, _, shape) in parsed.iter().flatten() {
            if let Some(&(same, n)) = blocking.and_then(|b| b.get(shape))
                && n >= MIN_SUPPORT
                && same as f64 >= BLOCKING_SHARE * n as f64
            {
                let _ = write!(
                    why,
                    "Line rewrites: with [{id}] shaped `{shape}`, `{action}` changed nothing in {same} of {n} training transitions: nothing changes."
                );
                let (reward, done) = self.goal_outcome(state, &state.lines);
                return Some(Rewritten {
                    next: Observation {
                        feedback: String::new(),
                        ..state.clone()
                    },
                    reward,
                    done,
                    reasoning: why,
                    confidence: (same as f64 / n as f64) as f32,
                });
            }
        }
        let mut known = 0;
        let mut confidence = 1.0f64;
        let mut gone = vec![];
        let mut lines = Vec::with_capacity(state.lines.len());
        for (line, parsed) in state.lines.iter().zip(&parsed) {
            let Some((id, words, shape)) = parsed else {
                lines.push(line.clone());
                continue;
            };
            let Some(outcomes) = rewrites.and_then(|r| r.get(shape)) else {
                lines.push(line.clone());
                continue;
            };
            known += 1;
            let total: usize = outcomes.iter().map(|o| o.1).sum();
            let (next, n) = outcomes
                .iter()
                .max_by_key(|o| o.1)
                .expect("outcomes are never empty");
            confidence = confidence.min(*n as f64 / total as f64);
            match next {
                Some(next) => {
                    let text = unmask(next, words)?;
                    if why.len() < 400 && next != shape {
                        let _ = write!(why, " [{id}] `{shape}` -> `{next}` ({n} of {total});");
                    }
                    lines.push(format!("[{id}] {text}"));
                }
                None => gone.push(id.to_string()),
            }
        }
        if known * 2 < with_id {
            return None;
        }
        let (reward, done) = self.goal_outcome(state, &lines);
        let mut reasoning = format!(
            "Line rewrites under `{action}`, each line by its shape (the words of its id masked), from training transitions:{why}"
        );
        if !gone.is_empty() {
            let _ = write!(reasoning, " out of view: {};", gone.join(", "));
        }
        let _ = write!(
            reasoning,
            " {known} of {with_id} lines known; lines coming into view cannot be foreseen."
        );
        if done {
            let _ = write!(
                reasoning,
                " A line naming the task's object has a shape that paid and ended the episode in training: reward {reward}."
            );
        }
        Some(Rewritten {
            next: Observation {
                lines,
                feedback: String::new(),
                ..state.clone()
            },
            reward,
            done,
            reasoning,
            confidence: confidence as f32,
        })
    }

    /// Reward and done of a next state: paid when a line naming the task's object has a shape
    /// that paid and ended at least half of the (enough) training transitions it appeared in.
    fn goal_outcome(&self, state: &Observation, next_lines: &[String]) -> (f32, bool) {
        let instruction: Vec<String> = words(&state.instruction).collect();
        for (id, shape) in shapes(next_lines) {
            if !names_task_object(id, &instruction) {
                continue;
            }
            if let Some(&(paid, n, sum)) = self.goals.get(&shape)
                && n >= MIN_SUPPORT
                && paid * 2 >= n
            {
                return ((sum / paid as f64) as f32, true);
            }
        }
        (0.0, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_mask_the_id_words_and_fill_back() {
        let words = id_words("blue_ball_2");
        assert_eq!(words, vec!["blue", "ball"]);
        let s = mask("ball: a blue ball, 2 steps forward", &words);
        assert_eq!(s, "<1>: a <0> <1>, 2 steps forward");
        assert_eq!(
            unmask("<1>: a <0> <1>, 1 step forward", &["red", "key"]).unwrap(),
            "key: a red key, 1 step forward"
        );
        assert_eq!(unmask("a <x> b", &[]).unwrap(), "a <x> b");
        assert!(unmask("<3>", &["a"]).is_none());
        assert_eq!(
            split_id("[wall] wall: a wall"),
            Some(("wall", "wall: a wall"))
        );
        assert_eq!(split_id("no id"), None);
    }

    fn obs(lines: &[&str], instruction: &str) -> Observation {
        Observation {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            instruction: instruction.into(),
            admissible: vec!["go forward".into()],
            feedback: String::new(),
        }
    }

    fn step(a: &[&str], action: &str, b: &[&str], instruction: &str, reward: f32) -> Step {
        Step {
            state: obs(a, instruction),
            action: action.into(),
            reward,
            next_state: obs(b, instruction),
            done: reward > 0.0,
            truncated: false,
            reasoning: None,
            provenance: dreamgym_buffer::Provenance::Real,
            reward_known: true,
        }
    }

    #[test]
    fn moves_learnt_on_some_objects_apply_to_others_and_goals_pay() {
        let mut m = LineRewrites::default();
        for (c, t) in [
            ("red", "ball"),
            ("green", "key"),
            ("grey", "box"),
            ("blue", "ball"),
            ("red", "key"),
        ] {
            let id = format!("[{c}_{t}] {t}: a {c} {t}");
            m.learn(&step(
                &[
                    &format!("{id}, 3 steps forward"),
                    "[purple_box] box: a purple box, 1 step left",
                ],
                "go forward",
                &[&format!("{id}, 2 steps forward")],
                "go to the yellow ball",
                0.0,
            ));
            m.learn(&step(
                &[&format!("{id}, 2 steps forward")],
                "go forward",
                &[&format!("{id}, 1 step forward")],
                &format!("go to the {c} {t}"),
                1.0,
            ));
            m.learn(&step(
                &[&format!("{id}, 1 step forward")],
                "go forward",
                &[&format!("{id}, 1 step forward")],
                "go to the yellow ball",
                0.0,
            ));
        }
        // an object never seen, two moves it made in training
        let state = obs(
            &[
                "[yellow_ball] ball: a yellow ball, 3 steps forward",
                "[purple_box] box: a purple box, 1 step left",
            ],
            "go to the yellow ball",
        );
        let p = m.predict(&state, "go forward").unwrap();
        assert_eq!(
            p.next.lines,
            vec!["[yellow_ball] ball: a yellow ball, 2 steps forward"]
        );
        assert!(!p.done, "{}", p.reasoning);
        assert!(
            p.reasoning.contains("out of view: purple_box"),
            "{}",
            p.reasoning
        );
        let state = obs(
            &["[yellow_ball] ball: a yellow ball, 2 steps forward"],
            "go to the yellow ball",
        );
        let p = m.predict(&state, "go forward").unwrap();
        assert_eq!(
            p.next.lines,
            vec!["[yellow_ball] ball: a yellow ball, 1 step forward"]
        );
        assert!(
            p.done && p.reward == 1.0,
            "the goal object in front pays: {}",
            p.reasoning
        );
        // an object right in front blocks the move
        let state = obs(
            &["[yellow_ball] ball: a yellow ball, 1 step forward"],
            "go to the red key",
        );
        let p = m.predict(&state, "go forward").unwrap();
        assert_eq!(p.next.lines, state.lines);
        assert!(
            p.reasoning.contains("changed nothing in 5 of 5"),
            "{}",
            p.reasoning
        );
        assert!(m.predict(&state, "turn left").is_none(), "no rewrite known");
    }

    #[test]
    fn the_stage_stays_off_where_actions_rewrite_few_lines() {
        let mut m = LineRewrites::default();
        let shelf = "[shelf_1] location: you are at shelf 1";
        for _ in 0..5 {
            // a move: three lines kept, one rewritten
            m.learn(&step(
                &[
                    "[red_ball] ball: a red ball, 2 steps forward",
                    "[wall_1] wall: a wall",
                    shelf,
                    "[mug_1] mug: a mug",
                ],
                "go forward",
                &[
                    "[red_ball] ball: a red ball, 1 step forward",
                    "[wall_1] wall: a wall",
                    shelf,
                    "[mug_1] mug: a mug",
                ],
                "go to the red ball",
                0.0,
            ));
        }
        assert!(!m.applies());
        let state = obs(
            &["[red_ball] ball: a red ball, 2 steps forward"],
            "go to the red ball",
        );
        assert!(m.predict(&state, "go forward").is_none());
        for _ in 0..5 {
            m.learn(&step(
                &["[red_ball] ball: a red ball, 3 steps forward"],
                "go forward",
                &["[red_ball] ball: a red ball, 2 steps forward"],
                "go to the red ball",
                0.0,
            ));
        }
        assert!(
            m.applies(),
            "half the changing transitions rewrite most lines"
        );
        assert!(m.predict(&state, "go forward").is_some());
    }
}
