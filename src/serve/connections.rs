//! The connections `dreamgym serve` accepts: at most a fixed number open at once (the sessions'
//! own plus a few not yet in one), and none that holds a file handle while sending nothing.
//!
//! - **Cap.** [`GuardedListener`] hands out at most `limit` connections at a time; one accepted
//!   above it is closed at once (counted in [`ConnectionStats::refused`]), so idle or hostile
//!   connections can never take every file handle the process has.
//! - **Deadlines.** A [`GuardedStream`] that receives no byte within `first_byte` of its accept
//!   (a connection that never sends its request or handshake), or none for `idle` afterwards (a
//!   kept-alive connection nobody uses, a WebSocket whose peer vanished), fails its next read with
//!   `TimedOut`, and the server closes it. The WebSocket session's own idle timeout answers first
//!   with a message saying why (`idle` here is longer).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Counts of what the listener did (for `/stats`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once because `limit` were open.
    pub refused: AtomicU64,
    /// Connections closed because they sent nothing in time.
    pub timed_out: AtomicU64,
}

/// A TCP listener that caps the open connections and gives each a read deadline.
pub struct GuardedListener {
    inner: TcpListener,
    open: Arc<Semaphore>,
    first_byte: Duration,
    idle: Duration,
    stats: Arc<ConnectionStats>,
}

impl GuardedListener {
    /// At most `limit` connections open at once; each must send its first byte within
    /// `first_byte` and then never fall silent for longer than `idle`.
    pub fn new(
        inner: TcpListener,
        limit: usize,
        first_byte: Duration,
        idle: Duration,
        stats: Arc<ConnectionStats>,
    ) -> Self {
        Self {
            inner,
            open: Arc::new(Semaphore::new(limit.max(1))),
            first_byte,
            idle,
            stats,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // out of file handles and the like: wait and try again, as axum does
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    return (
                        GuardedStream {
                            inner: stream,
                            _permit: permit,
                            deadline: Box::pin(tokio::time::sleep(self.first_byte)),
                            idle: self.idle,
                            stats: self.stats.clone(),
                        },
                        addr,
                    );
                }
                Err(_) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: holds its place under the cap until dropped; reads fail with
/// `TimedOut` once its deadline passes without a byte received.
pub struct GuardedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
    stats: Arc<ConnectionStats>,
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection sent nothing in time",
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionStats, GuardedListener};
    use axum::serve::Listener;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_silent_ones_time_out() {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let mut listener = GuardedListener::new(
            inner,
            2,
            Duration::from_millis(300),
            Duration::from_secs(5),
            stats.clone(),
        );
        // the server side: echo one chunk on each accepted connection until it fails
        tokio::spawn(async move {
            loop {
                let (mut io, _) = listener.accept().await;
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut talker = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        talker.write_all(b"hi").await.unwrap();
        let mut got = [0u8; 2];
        talker.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        // a third connection finds the cap full: closed at once
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut got))
            .await
            .expect("closed at once");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        // the silent one is closed after its first-byte deadline; the talker stays open
        let n = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut got))
            .await
            .expect("closed after the deadline");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        talker.write_all(b"ok").await.unwrap();
        talker.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok");
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        assert_eq!(stats.timed_out.load(Ordering::Relaxed), 1);
        // the silent one's place is free again
        let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
        fourth.write_all(b"yo").await.unwrap();
        fourth.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"yo");
    }
}
