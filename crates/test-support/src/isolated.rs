//! A service under test in a Tokio runtime of its own, so a test can kill it the way `kill -9`
//! would: every task it spawned stops where it is, with no drain and no cleanup.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// A future running in its own runtime, with a shutdown token.
#[derive(Debug)]
pub struct Isolated<T> {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::task::JoinHandle<T>,
    shutdown: CancellationToken,
}

impl<T: Send + 'static> Isolated<T> {
    /// Starts `service(shutdown)` on a fresh one-worker runtime.
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built.
    pub fn spawn<F, Fut>(service: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a test runtime");
        let shutdown = CancellationToken::new();
        let handle = runtime.spawn(service(shutdown.clone()));
        Self {
            runtime: Some(runtime),
            handle,
            shutdown,
        }
    }

    /// Signals shutdown and waits for the service to return.
    ///
    /// # Panics
    ///
    /// When the service panicked.
    pub async fn stop(mut self) -> T {
        self.shutdown.cancel();
        (&mut self.handle).await.expect("the service did not panic")
    }

    /// Waits for the service to return by itself.
    ///
    /// # Panics
    ///
    /// When the service panicked.
    pub async fn join(mut self) -> T {
        (&mut self.handle).await.expect("the service did not panic")
    }

    /// Kills the service mid-flight: its runtime is shut down without waiting.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl<T> Drop for Isolated<T> {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The value of metric `name` in `registry`, summed over the series whose labels include
/// `label` (all series when `None`); counters and gauges alike.
pub fn metric(registry: &prometheus::Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .filter(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        // Only one of the two is set for a given metric type.
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}
