//! The directory against the simulator over real HTTP and a real nats-server: what each level
//! holds, one upstream request per level across replicas, a stale answer (marked) while the
//! upstream is down, refusals that are never hidden behind the cache, the failures-in-a-row
//! gauge, and the NATS service's answers and error codes.

use std::sync::Arc;
use std::time::Duration;

mod common;

use async_nats::jetstream;
use bcfy_directory::metrics::Metrics;
use bcfy_directory::nats_api::{self, ClientError};
use bcfy_directory::{Directory, DirectoryError, UpstreamConfig, UpstreamError};
use bcfy_simulator::{Fault, Route, SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::isolated::metric;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

struct Setup {
    _nats: NatsServer,
    js: jetstream::Context,
    client: async_nats::Client,
    sim: Simulator,
}

async fn setup() -> Setup {
    let (nats, client, js) = common::nats().await;
    let sim = Simulator::start(SimConfig::for_tests()).await.expect("sim");
    Setup {
        _nats: nats,
        js,
        client,
        sim,
    }
}

impl Setup {
    async fn replica(
        &self,
        name: &str,
        upstream: UpstreamConfig,
        ttl: Duration,
    ) -> (Arc<Directory>, prometheus::Registry) {
        let (directory, _, registry) = common::replica(&self.js, name, upstream, ttl).await;
        (directory, registry)
    }

    /// Requests the simulator answered on a path starting with `prefix`.
    fn requests(&self, prefix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.uri.starts_with(prefix))
            .count()
    }
}

#[tokio::test]
async fn every_level_maps_the_upstream_and_keeps_what_it_does_not_map() {
    let setup = setup().await;
    let (directory, _) = setup
        .replica(
            "a",
            common::upstream_config(&setup.sim),
            Duration::from_secs(3600),
        )
        .await;

    let states = directory.states().await.expect("states");
    let names: Vec<&str> = states.states.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(names, ["CA", "NV", "TX"], "by name");
    assert_eq!(states.states[0].id, 6);
    assert_eq!(
        states.states[0]
            .extra_fields
            .get("country")
            .map(String::as_str),
        Some("\"US\"")
    );
    assert!(!states.freshness.expect("freshness").cache_hit);

    let counties = directory.counties(6).await.expect("counties");
    let counties: Vec<(i64, &str)> = counties
        .counties
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(counties, [(207, "Example County"), (208, "Quiet County")]);
    assert!(
        directory
            .counties(48)
            .await
            .expect("Texas")
            .counties
            .is_empty()
    );

    let county = directory.county(207).await.expect("county");
    let world = setup.sim.world();
    assert_eq!(county.talkgroups.len(), world.talkgroups.len());
    for (listed, simulated) in county.talkgroups.iter().zip(&world.talkgroups) {
        assert_eq!((listed.sid, listed.tg), (simulated.sid, simulated.tg));
        assert_eq!(listed.display, simulated.display);
        assert_eq!(listed.tag, simulated.tag_label);
        assert!(listed.extra_fields.contains_key("tagId"), "{listed:?}");
    }
    let systems: Vec<i64> = county.systems.iter().map(|s| s.sid).collect();
    assert_eq!(systems, [7001, 7002]);
    assert_eq!(county.systems[0].name, "Example County Trunked 1");
    let feeds: Vec<(i64, bool)> = county.feeds.iter().map(|f| (f.id, f.online)).collect();
    assert_eq!(feeds, [(31001, true), (31002, false)]);

    let feed = directory
        .feed(31001)
        .await
        .expect("feed")
        .feed
        .expect("a feed");
    assert_eq!(
        (feed.listeners, feed.name.as_str()),
        (42, "Example County Fire and EMS")
    );
    assert!(feed.extra_fields.contains_key("mount"));
}

#[tokio::test]
async fn a_level_is_asked_upstream_once_across_replicas_and_then_served_from_kv() {
    let setup = setup().await;
    let (a, registry) = setup
        .replica(
            "a",
            common::upstream_config(&setup.sim),
            Duration::from_secs(3600),
        )
        .await;
    let (b, _) = setup
        .replica(
            "b",
            common::upstream_config(&setup.sim),
            Duration::from_secs(3600),
        )
        .await;
    // Slow answers, so every asker arrives while the first fetch is in flight.
    setup
        .sim
        .inject_times(Route::Catalog, Fault::Slow(Duration::from_millis(300)), 2);
    let askers: Vec<_> = (0..8)
        .map(|n| {
            let replica = Arc::clone(if n % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { replica.county(207).await })
        })
        .collect();
    for asker in askers {
        let county = asker.await.expect("joined").expect("county");
        assert_eq!(county.talkgroups.len(), setup.sim.world().talkgroups.len());
    }
    assert_eq!(
        setup.requests("/audio/"),
        1,
        "one catalog request for eight askers"
    );
    assert_eq!(setup.requests("/calls/v1/groups/county/207"), 1);
    let again = a.county(207).await.expect("county");
    assert!(again.freshness.expect("freshness").cache_hit);
    assert_eq!(
        setup.requests("/audio/"),
        1,
        "a fresh level is not asked again"
    );
    assert_eq!(
        metric(
            &registry,
            "bcfy_directory_lookups_total",
            Some(("outcome", "hit"))
        ),
        1.0
    );
}

#[tokio::test]
async fn an_expired_level_is_served_stale_while_the_upstream_is_down_and_fresh_after() {
    let setup = setup().await;
    let (directory, registry) = setup
        .replica(
            "a",
            common::upstream_config(&setup.sim),
            Duration::from_secs(1),
        )
        .await;
    let fetched = directory.states().await.expect("states");
    // Past the TTL: the next lookup must ask the upstream, which is down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    setup.sim.inject_times(
        Route::Catalog,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    for failures in 1..=2 {
        let stale = directory.states().await.expect("served stale");
        let freshness = stale.freshness.expect("freshness");
        assert!(freshness.stale, "marked stale");
        assert!(
            freshness.stale_reason.contains("HTTP 503"),
            "{}",
            freshness.stale_reason
        );
        assert_eq!(
            freshness.fetched_at,
            fetched.freshness.as_ref().and_then(|f| f.fetched_at)
        );
        assert_eq!(stale.states, fetched.states);
        assert_eq!(
            metric(
                &registry,
                "bcfy_directory_upstream_consecutive_failures",
                Some(("api", "catalog"))
            ),
            f64::from(failures)
        );
    }
    let recovered = directory.states().await.expect("states");
    assert!(!recovered.freshness.expect("freshness").stale);
    assert_eq!(
        metric(
            &registry,
            "bcfy_directory_upstream_consecutive_failures",
            Some(("api", "catalog"))
        ),
        0.0
    );
    // With nothing cached, the outage is an error that says to try again.
    setup.sim.inject(
        Route::Catalog,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    assert!(matches!(
        directory.counties(6).await,
        Err(DirectoryError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn refused_credentials_and_unknown_ids_are_said_once_not_retried_or_hidden() {
    let setup = setup().await;
    let mut wrong_key = common::upstream_config(&setup.sim);
    wrong_key.catalog_key = Some(SecretString::from("not-the-key".to_owned()));
    let (good, _) = setup
        .replica(
            "a",
            common::upstream_config(&setup.sim),
            Duration::from_secs(1),
        )
        .await;
    good.states().await.expect("cached once");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (bad, registry) = setup.replica("b", wrong_key, Duration::from_secs(1)).await;
    let before = setup.requests("/audio/");
    let refused = bad.states().await;
    assert!(
        matches!(
            refused,
            Err(DirectoryError::PermissionDenied(
                UpstreamError::PermissionDenied { .. }
            ))
        ),
        "a refused key is not hidden behind the stale copy: {refused:?}"
    );
    assert_eq!(setup.requests("/audio/") - before, 1, "no retry loop");
    assert_eq!(
        metric(
            &registry,
            "bcfy_directory_upstream_errors_total",
            Some(("kind", "permission_denied"))
        ),
        1.0
    );

    let mut wrong_api_key = common::upstream_config(&setup.sim);
    wrong_api_key.api_key = Some(SecretString::from("forged".to_owned()));
    let (forged, registry) = setup
        .replica("c", wrong_api_key, Duration::from_secs(60))
        .await;
    assert!(matches!(
        forged.county(208).await,
        Err(DirectoryError::PermissionDenied(_))
    ));
    assert_eq!(
        metric(
            &registry,
            "bcfy_directory_upstream_consecutive_failures",
            Some(("api", "calls_api"))
        ),
        1.0
    );
    assert!(matches!(
        good.county(999).await,
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        good.feed(0).await,
        Err(DirectoryError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn the_nats_service_answers_each_lookup_and_says_why_it_cannot() {
    let setup = setup().await;
    let (directory, registry) = setup
        .replica(
            "a",
            common::upstream_config(&setup.sim),
            Duration::from_secs(3600),
        )
        .await;
    let metrics = Metrics::register(&prometheus::Registry::new()).expect("metrics");
    let api = nats_api::start(&setup.client).await.expect("service");
    let stop = CancellationToken::new();
    let served = tokio::spawn(api.serve(Arc::clone(&directory), metrics, stop.clone()));
    let client = nats_api::Client::new(setup.client.clone(), Duration::from_secs(10));

    assert_eq!(client.states().await.expect("states").states.len(), 3);
    assert_eq!(
        client.counties(32).await.expect("counties").counties[0].name,
        "Clark"
    );
    assert_eq!(client.county(207).await.expect("county").feeds.len(), 2);
    assert!(client.feed(31003).await.expect("feed").feed.is_some());
    match client.county(999).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, tonic::Code::NotFound);
            assert!(message.contains("no such county"), "{message}");
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    match client.counties(-1).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, tonic::Code::InvalidArgument),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    assert_eq!(
        metric(
            &registry,
            "bcfy_directory_lookups_total",
            Some(("level", "county"))
        ),
        2.0
    );
    stop.cancel();
    served.await.expect("joined").expect("stops cleanly");
}
