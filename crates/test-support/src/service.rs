//! A service under test: its `run(config, context)` in a runtime of its own (see
//! [`Isolated`]), with the readiness and metrics its [`Context`] carries, to read, stop or kill.

use std::future::Future;

use bcfy_runtime::admin::Readiness;
use bcfy_runtime::service::Context;

use crate::isolated::{Isolated, metric};

/// One running service instance.
#[derive(Debug)]
pub struct ServiceUnderTest<E> {
    service: Isolated<Result<(), E>>,
    readiness: Readiness,
    registry: prometheus::Registry,
}

impl<E: Send + 'static> ServiceUnderTest<E> {
    /// Starts `run(config, context)` as service `name`.
    pub fn start<C, F, Fut>(name: &'static str, config: C, run: F) -> Self
    where
        C: Send + 'static,
        F: FnOnce(C, Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let service = Isolated::spawn(move |shutdown| {
            let context = Context::new(name, shutdown);
            tx.send((context.readiness().clone(), context.registry().clone()))
                .expect("the starter waits for the context");
            run(config, context)
        });
        let (readiness, registry) = rx.recv().expect("the context is made at spawn");
        Self {
            service,
            readiness,
            registry,
        }
    }

    /// The service's readiness latches.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The service's metrics.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// The value of metric `name` (see [`metric`]).
    pub fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        metric(&self.registry, name, label)
    }

    /// Signals shutdown and returns what the service returned.
    ///
    /// # Panics
    ///
    /// When the service panicked.
    pub async fn stop(self) -> Result<(), E> {
        self.service.stop().await
    }

    /// Waits for the service to return by itself.
    ///
    /// # Panics
    ///
    /// When the service panicked.
    pub async fn join(self) -> Result<(), E> {
        self.service.join().await
    }

    /// Kills the service mid-flight, as `kill -9` would.
    pub fn kill(self) {
        self.service.kill();
    }
}
