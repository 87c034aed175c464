//! The HTTP and WebSocket endpoints (see the module docs of [`super`] for the contract), the
//! bearer-token check, the idle reaper and the shutdown sequence.

use super::ServeConfig;
use super::connections::{ConnectionStats, GuardedListener};
use super::protocol::{self, ErrorCode, Incoming, ResetRequest, ServeError};
use super::session::{Ending, Inadmissible, Session, Source};
use super::sessions::{HttpSessions, Slot, Slots, lock};
use crate::record::recorder::Recorder;
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::block_in_place;

/// Largest message a client may send (an action is a line of text; a reset names a task): with
/// the connection cap this bounds what half-sent frames can hold.
const MAX_MESSAGE: usize = 256 << 10;

/// The WebSocket read buffer (see `ws_upgrade`).
const READ_BUFFER: usize = 8 << 10;

/// How long a connection over the session limit waits for its first message (to answer it).
const CAPACITY_WAIT: Duration = Duration::from_secs(5);

/// How long shutdown waits for WebSocket sessions to close.
const GRACE: Duration = Duration::from_secs(10);

struct App {
    source: Source,
    env_id: String,
    recorder: Recorder,
    slots: Arc<Slots>,
    http: HttpSessions,
    token: Option<String>,
    idle: Duration,
    inadmissible: Inadmissible,
    seed: u64,
    buffer: String,
    shutdown: watch::Receiver<bool>,
    /// What the listener accepted, refused and timed out.
    connections: Arc<ConnectionStats>,
    /// The env's calls may block for long (a bridged env's child, an LLM): run them in
    /// `block_in_place`. Fast envs (the scenario engine, the native model) run on the task:
    /// handing the worker over costs more than their step.
    may_block: bool,
}

type Shared = Arc<App>;

impl App {
    /// Run an env call, in `block_in_place` when it may block.
    fn env_call<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.may_block {
            block_in_place(f)
        } else {
            f()
        }
    }

    fn open_session(&self, prefix: &str) -> Option<(Slot, Session)> {
        let (slot, id, n) = self.slots.acquire(prefix)?;
        let seed = self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let session = Session::open(
            id,
            &self.source,
            self.recorder.clone(),
            self.inadmissible,
            seed,
        );
        Some((slot, session))
    }

    /// Live HTTP sessions (each holds a slot).
    fn http_count(&self) -> usize {
        self.http.len()
    }

    fn capacity_error(&self) -> ServeError {
        ServeError::new(
            ErrorCode::CapacityReached,
            format!(
                "the server holds its maximum of {} sessions; close one or try later (dreamgym serve --max-sessions)",
                self.slots.max()
            ),
        )
    }
}

/// Bind, serve until a signal, then shut down (see the module docs).
pub(super) async fn serve(cfg: ServeConfig, recorder: Recorder) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .with_context(|| format!("listening on {}", cfg.addr))?;
    let local = listener.local_addr()?;
    let connections = Arc::new(ConnectionStats::default());
    // every session may hold a connection, and a few more may wait (a kept-alive HTTP client, a
    // handshake); a connection silent for longer than a session may be is closed
    let listener = GuardedListener::new(
        listener,
        cfg.max_sessions + cfg.max_pending_connections,
        cfg.handshake_timeout,
        cfg.idle_timeout + Duration::from_secs(30),
        connections.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    let may_block = cfg.source.may_block();
    let app = Arc::new(App {
        source: cfg.source,
        env_id: cfg.env_id,
        recorder,
        slots: Slots::new(cfg.max_sessions, run),
        http: HttpSessions::default(),
        token: cfg.token,
        idle: cfg.idle_timeout,
        inadmissible: cfg.inadmissible,
        seed: cfg.seed,
        buffer: cfg.buffer.display().to_string(),
        shutdown: stop_rx,
        connections,
        may_block,
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/metadata", get(metadata))
        .route("/schema", get(|| async { axum::Json(protocol::schema()) }))
        .route("/stats", get(stats))
        .route("/reset", post(http_reset))
        .route("/step", post(http_step))
        .route("/state", get(http_state))
        .route("/ws", get(ws_upgrade))
        .layer(middleware::from_fn_with_state(app.clone(), authorise))
        .with_state(app.clone());
    let reaper = tokio::spawn(reap_idle(app.clone()));
    // the line scripts and tests wait for (with the port `--addr ...:0` picked)
    println!(
        "dreamgym serve: listening on http://{local} (env {})",
        app.env_id
    );
    use std::io::Write;
    std::io::stdout().flush().ok();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: closing sessions");
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving")?;
    reaper.abort();
    // WebSocket sessions see the signal and close themselves; wait for them
    let waited = std::time::Instant::now();
    while app.slots.active() > app.http_count() && waited.elapsed() < GRACE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = block_in_place(|| app.http.close_idle(None, Ending::Shutdown));
    tracing::info!(
        "closed {http} HTTP sessions; {} sessions opened in all",
        app.slots.opened()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Every request but `/health` carries `Authorization: Bearer <token>` when the server has one.
async fn authorise(State(app): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.token
        && req.uri().path() != "/health"
    {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"detail": {
                    "message": "missing or wrong bearer token (send `Authorization: Bearer <token>`; the server's is --token / DREAMGYM_SERVE_TOKEN)",
                    "code": ErrorCode::Session.as_str()
                }})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({"status": "healthy"}))
}

async fn metadata(State(app): State<Shared>) -> axum::Json<Value> {
    let kind = match &app.source {
        Source::Real(_) => "the real environment".to_string(),
        Source::Synthetic(w) => format!(
            "a synthetic environment: dreamgym's {} experience model fit on real trajectories, with a curriculum choosing the tasks",
            w.model_name()
        ),
    };
    axum::Json(json!({
        "name": format!("dreamgym:{}", app.env_id),
        "description": format!("{} `{}`, served by dreamgym (actions: {{\"action\": \"<text>\"}})", kind, app.env_id),
        "version": env!("CARGO_PKG_VERSION"),
        "author": "dreamgym",
        "documentation_url": null,
        "readme_content": null,
    }))
}

async fn stats(State(app): State<Shared>) -> axum::Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let r = app.recorder.stats();
    let (pool, heard, failures) = match &app.source {
        Source::Synthetic(w) => (
            w.pool_json(),
            Some(w.heard()),
            serde_json::to_value(w.failures()).ok(),
        ),
        Source::Real(_) => (Value::Null, None, None),
    };
    axum::Json(json!({
        "env": app.env_id,
        "sessions": app.slots.active(),
        "max_sessions": app.slots.max(),
        "sessions_opened": app.slots.opened(),
        "buffer": app.buffer,
        "durable_episodes": r.durable_episodes.load(Relaxed),
        "durable_records": r.durable_records.load(Relaxed),
        "refused_episodes": r.refused.load(Relaxed),
        "curriculum": pool,
        "curriculum_episodes": heard,
        "model_failures": failures,
        "connections": {
            "accepted": app.connections.accepted.load(Relaxed),
            "refused": app.connections.refused.load(Relaxed),
            "timed_out": app.connections.timed_out.load(Relaxed),
        },
    }))
}

fn http_error(e: &ServeError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({"detail": e.data()}))).into_response()
}

fn json_reply(reply: Result<String, ServeError>) -> Response {
    match reply {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => http_error(&e),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ServeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ServeError::new(ErrorCode::InvalidJson, format!("Invalid JSON body: {e}")))
}

/// `POST /reset`: a new HTTP session, or a restart of the live one the body's `episode_id` names.
async fn http_reset(State(app): State<Shared>, body: Bytes) -> Response {
    let reply = (|| {
        let mut req = ResetRequest::from_value(&parse_body(&body)?)?;
        let session = match req.episode_id.as_deref().and_then(|id| app.http.get(id)) {
            Some(s) => s,
            None => {
                let (slot, session) = app
                    .open_session("http")
                    .ok_or_else(|| app.capacity_error())?;
                app.http.insert(session, slot)
            }
        };
        let mut s = lock(&session);
        s.last = std::time::Instant::now();
        // an HTTP session is named by its episode id, which stays the same across its resets
        req.episode_id = Some(s.session.id().to_string());
        app.env_call(|| s.session.reset(&req))
    })();
    json_reply(reply)
}

/// `POST /step`: `{"action": {"action": "<text>"}, "episode_id": "..."}`.
async fn http_step(State(app): State<Shared>, body: Bytes) -> Response {
    let reply = (|| {
        let v = parse_body(&body)?;
        let Some(map) = v.as_object() else {
            return Err(ServeError::invalid(
                "the body must be an object {\"action\": {\"action\": \"<text>\"}, \"episode_id\": \"...\"}",
            ));
        };
        if let Some(k) = map
            .keys()
            .find(|k| !["action", "episode_id", "timeout_s", "request_id"].contains(&k.as_str()))
        {
            return Err(ServeError::invalid(format!(
                "/step does not take `{k}` (it takes action, episode_id, timeout_s, request_id)"
            )));
        }
        let action = protocol::parse_action(map.get("action").unwrap_or(&Value::Null))?;
        let session = http_session(&app, map.get("episode_id"))?;
        let mut s = lock(&session);
        s.last = std::time::Instant::now();
        app.env_call(|| s.session.step(&action))
    })();
    json_reply(reply)
}

/// `GET /state?episode_id=...`.
async fn http_state(
    State(app): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = q.get("episode_id").map(|s| Value::String(s.clone()));
    match http_session(&app, id.as_ref()) {
        Ok(s) => axum::Json(lock(&s).session.state()).into_response(),
        Err(e) => http_error(&e),
    }
}

fn http_session(
    app: &App,
    id: Option<&Value>,
) -> Result<Arc<std::sync::Mutex<super::sessions::HttpSession>>, ServeError> {
    let Some(Value::String(id)) = id else {
        return Err(ServeError::invalid(
            "HTTP requests name their session: pass the `episode_id` that /reset returned (or use the WebSocket at /ws)",
        ));
    };
    app.http.get(id).ok_or_else(|| {
        ServeError::new(
            ErrorCode::Session,
            format!("no live HTTP session {id:?} (never opened, idle for too long, or the server restarted); POST /reset first"),
        )
    })
}

async fn ws_upgrade(State(app): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        // tungstenite zero-fills its read buffer on every read: 128 KiB by default, far more
        // than a client's message (an action); it still grows for larger ones
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| ws_session(app, socket))
}

/// One WebSocket session, from accept to close.
async fn ws_session(app: Shared, mut socket: WebSocket) {
    let Some((slot, mut session)) = app.open_session("ws") else {
        // a client sends before it reads: answer its first message with the error (holding no
        // slot and no env), so it sees CAPACITY_REACHED rather than a bare closed connection
        let _ = tokio::time::timeout(CAPACITY_WAIT, socket.recv()).await;
        let _ = socket
            .send(Message::Text(app.capacity_error().to_ws().into()))
            .await;
        let _ = socket
            .send(close_frame(1013, "CAPACITY_REACHED: session limit"))
            .await;
        return;
    };
    let mut shutdown = app.shutdown.clone();
    let ending = loop {
        let received = tokio::select! {
            r = tokio::time::timeout(app.idle, socket.recv()) => r,
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                let _ = socket.send(close_frame(1001, "server shutting down")).await;
                break Ending::Shutdown;
            }
        };
        let text = match received {
            Err(_idle) => {
                let e = ServeError::new(
                    ErrorCode::Session,
                    format!(
                        "no message for {} s: session closed (dreamgym serve --idle-timeout)",
                        app.idle.as_secs()
                    ),
                );
                let _ = socket.send(Message::Text(e.to_ws().into())).await;
                let _ = socket.send(close_frame(1000, "idle")).await;
                break Ending::Idle;
            }
            // the client went away (or broke the protocol at the frame level)
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break Ending::Abandoned,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => ServeError::new(
                ErrorCode::InvalidJson,
                "binary frame: messages are JSON text frames",
            )
            .to_ws(),
            Ok(Some(Ok(Message::Text(t)))) => match protocol::parse_message(&t) {
                Ok(Incoming::Close) => {
                    let _ = socket.send(close_frame(1000, "closed")).await;
                    break Ending::Abandoned;
                }
                Ok(m) => answer(&app, &mut session, m),
                Err(e) => e.to_ws(),
            },
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            break Ending::Abandoned;
        }
    };
    // ending a bridged env's session stops its child (a kill and a wait)
    app.env_call(move || {
        session.end(ending);
        drop(session);
    });
    drop(slot);
}

/// The answer to a reset, step or state message.
fn answer(app: &App, session: &mut Session, m: Incoming) -> String {
    let reply = match m {
        Incoming::Reset(r) => app.env_call(|| session.reset(&r)),
        Incoming::Step(a) => app.env_call(|| session.step(&a)),
        Incoming::State => return protocol::ws_answer("state", &session.state().to_string()),
        Incoming::Close => unreachable!("handled by the caller"),
    };
    match reply {
        Ok(data) => protocol::ws_answer("observation", &data),
        Err(e) => e.to_ws(),
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Close HTTP sessions idle for longer than the timeout (WebSocket sessions time out
/// themselves).
async fn reap_idle(app: Shared) {
    let every = (app.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(every).await;
        let gone = block_in_place(|| app.http.close_idle(Some(app.idle), Ending::Idle));
        if gone > 0 {
            tracing::info!("closed {gone} idle HTTP sessions");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
