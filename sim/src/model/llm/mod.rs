//! The LLM experience model: any OpenAI-compatible chat-completions server (vLLM, SGLang,
//! llama.cpp's llama-server, Ollama, ...).
//!
//! The prompt (`prompt.rs`) carries the task, history, retrieved demonstrations, state and action;
//! the reply is constrained by a JSON schema with the reasoning first. Requests run on a tokio
//! runtime with at most `concurrency` in flight, each with a timeout; transport errors, 429 and 5xx
//! are retried with exponential backoff; a reply cut at `max_tokens` (`finish_reason: "length"`)
//! or one that is not the expected JSON is retried and, if every attempt fails, rejected with an
//! error — it never becomes a prediction. Plain HTTP by default; HTTPS with the `llm-tls` feature.
//!
//! The same model writes curriculum tasks ([`TaskWriter`], prompts in `task_gen.rs`): candidate
//! harder variations of a seed task, then a selection among them, both with the same retries.

pub mod prompt;
pub mod task_gen;

use super::{ExperienceModel, ModelContext, ModelError, Prediction};
use dreamgym_buffer::Observation;
use prompt::{SYSTEM_PROMPT, reply_schema, user_prompt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use task_gen::{
    TASK_SELECTION_SYSTEM, TASK_VARIATION_SYSTEM, TaskSeed, TaskVariation, TaskWriter,
    candidates_schema, parse_candidates, parse_selection, selection_schema, task_selection_prompt,
    task_variation_prompt,
};
use tokio::sync::Semaphore;

/// Settings of the LLM model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model name sent with each request.
    pub model: String,
    /// Bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// Token limit of a reply.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per prediction (first try included).
    pub attempts: u32,
    /// First retry delay (doubles each retry).
    pub backoff: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Send the reply JSON schema as `response_format`.
    pub json_schema: bool,
    /// Ask for the reasoning field (off = the "without reasoning" ablation).
    pub reasoning: bool,
}

impl LlmConfig {
    /// Defaults for a server at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: "default".into(),
            api_key: None,
            max_tokens: 512,
            temperature: 0.0,
            timeout: Duration::from_secs(60),
            attempts: 3,
            backoff: Duration::from_millis(200),
            concurrency: 8,
            json_schema: true,
            reasoning: true,
        }
    }

    /// From the environment: `DREAMGYM_LLM_URL` (required), `DREAMGYM_LLM_MODEL`, and the key in
    /// `DREAMGYM_LLM_KEY` or `OPENAI_API_KEY`.
    pub fn from_env() -> Result<Self, ModelError> {
        let url = std::env::var("DREAMGYM_LLM_URL").map_err(|_| {
            ModelError::Config(
                "set DREAMGYM_LLM_URL to the server's base URL, e.g. http://127.0.0.1:8080/v1"
                    .into(),
            )
        })?;
        let mut c = Self::new(url);
        if let Ok(m) = std::env::var("DREAMGYM_LLM_MODEL") {
            c.model = m;
        }
        c.api_key = std::env::var("DREAMGYM_LLM_KEY")
            .or_else(|_| std::env::var("OPENAI_API_KEY"))
            .ok();
        Ok(c)
    }
}

/// Counters of what the model did (for reports and tests).
#[derive(Debug, Default)]
pub struct LlmStats {
    /// HTTP requests sent.
    pub requests: AtomicUsize,
    /// Retries after a failed attempt.
    pub retries: AtomicUsize,
    /// Replies cut at the token limit.
    pub truncated: AtomicUsize,
    /// Replies that were not the expected JSON.
    pub invalid: AtomicUsize,
    /// Predictions rejected after all attempts.
    pub rejected: AtomicUsize,
}

/// The LLM experience model.
pub struct LlmModel {
    cfg: LlmConfig,
    client: reqwest::Client,
    /// The model's own runtime (always `Some` until dropped; see the `Drop` impl).
    rt: Option<tokio::runtime::Runtime>,
    sem: Arc<Semaphore>,
    stats: Arc<LlmStats>,
    name: String,
}

/// Dropping a tokio runtime blocks until its tasks end, which panics inside another runtime's
/// async context (`dreamgym serve --model llm` drops its model there at shutdown): the model's
/// runtime is shut down in the background instead (nothing of it is in flight by then).
impl Drop for LlmModel {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Deserialize)]
struct ReplyState {
    lines: Vec<String>,
    #[serde(default)]
    admissible: Vec<String>,
    #[serde(default)]
    feedback: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    reasoning: String,
    next_state: ReplyState,
    reward: f64,
    done: bool,
    #[serde(default)]
    success: bool,
}

enum Attempt {
    Retry(ModelError),
    Fail(ModelError),
}

impl LlmModel {
    /// A model talking to the server of `cfg`.
    pub fn new(cfg: LlmConfig) -> Result<Self, ModelError> {
        // a malformed URL would otherwise surface at the first request as "builder error"
        match reqwest::Url::parse(&cfg.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            Ok(u) => {
                return Err(ModelError::Config(format!(
                    "the LLM server URL `{}` has scheme `{}`: expected an http:// or https:// base URL, e.g. http://127.0.0.1:8080/v1",
                    cfg.base_url,
                    u.scheme()
                )));
            }
            Err(e) => {
                return Err(ModelError::Config(format!(
                    "the LLM server URL `{}` is not a URL ({e}): expected a base URL such as http://127.0.0.1:8080/v1",
                    cfg.base_url
                )));
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ModelError::Config(format!("cannot start the tokio runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| ModelError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            sem: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            name: format!("llm:{}", cfg.model),
            cfg,
            client,
            rt: Some(rt),
            stats: Arc::new(LlmStats::default()),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives until the model is dropped")
    }

    /// What the model has done so far.
    pub fn stats(&self) -> &LlmStats {
        &self.stats
    }

    /// The request body for one prediction.
    pub fn request_body(&self, ctx: &ModelContext) -> Value {
        let mut schema = reply_schema();
        let mut system = SYSTEM_PROMPT.to_string();
        if !self.cfg.reasoning {
            schema["properties"]
                .as_object_mut()
                .expect("object")
                .remove("reasoning");
            schema["required"] = json!(["next_state", "reward", "done", "success"]);
            system.push_str(" Do not write any reasoning: leave the `reasoning` key out.");
        }
        self.chat_body(&system, user_prompt(ctx), schema, "transition")
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.cfg.base_url.trim_end_matches('/')
        )
    }

    /// One request: the reply's message content, or why not (retry or give up).
    async fn attempt(&self, body: &Value) -> Result<String, Attempt> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.client.post(self.url()).json(body);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| {
            Attempt::Retry(ModelError::Server(format!(
                "request to {} failed: {e}",
                self.url()
            )))
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            Attempt::Retry(ModelError::Server(format!("reading the reply failed: {e}")))
        })?;
        if !status.is_success() {
            let err = ModelError::Server(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry(err)
            } else {
                Attempt::Fail(err)
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| self.invalid(format!("not a chat completion: {e}")))?;
        let choice = &v["choices"][0];
        if choice["finish_reason"].as_str() == Some("length") {
            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
            return Err(Attempt::Retry(ModelError::Truncated { attempts: 1 }));
        }
        choice["message"]["content"]
            .as_str()
            .map(|c| c.trim().to_string())
            .ok_or_else(|| self.invalid("the completion has no message content".into()))
    }

    fn invalid(&self, message: String) -> Attempt {
        self.stats.invalid.fetch_add(1, Ordering::Relaxed);
        Attempt::Retry(ModelError::InvalidReply {
            attempts: 1,
            message,
        })
    }

    /// Sends `body` (within the concurrency limit) until `parse` accepts a reply's content:
    /// transport errors, 429/5xx, cut and invalid replies are retried with backoff; after the
    /// last attempt the request is rejected with the last error.
    async fn request<T>(
        &self,
        body: Value,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ModelError> {
        let _permit = self
            .sem
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut delay = self.cfg.backoff;
        let attempts = self.cfg.attempts.max(1);
        let mut last = ModelError::Server("no attempt made".into());
        for i in 0..attempts {
            if i > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let outcome = match self.attempt(&body).await {
                Ok(content) => parse(&content).map_err(|m| self.invalid(m)),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(t) => return Ok(t),
                Err(Attempt::Fail(e)) => {
                    last = e;
                    break;
                }
                Err(Attempt::Retry(e)) => last = e,
            }
        }
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        Err(match last {
            ModelError::Truncated { .. } => ModelError::Truncated { attempts },
            ModelError::InvalidReply { message, .. } => {
                ModelError::InvalidReply { attempts, message }
            }
            e => e,
        })
    }

    async fn predict_async(
        &self,
        body: Value,
        state: &Observation,
    ) -> Result<Prediction, ModelError> {
        self.request(body, |content| parse_prediction(content, state))
            .await
    }

    /// A chat request with `system` and `user` messages whose reply must follow `schema`.
    fn chat_body(&self, system: &str, user: String, schema: Value, name: &str) -> Value {
        let mut body = json!({
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        });
        if self.cfg.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": name, "strict": true, "schema": schema}
            });
        }
        body
    }
}

/// A prediction from a reply's content (the JSON of [`prompt::reply_schema`]) for an
/// action taken in `state`, or why the reply is not one: not that JSON, a reward outside [0, 1],
/// an empty next state, or a next state that is not done but offers no action where `state`
/// offered some (the policy could not act in it).
pub fn parse_prediction(content: &str, state: &Observation) -> Result<Prediction, String> {
    let r: Reply = serde_json::from_str(content)
        .map_err(|e| format!("{e}: {:?}", content.chars().take(200).collect::<String>()))?;
    if !r.reward.is_finite() || !(0.0..=1.0).contains(&r.reward) {
        return Err(format!("reward {} outside [0, 1]", r.reward));
    }
    if r.next_state.lines.is_empty() {
        return Err("empty next state".into());
    }
    if !r.done && r.next_state.admissible.is_empty() && !state.admissible.is_empty() {
        return Err(
            "the next state is not done but lists no admissible actions (the policy could not act in it)"
                .into(),
        );
    }
    Ok(Prediction {
        reasoning: r.reasoning,
        next_state: Observation {
            lines: r.next_state.lines,
            instruction: state.instruction.clone(),
            admissible: r.next_state.admissible,
            feedback: r.next_state.feedback,
        },
        reward: r.reward as f32,
        done: r.done,
        success: r.success && r.done,
        confidence: 0.5,
    })
}

impl TaskWriter for LlmModel {
    fn vary_task(&self, seed: &TaskSeed) -> Result<TaskVariation, ModelError> {
        let n = seed.candidates.max(1);
        let body = self.chat_body(
            TASK_VARIATION_SYSTEM,
            task_variation_prompt(seed),
            candidates_schema(),
            "task_variations",
        );
        let candidates = self
            .runtime()
            .block_on(self.request(body, |c| parse_candidates(c, n)))?;
        let body = self.chat_body(
            TASK_SELECTION_SYSTEM,
            task_selection_prompt(seed, &candidates),
            selection_schema(),
            "task_selection",
        );
        let (reasoning, pick) = self
            .runtime()
            .block_on(self.request(body, |c| parse_selection(c, candidates.len())))?;
        Ok(TaskVariation {
            instruction: candidates[pick].clone(),
            reasoning,
            candidates,
        })
    }
}

impl ExperienceModel for LlmModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError> {
        let body = self.request_body(ctx);
        self.runtime().block_on(self.predict_async(body, ctx.state))
    }

    fn predict_batch(&self, ctxs: &[ModelContext]) -> Vec<Result<Prediction, ModelError>> {
        let jobs: Vec<_> = ctxs
            .iter()
            .map(|c| self.predict_async(self.request_body(c), c.state))
            .collect();
        self.runtime().block_on(futures::future::join_all(jobs))
    }
}
