//! The LLM experience model against a local HTTP server that replays recorded replies:
//! protocol, parsing, retries, truncation, concurrency limit.

#[path = "support/http.rs"]
mod http;

use dreamgym_buffer::{Observation, Task};
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::{ExperienceModel, ModelContext, ModelError};
use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A recorded reply: HTTP status, body, delay before answering.
type Recorded = (u16, String, u64);

struct Server {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    max_in_flight: Arc<AtomicUsize>,
}

fn serve(replies: Vec<Recorded>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let queue = Arc::new(Mutex::new(VecDeque::from(replies)));
    let bodies = Arc::new(Mutex::new(vec![]));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (b, m) = (bodies.clone(), max_in_flight.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (queue, bodies, in_flight, max) =
                (queue.clone(), b.clone(), in_flight.clone(), m.clone());
            std::thread::spawn(move || {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let Some(body) = http::read_body(&conn) else {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    return;
                };
                bodies
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let (status, reply, delay) =
                    queue
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((500, "no more replies".into(), 0));
                std::thread::sleep(Duration::from_millis(delay));
                // the request is over once the reply is decided: count it out before writing,
                // or a client that got its reply and sent the next request races this thread
                in_flight.fetch_sub(1, Ordering::SeqCst);
                http::reply(&mut conn, status, &reply);
            });
        }
    });
    Server {
        url,
        bodies,
        max_in_flight,
    }
}

fn completion(content: &str, finish: &str) -> Recorded {
    let body = serde_json::json!({"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]});
    (200, body.to_string(), 0)
}

const GOOD: &str = r#"{"reasoning":"The door opens.","next_state":{"lines":["[door] door: the door is open"],"admissible":["go through the door"],"feedback":"You open the door."},"reward":0,"done":false,"success":false}"#;

fn ctx_parts() -> (Task, Observation) {
    let task = Task {
        id: "t".into(),
        instruction: "open the door".into(),
        params: Default::default(),
        difficulty: 1,
        origin: Default::default(),
    };
    let obs = Observation {
        lines: vec!["[door] door: the door is closed".into()],
        instruction: "open the door".into(),
        admissible: vec!["open the door".into()],
        feedback: String::new(),
    };
    (task, obs)
}

fn model(url: &str, attempts: u32, concurrency: usize) -> LlmModel {
    let mut c = LlmConfig::new(url);
    c.attempts = attempts;
    c.backoff = Duration::from_millis(5);
    c.concurrency = concurrency;
    c.model = "smol".into();
    LlmModel::new(c).unwrap()
}

#[test]
fn a_valid_reply_becomes_a_prediction_and_the_request_carries_the_context() {
    let s = serve(vec![completion(GOOD, "stop")]);
    let m = model(&s.url, 3, 4);
    let (task, obs) = ctx_parts();
    let p = m
        .predict(&ModelContext {
            task: &task,
            history: &[],
            state: &obs,
            action: "open the door",
            retrieved: &[],
        })
        .unwrap();
    assert_eq!(p.next_state.lines, ["[door] door: the door is open"]);
    assert_eq!(p.reasoning, "The door opens.");
    assert_eq!((p.reward, p.done), (0.0, false));
    let body = &s.bodies.lock().unwrap()[0];
    assert_eq!(body["model"], "smol");
    assert_eq!(body["messages"][0]["role"], "system");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("Task: open the door")
            && user.contains("[door] door: the door is closed")
            && user.ends_with("Action: open the door")
    );
    // the schema keeps the reasoning first
    let props = body["response_format"]["json_schema"]["schema"]["properties"]
        .as_object()
        .unwrap();
    assert_eq!(props.keys().next().unwrap(), "reasoning");
}

#[test]
fn truncated_and_invalid_replies_are_retried_then_rejected() {
    // cut at max_tokens, then invalid JSON, then fine
    let s = serve(vec![
        completion("{\"reasoning\":\"The do", "length"),
        completion("not json", "stop"),
        (503, "busy".into(), 0),
        completion(GOOD, "stop"),
    ]);
    let m = model(&s.url, 4, 1);
    let (task, obs) = ctx_parts();
    let ctx = ModelContext {
        task: &task,
        history: &[],
        state: &obs,
        action: "open the door",
        retrieved: &[],
    };
    assert!(m.predict(&ctx).is_ok());
    let st = m.stats();
    assert_eq!(
        (
            st.requests.load(Ordering::Relaxed),
            st.retries.load(Ordering::Relaxed)
        ),
        (4, 3)
    );
    assert_eq!(
        (
            st.truncated.load(Ordering::Relaxed),
            st.invalid.load(Ordering::Relaxed)
        ),
        (1, 1)
    );
    // always truncated: rejected with an error, never a prediction
    let s = serve(vec![completion("{", "length"), completion("{", "length")]);
    let m = model(&s.url, 2, 1);
    assert!(matches!(
        m.predict(&ctx),
        Err(ModelError::Truncated { attempts: 2 })
    ));
    // a reward out of range is not accepted either
    let bad = GOOD.replace("\"reward\":0", "\"reward\":7");
    let s = serve(vec![completion(&bad, "stop")]);
    let m = model(&s.url, 1, 1);
    let e = m.predict(&ctx).unwrap_err().to_string();
    assert!(e.contains("reward 7 outside [0, 1]"), "{e}");
    // a client error is not retried
    let s = serve(vec![
        (400, "{\"error\":\"bad model\"}".into(), 0),
        completion(GOOD, "stop"),
    ]);
    let m = model(&s.url, 3, 1);
    let e = m.predict(&ctx).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("bad model"), "{e}");
    assert_eq!(m.stats().requests.load(Ordering::Relaxed), 1);
}

#[test]
fn batches_run_concurrently_up_to_the_limit() {
    let replies: Vec<Recorded> = (0..12)
        .map(|_| {
            let mut r = completion(GOOD, "stop");
            r.2 = 80;
            r
        })
        .collect();
    let s = serve(replies);
    let m = model(&s.url, 1, 3);
    let (task, obs) = ctx_parts();
    let ctxs: Vec<ModelContext> = (0..12)
        .map(|_| ModelContext {
            task: &task,
            history: &[],
            state: &obs,
            action: "open the door",
            retrieved: &[],
        })
        .collect();
    let t = std::time::Instant::now();
    let out = m.predict_batch(&ctxs);
    assert!(out.iter().all(|r| r.is_ok()));
    let max = s.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "{max} in flight");
    // 12 requests of 80 ms, 3 at a time: about 4 rounds, far less than 12 in a row
    assert!(
        t.elapsed() < Duration::from_millis(12 * 80),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn the_reasoning_ablation_drops_the_field_from_the_schema() {
    let mut c = LlmConfig::new("http://127.0.0.1:9/v1");
    c.reasoning = false;
    let m = LlmModel::new(c).unwrap();
    let (task, obs) = ctx_parts();
    let body = m.request_body(&ModelContext {
        task: &task,
        history: &[],
        state: &obs,
        action: "x",
        retrieved: &[],
    });
    let schema = &body["response_format"]["json_schema"]["schema"];
    assert!(schema["properties"].get("reasoning").is_none());
    assert_eq!(schema["required"][0], "next_state");
}

#[test]
fn task_generation_writes_candidates_then_selects_one_and_retries_bad_replies() {
    use dreamgym_sim::model::llm::task_gen::{TaskSeed, TaskWriter};
    let server = serve(vec![
        // the variation stage: first cut at max_tokens, then valid
        completion(r#"{"candidates":[{"instruction":"pick up"#, "length"),
        completion(
            r#"{"candidates":[{"instruction":"open the red door, then pick up the red key"},{"instruction":"pick up the red key"}]}"#,
            "stop",
        ),
        // the selection stage: a number out of range is invalid and retried
        completion(r#"{"reasoning":"x","selection":7}"#, "stop"),
        completion(
            r#"{"reasoning":"It adds a step the agent must plan.","selection":1}"#,
            "stop",
        ),
    ]);
    let m = model(&server.url, 3, 2);
    let (task, obs) = ctx_parts();
    let examples = vec!["pick up the blue key".to_string()];
    let seed = TaskSeed {
        instruction: &task.instruction,
        state: &obs,
        success: Some(0.25),
        examples: &examples,
        candidates: 2,
    };
    let v = m.vary_task(&seed).unwrap();
    assert_eq!(v.instruction, "open the red door, then pick up the red key");
    assert_eq!(v.reasoning, "It adds a step the agent must plan.");
    assert_eq!(v.candidates.len(), 2);
    let bodies = server.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 4, "one retry per stage");
    assert_eq!(
        bodies[0]["response_format"]["json_schema"]["name"],
        "task_variations"
    );
    let variation_prompt = bodies[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        variation_prompt.contains(&format!("Seed task: {}", task.instruction))
            && variation_prompt.contains("succeeds on it 25%")
            && variation_prompt.contains("- pick up the blue key"),
        "{variation_prompt}"
    );
    assert_eq!(
        bodies[3]["response_format"]["json_schema"]["name"],
        "task_selection"
    );
    let selection_prompt = bodies[3]["messages"][1]["content"].as_str().unwrap();
    assert!(
        selection_prompt
            .contains("1. open the red door, then pick up the red key\n2. pick up the red key"),
        "{selection_prompt}"
    );
    drop(bodies);

    // every attempt cut: the request is rejected, no task
    let server = serve(vec![
        completion(r#"{"candidates":["#, "length"),
        completion(r#"{"candidates":["#, "length"),
    ]);
    let m = model(&server.url, 2, 1);
    assert!(matches!(
        m.vary_task(&seed),
        Err(ModelError::Truncated { attempts: 2 })
    ));
}

/// A malformed server URL is a configuration error that names the URL and what was expected,
/// not "builder error" at the first request.
#[test]
fn a_malformed_server_url_is_named_at_construction() {
    for (url, want) in [
        ("127.0.0.1:8080/v1", "is not a URL"),
        ("http//localhost:8080", "is not a URL"),
        ("not a url", "is not a URL"),
        ("ftp://example.com/v1", "has scheme `ftp`"),
    ] {
        let err = match LlmModel::new(LlmConfig::new(url)) {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(url) && err.contains(want), "{url}: {err}");
    }
    assert!(LlmModel::new(LlmConfig::new("http://127.0.0.1:9/v1")).is_ok());
}
