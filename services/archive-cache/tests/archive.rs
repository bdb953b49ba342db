//! The archive cache against a real nats-server and `bcfy-sim`, through a real gRPC client on
//! loopback (and the NATS service): hits and misses, freshness of closed and current blocks, one
//! upstream request for 100 concurrent askers on two replicas, every error mapping, the range
//! stream, and the NATS reply carrying the same bytes as gRPC.

use std::time::{Duration, SystemTime};

use bcfy_archive_cache::ArchiveCacheError;
use bcfy_archive_cache::config::{ArchiveCacheConfig, CacheConfig};
use bcfy_broadcastify::ClientConfig;
use bcfy_bus::connect::NatsConfig;
use bcfy_proto::archive_service_client::ArchiveServiceClient;
use bcfy_proto::{GetArchivedCallsRequest, GetArchivedCallsResponse, StreamArchivedCallsRequest};
use bcfy_simulator::faults::{Fault, RetryAfter, Route};
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually, metric};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

const SID: i64 = 7001;
const TG: i64 = 2345;
const BLOCK: i64 = 1800;
const PATIENCE: Duration = Duration::from_secs(20);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A block that ended hours ago, and the one now filling.
fn closed_block() -> i64 {
    let now = now();
    now - now.rem_euclid(BLOCK) - 4 * BLOCK
}

fn current_block() -> i64 {
    let now = now();
    now - now.rem_euclid(BLOCK)
}

struct World {
    nats: NatsServer,
    sim: Simulator,
}

struct Replica {
    service: ServiceUnderTest<ArchiveCacheError>,
    grpc: ArchiveServiceClient<Channel>,
    url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl World {
    async fn new() -> World {
        let nats = NatsServer::start().await;
        let sim = Simulator::start(SimConfig::for_tests()).await.unwrap();
        for (block, calls) in [
            (closed_block(), 3),
            (closed_block() + BLOCK, 2),
            (current_block(), 1),
        ] {
            for i in 0..calls {
                sim.add_call(CallSpec {
                    talkgroup: Some((SID, TG)),
                    ts: Some(block + 60 * (i + 1)),
                    ..CallSpec::default()
                });
            }
        }
        World { nats, sim }
    }

    fn config(&self) -> ArchiveCacheConfig {
        let sim = self.sim.config();
        ArchiveCacheConfig {
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                ..NatsConfig::default()
            },
            broadcastify: ClientConfig {
                username: Some(sim.username.clone()),
                password: Some(sim.password.clone().into()),
                ..ClientConfig::default()
            }
            .with_origin(url::Url::parse(&self.sim.url()).unwrap()),
            grpc: bcfy_archive_cache::config::GrpcConfig {
                listen_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                tls: None,
            },
            ..ArchiveCacheConfig::default()
        }
    }

    async fn start(&self, config: ArchiveCacheConfig) -> Replica {
        let url = format!("http://{}", config.grpc.listen_addr);
        // The port opens once the service is set up (its NATS API too): connecting is the wait.
        let service = ServiceUnderTest::start("archive-cache", config, bcfy_archive_cache::run);
        let grpc = eventually(PATIENCE, "the gRPC port", || async {
            ArchiveServiceClient::connect(url.clone()).await.ok()
        })
        .await;
        Replica { service, grpc, url }
    }

    /// Archive requests the simulator answered.
    fn upstream_requests(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.uri.starts_with("/calls/apis/archivecall.php"))
            .count()
    }
}

async fn get(
    grpc: &mut ArchiveServiceClient<Channel>,
    time: i64,
) -> Result<bcfy_proto::ArchiveResult, tonic::Status> {
    grpc.get_archived_calls(GetArchivedCallsRequest {
        sid: SID,
        talkgroup: TG,
        time,
    })
    .await
    .map(|r| r.into_inner().result.expect("a result"))
}

#[tokio::test]
async fn a_block_is_fetched_once_then_served_from_the_cache() {
    let world = World::new().await;
    let mut replica = world.start(world.config()).await;
    let block = closed_block();
    let first = get(&mut replica.grpc, block + 1_000).await.unwrap();
    assert!(!first.cache_hit);
    assert_eq!(first.calls.len(), 3);
    let window = first.window.unwrap();
    assert_eq!((window.start, window.end), (block, block + BLOCK));
    let second = get(&mut replica.grpc, block).await.unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.calls, first.calls);
    assert_eq!(
        second.fetched_at, first.fetched_at,
        "the original fetch time"
    );
    assert_eq!(world.upstream_requests(), 1);
    let lookups = |outcome| {
        metric(
            replica.service.registry(),
            "bcfy_archive_cache_lookups_total",
            Some(("outcome", outcome)),
        )
    };
    assert_eq!((lookups("miss"), lookups("hit")), (1.0, 1.0));
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn the_current_block_goes_stale_quickly_and_a_closed_one_does_not() {
    let world = World::new().await;
    let config = ArchiveCacheConfig {
        cache: CacheConfig {
            current_ttl: Duration::from_secs(1),
            closed_ttl: Duration::from_secs(3600),
            ..CacheConfig::default()
        },
        ..world.config()
    };
    let mut replica = world.start(config).await;
    get(&mut replica.grpc, current_block()).await.unwrap();
    get(&mut replica.grpc, closed_block()).await.unwrap();
    assert_eq!(world.upstream_requests(), 2);
    // After the current block's freshness has passed, only it is asked for again.
    let current = eventually(PATIENCE, "the current block to go stale", || async {
        let mut grpc = replica.grpc.clone();
        let result = get(&mut grpc, current_block()).await.unwrap();
        (!result.cache_hit).then_some(result)
    })
    .await;
    assert_eq!(current.calls.len(), 1);
    assert!(
        get(&mut replica.grpc, closed_block())
            .await
            .unwrap()
            .cache_hit
    );
    assert_eq!(world.upstream_requests(), 3);
    assert_eq!(
        metric(
            replica.service.registry(),
            "bcfy_archive_cache_lookups_total",
            Some(("outcome", "stale"))
        ),
        1.0
    );
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn a_hundred_concurrent_askers_on_two_replicas_make_one_upstream_request() {
    let world = World::new().await;
    // A slow upstream answer keeps every asker waiting on the same fetch.
    world
        .sim
        .inject(Route::Archive, Fault::Slow(Duration::from_millis(500)));
    let replicas = [
        world.start(world.config()).await,
        world.start(world.config()).await,
    ];
    let block = closed_block();
    let askers: Vec<_> = (0..100)
        .map(|i| {
            let mut grpc = replicas[i % 2].grpc.clone();
            tokio::spawn(async move { get(&mut grpc, block + i as i64).await })
        })
        .collect();
    let mut results = Vec::new();
    for asker in askers {
        results.push(asker.await.unwrap().unwrap());
    }
    assert_eq!(world.upstream_requests(), 1, "one request for every asker");
    assert!(
        results
            .iter()
            .all(|r| r.calls == results[0].calls && r.calls.len() == 3)
    );
    assert_eq!(results.iter().filter(|r| !r.cache_hit).count(), 1);
    for replica in replicas {
        replica.service.stop().await.unwrap();
    }
}

#[tokio::test]
async fn errors_map_to_grpc_codes() {
    let world = World::new().await;
    let mut replica = world.start(world.config()).await;
    let block = closed_block();

    let status = get(&mut replica.grpc, -5).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_tg = replica
        .grpc
        .get_archived_calls(GetArchivedCallsRequest {
            sid: SID,
            talkgroup: 0,
            time: block,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_tg.code(), Code::InvalidArgument);
    assert!(
        bad_tg.message().contains("talkgroup 0 must be positive"),
        "{bad_tg:?}"
    );

    world.sim.inject(Route::Archive, Fault::MalformedJson);
    let status = get(&mut replica.grpc, block).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("upstream_unreadable"),
        "{}",
        status.message()
    );

    // 403 even after the client's fresh login: the account has no archive access.
    world.sim.inject_times(
        Route::Archive,
        Fault::Status {
            status: 403,
            retry_after: None,
        },
        2,
    );
    let status = get(&mut replica.grpc, block).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    world.sim.inject(
        Route::Archive,
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::Seconds(30)),
        },
    );
    let status = get(&mut replica.grpc, block).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.metadata().get("retry-after-ms").unwrap(), "30000");
    // The back-off is shared: the next request does not reach the upstream at all.
    let before = world.upstream_requests();
    let status = get(&mut replica.grpc, block + BLOCK).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.metadata().get("retry-after-ms").is_some());
    assert_eq!(world.upstream_requests(), before);
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn a_range_is_streamed_block_after_block() {
    let world = World::new().await;
    let mut replica = world.start(world.config()).await;
    let block = closed_block();
    let mut stream = replica
        .grpc
        .stream_archived_calls(StreamArchivedCallsRequest {
            sid: SID,
            talkgroup: TG,
            start: block + 10,
            end: block + 2 * BLOCK + 10,
        })
        .await
        .unwrap()
        .into_inner();
    let mut blocks = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        blocks.push(message.result.unwrap());
    }
    let starts: Vec<i64> = blocks.iter().map(|b| b.window.unwrap().start).collect();
    assert_eq!(starts, [block, block + BLOCK, block + 2 * BLOCK]);
    assert_eq!(
        blocks.iter().map(|b| b.calls.len()).collect::<Vec<_>>(),
        [3, 2, 0]
    );
    let reversed = replica
        .grpc
        .stream_archived_calls(StreamArchivedCallsRequest {
            sid: SID,
            talkgroup: TG,
            start: block + BLOCK,
            end: block,
        })
        .await
        .unwrap_err();
    assert_eq!(reversed.code(), Code::InvalidArgument);
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn the_nats_service_answers_with_the_same_bytes_as_grpc() {
    let world = World::new().await;
    let mut replica = world.start(world.config()).await;
    let block = closed_block();
    // Warm the cache, so both answers below are hits.
    assert!(!get(&mut replica.grpc, block).await.unwrap().cache_hit);
    let grpc = get(&mut replica.grpc, block).await.unwrap();
    let nats = async_nats::connect(world.nats.url()).await.unwrap();
    let request = GetArchivedCallsRequest {
        sid: SID,
        talkgroup: TG,
        time: block,
    };
    let reply = nats
        .request("archive.get", request.encode_to_vec().into())
        .await
        .unwrap();
    let over_nats = GetArchivedCallsResponse::decode(reply.payload.clone()).unwrap();
    let over_grpc = GetArchivedCallsResponse { result: Some(grpc) };
    assert!(
        over_nats
            .result
            .as_ref()
            .is_some_and(|r| r.cache_hit && r.calls.len() == 3)
    );
    assert!(
        reply.payload.as_ref() == over_grpc.encode_to_vec().as_slice(),
        "the NATS reply differs from the gRPC answer"
    );

    // Errors carry the gRPC code in the service error headers.
    let bad = GetArchivedCallsRequest {
        sid: -1,
        talkgroup: TG,
        time: block,
    };
    let reply = nats
        .request("archive.get", bad.encode_to_vec().into())
        .await
        .unwrap();
    let headers = reply.headers.expect("error headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        (Code::InvalidArgument as i32).to_string()
    );
    // The message names the field, cause included.
    let message = headers.get("Nats-Service-Error").unwrap().as_str();
    assert!(message.contains("sid -1 must be positive"), "{message}");
    // A range in one answer.
    let range = StreamArchivedCallsRequest {
        sid: SID,
        talkgroup: TG,
        start: block,
        end: block + BLOCK,
    };
    let reply = nats
        .request("archive.range", range.encode_to_vec().into())
        .await
        .unwrap();
    let blocks = bcfy_proto::ArchiveRange::decode(reply.payload)
        .unwrap()
        .results;
    assert_eq!(
        blocks.iter().map(|b| b.calls.len()).collect::<Vec<_>>(),
        [3, 2]
    );
    // Discoverable with the standard service API.
    let ping = nats
        .request("$SRV.PING.archive-cache", "".into())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&ping.payload).contains("archive-cache"));
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let world = World::new().await;
    let replica = world.start(world.config()).await;
    let channel = Channel::from_shared(replica.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "broadcastify.v1.ArchiveService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let channel = Channel::from_shared(replica.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"broadcastify.v1.ArchiveService".to_owned()),
        "{names:?}"
    );
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn tls_with_client_certificates_admits_only_known_clients() {
    use bcfy_test_support::pki::Pki;
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let world = World::new().await;
    let pki = Pki::new();
    let mut config = world.config();
    config.grpc.tls = Some(bcfy_archive_cache::config::TlsConfig {
        cert_path: pki.server_cert_file(),
        key_path: pki.server_key_file(),
        client_ca_path: Some(pki.ca_file()),
    });
    let addr = config.grpc.listen_addr;
    let service = ServiceUnderTest::start("archive-cache", config, bcfy_archive_cache::run);
    eventually(PATIENCE, "the gRPC port", || async {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await;
    let tls = |ca: &Pki| {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.pem(&ca.ca_file())))
            .domain_name("localhost")
    };
    let identity = |of: &Pki| {
        Identity::from_pem(
            of.pem(&of.client_cert_file()),
            of.pem(&of.client_key_file()),
        )
    };
    let endpoint = Channel::from_shared(format!("https://{addr}")).unwrap();

    let known = endpoint
        .clone()
        .tls_config(tls(&pki).identity(identity(&pki)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let result = get(&mut ArchiveServiceClient::new(known), closed_block())
        .await
        .unwrap();
    assert_eq!(result.calls.len(), 3);

    // Without a client certificate, or with one of another CA, the handshake is refused; a
    // client that trusts another CA refuses the server.
    let other = Pki::other();
    for (what, client) in [
        ("no certificate", tls(&pki)),
        (
            "a certificate of another CA",
            tls(&pki).identity(identity(&other)),
        ),
        ("trust in another CA", tls(&other).identity(identity(&pki))),
    ] {
        let refused = match endpoint.clone().tls_config(client).unwrap().connect().await {
            Err(_) => true,
            Ok(channel) => get(&mut ArchiveServiceClient::new(channel), closed_block())
                .await
                .is_err(),
        };
        assert!(refused, "a client with {what} was served");
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn archive_requests_count_against_the_budget_the_poller_shares() {
    use bcfy_bus::topology::KV_UPSTREAM_BUDGET;
    let world = World::new().await;
    let config = ArchiveCacheConfig {
        rate_limit_per_minute: Some(3),
        budget_wait_max: Duration::ZERO,
        ..world.config()
    };
    let mut replica = world.start(config).await;
    let js = async_nats::jetstream::new(async_nats::connect(world.nats.url()).await.unwrap());
    // What a poller replica with the same limit does with the same bucket.
    let poller = bcfy_upstream::UpstreamGate::new(
        js.get_key_value(KV_UPSTREAM_BUDGET).await.unwrap(),
        Some(3),
    );
    let minute = || now() / 60;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let before = minute();
        while poller.try_take().await.unwrap().is_none() {}
        let answer = get(&mut replica.grpc, closed_block()).await;
        if minute() != before && attempts < 3 {
            continue; // a new minute's budget began mid-way; try again within one minute
        }
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let wait: u64 = status
            .metadata()
            .get("retry-after-ms")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait <= 60_000, "{wait}");
        break;
    }
    assert_eq!(
        world.upstream_requests(),
        0,
        "the spent budget kept the request from the upstream"
    );
    assert!(
        metric(
            replica.service.registry(),
            "bcfy_archive_cache_budget_waits_total",
            None
        ) >= 1.0
    );
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn the_cache_evicts_its_oldest_blocks_at_its_size_limit() {
    use bcfy_bus::topology::KV_ARCHIVE_CACHE;
    let world = World::new().await;
    let mut config = world.config();
    config.topology.archive_cache_max_bytes = bcfy_config::units::ByteSize(8 * 1024);
    // Only the shared bucket: no copy in the replica's memory.
    config.cache.memory_entries = 0;
    let mut replica = world.start(config).await;
    let js = async_nats::jetstream::new(async_nats::connect(world.nats.url()).await.unwrap());
    let block = closed_block();
    // Three calls (about 6 kB stored), then two (about 4 kB): more than the bucket holds.
    get(&mut replica.grpc, block).await.unwrap();
    get(&mut replica.grpc, block + BLOCK).await.unwrap();
    let mut stream = js
        .get_stream(format!("KV_{KV_ARCHIVE_CACHE}"))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert!(info.state.bytes <= 8 * 1024, "{} bytes", info.state.bytes);
    let store = js.get_key_value(KV_ARCHIVE_CACHE).await.unwrap();
    assert!(
        store
            .get(format!("block.{SID}.{TG}.{block}"))
            .await
            .unwrap()
            .is_none(),
        "the oldest entry is gone"
    );
    assert!(
        store
            .get(format!("block.{SID}.{TG}.{}", block + BLOCK))
            .await
            .unwrap()
            .is_some()
    );
    // An evicted block is simply fetched again.
    let again = get(&mut replica.grpc, block).await.unwrap();
    assert!(!again.cache_hit && again.calls.len() == 3);
    assert_eq!(world.upstream_requests(), 3);
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn a_stale_block_is_revalidated_with_the_upstream_etag() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig {
        archive_etag: true,
        ..SimConfig::for_tests()
    })
    .await
    .unwrap();
    sim.add_call(CallSpec {
        talkgroup: Some((SID, TG)),
        ts: Some(current_block() + 1),
        ..CallSpec::default()
    });
    let world = World { nats, sim };
    let config = ArchiveCacheConfig {
        cache: CacheConfig {
            current_ttl: Duration::from_secs(1),
            ..CacheConfig::default()
        },
        ..world.config()
    };
    let mut replica = world.start(config).await;
    let first = get(&mut replica.grpc, current_block()).await.unwrap();
    assert!(!first.cache_hit);
    let again = eventually(PATIENCE, "a revalidation", || async {
        let mut grpc = replica.grpc.clone();
        let result = get(&mut grpc, current_block()).await.unwrap();
        (world.upstream_requests() == 2).then_some(result)
    })
    .await;
    let archive_requests: Vec<_> = world
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.uri.starts_with("/calls/apis/archivecall.php"))
        .collect();
    let etag = archive_requests[1]
        .headers
        .iter()
        .find(|(name, _)| name == "if-none-match")
        .map(|(_, value)| value.clone());
    assert!(
        etag.is_some_and(|e| e.starts_with('"')),
        "{archive_requests:?}"
    );
    assert_eq!(archive_requests[1].status, 304);
    assert!(again.cache_hit, "a 304 serves the cached copy");
    assert_eq!(
        (again.calls.clone(), again.fetched_at),
        (first.calls, first.fetched_at)
    );
    assert_eq!(
        metric(
            replica.service.registry(),
            "bcfy_archive_cache_lookups_total",
            Some(("outcome", "revalidated"))
        ),
        1.0
    );
    replica.service.stop().await.unwrap();
}

#[tokio::test]
async fn askers_waiting_on_a_failed_fetch_share_its_error_instead_of_retrying_it() {
    let world = World::new().await;
    let replica = world.start(world.config()).await;
    // A slow failure, so that every asker is waiting on the first fetch when it fails; then
    // plain failures for anyone who asks again.
    let slow = Duration::from_millis(300);
    world.sim.inject(
        Route::Archive,
        Fault::SlowStatus {
            status: 500,
            after: slow,
        },
    );
    world.sim.inject_times(
        Route::Archive,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        10,
    );
    let block = closed_block();
    let askers: Vec<_> = (0..50)
        .map(|i| {
            let mut grpc = replica.grpc.clone();
            tokio::spawn(async move { get(&mut grpc, block + i).await })
        })
        .collect();
    for asker in askers {
        let status = asker.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    assert_eq!(
        world.upstream_requests(),
        1,
        "one request for 50 askers, failure included"
    );
    // A later request asks again: failures are shared, not cached.
    let mut grpc = replica.grpc.clone();
    assert_eq!(
        get(&mut grpc, block).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(world.upstream_requests(), 2);
    replica.service.stop().await.unwrap();
}
