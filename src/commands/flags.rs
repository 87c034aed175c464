//! Flags several commands share: which tasks of an env (`TaskFilter`) and a share in [0, 1].

use dreamgym_sim::TaskSpec;

/// Which tasks of an env a command uses (flattened into the commands that take it).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks of this template.
    #[arg(long)]
    pub template: Option<String>,
    /// Only this difficulty level.
    #[arg(long)]
    pub difficulty: Option<u32>,
}

impl TaskFilter {
    /// The task spec these flags ask for.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            template: self.template.clone(),
            difficulty: self.difficulty,
            posed: None,
        }
    }
}

/// A share in [0, 1] (clap value parser).
pub fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{text}`: expected a share in [0, 1]")),
    }
}
