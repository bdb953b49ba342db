//! A service's health as the alerter's integration monitor reads it: a handful of figures
//! (failures in a row, a refusal, a back-off) that the service's own code keeps current, sent
//! as a [`ServiceStatus`] on core NATS `status.{service}` every [`REPORT_EVERY`] from the
//! moment the service has connected, and exported as the gauge `bcfy_health_signal{kind,
//! subject}` for Prometheus' alert rules (one source for both). Core NATS, not a stream: only the latest report matters,
//! and a replica that stops reporting is itself a signal (it is down).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bcfy_proto::{ServiceStatus, Signal as SignalMessage};
use prometheus::GaugeVec;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// How often a replica reports. MAGIC NUMBER: a few seconds keeps the monitor's view fresh at
/// one small message per replica, negligible beside the calls.
pub const REPORT_EVERY: Duration = Duration::from_secs(3);

/// Failed polls of a shard in a row (subject: the shard's name).
pub const POLL_FAILURES: &str = "poll_failures";
/// 1 while a provider refuses our credentials (subject: the provider).
pub const CREDENTIALS_REFUSED: &str = "credentials_refused";
/// Seconds of an upstream's back-off still to wait (subject: the upstream).
pub const UPSTREAM_BACKOFF: &str = "upstream_backoff";
/// Failed transcriptions in a row (subject: the provider).
pub const STT_FAILURES: &str = "stt_failures";

/// The figures of one replica, shared by its tasks; cheap to clone.
#[derive(Debug, Clone)]
pub struct Signals {
    figures: Arc<Mutex<BTreeMap<(&'static str, String), f64>>>,
    gauge: GaugeVec,
}

impl Signals {
    /// The figures of a replica whose metrics are in `registry`.
    ///
    /// # Errors
    ///
    /// When `bcfy_health_signal` is already registered there.
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let gauge = GaugeVec::new(
            prometheus::Opts::new(
                "bcfy_health_signal",
                "Health figures the alerter's monitor also reads, by kind and subject.",
            ),
            &["kind", "subject"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self {
            figures: Arc::default(),
            gauge,
        })
    }

    /// Sets figure `kind` about `subject`.
    pub fn set(&self, kind: &'static str, subject: &str, value: f64) {
        self.gauge.with_label_values(&[kind, subject]).set(value);
        self.figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((kind, subject.to_owned()), value);
    }

    /// The handle of one figure, for code that only ever sets that one.
    pub fn signal(&self, kind: &'static str, subject: &str) -> SignalHandle {
        SignalHandle {
            signals: self.clone(),
            kind,
            subject: subject.to_owned(),
        }
    }

    /// The report of this replica now.
    pub fn report(&self, service: &str, instance: &str) -> ServiceStatus {
        let figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        ServiceStatus {
            service: service.to_owned(),
            instance: instance.to_owned(),
            at: Some(std::time::SystemTime::now().into()),
            signals: figures
                .iter()
                .map(|((kind, subject), value)| SignalMessage {
                    kind: (*kind).to_owned(),
                    subject: subject.clone(),
                    value: *value,
                })
                .collect(),
        }
    }

    /// Publishes the report on `status.{service}` every [`REPORT_EVERY`] until `shutdown`.
    /// A failed publish is skipped: the next report replaces it.
    pub(crate) fn spawn_reports(
        &self,
        client: async_nats::Client,
        service: &'static str,
        shutdown: CancellationToken,
    ) {
        let signals = self.clone();
        let instance = instance_name();
        tokio::spawn(async move {
            let subject = bcfy_bus::subject::status(service);
            let mut every = tokio::time::interval(REPORT_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let report = signals.report(service, &instance).encode_to_vec();
                if let Err(error) = client.publish(subject.clone(), report.into()).await {
                    tracing::debug!(error = %error, "Status report not sent.");
                }
            }
        });
    }
}

/// One figure of [`Signals`].
#[derive(Debug, Clone)]
pub struct SignalHandle {
    signals: Signals,
    kind: &'static str,
    subject: String,
}

impl SignalHandle {
    /// Sets the figure.
    pub fn set(&self, value: f64) {
        self.signals.set(self.kind, &self.subject, value);
    }
}

/// This replica's name in reports: the host (the pod's name in Kubernetes) and the process.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_and_the_gauge_hold_the_latest_figure_of_each_signal() {
        let registry = prometheus::Registry::new();
        let signals = Signals::new(&registry).unwrap();
        signals.set(POLL_FAILURES, "fire", 2.0);
        let refused = signals.signal(CREDENTIALS_REFUSED, "openai");
        refused.set(1.0);
        signals.set(POLL_FAILURES, "fire", 3.0);
        let report = signals.report("poller", "a-1");
        let figures: Vec<(&str, &str, f64)> = report
            .signals
            .iter()
            .map(|s| (s.kind.as_str(), s.subject.as_str(), s.value))
            .collect();
        assert_eq!(
            figures,
            [
                (CREDENTIALS_REFUSED, "openai", 1.0),
                (POLL_FAILURES, "fire", 3.0)
            ]
        );
        assert_eq!(report.service, "poller");
        let gauge = &registry.gather()[0];
        assert_eq!(gauge.name(), "bcfy_health_signal");
        assert_eq!(gauge.get_metric().len(), 2);
    }
}
