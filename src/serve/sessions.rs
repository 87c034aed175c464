//! The server's sessions: a bounded number of slots shared by WebSocket and HTTP sessions, and
//! the table of HTTP sessions (WebSocket sessions live in their connection's task).

use super::session::{Ending, Session};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The session slots: at most `max` sessions at once.
pub struct Slots {
    max: usize,
    active: AtomicUsize,
    opened: AtomicU64,
    run: u32,
}

/// A held slot, released when dropped.
pub struct Slot(Arc<Slots>);

impl Slots {
    /// `max` slots; `run` tags the session ids of this server run.
    pub fn new(max: usize, run: u32) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            active: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            run,
        })
    }

    /// A slot and a fresh session id (`PREFIX-RUN-N`), or `None` at the limit.
    pub fn acquire(self: &Arc<Self>, prefix: &str) -> Option<(Slot, String, u64)> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        let n = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        Some((
            Slot(self.clone()),
            format!("{prefix}-{:08x}-{n}", self.run),
            n,
        ))
    }

    /// Sessions open now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Sessions opened since the start.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An HTTP session: its session, its slot and when it was last used.
pub struct HttpSession {
    /// The session.
    pub session: Session,
    /// Last request.
    pub last: Instant,
    _slot: Slot,
}

/// The live HTTP sessions by id.
#[derive(Default)]
pub struct HttpSessions(Mutex<HashMap<String, Arc<Mutex<HttpSession>>>>);

impl HttpSessions {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<HttpSession>>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add a session.
    pub fn insert(&self, session: Session, slot: Slot) -> Arc<Mutex<HttpSession>> {
        let s = Arc::new(Mutex::new(HttpSession {
            last: Instant::now(),
            session,
            _slot: slot,
        }));
        self.map().insert(s_id(&s), s.clone());
        s
    }

    /// Live HTTP sessions.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// The session `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Mutex<HttpSession>>> {
        self.map().get(id).cloned()
    }

    /// Remove and close the sessions idle for longer than `idle` (all of them with `None`),
    /// recording their episodes in play as `why`. Returns how many.
    pub fn close_idle(&self, idle: Option<Duration>, why: Ending) -> usize {
        let gone: Vec<Arc<Mutex<HttpSession>>> = {
            let mut map = self.map();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| idle.is_none_or(|d| lock(s).last.elapsed() > d))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in &gone {
            lock(s).session.end(why);
        }
        gone.len()
    }
}

/// Lock an HTTP session (a panic in another request does not make it unusable).
pub fn lock(s: &Mutex<HttpSession>) -> MutexGuard<'_, HttpSession> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn s_id(s: &Mutex<HttpSession>) -> String {
    lock(s).session.id().to_string()
}
