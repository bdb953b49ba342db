//! Deliveries over real HTTP: a receiver that is down for a while gets every alert once it is
//! back, in order, each once and signed; one that refuses an alert (400) gets it once, and the
//! alert is dead-lettered with the answer; chat destinations get their own format.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use bcfy_alerter::config::{DestinationConfig, DestinationKind};
use bcfy_alerter::deliver::{DESTINATION_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};
use bcfy_bus::topology::{STREAM_ALERTS, STREAM_DEAD_LETTERS};
use bcfy_proto::DeadLetter;
use bcfy_test_support::eventually;
use bcfy_test_support::nats::stream_messages;
use secrecy::SecretString;
use support::{PATIENCE, Receiver, harness, keyword_rule, transcript};

const SECRET: &str = "s3cret-key";

fn delivery_consumer(name: &str) -> String {
    format!(
        "{}{name}",
        bcfy_bus::topology::CONSUMER_ALERT_DELIVERY_PREFIX
    )
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_alert_after_it_recovers_in_order_and_signed() {
    let h = harness().await;
    let down = Arc::new(AtomicBool::new(true));
    let receiver = {
        let down = Arc::clone(&down);
        Receiver::start(move |n, _| {
            if down.load(Ordering::SeqCst) {
                // Down: an overloaded proxy first (asking for a second), then errors.
                if n == 0 {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        vec![("retry-after", "1".into())],
                        String::new(),
                    )
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, vec![], "down".into())
                }
            } else {
                (StatusCode::OK, vec![], "ok".into())
            }
        })
        .await
    };
    let mut config = h.config(vec![keyword_rule("fire", &["fire"])]);
    config.destinations = vec![DestinationConfig {
        secret: Some(SecretString::from(SECRET)),
        ..receiver.destination("ops")
    }];
    let service = h.start(config);
    let mut calls = Vec::new();
    for n in 0..5 {
        calls.push(h.publish(&transcript(n, "fire on main street")).await);
    }
    eventually(PATIENCE, "three failed attempts", || async {
        (receiver.received().len() >= 3).then_some(())
    })
    .await;
    assert!(receiver.accepted().is_empty());
    down.store(false, Ordering::SeqCst);
    eventually(PATIENCE, "every alert delivered", || async {
        let settled = h.settled(STREAM_ALERTS, &delivery_consumer("ops")).await;
        (settled && receiver.accepted().len() >= 5).then_some(())
    })
    .await;
    let accepted = receiver.accepted();
    let keys: Vec<String> = accepted
        .iter()
        .map(|r| r.headers[IDEMPOTENCY_HEADER].to_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = calls.iter().map(|c| format!("fire.{c}")).collect();
    assert_eq!(keys, expected, "each once, in order");
    for request in &accepted {
        let signed = request.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            signed,
            signature(&SecretString::from(SECRET), &request.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["id"].as_str(),
            request.headers[IDEMPOTENCY_HEADER].to_str().ok()
        );
        assert_eq!(body["rule"], "fire");
        assert_eq!(body["matches"][0]["text"], "fire");
    }
    assert!(service.metric("bcfy_alerter_deliveries_total", Some(("outcome", "retry"))) >= 3.0);
}

#[tokio::test]
async fn a_refused_alert_is_dead_lettered_with_the_answer_and_not_retried() {
    let h = harness().await;
    let receiver = Receiver::start(|n, _| {
        if n == 0 {
            (
                StatusCode::BAD_REQUEST,
                vec![],
                "{\"error\":\"unknown channel\"}".into(),
            )
        } else {
            (StatusCode::NO_CONTENT, vec![], String::new())
        }
    })
    .await;
    let mut config = h.config(vec![keyword_rule("fire", &["fire"])]);
    config.destinations = vec![receiver.destination("ops")];
    let service = h.start(config);
    let refused = h.publish(&transcript(1, "fire")).await;
    let delivered = h.publish(&transcript(2, "fire")).await;
    // One alert in flight per destination: the second is only sent once the first is settled.
    eventually(PATIENCE, "the second alert delivered", || async {
        let settled = h.settled(STREAM_ALERTS, &delivery_consumer("ops")).await;
        (settled && receiver.accepted().len() == 1).then_some(())
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 2, "the refused alert was sent once");
    assert_eq!(
        received[1].headers[IDEMPOTENCY_HEADER],
        format!("fire.{delivered}").as_str()
    );
    let letters = eventually(PATIENCE, "the dead letter", || async {
        let stored = stream_messages(&h.js, STREAM_DEAD_LETTERS).await;
        (stored > 0).then_some(stored)
    })
    .await;
    assert_eq!(letters, 1);
    let stored =
        h.js.get_stream(STREAM_DEAD_LETTERS)
            .await
            .unwrap()
            .get_raw_message(1)
            .await
            .unwrap();
    let letter: DeadLetter = prost::Message::decode(stored.payload.as_ref()).unwrap();
    assert_eq!(letter.stage, "alerter");
    assert_eq!(letter.error_kind, "destination_rejected");
    assert_eq!(
        letter.reason,
        "ops answered 400: {\"error\":\"unknown channel\"}"
    );
    assert_eq!(letter.call_id, refused.as_str());
    assert_eq!(letter.original_headers[DESTINATION_HEADER], "ops");
    assert!(bcfy_bus::dead_letter_kinds::find(&letter.error_kind).is_some());
    assert_eq!(
        service.metric(
            "bcfy_alerter_deliveries_total",
            Some(("outcome", "rejected"))
        ),
        1.0
    );
}

#[tokio::test]
async fn a_redriven_refusal_goes_to_the_destination_that_refused_it_only() {
    let h = harness().await;
    let refusing = Receiver::start(|n, _| {
        if n == 0 {
            (StatusCode::UNPROCESSABLE_ENTITY, vec![], "not yet".into())
        } else {
            (StatusCode::OK, vec![], String::new())
        }
    })
    .await;
    let accepting = Receiver::start(|_, _| (StatusCode::OK, vec![], String::new())).await;
    let mut config = h.config(vec![keyword_rule("fire", &["fire"])]);
    config.destinations = vec![
        refusing.destination("ops"),
        accepting.destination("archive"),
    ];
    let _service = h.start(config);
    let call = h.publish(&transcript(1, "fire")).await;
    eventually(PATIENCE, "the refusal dead-lettered", || async {
        let settled = h.settled(STREAM_ALERTS, &delivery_consumer("ops")).await;
        let letters = stream_messages(&h.js, STREAM_DEAD_LETTERS).await;
        (settled && letters == 1 && accepting.accepted().len() == 1).then_some(())
    })
    .await;

    let store = bcfy_deadletters::letters::Store::open(h.js.clone())
        .await
        .unwrap();
    let letters = store
        .read(&bcfy_deadletters::filter::Filter::default(), true)
        .await
        .unwrap();
    let options = bcfy_deadletters::redrive::Options {
        dry_run: false,
        rate: 100.0,
        purge: false,
    };
    bcfy_deadletters::redrive::run(&store, &letters, options, |_, _| {})
        .await
        .unwrap();
    eventually(PATIENCE, "the redriven alert delivered to ops", || async {
        let settled = h.settled(STREAM_ALERTS, &delivery_consumer("ops")).await
            && h.settled(STREAM_ALERTS, &delivery_consumer("archive"))
                .await;
        (settled && refusing.accepted().len() == 1).then_some(())
    })
    .await;
    let again = &refusing.accepted()[0];
    assert_eq!(
        again.headers[IDEMPOTENCY_HEADER],
        format!("fire.{call}").as_str()
    );
    assert_eq!(
        accepting.received().len(),
        1,
        "the other destination had it already"
    );
}

#[tokio::test]
async fn chat_destinations_get_their_own_format() {
    let h = harness().await;
    let receiver = Receiver::start(|_, _| (StatusCode::OK, vec![], "ok".into())).await;
    let mut config = h.config(vec![keyword_rule("fire", &["working fire"])]);
    config.console_url = Some("https://radio.example.org/".parse().unwrap());
    config.destinations = [
        ("slack", DestinationKind::Slack),
        ("discord", DestinationKind::Discord),
        ("teams", DestinationKind::Teams),
    ]
    .into_iter()
    .map(|(name, kind)| DestinationConfig {
        kind,
        ..receiver.destination(name)
    })
    .collect();
    let _service = h.start(config);
    let call = h.publish(&transcript(1, "We have a working fire.")).await;
    eventually(PATIENCE, "three deliveries", || async {
        (receiver.accepted().len() == 3).then_some(())
    })
    .await;
    let link = format!("https://radio.example.org/#/call/{call}");
    let mut seen = Vec::new();
    for request in receiver.accepted() {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert!(request.headers.get(SIGNATURE_HEADER).is_none());
        if let Some(text) = body["text"].as_str() {
            assert!(text.contains("> We have a working fire."), "{text}");
            assert!(text.contains(&format!("<{link}|Open the call>")), "{text}");
            seen.push("slack");
        } else if let Some(content) = body["content"].as_str() {
            assert!(
                content.contains(&format!("[Open the call]({link})")),
                "{content}"
            );
            seen.push("discord");
        } else {
            let card = &body["attachments"][0]["content"];
            assert_eq!(card["actions"][0]["url"], link.as_str());
            seen.push("teams");
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, ["discord", "slack", "teams"]);
}
