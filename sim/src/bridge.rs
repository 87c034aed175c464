//! `BridgeEnv`: an environment served by a child process over JSON lines (protocol in
//! `docs/bridge.md`). The shipped Python bridge (`sim/python/dreamgym_bridge.py`, embedded in this
//! crate) serves BabyAI and TextWorldExpress; any program that speaks the protocol works.
//!
//! Robustness: every request has a timeout; a child that dies, hangs or breaks the protocol is
//! killed and restarted, and the error names the env id, what happened and the tail of the child's
//! stderr. A step either returns a whole result or an error — never half of one — and the episode
//! in flight is over after a restart (reset again).

use crate::env::{Env, EnvError, ExpertFault, StepResult, TaskSpec};
use dreamgym_buffer::{Observation, Task};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Newest protocol version this crate speaks: 2 echoes each request's `id` in its reply, so a
/// stray or late reply is caught at once. Version 1 children (no ids) are still served.
pub const PROTOCOL_VERSION: u32 = 2;

/// Oldest protocol version still accepted.
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;

/// How long a protocol 1 child's reply is watched for a repeated line behind it (each request
/// of a protocol 1 child costs this much more; protocol 2's ids need no wait).
const PROTOCOL_1_GRACE: Duration = Duration::from_millis(2);

/// The shipped Python bridge, embedded so the binary works from any directory.
pub const PYTHON_BRIDGE: &str = include_str!("../python/dreamgym_bridge.py");

/// How to run a bridge.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Program and arguments of the child.
    pub command: Vec<String>,
    /// Longest wait for a step or expert reply.
    pub step_timeout: Duration,
    /// Longest wait for the handshake or a reset (level generation, JVM start).
    pub reset_timeout: Duration,
    /// Extra parameters sent with every reset (adapter keyword arguments).
    pub params: Value,
}

impl BridgeConfig {
    /// A config for `command` with default timeouts (step 10 s, reset 60 s).
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            step_timeout: Duration::from_secs(10),
            reset_timeout: Duration::from_secs(60),
            params: json!({}),
        }
    }

    /// Run a shell command line (`sh -c "exec <line>"`, so the child is the program itself).
    pub fn shell(line: &str) -> Self {
        Self::new(vec!["sh".into(), "-c".into(), format!("exec {line}")])
    }

    /// The shipped Python bridge, run by `python` (written next to the cache once).
    pub fn python(python: &str, cache_dir: &std::path::Path) -> std::io::Result<Self> {
        let script = write_embedded_bridge(cache_dir)?;
        Ok(Self::new(vec![
            python.to_string(),
            "-u".into(),
            script.display().to_string(),
        ]))
    }
}

/// Write the embedded Python bridge to `dir` (named by a hash of its text) and return its path.
pub fn write_embedded_bridge(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let hash = crate::env::fnv1a(PYTHON_BRIDGE);
    let path = dir.join(format!("dreamgym_bridge-{hash:016x}.py"));
    if !path.exists() {
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, PYTHON_BRIDGE)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
}

/// A real environment in a child process.
pub struct BridgeEnv {
    id: String,
    name: String,
    cfg: BridgeConfig,
    proc: Option<Running>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    task: Option<Task>,
    in_episode: bool,
    restarts: usize,
    /// How many requests timed out (each also restarted the child).
    timeouts: usize,
    /// The version the running child announced.
    protocol: u32,
    /// Id of the next request (sent to every child; v2 children echo it).
    next_id: u64,
}

#[derive(Deserialize)]
struct ReplyObservation {
    #[serde(default)]
    lines: Vec<String>,
    #[serde(default)]
    instruction: String,
    #[serde(default)]
    admissible: Vec<String>,
    #[serde(default)]
    feedback: String,
}

impl From<ReplyObservation> for Observation {
    fn from(o: ReplyObservation) -> Self {
        Observation {
            lines: o.lines,
            instruction: o.instruction,
            admissible: o.admissible,
            feedback: o.feedback,
        }
    }
}

#[derive(Deserialize)]
struct ReplyTask {
    id: String,
    #[serde(default)]
    instruction: String,
    #[serde(default)]
    params: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct ResetReply {
    observation: ReplyObservation,
    task: ReplyTask,
}

#[derive(Deserialize)]
struct StepReply {
    observation: ReplyObservation,
    reward: f64,
    done: bool,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    info: BTreeMap<String, Value>,
}

const STDERR_TAIL: usize = 20;

impl BridgeEnv {
    /// A bridged env: `id` is the full env id (e.g. `bridge:BabyAI-GoToLocal-v0`), `name` what is
    /// sent in `reset` (e.g. `BabyAI-GoToLocal-v0`). The child starts on first use.
    pub fn new(id: impl Into<String>, name: impl Into<String>, cfg: BridgeConfig) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            cfg,
            proc: None,
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            task: None,
            in_episode: false,
            restarts: 0,
            timeouts: 0,
            protocol: PROTOCOL_VERSION,
            next_id: 1,
        }
    }

    /// Process id of the running child, if any.
    pub fn child_pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    /// How many times the child was restarted after a failure.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    fn err(&self, message: String) -> EnvError {
        EnvError::Other {
            env: self.id.clone(),
            message,
        }
    }

    fn tail(&self) -> String {
        let t = self.stderr_tail.lock().expect("stderr tail lock");
        if t.is_empty() {
            "(child stderr was empty)".into()
        } else {
            format!(
                "child stderr (last {} lines):\n{}",
                t.len(),
                t.iter().cloned().collect::<Vec<_>>().join("\n")
            )
        }
    }

    fn spawn(&mut self) -> Result<(), EnvError> {
        let (prog, args) = self
            .cfg
            .command
            .split_first()
            .ok_or_else(|| self.err("empty bridge command".into()))?;
        let mut command = Command::new(prog);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // its own process group, so that killing it also kills what it started (a JVM, a
        // simulator, a shell's children)
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| {
            self.err(format!(
                "cannot start bridge `{}`: {e}",
                self.cfg.command.join(" ")
            ))
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdin = child.stdin.take().expect("piped stdin");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        let tail = self.stderr_tail.clone();
        tail.lock().expect("stderr tail lock").clear();
        let id = self.id.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::debug!(env = %id, "bridge stderr: {line}");
                let mut t = tail.lock().expect("stderr tail lock");
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        self.proc = Some(Running {
            child,
            stdin,
            lines: rx,
        });
        let hello = self.read_reply_with(self.cfg.reset_timeout, "the handshake", false)?;
        let version = hello
            .get("protocol")
            .and_then(Value::as_u64)
            .filter(|v| (OLDEST_PROTOCOL_VERSION as u64..=PROTOCOL_VERSION as u64).contains(v));
        match version {
            Some(v) if hello.get("type").and_then(Value::as_str) == Some("hello") => {
                self.protocol = v as u32;
                Ok(())
            }
            _ => Err(self.fail_without_restart(format!(
                "protocol violation: expected a hello with protocol {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, got {hello}"
            ))),
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            kill_group(&mut p.child);
        }
    }

    /// Kill the child, start a fresh one, and build the error to report.
    fn fail_and_restart(&mut self, what: String) -> EnvError {
        let status = self
            .proc
            .as_mut()
            .and_then(|p| p.child.try_wait().ok().flatten());
        self.kill();
        // give the stderr reader a moment to drain what the child wrote last
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.tail();
        self.in_episode = false;
        self.restarts += 1;
        let restarted = match self.spawn() {
            Ok(()) => "the bridge was restarted; reset to continue".to_string(),
            Err(e) => format!("restarting the bridge failed too: {e}"),
        };
        let status = status.map_or(String::new(), |s| format!(" ({s})"));
        self.err(format!("{what}{status}; {restarted}\n{tail}"))
    }

    /// Kill the child without restarting it (a failed start must not loop).
    fn fail_without_restart(&mut self, what: String) -> EnvError {
        self.kill();
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.tail();
        self.in_episode = false;
        self.err(format!("{what}\n{tail}"))
    }

    fn read_reply(&mut self, timeout: Duration, what: &str) -> Result<Value, EnvError> {
        self.read_reply_with(timeout, what, true)
    }

    fn read_reply_with(
        &mut self,
        timeout: Duration,
        what: &str,
        restart: bool,
    ) -> Result<Value, EnvError> {
        let fail = |me: &mut Self, m: String| {
            if restart {
                me.fail_and_restart(m)
            } else {
                me.fail_without_restart(m)
            }
        };
        let p = self.proc.as_ref().expect("a running child");
        match p.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.is_object() => Ok(v),
                _ => {
                    let shown: String = line.chars().take(200).collect();
                    Err(fail(
                        self,
                        format!(
                            "protocol violation: the bridge sent a line that is not a JSON object during {what}: {shown:?}"
                        ),
                    ))
                }
            },
            Ok(Err(e)) => Err(fail(
                self,
                format!("reading from the bridge failed during {what}: {e}"),
            )),
            Err(RecvTimeoutError::Timeout) => {
                self.timeouts += 1;
                Err(fail(
                    self,
                    format!(
                        "the bridge did not answer {what} within {:.1}s (hung?)",
                        timeout.as_secs_f64()
                    ),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => Err(fail(
                self,
                format!("the bridge process exited during {what}"),
            )),
        }
    }

    fn request(
        &mut self,
        mut req: Value,
        timeout: Duration,
        what: &str,
    ) -> Result<Value, EnvError> {
        if self.proc.is_none() {
            self.spawn()?;
        }
        // a line waiting before anything was asked is a reply to nothing: the child is out of
        // step, and reading on would pair every later reply with the wrong request
        let stray = {
            let p = self.proc.as_ref().expect("spawned");
            match p.lines.try_recv() {
                Ok(Ok(line)) => Some(line),
                _ => None,
            }
        };
        if let Some(line) = stray {
            let shown: String = line.chars().take(200).collect();
            return Err(self.fail_and_restart(format!(
                "protocol violation: before {what}, the bridge sent a line nobody asked for (a stray or repeated reply; the bridge is out of step): {shown:?}"
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        req["id"] = json!(id);
        let mut line = req.to_string();
        line.push('\n');
        let write = {
            let p = self.proc.as_mut().expect("spawned");
            p.stdin
                .write_all(line.as_bytes())
                .and_then(|_| p.stdin.flush())
        };
        if let Err(e) = write {
            // a closed pipe means the process is gone, like end-of-output while reading
            let message = if e.kind() == std::io::ErrorKind::BrokenPipe {
                format!("the bridge process exited during {what} (writing to it: {e})")
            } else {
                format!("writing to the bridge failed during {what}: {e}")
            };
            return Err(self.fail_and_restart(message));
        }
        let reply = self.read_reply(timeout, what)?;
        if self.protocol < 2 {
            // protocol 1 has no ids: a repeated reply can only be told by its arriving at all.
            // It comes right behind the first (written back to back), so a short wait catches
            // it before it could be read as the answer to the next request
            let extra = {
                let p = self.proc.as_ref().expect("spawned");
                match p.lines.recv_timeout(PROTOCOL_1_GRACE) {
                    Ok(Ok(line)) => Some(line),
                    _ => None,
                }
            };
            if let Some(line) = extra {
                let shown: String = line.chars().take(200).collect();
                return Err(self.fail_and_restart(format!(
                    "protocol violation: right after its reply to {what} the bridge sent another line (a repeated reply? protocol 1 has no request ids to tell; speak protocol 2): {shown:?}"
                )));
            }
        }
        if self.protocol >= 2 && reply.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(self.fail_and_restart(format!(
                "protocol violation: the reply to {what} (request id {id}) carries id {} (a stray or late reply; the bridge is out of step): {reply}",
                reply.get("id").map_or("(none)".to_string(), Value::to_string)
            )));
        }
        match reply.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(reply),
            Some(false) => Err(self.err(format!(
                "the bridge reported an error during {what}: {}",
                reply
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            ))),
            None => Err(self.fail_and_restart(format!(
                "protocol violation: reply to {what} has no boolean `ok`: {reply}"
            ))),
        }
    }
}

/// Values of a JSON map as text (strings as they are, anything else as JSON).
fn as_text(map: BTreeMap<String, Value>) -> BTreeMap<String, String> {
    map.into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect()
}

/// The observation and task of a `reset` reply (task difficulty 0: the caller knows the level),
/// or why the reply is not one.
pub fn reset_reply(v: Value) -> Result<(Observation, Task), String> {
    let r: ResetReply = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let task = Task {
        id: r.task.id,
        instruction: r.task.instruction,
        params: as_text(r.task.params),
        difficulty: 0,
        origin: Default::default(),
    };
    Ok((r.observation.into(), task))
}

/// The step result of a `step` reply, or why the reply is not one. The reward must be a finite
/// number that fits an f32 (a valid JSON number such as `1e39` does not, and would make a record
/// no command can read back).
pub fn step_reply(v: Value) -> Result<StepResult, String> {
    let r: StepReply = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let reward = r.reward as f32;
    if !reward.is_finite() {
        return Err(format!(
            "`reward` is {:e}, not a finite number within the range of an f32",
            r.reward
        ));
    }
    Ok(StepResult {
        observation: r.observation.into(),
        reward,
        done: r.done,
        truncated: r.truncated,
        success: r.success,
        info: as_text(r.info),
    })
}

impl Drop for BridgeEnv {
    fn drop(&mut self) {
        if let Some(p) = &mut self.proc {
            let _ = p.stdin.write_all(b"{\"op\":\"close\"}\n");
            let _ = p.stdin.flush();
        }
        if let Some(mut p) = self.proc.take() {
            // a polite close first, then make sure: whatever the child started dies with it
            for _ in 0..20 {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            kill_group(&mut p.child);
        }
    }
}

/// Kill `child` and every process of its group (the child leads its own group, see `spawn`), then
/// reap the child.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: killpg only sends a signal. The group id is the child's pid: Linux does not
        // hand out a pid still in use as a process group id, so while any of the child's group
        // lives this names that group, and an empty group is an ESRCH we ignore.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Env for BridgeEnv {
    fn id(&self) -> &str {
        &self.id
    }

    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        spec.refuse_posed(&self.id)?;
        let mut params = self.cfg.params.clone();
        if let Some(obj) = params.as_object_mut() {
            if let Some(t) = &spec.template {
                obj.insert("template".into(), json!(t));
            }
            // level 1 (like a scenario's easiest) is the env as named; higher levels turn the
            // adapter's knobs
            if let Some(d) = spec.difficulty.filter(|d| *d > 1) {
                obj.insert("difficulty".into(), json!(d));
            }
        }
        let v = self.request(
            json!({"op": "reset", "env_id": self.name, "params": params, "seed": seed}),
            self.cfg.reset_timeout,
            "reset",
        )?;
        let (observation, mut task) = reset_reply(v)
            .map_err(|m| self.err(format!("protocol violation: malformed reply to reset: {m}")))?;
        task.params.insert("seed".into(), seed.to_string());
        task.difficulty = spec.difficulty.unwrap_or(0);
        self.task = Some(task);
        self.in_episode = true;
        Ok(observation)
    }

    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        if !self.in_episode {
            return Err(if self.task.is_none() {
                EnvError::NotReset {
                    env: self.id.clone(),
                }
            } else {
                EnvError::EpisodeOver {
                    env: self.id.clone(),
                }
            });
        }
        let v = self.request(
            json!({"op": "step", "action": action}),
            self.cfg.step_timeout,
            "step",
        )?;
        let r = step_reply(v)
            .map_err(|m| self.err(format!("protocol violation: malformed reply to step: {m}")))?;
        self.in_episode = !(r.done || r.truncated);
        Ok(r)
    }

    fn task(&self) -> Option<&Task> {
        self.task.as_ref()
    }

    fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
        if !self.in_episode {
            return Err(EnvError::NotReset {
                env: self.id.clone(),
            });
        }
        let (restarts, timeouts) = (self.restarts, self.timeouts);
        let v = match self.request(json!({"op": "expert"}), self.cfg.step_timeout, "expert") {
            Ok(v) => v,
            Err(e) => {
                let fault = if self.timeouts > timeouts {
                    ExpertFault::TimedOut
                } else if self.restarts > restarts || self.proc.is_none() {
                    ExpertFault::Crashed
                } else {
                    ExpertFault::Raised
                };
                let message = match e {
                    EnvError::Other { message, .. } => message,
                    other => other.to_string(),
                };
                return Err(EnvError::Expert {
                    env: self.id.clone(),
                    fault,
                    message,
                });
            }
        };
        expert_reply(&v).map_err(|m| self.err(m))
    }
}

/// The action of an `expert` reply: a string, or `null` when the expert has none. Anything else
/// is a protocol error, not "no plan" (which is what a missing or mistyped field used to read as).
fn expert_reply(v: &Value) -> Result<Option<String>, String> {
    match v.get("action") {
        Some(Value::String(a)) => Ok(Some(a.clone())),
        Some(Value::Null) => Ok(None),
        None => Err(format!(
            "the bridge's expert reply has no `action` field (expected a string, or null when the expert has no action): {v}"
        )),
        Some(other) => Err(format!(
            "the bridge's expert reply has `action`: {other} (expected a string, or null when the expert has no action)"
        )),
    }
}

#[cfg(test)]
mod expert_reply_tests {
    use super::*;

    #[test]
    fn an_invalid_expert_reply_is_a_protocol_error_not_no_plan() {
        assert_eq!(
            expert_reply(&json!({"ok": true, "action": "turn left"})),
            Ok(Some("turn left".into()))
        );
        assert_eq!(expert_reply(&json!({"ok": true, "action": null})), Ok(None));
        let e = expert_reply(&json!({"ok": true, "act": "left"})).unwrap_err();
        assert!(e.contains("no `action` field"), "{e}");
        let e = expert_reply(&json!({"ok": true, "action": 3})).unwrap_err();
        assert!(e.contains("`action`: 3"), "{e}");
    }
}
