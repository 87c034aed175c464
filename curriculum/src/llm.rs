//! Harder variants written by an LLM experience model — the paper's task generator: the same
//! model with a task-generation prompt (candidate variations, then a selection;
//! `dreamgym_sim::model::llm::task_gen`). A variant is a new instruction played, in the experience
//! model, from the real initial state of the task it was written for
//! ([`PosedTask`]); its difficulty counts generations above the seed family's.
//!
//! **Feasibility** (the paper's "well-defined" criterion): a written task enters the pool only
//! when it is grounded — every word of it occurs in its initial state, the actions available
//! there, the instructions of real tasks or a short list of English function words — and it differs from the task it varies. A task that
//! names an object the world does not show cannot be solved there.

use crate::{TaskVariant, VariantGenerator};
use dreamgym_buffer::{Observation, Task};
use dreamgym_sim::PosedTask;
use dreamgym_sim::model::llm::task_gen::{TaskSeed, TaskWriter};
use dreamgym_sim::model::words;
use rand::RngExt;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Real task instructions shown to the writer as examples of the environment's tasks.
const EXAMPLES: usize = 8;

/// English function words a written task may use even where no real task does.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "then", "after", "before", "first", "next", "finally", "also",
    "both", "all", "each", "every", "any", "in", "on", "into", "onto", "to", "from", "of", "with",
    "without", "at", "by", "for", "it", "them", "its", "their", "your", "you", "that", "which",
    "is", "are", "not", "no", "one", "two", "three", "once", "again", "while", "until", "so",
];

/// Variant generator backed by a [`TaskWriter`] (an LLM experience model).
pub struct LlmVariants {
    writer: Arc<dyn TaskWriter>,
    starts: Vec<(Task, Observation)>,
    instructions: Vec<String>,
    vocabulary: BTreeSet<String>,
    /// Candidate variations written per request (one is selected).
    pub candidates: usize,
    /// Requests the writer failed (rejected replies, server errors).
    pub failures: usize,
}

impl LlmVariants {
    /// A generator writing variations of the tasks whose real initial states are `starts`.
    pub fn new(writer: Arc<dyn TaskWriter>, starts: Vec<(Task, Observation)>) -> Self {
        let mut instructions: Vec<String> = vec![];
        for (t, _) in &starts {
            if !instructions.contains(&t.instruction) {
                instructions.push(t.instruction.clone());
            }
        }
        let vocabulary = instructions
            .iter()
            .flat_map(|i| words(i))
            .chain(FUNCTION_WORDS.iter().map(|w| w.to_string()))
            .collect();
        Self {
            writer,
            starts,
            instructions,
            vocabulary,
            candidates: 4,
            failures: 0,
        }
    }

    fn start(&self, task_id: &str) -> Option<&(Task, Observation)> {
        self.starts.iter().find(|(t, _)| t.id == task_id)
    }

    /// The words of a written task that neither its initial state, its actions nor any real
    /// task's instruction contains (empty: grounded).
    pub fn ungrounded(&self, posed: &PosedTask) -> Vec<String> {
        let Some((_, obs)) = self.start(&posed.base) else {
            return words(&posed.instruction).collect();
        };
        let seen: BTreeSet<String> = obs
            .lines
            .iter()
            .chain(&obs.admissible)
            .flat_map(|l| words(l))
            .collect();
        let mut out: Vec<String> = words(&posed.instruction)
            .filter(|w| !seen.contains(w) && !self.vocabulary.contains(w))
            .collect();
        out.dedup();
        out
    }
}

impl VariantGenerator for LlmVariants {
    fn harder(&mut self, parent: &TaskVariant, rng: &mut dyn rand::Rng) -> Option<TaskVariant> {
        let (base, instruction) = match &parent.posed {
            Some(p) => (p.base.clone(), p.instruction.clone()),
            None => {
                let spec = parent.spec();
                let family: Vec<&Task> = self
                    .starts
                    .iter()
                    .map(|(t, _)| t)
                    .filter(|t| spec.admits(t))
                    .collect();
                if family.is_empty() {
                    return None;
                }
                let t = family[rng.random_range(0..family.len())];
                (t.id.clone(), t.instruction.clone())
            }
        };
        let (_, state) = self.start(&base)?;
        let mut examples: Vec<String> = self
            .instructions
            .iter()
            .filter(|i| **i != instruction)
            .cloned()
            .collect();
        while examples.len() > EXAMPLES {
            examples.swap_remove(rng.random_range(0..examples.len()));
        }
        let seed = TaskSeed {
            instruction: &instruction,
            state,
            success: None,
            examples: &examples,
            candidates: self.candidates,
        };
        match self.writer.vary_task(&seed) {
            Ok(v) => Some(TaskVariant {
                template: parent.template.clone(),
                difficulty: parent.difficulty + 1,
                seed: 0,
                posed: Some(PosedTask {
                    base,
                    instruction: v.instruction,
                }),
            }),
            Err(e) => {
                self.failures += 1;
                tracing::warn!("the task writer failed on {instruction:?}: {e}");
                None
            }
        }
    }

    fn feasible(&mut self, variant: &TaskVariant) -> bool {
        let Some(p) = &variant.posed else {
            return false;
        };
        let Some((base, _)) = self.start(&p.base) else {
            return false;
        };
        let same = words(&p.instruction).eq(words(&base.instruction));
        !same && words(&p.instruction).next().is_some() && self.ungrounded(p).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_sim::model::ModelError;
    use dreamgym_sim::model::llm::task_gen::TaskVariation;
    use rand::SeedableRng;
    use std::sync::Mutex;

    /// Writes the given instructions in turn and remembers the seeds it was shown.
    struct Scripted {
        replies: Mutex<Vec<Result<&'static str, ()>>>,
        seen: Mutex<Vec<String>>,
    }

    impl TaskWriter for Scripted {
        fn vary_task(&self, seed: &TaskSeed) -> Result<TaskVariation, ModelError> {
            self.seen.lock().unwrap().push(format!(
                "{} | {} | {}",
                seed.instruction,
                seed.state.lines.join(";"),
                seed.examples.join(";")
            ));
            match self.replies.lock().unwrap().remove(0) {
                Ok(i) => Ok(TaskVariation {
                    instruction: i.into(),
                    reasoning: "harder".into(),
                    candidates: vec![i.into()],
                }),
                Err(()) => Err(ModelError::Truncated { attempts: 3 }),
            }
        }
    }

    fn start(id: &str, instruction: &str, lines: &[&str]) -> (Task, Observation) {
        let task = Task {
            id: id.into(),
            instruction: instruction.into(),
            params: [("template".to_string(), "pick".to_string())].into(),
            difficulty: 1,
            origin: Default::default(),
        };
        let obs = Observation {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            instruction: instruction.into(),
            admissible: vec!["go to the table".into()],
            feedback: String::new(),
        };
        (task, obs)
    }

    #[test]
    fn written_tasks_start_from_their_base_and_must_be_grounded() {
        let writer = Arc::new(Scripted {
            replies: Mutex::new(vec![
                Ok("put the red apple on the table"),
                Ok("put the golden dragon on the table"),
                Err(()),
                Ok("Take the red apple."),
            ]),
            seen: Mutex::new(vec![]),
        });
        let starts = vec![
            start(
                "s1",
                "take the red apple",
                &["[apple_1] apple: a red apple", "[table_1] table: a table"],
            ),
            start("s2", "put the mug in the sink", &["[mug_1] mug: a mug"]),
        ];
        let mut g = LlmVariants::new(writer.clone(), starts);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let parent = TaskVariant {
            template: Some("pick".into()),
            difficulty: 1,
            seed: 0,
            posed: Some(PosedTask {
                base: "s1".into(),
                instruction: "take the red apple".into(),
            }),
        };
        let v = g.harder(&parent, &mut rng).unwrap();
        let p = v.posed.clone().unwrap();
        assert_eq!(
            (p.base.as_str(), v.difficulty),
            ("s1", 2),
            "one generation up, same base"
        );
        assert_eq!(p.instruction, "put the red apple on the table");
        assert!(
            g.feasible(&v),
            "every word is in the state, its actions or a real task"
        );
        let seen = writer.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen,
            "take the red apple | [apple_1] apple: a red apple;[table_1] table: a table | put the mug in the sink"
        );

        let dragon = g.harder(&parent, &mut rng).unwrap();
        assert_eq!(
            g.ungrounded(dragon.posed.as_ref().unwrap()),
            vec!["golden", "dragon"]
        );
        assert!(!g.feasible(&dragon), "names what the world does not have");

        assert!(
            g.harder(&parent, &mut rng).is_none(),
            "a failed writer gives no variant"
        );
        assert_eq!(g.failures, 1);

        let same = g.harder(&parent, &mut rng).unwrap();
        assert!(
            !g.feasible(&same),
            "a rewording of the base task is no variation"
        );

        let no_posed = TaskVariant {
            posed: None,
            ..parent
        };
        assert!(!g.feasible(&no_posed));
    }
}
