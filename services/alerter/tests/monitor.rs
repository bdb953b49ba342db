//! The integration monitor against a real nats-server: a condition the services report is
//! raised once it crosses its threshold and resolved once it clears, once each however many
//! alerter replicas watch, and delivered like any alert. (The same with a real poller and a
//! dead upstream is in the end-to-end tests.)

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use bcfy_alerter::config::MonitorConfig;
use bcfy_bus::subject;
use bcfy_proto::{ServiceStatus, Signal};
use bcfy_runtime::service::signals::POLL_FAILURES;
use bcfy_test_support::eventually;
use prost::Message as _;
use support::{PATIENCE, Receiver, harness};

/// Reports `failures` as a poller replica does, every 100 ms until the value changes.
fn reporter(client: async_nats::Client) -> tokio::sync::watch::Sender<f64> {
    let (set, mut value) = tokio::sync::watch::channel(0.0);
    tokio::spawn(async move {
        loop {
            let failures = *value.borrow_and_update();
            report(&client, failures).await;
            let changed = tokio::time::timeout(Duration::from_millis(100), value.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                return;
            }
        }
    });
    set
}

async fn report(client: &async_nats::Client, failures: f64) {
    let status = ServiceStatus {
        service: "poller".into(),
        instance: "poller-test".into(),
        signals: vec![Signal {
            kind: POLL_FAILURES.into(),
            subject: "fire".into(),
            value: failures,
        }],
        ..ServiceStatus::default()
    };
    client
        .publish(subject::status("poller"), status.encode_to_vec().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
}

/// Whether the monitor has judged the shard's condition (its gauge exists).
fn judged(service: &support::Running) -> bool {
    service.registry().gather().iter().any(|family| {
        family.name() == "bcfy_alerter_system_conditions"
            && family.get_metric().iter().any(|metric| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "subject" && label.value() == "fire")
            })
    })
}

#[tokio::test]
async fn a_reported_condition_is_raised_then_resolved_once_across_replicas() {
    let h = harness().await;
    let receiver = Receiver::start(|_, _| (StatusCode::OK, vec![], String::new())).await;
    let mut config = h.config(vec![]);
    config.monitor = MonitorConfig {
        enabled: true,
        interval: Duration::from_millis(200),
        stale_after: Duration::from_secs(5),
        poll_failures: 3,
        ..MonitorConfig::default()
    };
    config.destinations = vec![receiver.destination("ops")];
    let one = h.start(config.clone());
    let _two = h.start(config);
    let client = async_nats::connect(h.nats.url()).await.unwrap();
    let failures = reporter(client);
    failures.send_replace(2.0);
    let system = || async {
        h.alerts()
            .await
            .into_iter()
            .filter(|(subject, _)| subject.starts_with("alerts.system."))
            .map(|(subject, alert)| (subject, alert.system.unwrap()))
            .collect::<Vec<_>>()
    };
    // Below the threshold: judged, and nothing raised; then over it.
    eventually(PATIENCE, "the report judged", || async {
        judged(&one).then_some(())
    })
    .await;
    assert!(system().await.is_empty());
    failures.send_replace(4.0);
    let raised = eventually(PATIENCE, "the raised alert", || async {
        let found = system().await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(raised[0].0, "alerts.system.poll_failures");
    let condition = &raised[0].1;
    assert_eq!(condition.subject, "fire");
    assert!(!condition.resolved);
    assert_eq!(condition.value, 4.0);
    assert_eq!(condition.threshold, 3.0);
    assert_eq!(condition.service, "poller");

    failures.send_replace(0.0);
    let both = eventually(PATIENCE, "the resolved alert", || async {
        let found = system().await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    assert!(both[1].1.resolved);
    assert_eq!(both[1].1.since, condition.since, "the same episode");
    eventually(PATIENCE, "both delivered", || async {
        (receiver.accepted().len() == 2).then_some(())
    })
    .await;
    let again = system().await;
    assert_eq!(again.len(), 2, "once each across two replicas: {again:?}");
}
