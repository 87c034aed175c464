//! The instance's own experience, where the training data disagree: when the same instruction,
//! state and action led to different outcomes in training that take away the same lines and
//! differ only in what they show (what a closed fridge holds differs between worlds that look
//! alike until it is opened), the majority outcome is a guess from other worlds. Real steps of
//! this task instance (`ctx.retrieved`) that took the same action and changed lines the state
//! still shows say what happens *here*, when they all agree: their change is applied to the
//! state. Only real steps (synthetic ones retrieved from a run's buffer are the model's own
//! guesses) that paid nothing and did not end the episode are used, so rewards and successes
//! stay with the stages that learnt them.

use super::NativeModel;
use super::apply::splice;
use crate::model::lines::diff;
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Observation, Provenance};

impl NativeModel {
    /// The prediction from this instance's own real steps of the action (see the module docs);
    /// `None` when no retrieved step of the action applies here.
    pub(super) fn by_instance(ctx: &ModelContext) -> Option<Prediction> {
        let state = &ctx.state.lines;
        // each applicable step with what it took away and what it added
        let mut applicable = ctx
            .retrieved
            .iter()
            .filter(|s| {
                s.action == ctx.action
                    && s.state.instruction == ctx.state.instruction
                    && s.provenance == Provenance::Real
                    && s.reward == 0.0
                    && !s.done
                    && s.state.lines != s.next_state.lines
            })
            .map(|s| {
                let removed = diff(&s.state.lines, &s.next_state.lines);
                let added = diff(&s.next_state.lines, &s.state.lines);
                (s, removed, added)
            })
            .filter(|(_, removed, added)| {
                removed.iter().all(|l| state.contains(l))
                    && !added.iter().any(|l| state.contains(l))
            });
        let (step, removed, added) = applicable.next()?;
        // the instance's own steps must agree too
        let mut count = 1;
        for (_, r, a) in applicable {
            if r != removed || a != added {
                return None;
            }
            count += 1;
        }
        let removed: Vec<usize> = removed
            .iter()
            .filter_map(|l| state.iter().position(|x| x == *l))
            .collect();
        let lines = splice(state, &removed, added.into_iter().cloned().collect());
        let admissible = if step.state.lines == *state {
            step.next_state.admissible.clone()
        } else {
            ctx.state.admissible.clone()
        };
        Some(Prediction {
            reasoning: format!(
                "The training data disagree about this action in this state (what it shows depends on this world); real episodes of this task instance took it {count} time(s) from states with the lines it changes, and changed them so every time. Reward 0."
            ),
            next_state: Observation {
                lines,
                admissible,
                feedback: step.next_state.feedback.clone(),
                instruction: ctx.state.instruction.clone(),
            },
            reward: 0.0,
            done: false,
            success: false,
            confidence: 0.9,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::episode;
    use super::*;
    use dreamgym_buffer::Step;

    const KITCHEN: &str = "[t0] text: You are in the kitchen";

    fn kitchen(fridge: &str, drawer: &str) -> Observation {
        Observation {
            lines: vec![
                KITCHEN.into(),
                format!("[t1] text: {fridge}"),
                format!("[t2] text: {drawer}"),
            ],
            instruction: "cook a meal".into(),
            admissible: vec!["open fridge".into(), "open drawer".into()],
            feedback: String::new(),
        }
    }

    fn open_fridge(drawer: &str, holds: &str) -> Step {
        let mut next = kitchen(&format!("an open fridge that contains {holds}"), drawer);
        next.feedback = format!("You open the fridge. It contains {holds}.");
        crate::model::test_step(
            kitchen("a fridge that is closed", drawer),
            "open fridge",
            next,
        )
    }

    const CLOSED: &str = "a drawer that is closed";
    const OPEN: &str = "an open drawer, that is empty";

    /// Worlds that look alike until the fridge is opened: three hold cilantro, one water.
    fn model() -> NativeModel {
        let mut steps = vec![];
        for drawer in [CLOSED, OPEN] {
            for holds in ["cilantro", "cilantro", "cilantro", "water"] {
                steps.push(open_fridge(drawer, holds));
            }
        }
        NativeModel::fit(
            &steps
                .into_iter()
                .map(|s| episode(vec![s]))
                .collect::<Vec<_>>(),
        )
    }

    fn predict(model: &NativeModel, retrieved: &[Step]) -> Prediction {
        let task = super::super::super::test_task("cook a meal");
        let state = kitchen("a fridge that is closed", OPEN);
        model.predict_native(&ModelContext {
            task: &task,
            history: &[],
            state: &state,
            action: "open fridge",
            retrieved,
        })
    }

    #[test]
    fn this_instance_decides_what_a_hidden_container_holds() {
        let model = model();
        // with no experience of this world the majority of the others is the guess
        let guess = predict(&model, &[]);
        assert!(guess.next_state.lines[1].contains("cilantro"));
        // a real episode of this world opened the fridge, from a state with the drawer closed
        let p = predict(&model, &[open_fridge(CLOSED, "water")]);
        assert_eq!(
            p.next_state.lines,
            [
                KITCHEN.to_string(),
                "[t1] text: an open fridge that contains water".into(),
                format!("[t2] text: {OPEN}"),
            ],
            "{}",
            p.reasoning
        );
        assert_eq!(
            p.next_state.feedback,
            "You open the fridge. It contains water."
        );
        assert_eq!((p.reward, p.done), (0.0, false));
    }

    #[test]
    fn the_instance_is_not_used_where_its_own_steps_disagree_or_are_guesses() {
        let model = model();
        let both = [open_fridge(CLOSED, "water"), open_fridge(CLOSED, "milk")];
        assert!(predict(&model, &both).next_state.lines[1].contains("cilantro"));
        let mut synthetic = open_fridge(CLOSED, "water");
        synthetic.provenance = Provenance::Synthetic;
        assert!(predict(&model, &[synthetic]).next_state.lines[1].contains("cilantro"));
    }
}
