//! Connections whose client has stopped reading are closed. An SSE client that never reads
//! would otherwise keep its connection (and the gateway's task and buffers for it) for as long
//! as TCP lets a zero window last, which is forever. A write that has waited longer than the
//! limit fails instead, and the server drops the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// An I/O stream whose writes fail once one has waited longer than `limit`.
#[derive(Debug)]
pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Running while a write waits; reset by any progress.
    waiting: Option<Pin<Box<Sleep>>>,
    /// Counts the connections closed this way.
    closed: IntCounter,
}

impl<T> StallGuard<T> {
    /// Guards `inner`: a write that waits longer than `limit` fails, counted in `closed`.
    pub fn new(inner: T, limit: Duration, closed: IntCounter) -> Self {
        Self {
            inner,
            limit,
            waiting: None,
            closed,
        }
    }

    /// What a write's poll becomes: its result when it made progress, else pending until the
    /// limit, then an error.
    fn guard<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        self.closed.inc();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_waits_past_the_limit_fails_and_progress_resets_the_wait() {
        let closed = IntCounter::new("closed", "closed").expect("a counter");
        // A pipe with room for 4 bytes, read by nobody.
        let (writer, mut reader) = tokio::io::duplex(4);
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), closed.clone());
        guarded.write_all(b"1234").await.expect("fits");
        let stuck = tokio::spawn(async move {
            let result = guarded.write_all(b"5678").await;
            (result, guarded)
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Progress before the limit: the writer goes on.
        let mut first = [0; 4];
        tokio::io::AsyncReadExt::read_exact(&mut reader, &mut first)
            .await
            .expect("read");
        let (result, mut guarded) = stuck.await.expect("joined");
        result.expect("the write completed after progress");
        assert_eq!(closed.get(), 0);
        // No progress at all: after the limit the write fails.
        let error = guarded.write_all(b"9").await.expect_err("stalled");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(closed.get(), 1);
    }
}
