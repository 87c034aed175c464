//! Progress of long commands: a spinner on a terminal, log lines everywhere else.
//!
//! The contract: a command that runs for minutes tells the user what it is doing even when stderr
//! is not a terminal (CI, `nohup`, a pipe). Every phase change is one log line; inside a phase, a
//! line at the first iteration and then at most every [`Progress::interval`] (30 s by default,
//! `DREAMGYM_PROGRESS_SECS` to change it) with the iteration count, environment steps per second
//! and an ETA for the phase and, when the command knows its total work, for the whole command.
//! On a terminal the same figures go to the spinner's message instead, and nothing is logged per
//! iteration.

use indicatif::ProgressBar;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Reports phases and iterations of a long command.
pub struct Progress {
    bar: Option<ProgressBar>,
    interval: Duration,
    /// Neither a spinner nor log lines.
    silent: bool,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    /// Policy iterations the whole command will run (an estimate; 0: unknown).
    total_units: u64,
    done_units: u64,
    phase: String,
    /// What one step of the phase is called (`iteration`, `episode`).
    unit: &'static str,
    phase_started: Instant,
    phase_steps: u64,
    last_line: Option<Instant>,
}

impl Progress {
    /// A reporter for a command that will run about `total_units` policy iterations in all (0 when
    /// unknown). `quiet` hides the spinner; log lines are kept, since they go through `tracing`.
    pub fn new(total_units: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let interval = std::env::var("DREAMGYM_PROGRESS_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(Duration::from_secs(30), Duration::from_secs_f64);
        let now = Instant::now();
        Progress {
            bar,
            interval,
            silent: false,
            state: Mutex::new(State {
                started: now,
                total_units,
                done_units: 0,
                phase: String::new(),
                unit: "iteration",
                phase_started: now,
                phase_steps: 0,
                last_line: None,
            }),
        }
    }

    /// A reporter that shows nothing and logs nothing (library tests, nested runs).
    pub fn silent() -> Self {
        Progress {
            silent: true,
            ..Self::new(0, true)
        }
    }

    /// How often a line is logged inside a phase when stderr is not a terminal.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Starts a phase of policy iterations: one log line (or the spinner's message).
    pub fn phase(&self, message: &str) {
        self.phase_counting(message, "iteration");
    }

    /// Starts a phase whose steps are called `unit` (`episode` for a collection).
    pub fn phase_counting(&self, message: &str, unit: &'static str) {
        let mut st = self.state.lock().expect("progress state");
        st.phase = message.to_string();
        st.unit = unit;
        st.phase_started = Instant::now();
        st.phase_steps = 0;
        st.last_line = None;
        let eta = run_eta(&st);
        drop(st);
        match &self.bar {
            Some(bar) => bar.set_message(format!("{message}{eta}")),
            None if !self.silent => tracing::info!("{message}{eta}"),
            None => {}
        }
    }

    /// One step (a policy iteration, an episode) of the current phase done: `done` of `total` in
    /// the phase, having stepped `env_steps` environment steps (real or synthetic).
    pub fn iteration(&self, done: usize, total: usize, env_steps: u64) {
        let mut st = self.state.lock().expect("progress state");
        st.done_units += 1;
        st.phase_steps += env_steps;
        let now = Instant::now();
        let due = match st.last_line {
            None => true,
            Some(t) => now.duration_since(t) >= self.interval || done == total,
        };
        if self.bar.is_none() && (!due || self.silent) {
            return;
        }
        let secs = now.duration_since(st.phase_started).as_secs_f64().max(1e-9);
        let rate = st.phase_steps as f64 / secs;
        let phase_eta = if done > 0 && total > done {
            format!(
                ", phase ETA {}",
                clock(secs / done as f64 * (total - done) as f64)
            )
        } else {
            String::new()
        };
        let line = format!(
            "{}: {} {done}/{total}, {} env steps/s{phase_eta}{}",
            st.phase,
            st.unit,
            si(rate),
            run_eta(&st)
        );
        st.last_line = Some(now);
        drop(st);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => tracing::info!("{line}"),
        }
    }

    /// Says that the partial results of `seeds_done` are in `summary` (a run writes them after
    /// every seed but the last).
    pub fn partial_written(&self, seeds_done: &[u64], summary: &std::path::Path) {
        self.suspend(|| {
            tracing::info!(
                "seeds {seeds_done:?} done: partial results in {} (complete: false)",
                summary.display()
            )
        });
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Runs `f` with the spinner hidden, so that what `f` prints is not drawn over.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

/// `; run 23% (about 14m 10s left)` when the total is known and some work is done.
fn run_eta(st: &State) -> String {
    if st.total_units == 0 || st.done_units == 0 {
        return String::new();
    }
    let share = (st.done_units as f64 / st.total_units as f64).min(1.0);
    let elapsed = st.started.elapsed().as_secs_f64();
    let left = elapsed / share - elapsed;
    format!(
        "; run {:.0}% (about {} left)",
        share * 100.0,
        clock(left.max(0.0))
    )
}

/// `1h 02m`, `3m 07s`, `12s`.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// `812`, `12.3k`, `1.2M`.
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_rates_read_like_a_person_writes_them() {
        assert_eq!(clock(12.4), "12s");
        assert_eq!(clock(187.0), "3m 07s");
        assert_eq!(clock(3720.0), "1h 02m");
        assert_eq!(si(812.0), "812");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(1_234_567.0), "1.2M");
    }

    #[test]
    fn the_run_eta_appears_once_work_is_done() {
        let p = Progress::new(10, true);
        assert_eq!(run_eta(&p.state.lock().unwrap()), "");
        p.phase("seed 1: dreamgym");
        p.iteration(1, 5, 100);
        let st = p.state.lock().unwrap();
        assert_eq!(st.done_units, 1);
        assert!(run_eta(&st).starts_with("; run 10%"), "{}", run_eta(&st));
    }
}
