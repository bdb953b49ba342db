//! Rules against a real nats-server: a keyword fires its rule once however often the
//! transcript comes back; the ignore list, the cooldown and the max call age hold; a rule set
//! or changed in the `alert-rules` bucket applies to the next transcript without a restart, and
//! an invalid one is reported while the others work.

mod support;

use std::time::Duration;

use bcfy_alerter::rule::RuleSpec;
use bcfy_bus::topology::{CONSUMER_ALERTER, KV_ALERT_RULES, STREAM_TRANSCRIPTIONS};
use bcfy_proto::AlertMatchKind;
use bcfy_test_support::eventually;
use support::{PATIENCE, Transcript, fired, harness, keyword_rule, transcript};

#[tokio::test]
async fn a_keyword_fires_its_rule_once_however_often_the_transcript_comes_back() {
    let h = harness().await;
    let rules = vec![keyword_rule("engine-12", &["engine 12"])];
    let service = h.start(h.config(rules.clone()));
    let call = h
        .publish(&transcript(1, "Engine twelve, respond to Main and 5th."))
        .await;
    h.publish(&transcript(2, "Engine 120 on scene.")).await;
    let alerts = h.alerts_once_settled().await;
    assert_eq!(fired(&alerts), [("engine-12".to_owned(), call.to_string())]);
    let (subject, alert) = &alerts[0];
    assert_eq!(subject, &format!("alerts.engine-12.7001.2345.{call}"));
    assert_eq!(alert.id, format!("engine-12.{call}"));
    assert_eq!(alert.matches.len(), 1);
    let matched = &alert.matches[0];
    assert_eq!(matched.kind(), AlertMatchKind::Keyword);
    assert_eq!(matched.text, "Engine twelve");
    let text = &alert.transcript.as_ref().unwrap().text;
    assert_eq!(
        &text[matched.start as usize..matched.end as usize],
        "Engine twelve"
    );
    assert_eq!(
        service.metric("bcfy_alerter_alerts_total", Some(("rule", "engine-12"))),
        1.0
    );

    // Every transcript delivered again from the start: a new consumer after a restart.
    service.stop().await.unwrap();
    h.js.get_stream(STREAM_TRANSCRIPTIONS)
        .await
        .unwrap()
        .delete_consumer(CONSUMER_ALERTER)
        .await
        .unwrap();
    let again = h.start(h.config(rules));
    let alerts = h.alerts_once_settled().await;
    assert_eq!(alerts.len(), 1, "one alert per rule and call: {alerts:?}");
    assert_eq!(
        again.metric(
            "bcfy_alerter_transcripts_total",
            Some(("outcome", "evaluated"))
        ),
        2.0,
        "both transcripts were evaluated again"
    );
}

#[tokio::test]
async fn the_ignore_list_cooldown_and_max_call_age_hold() {
    let h = harness().await;
    let rule = RuleSpec {
        ignore: vec!["drill".into()],
        cooldown: Duration::from_secs(600),
        max_call_age: Duration::from_secs(1200),
        ..keyword_rule("fire", &["structure fire"])
    };
    let service = h.start(h.config(vec![rule]));
    let first = h
        .publish(&Transcript {
            age: 900,
            ..transcript(1, "Structure fire, 12 Elm Street.")
        })
        .await;
    // Ten minutes later on the same talkgroup: cooling down.
    h.publish(&Transcript {
        age: 400,
        ..transcript(2, "Second alarm for the structure fire.")
    })
    .await;
    // The same minute on another talkgroup: its own cooldown.
    let other = h
        .publish(&Transcript {
            age: 400,
            tg: 9001,
            ..transcript(3, "structure fire on the east side")
        })
        .await;
    // Outside the cooldown, but a drill.
    h.publish(&transcript(4, "This is a structure fire drill."))
        .await;
    // Outside the cooldown.
    let later = h
        .publish(&transcript(5, "Structure fire, Oak Avenue."))
        .await;
    // Too old to page anyone.
    h.publish(&Transcript {
        age: 3600,
        tg: 777,
        ..transcript(6, "structure fire")
    })
    .await;
    let alerts = h.alerts_once_settled().await;
    let mut got = fired(&alerts);
    got.sort();
    let mut expected = vec![
        ("fire".to_owned(), first.to_string()),
        ("fire".to_owned(), other.to_string()),
        ("fire".to_owned(), later.to_string()),
    ];
    expected.sort();
    assert_eq!(got, expected);
    let suppressed =
        |reason| service.metric("bcfy_alerter_suppressed_total", Some(("reason", reason)));
    assert_eq!(suppressed("cooldown"), 1.0);
    assert_eq!(suppressed("too_old"), 1.0);
}

#[tokio::test]
async fn a_rule_set_in_the_bucket_applies_without_a_restart() {
    let h = harness().await;
    let bucket = h.js.get_key_value(KV_ALERT_RULES).await.unwrap();
    bucket
        .put("alpha", "keywords: [alpha]\n".into())
        .await
        .unwrap();
    let service = h.start(h.config(vec![keyword_rule("from-file", &["file word"])]));
    eventually(PATIENCE, "the bucket's rule in force", || async {
        (service.metric("bcfy_alerter_rules", None) == 2.0).then_some(())
    })
    .await;
    let a1 = h.publish(&transcript(1, "alpha team, file word")).await;
    let alerts = h.alerts_once_settled().await;
    let mut got = fired(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            ("alpha".to_owned(), a1.to_string()),
            ("from-file".to_owned(), a1.to_string())
        ]
    );

    // Changed: it now wants "bravo"; and an invalid rule arrives beside it.
    bucket
        .put("alpha", "{\"keywords\": [\"bravo\"]}".into())
        .await
        .unwrap();
    bucket
        .put("broken", "keywords: [x]\nregex: \"(\"\n".into())
        .await
        .unwrap();
    eventually(PATIENCE, "the broken rule reported", || async {
        (service.metric("bcfy_alerter_rule_invalid", Some(("rule", "broken"))) == 1.0).then_some(())
    })
    .await;
    let a2 = h.publish(&transcript(2, "alpha team")).await;
    let b = h.publish(&transcript(3, "bravo team, file word")).await;
    let alerts = h.alerts_once_settled().await;
    let mut got = fired(&alerts);
    got.sort();
    let mut expected = vec![
        ("alpha".to_owned(), a1.to_string()),
        ("from-file".to_owned(), a1.to_string()),
        ("alpha".to_owned(), b.to_string()),
        ("from-file".to_owned(), b.to_string()),
    ];
    expected.sort();
    assert_eq!(got, expected, "{a2} matched the old rule");

    // Deleted: gone from the next transcript on.
    bucket.delete("alpha").await.unwrap();
    eventually(PATIENCE, "the rule removed", || async {
        (service.metric("bcfy_alerter_rules", None) == 1.0).then_some(())
    })
    .await;
    h.publish(&transcript(4, "bravo again")).await;
    assert_eq!(h.alerts_once_settled().await.len(), 4);
}
