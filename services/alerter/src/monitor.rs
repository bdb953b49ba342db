//! The integration monitor: raises `alerts.system.{kind}` when a condition of the pipeline
//! crosses its threshold, and the same kind with `resolved` when it clears. It reads
//!
//! - the services' own reports on `status.>` (failed polls of a shard in a row, refused
//!   credentials, an upstream back-off, failed transcriptions in a row), the worst fresh figure
//!   of each across replicas; a condition nobody reports any more stays as it was;
//! - the `DEAD_LETTERS` stream's growth per minute;
//! - every durable consumer's backlog (pending plus unacknowledged), raised when it has only
//!   grown for `backlog_growing_for`.
//!
//! Each condition's state lives in the `alert-state` bucket under `system.{kind}.{subject}`.
//! A transition publishes its alert first, with a message id made of the entry's revision,
//! then moves the entry by compare-and-set: replicas evaluating at once, or one restarted
//! between the two steps, publish the same id, which the stream stores once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use bcfy_bus::Publisher;
use bcfy_bus::subject::{self, SYSTEM_RULE};
use bcfy_bus::topology::{STREAM_DEAD_LETTERS, Topology};
use bcfy_proto::{Alert, ServiceStatus, SystemCondition};
use bcfy_runtime::service::signals;
use futures::{StreamExt as _, TryStreamExt as _};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::MonitorConfig;
use crate::metrics::Metrics;

/// The monitor's condition kinds beside the services' signals.
const DEAD_LETTERS: &str = "dead_letters";
const BACKLOG_GROWING: &str = "backlog_growing";
const MINUTE: Duration = Duration::from_secs(60);

/// One condition as observed now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    pub(crate) kind: String,
    pub(crate) subject: String,
    pub(crate) value: f64,
    pub(crate) threshold: f64,
    pub(crate) raised: bool,
    pub(crate) service: String,
}

/// A condition's state in `alert-state`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    raised: bool,
    /// When it was raised, epoch seconds.
    since: i64,
}

/// The monitor of one replica.
pub(crate) struct Monitor {
    pub(crate) config: MonitorConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) topology: Topology,
    pub(crate) publisher: Publisher,
    pub(crate) state: kv::Store,
    pub(crate) metrics: Metrics,
}

/// What the monitor remembers between evaluations.
#[derive(Debug, Default)]
struct Memory {
    /// The latest report of each replica: (service, instance) → (received, report).
    reports: HashMap<(String, String), (Instant, ServiceStatus)>,
    /// `DEAD_LETTERS`' last sequence over the last minute.
    dead_letters: VecDeque<(Instant, u64)>,
    /// Each consumer's backlog over the growth window.
    backlogs: HashMap<String, VecDeque<(Instant, u64)>>,
}

impl Monitor {
    /// Runs until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut reports = loop {
            match self.client.subscribe(subject::ALL_STATUS.to_owned()).await {
                Ok(subscription) => break subscription,
                Err(error) => {
                    tracing::warn!(error = %error, "Cannot subscribe to status reports; retrying.");
                    tokio::select! {
                        () = tokio::time::sleep(self.config.interval) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        let mut memory = Memory::default();
        let mut every = tokio::time::interval(self.config.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                report = reports.next() => {
                    let Some(report) = report else { return };
                    match ServiceStatus::decode(report.payload) {
                        Ok(status) => {
                            let key = (status.service.clone(), status.instance.clone());
                            memory.reports.insert(key, (Instant::now(), status));
                        }
                        Err(error) => tracing::debug!(error = %error, "An unreadable status report; skipped."),
                    }
                }
                _ = every.tick() => {
                    let observations = self.observe(&mut memory).await;
                    for observation in observations {
                        if let Err(error) = self.settle(&observation).await {
                            tracing::warn!(error = %error, kind = %observation.kind, subject = %observation.subject, "Cannot record a system condition; trying again next time.");
                        }
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Every condition that can be judged now.
    async fn observe(&self, memory: &mut Memory) -> Vec<Observation> {
        let now = Instant::now();
        memory
            .reports
            .retain(|_, (received, _)| now.duration_since(*received) <= self.config.stale_after);
        let mut observations = from_reports(&self.config, memory.reports.values().map(|(_, r)| r));
        match self.dead_letters(memory, now).await {
            Ok(observation) => observations.extend(observation),
            Err(error) => tracing::debug!(error = %error, "Cannot read DEAD_LETTERS."),
        }
        match self.backlogs(memory, now).await {
            Ok(found) => observations.extend(found),
            Err(error) => tracing::debug!(error = %error, "Cannot read the consumers' backlogs."),
        }
        observations
    }

    async fn dead_letters(
        &self,
        memory: &mut Memory,
        now: Instant,
    ) -> Result<Option<Observation>, async_nats::Error> {
        let threshold = self.config.dead_letters_per_minute;
        if threshold == 0 {
            return Ok(None);
        }
        let mut stream = self.js.get_stream(STREAM_DEAD_LETTERS).await?;
        let last = stream.info().await?.state.last_sequence;
        let samples = &mut memory.dead_letters;
        samples.push_back((now, last));
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > MINUTE)
        {
            samples.pop_front();
        }
        let first = samples.front().map_or(last, |(_, seq)| *seq);
        let per_minute = last.saturating_sub(first) as f64;
        Ok(Some(Observation {
            kind: DEAD_LETTERS.into(),
            subject: "all".into(),
            value: per_minute,
            threshold: f64::from(threshold),
            raised: per_minute >= f64::from(threshold),
            service: String::new(),
        }))
    }

    async fn backlogs(
        &self,
        memory: &mut Memory,
        now: Instant,
    ) -> Result<Vec<Observation>, async_nats::Error> {
        let window = self.config.backlog_growing_for;
        let mut found = Vec::new();
        for stream in self.topology.streams() {
            if stream.name == STREAM_DEAD_LETTERS {
                continue;
            }
            let consumers: Vec<_> = self
                .js
                .get_stream(&stream.name)
                .await?
                .consumers()
                .try_collect()
                .await?;
            for consumer in consumers {
                let backlog = consumer.num_pending + consumer.num_ack_pending as u64;
                self.metrics
                    .consumer_backlog
                    .with_label_values(&[&consumer.name])
                    .set(i64::try_from(backlog).unwrap_or(i64::MAX));
                let samples = memory.backlogs.entry(consumer.name.clone()).or_default();
                samples.push_back((now, backlog));
                // Keep one sample at or before the window's start, to know it spans it.
                while samples.len() > 2
                    && samples
                        .get(1)
                        .is_some_and(|(at, _)| now.duration_since(*at) >= window)
                {
                    samples.pop_front();
                }
                found.push(growth(
                    &consumer.name,
                    samples,
                    now,
                    window,
                    self.config.backlog_min,
                ));
            }
        }
        Ok(found)
    }

    /// Moves the condition's state to what `observation` says, publishing the transition.
    async fn settle(&self, observation: &Observation) -> Result<(), String> {
        self.metrics
            .system_conditions
            .with_label_values(&[&observation.kind, &observation.subject])
            .set(i64::from(observation.raised));
        let key = format!(
            "{SYSTEM_RULE}.{}.{}",
            observation.kind,
            key_safe(&observation.subject)
        );
        let entry = self
            .state
            .entry(&key)
            .await
            .map_err(|e| e.to_string())?
            .filter(|entry| entry.operation == kv::Operation::Put);
        let current = entry
            .as_ref()
            .and_then(|entry| serde_json::from_slice::<State>(&entry.value).ok());
        let raised_now = current.as_ref().is_some_and(|state| state.raised);
        if raised_now == observation.raised {
            return Ok(());
        }
        let revision = entry.as_ref().map_or(0, |entry| entry.revision);
        let since = match (&current, observation.raised) {
            (Some(state), false) => state.since,
            _ => crate::now_epoch(),
        };
        let alert = system_alert(observation, &key, revision, since);
        let published = self
            .publisher
            .publish(subject::system_alert(&observation.kind), &alert.id, &alert)
            .await
            .map_err(|e| e.to_string())?;
        let value = serde_json::to_vec(&State {
            raised: observation.raised,
            since,
        })
        .map_err(|e| e.to_string())?;
        let moved = match &entry {
            Some(_) => self
                .state
                .update(&key, value.into(), revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => self
                .state
                .create(&key, value.into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(error) = moved {
            // Another replica moved it first; it published the same alert.
            tracing::debug!(error = %error, key, "The condition moved meanwhile.");
        }
        if !published.duplicate {
            self.metrics.alerts.with_label_values(&[SYSTEM_RULE]).inc();
            tracing::warn!(summary = %alert.summary, "System alert.");
        }
        Ok(())
    }
}

/// The conditions the services report, worst replica first.
pub(crate) fn from_reports<'a>(
    config: &MonitorConfig,
    reports: impl Iterator<Item = &'a ServiceStatus>,
) -> Vec<Observation> {
    let mut worst: BTreeMap<(String, String), (f64, Vec<String>)> = BTreeMap::new();
    for report in reports {
        for signal in &report.signals {
            let entry = worst
                .entry((signal.kind.clone(), signal.subject.clone()))
                .or_insert((f64::MIN, Vec::new()));
            entry.0 = entry.0.max(signal.value);
            if !entry.1.contains(&report.service) {
                entry.1.push(report.service.clone());
            }
        }
    }
    worst
        .into_iter()
        .filter_map(|((kind, subject), (value, services))| {
            let threshold = match kind.as_str() {
                signals::POLL_FAILURES => f64::from(config.poll_failures),
                signals::STT_FAILURES => f64::from(config.stt_failures),
                signals::CREDENTIALS_REFUSED => 1.0,
                signals::UPSTREAM_BACKOFF => config.upstream_backoff.as_secs_f64(),
                _ => return None,
            };
            Some(Observation {
                raised: value >= threshold,
                kind,
                subject,
                value,
                threshold,
                service: services.join(","),
            })
        })
        .collect()
}

/// Whether `samples` of a consumer's backlog show it only growing over `window`.
pub(crate) fn growth(
    consumer: &str,
    samples: &VecDeque<(Instant, u64)>,
    now: Instant,
    window: Duration,
    min: u64,
) -> Observation {
    let spans = samples
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) >= window);
    let values: Vec<u64> = samples.iter().map(|(_, backlog)| *backlog).collect();
    let last = values.last().copied().unwrap_or(0);
    let never_fell = values.windows(2).all(|pair| pair[0] <= pair[1]);
    let grew = values.first().is_some_and(|first| *first < last);
    Observation {
        kind: BACKLOG_GROWING.into(),
        subject: consumer.to_owned(),
        value: last as f64,
        threshold: min as f64,
        raised: spans && never_fell && grew && last >= min,
        service: String::new(),
    }
}

/// The alert of a transition of the condition under `key` from the entry at `revision`.
fn system_alert(observation: &Observation, key: &str, revision: u64, since: i64) -> Alert {
    let verb = if observation.raised {
        "raised"
    } else {
        "resolved"
    };
    Alert {
        id: format!("{key}.{revision}.{verb}"),
        rule: SYSTEM_RULE.into(),
        raised_at: Some(SystemTime::now().into()),
        summary: format!(
            "{} {verb} for {}: {} (threshold {})",
            observation.kind, observation.subject, observation.value, observation.threshold
        ),
        system: Some(SystemCondition {
            kind: observation.kind.clone(),
            subject: observation.subject.clone(),
            resolved: !observation.raised,
            value: observation.value,
            threshold: observation.threshold,
            since: Some(prost_types::Timestamp {
                seconds: since,
                nanos: 0,
            }),
            service: observation.service.clone(),
        }),
        ..Alert::default()
    }
}

/// `subject` with every character a KV key cannot hold replaced by `_`.
fn key_safe(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bcfy_proto::Signal;

    use super::*;

    fn report(service: &str, kind: &str, subject: &str, value: f64) -> ServiceStatus {
        ServiceStatus {
            service: service.into(),
            instance: format!("{service}-1"),
            signals: vec![Signal {
                kind: kind.into(),
                subject: subject.into(),
                value,
            }],
            ..ServiceStatus::default()
        }
    }

    #[test]
    fn reports_are_judged_by_their_thresholds_worst_replica_first() {
        let config = MonitorConfig {
            poll_failures: 3,
            ..MonitorConfig::default()
        };
        let reports = [
            report("poller", signals::POLL_FAILURES, "fire", 1.0),
            report("poller", signals::POLL_FAILURES, "fire", 4.0),
            report(
                "transcriber",
                signals::CREDENTIALS_REFUSED,
                "stt_provider",
                0.0,
            ),
            report("transcriber", "unknown_kind", "x", 9.0),
        ];
        let judged: Vec<(String, f64, bool)> = from_reports(&config, reports.iter())
            .into_iter()
            .map(|o| (o.kind, o.value, o.raised))
            .collect();
        assert_eq!(
            judged,
            [
                ("credentials_refused".to_owned(), 0.0, false),
                ("poll_failures".to_owned(), 4.0, true)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_is_raised_only_when_it_grew_over_the_whole_window() {
        let window = Duration::from_secs(60);
        let start = Instant::now();
        let at = |secs: u64, backlog: u64| (start + Duration::from_secs(secs), backlog);
        let judge = |samples: Vec<(Instant, u64)>, now: u64| {
            growth(
                "transcriber",
                &samples.into_iter().collect(),
                start + Duration::from_secs(now),
                window,
                100,
            )
            .raised
        };
        assert!(judge(vec![at(0, 100), at(30, 150), at(60, 200)], 60));
        assert!(
            !judge(vec![at(10, 100), at(30, 150), at(60, 200)], 60),
            "too short"
        );
        assert!(
            !judge(vec![at(0, 100), at(30, 90), at(60, 200)], 60),
            "it fell"
        );
        assert!(!judge(vec![at(0, 10), at(30, 20), at(60, 30)], 60), "small");
        assert!(
            !judge(vec![at(0, 200), at(30, 200), at(60, 200)], 60),
            "flat"
        );
    }

    #[test]
    fn keys_hold_only_what_kv_accepts() {
        assert_eq!(key_safe("fire dept/7001.2"), "fire_dept_7001_2");
    }
}
