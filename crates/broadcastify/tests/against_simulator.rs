//! The client against the simulator over real HTTP on loopback: no mocks between the two.

use std::time::Duration;

use bcfy_broadcastify::error::{AudioDownloadError, AuthenticationError, Endpoint, Error};
use bcfy_broadcastify::live::{GroupKey, LiveQuery, Selector};
use bcfy_broadcastify::{Client, ClientConfig};
use bcfy_simulator::{CallSpec, Fault, RetryAfter, Route, SimConfig, Simulator};
use url::Url;

const FIRE: GroupKey = GroupKey {
    sid: 7001,
    tg: 2345,
};
const LAW: GroupKey = GroupKey {
    sid: 7001,
    tg: 2346,
};
const OTHER_SYSTEM: GroupKey = GroupKey {
    sid: 7002,
    tg: 2345,
};

async fn simulator() -> Simulator {
    bcfy_test_support::trace_init();
    Simulator::start(SimConfig::for_tests()).await.unwrap()
}

fn config(sim: &Simulator) -> ClientConfig {
    let url = Url::parse(&sim.url()).unwrap();
    ClientConfig {
        username: Some(sim.config().username.clone()),
        password: Some(sim.config().password.clone().into()),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
    .with_origin(url)
}

fn client(sim: &Simulator) -> Client {
    Client::new(config(sim)).unwrap()
}

fn call_in(group: GroupKey) -> CallSpec {
    CallSpec {
        talkgroup: Some((group.sid, group.tg)),
        ..CallSpec::default()
    }
}

fn groups(keys: &[GroupKey]) -> LiveQuery {
    LiveQuery {
        selector: Selector::Groups(keys.to_vec()),
        position: None,
        init: true,
    }
}

fn keys_of(calls: &bcfy_broadcastify::LiveCalls) -> Vec<String> {
    calls
        .parsed
        .calls
        .iter()
        .map(|c| {
            let call = &c.call;
            format!(
                "{}-{}-{}",
                call.system_id.unwrap(),
                call.filename.as_deref().unwrap(),
                call.hash.as_deref().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn every_request_carries_the_browser_header_template() {
    let sim = simulator().await;
    let client = client(&sim);
    let entry = sim.add_call(call_in(FIRE));
    let live = client.live_calls(&groups(&[FIRE])).await.unwrap();
    client.archived_calls(FIRE, entry.start).await.unwrap();
    let url = client.audio_url(&live.parsed.calls[0].call).unwrap();
    client.download_audio(&url).await.unwrap();
    let session = client.ensure_session().await.unwrap();
    client.logout(&session).await.unwrap();

    let requests = sim.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r.uri.split('?').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/login/",
            "/calls/apis/live-calls",
            "/calls/apis/archivecall.php",
            url.path(),
            "/account/"
        ]
    );
    for request in &requests {
        let user_agent = request.header("user-agent").unwrap();
        assert!(
            user_agent.starts_with("Mozilla/5.0 (Macintosh;"),
            "{}",
            request.uri
        );
        assert!(request.header("accept").is_some(), "{}", request.uri);
        assert_eq!(
            request.header("accept-language"),
            Some("en-US,en;q=0.9"),
            "{}",
            request.uri
        );
        assert_eq!(
            request.header("connection"),
            Some("keep-alive"),
            "{}",
            request.uri
        );
        let encodings = request.header("accept-encoding").unwrap();
        for encoding in ["gzip", "br", "deflate"] {
            assert!(encodings.contains(encoding), "{}: {encodings}", request.uri);
        }
    }
    let login = &requests[0];
    assert_eq!(
        login.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(login.header("accept").unwrap().starts_with("text/html"));
    for xhr in &requests[1..3] {
        assert_eq!(
            xhr.header("x-requested-with"),
            Some("XMLHttpRequest"),
            "{}",
            xhr.uri
        );
        assert_eq!(
            xhr.header("origin"),
            Some(sim.url().as_str()),
            "{}",
            xhr.uri
        );
        assert_eq!(
            xhr.header("referer"),
            Some(format!("{}/calls/tg/7001/2345", sim.url()).as_str())
        );
        assert!(
            xhr.header("cookie").unwrap().starts_with("bcfyuser1="),
            "{}",
            xhr.uri
        );
    }
    assert!(
        requests[1]
            .header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert!(
        requests[3].header("cookie").is_none(),
        "the CDN needs no cookie"
    );
    assert!(
        requests[4]
            .header("cookie")
            .unwrap()
            .starts_with("bcfyuser1="),
        "logout sends it"
    );
}

#[tokio::test]
async fn login_success_bad_password_and_missing_cookie() {
    let sim = simulator().await;
    let token = client(&sim).authenticate().await.unwrap();
    assert!(!token.expose().is_empty());
    assert!(!format!("{token:?}").contains(token.expose()));

    let wrong = ClientConfig {
        password: Some("nope".to_owned().into()),
        ..config(&sim)
    };
    let error = Client::new(wrong)
        .unwrap()
        .authenticate()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Authentication(AuthenticationError::InvalidCredentials)
        ),
        "{error}"
    );
    assert!(!error.retry_hint().transient);

    sim.inject(Route::Login, Fault::NoCookie);
    let error = client(&sim).authenticate().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Authentication(AuthenticationError::MissingCookie)
        ),
        "{error}"
    );

    let anonymous = ClientConfig {
        username: None,
        password: None,
        ..config(&sim)
    };
    let error = Client::new(anonymous)
        .unwrap()
        .live_calls(&groups(&[FIRE]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Authentication(AuthenticationError::NoCredentials)
        ),
        "{error}"
    );
    assert_eq!(sim.login_count(), 1);
}

#[tokio::test]
async fn ten_concurrent_403s_cause_one_login() {
    let sim = simulator().await;
    sim.add_call(call_in(FIRE));
    let client = client(&sim);
    client.live_calls(&groups(&[FIRE])).await.unwrap();
    assert_eq!(sim.login_count(), 1);

    sim.expire_sessions();
    let polls = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.live_calls(&groups(&[FIRE])).await })
    });
    for poll in futures::future::join_all(polls).await {
        assert_eq!(poll.unwrap().unwrap().parsed.calls.len(), 1);
    }
    assert_eq!(sim.login_count(), 2, "one re-login for ten rejected polls");
}

#[tokio::test]
async fn every_selector_selects_what_it_names() {
    let sim = simulator().await;
    let fire = sim.add_call(call_in(FIRE));
    let law = sim.add_call(call_in(LAW));
    let other = sim.add_call(call_in(OTHER_SYSTEM));
    let client = client(&sim);

    let both = client.live_calls(&groups(&[FIRE, LAW])).await.unwrap();
    let mut keys = keys_of(&both);
    keys.sort();
    let mut expected = vec![fire.key.clone(), law.key.clone()];
    expected.sort();
    assert_eq!(keys, expected);

    let system = LiveQuery {
        selector: Selector::System { sid: 7002 },
        ..groups(&[])
    };
    assert_eq!(
        keys_of(&client.live_calls(&system).await.unwrap()),
        vec![other.key]
    );

    let node = LiveQuery {
        selector: Selector::Node {
            system_id: fire.system_id,
        },
        ..groups(&[])
    };
    assert!(keys_of(&client.live_calls(&node).await.unwrap()).contains(&fire.key));

    // A public playlist needs no login and sends no cookie.
    let anonymous = Client::new(ClientConfig {
        username: None,
        password: None,
        ..config(&sim)
    })
    .unwrap();
    let uuid = sim.world().playlist_uuid.clone();
    let playlist = LiveQuery {
        selector: Selector::Playlist { uuid },
        ..groups(&[])
    };
    let mut keys = keys_of(&anonymous.live_calls(&playlist).await.unwrap());
    keys.sort();
    assert_eq!(keys, expected, "the playlist holds system 7001");
    let last = sim.requests().pop().unwrap();
    assert!(last.header("cookie").is_none());
    assert_eq!(
        sim.login_count(),
        1,
        "only the protected selectors logged in"
    );
}

#[tokio::test]
async fn the_cursor_survives_empty_answers_and_late_calls_need_a_look_back() {
    let sim = simulator().await;
    let client = client(&sim);
    let first = sim.add_call(CallSpec {
        late_by: Some(Duration::from_secs(2)),
        ..call_in(FIRE)
    });
    let init = client.live_calls(&groups(&[FIRE])).await.unwrap();
    assert_eq!(keys_of(&init), vec![first.key.clone()]);
    assert_eq!(init.last_pos, Some(first.ts as f64));
    let cursor = init.next_position(None);
    assert_eq!(cursor, Some(first.ts as f64 + 1.0));

    let poll = |position| LiveQuery {
        position,
        init: false,
        ..groups(&[FIRE])
    };
    let empty = client.live_calls(&poll(cursor)).await.unwrap();
    assert!(empty.parsed.calls.is_empty());
    assert_eq!(empty.last_pos, None, "lastPos 0 on an empty answer");
    assert_eq!(empty.next_position(cursor), cursor, "the cursor stays");

    // A call published late, with a ts behind the cursor: the site's lastPos + 1 rule misses it.
    let late = sim.add_call(CallSpec {
        ts: Some(first.ts - 30),
        ..call_in(FIRE)
    });
    let missed = client.live_calls(&poll(cursor)).await.unwrap();
    assert!(!keys_of(&missed).contains(&late.key));
    // Polling with a look-back finds it (the poller dedups the repeats).
    let look_back = cursor.map(|c| c - 60.0);
    let found = client.live_calls(&poll(look_back)).await.unwrap();
    assert_eq!(
        keys_of(&found),
        [late.key.clone(), first.key.clone()],
        "ascending by ts"
    );
}

#[tokio::test]
async fn archive_blocks_are_floored_and_parsed() {
    let sim = simulator().await;
    let client = client(&sim);
    let entry = sim.add_call(call_in(FIRE));
    sim.add_call(call_in(LAW));
    let block = entry.start - entry.start.rem_euclid(1800);

    let archive = client.archived_calls(FIRE, block + 1799).await.unwrap();
    assert_eq!(archive.block, block);
    let uri = sim.requests().last().unwrap().uri.clone();
    assert!(
        uri.contains(&format!("s={block}")) && uri.contains("group=7001-2345"),
        "{uri}"
    );
    assert_eq!(archive.start, Some(block - 1));
    assert_eq!(archive.end, Some(block + 1800));
    assert_eq!(archive.parsed.calls.len(), 1);
    let call = &archive.parsed.calls[0].call;
    assert_eq!(call.score, call.ts);
    assert_eq!(call.call_tg, Some(2345));

    let next_block = client.archived_calls(FIRE, block + 1800).await.unwrap();
    assert!(next_block.parsed.calls.is_empty(), "selected by start time");
}

#[tokio::test]
async fn audio_resumes_after_a_cut_and_reports_truncation() {
    let sim = simulator().await;
    let client = client(&sim);
    let entry = sim.add_call(CallSpec {
        clip: Some(8),
        ..call_in(FIRE)
    });
    let live = client.live_calls(&groups(&[FIRE])).await.unwrap();
    let url = client.audio_url(&live.parsed.calls[0].call).unwrap();

    sim.inject(
        Route::Audio,
        Fault::TruncateAudio {
            after_bytes: 10_000,
        },
    );
    let file = client.download_audio(&url).await.unwrap();
    assert_eq!(file.resumes, 1);
    assert_eq!(
        file.sha256, entry.audio_sha256,
        "byte-identical after the resume"
    );
    assert_eq!(file.bytes.len(), entry.audio_bytes);
    assert_eq!(file.content_type.as_deref(), Some("audio/mp4"));
    let resume = sim.requests().pop().unwrap();
    let range = resume.header("range").expect("resumed with Range");
    let offset: usize = range
        .strip_prefix("bytes=")
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(offset > 0 && offset <= 10_000, "{range}");

    sim.inject_times(Route::Audio, Fault::TruncateAudio { after_bytes: 100 }, 4);
    let error = client.download_audio(&url).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::AudioDownload(AudioDownloadError::Truncated { .. })
        ),
        "{error}"
    );
    assert!(error.retry_hint().transient);

    sim.inject(
        Route::Audio,
        Fault::SlowBody {
            chunk: 4096,
            pause: Duration::from_millis(20),
        },
    );
    assert_eq!(
        client.download_audio(&url).await.unwrap().sha256,
        entry.audio_sha256
    );
}

#[tokio::test]
async fn streamed_audio_comes_in_ordered_pieces_across_a_cut() {
    let sim = simulator().await;
    let client = client(&sim);
    let entry = sim.add_call(CallSpec {
        clip: Some(8),
        ..call_in(FIRE)
    });
    let live = client.live_calls(&groups(&[FIRE])).await.unwrap();
    let url = client.audio_url(&live.parsed.calls[0].call).unwrap();
    sim.inject(
        Route::Audio,
        Fault::TruncateAudio {
            after_bytes: 10_000,
        },
    );
    let mut download = client.audio_download(&url, 4096);
    let mut pieces = Vec::new();
    while let Some(piece) = download.next_piece().await.unwrap() {
        pieces.push(piece);
    }
    let end = pieces.last().unwrap().end.clone().unwrap();
    assert_eq!((end.resumes, end.size), (1, entry.audio_bytes as u64));
    assert_eq!(end.sha256, entry.audio_sha256);
    assert_eq!(pieces.len(), entry.audio_bytes.div_ceil(4096));
    let mut offset = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        assert_eq!((piece.sequence as usize, piece.offset), (i, offset));
        assert_eq!(
            piece.end.is_some(),
            last,
            "only the last piece ends the file"
        );
        assert!(last || piece.bytes.len() == 4096);
        offset += piece.bytes.len() as u64;
    }
    assert_eq!(offset, end.size);
}

#[tokio::test]
async fn cdn_404_until_the_audio_is_published() {
    let sim = simulator().await;
    let client = client(&sim);
    let entry = sim.add_call(CallSpec {
        audio_lag: Some(Duration::from_millis(800)),
        ..call_in(FIRE)
    });
    let live = client.live_calls(&groups(&[FIRE])).await.unwrap();
    let url = client.audio_url(&live.parsed.calls[0].call).unwrap();
    let error = client.download_audio(&url).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::AudioDownload(AudioDownloadError::NotFound { .. })
        ),
        "{error}"
    );
    assert_eq!(error.kind(), "cdn_not_found");
    let file = bcfy_test_support::eventually(Duration::from_secs(5), "the audio", || async {
        client.download_audio(&url).await.ok()
    })
    .await;
    assert_eq!(file.sha256, entry.audio_sha256);
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date() {
    let sim = simulator().await;
    let client = client(&sim);
    client.ensure_session().await.unwrap();

    sim.inject(
        Route::LiveCalls,
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::Seconds(7)),
        },
    );
    let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
    assert!(matches!(
        error,
        Error::Status {
            status: 429,
            endpoint: Endpoint::LiveCalls,
            ..
        }
    ));
    assert_eq!(error.retry_hint().retry_after, Some(Duration::from_secs(7)));
    assert!(error.retry_hint().transient);

    sim.inject(
        Route::LiveCalls,
        Fault::Status {
            status: 503,
            retry_after: Some(RetryAfter::DateIn(Duration::from_secs(30))),
        },
    );
    let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
    let wait = error.retry_hint().retry_after.unwrap();
    assert!(
        (Duration::from_secs(28)..=Duration::from_secs(32)).contains(&wait),
        "{wait:?}"
    );

    sim.inject(
        Route::LiveCalls,
        Fault::Status {
            status: 429,
            retry_after: None,
        },
    );
    let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
    assert_eq!(error.retry_hint().retry_after, None);
    assert_eq!(error.kind(), "rate_limited");
}

#[tokio::test]
async fn malformed_json_and_resets_are_typed_errors() {
    let sim = simulator().await;
    sim.add_call(call_in(FIRE));
    let client = client(&sim);
    client.ensure_session().await.unwrap();

    sim.inject(Route::LiveCalls, Fault::MalformedJson);
    let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::ResponseParsing {
                endpoint: Endpoint::LiveCalls,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.retry_hint().transient);

    sim.inject(Route::LiveCalls, Fault::Reset);
    let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                endpoint: Endpoint::LiveCalls,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.retry_hint().transient);

    assert_eq!(
        client
            .live_calls(&groups(&[FIRE]))
            .await
            .unwrap()
            .parsed
            .calls
            .len(),
        1
    );
}

#[tokio::test]
async fn a_long_answer_comes_out_in_batches_without_the_calls_already_known() {
    let sim = simulator().await;
    let client = client(&sim);
    // About 2 kB each: the body arrives in several pieces.
    let made: Vec<_> = (0..300).map(|_| sim.add_call(call_in(FIRE))).collect();
    let known: std::collections::HashSet<String> =
        made.iter().take(100).map(|c| c.key.clone()).collect();
    let is_known = |call: &bcfy_broadcastify::CallIdentity<'_>| {
        let key = format!(
            "{}-{}-{}",
            call.system_id.unwrap(),
            call.filename.as_deref().unwrap(),
            call.hash.as_deref().unwrap()
        );
        known.contains(&key)
    };
    let query = LiveQuery {
        position: Some(0.0),
        init: false,
        ..groups(&[FIRE])
    };
    let mut answer = client.live_answer(&query).await.unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = answer.next_calls(10, is_known).await.unwrap() {
        assert!(batch.rejected.is_empty());
        batches.push(keys_of(&bcfy_broadcastify::LiveCalls {
            parsed: batch,
            known: 0,
            last_pos: None,
            server_time: None,
        }));
    }
    let rest = answer.finish(is_known).await.unwrap();

    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert!(
        sizes.len() >= 2,
        "200 new calls in batches of at least 10: {sizes:?}"
    );
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n >= 10),
        "{sizes:?}"
    );
    let mut handed_out: Vec<String> = batches.into_iter().flatten().collect();
    handed_out.sort();
    let mut expected: Vec<String> = made.iter().skip(100).map(|c| c.key.clone()).collect();
    expected.sort();
    assert_eq!(handed_out, expected, "every new call once");
    assert!(rest.parsed.calls.is_empty(), "nothing left over");
    assert_eq!(rest.known, 100);
    assert_eq!(
        rest.last_pos,
        made.iter().map(|c| c.ts as f64).reduce(f64::max)
    );
}

#[tokio::test]
async fn a_live_answer_may_outlast_the_request_timeout_but_not_stall_that_long() {
    let sim = simulator().await;
    for _ in 0..3 {
        sim.add_call(call_in(FIRE));
    }
    let timeout = Duration::from_secs(1);
    let client = Client::new(ClientConfig {
        request_timeout: timeout,
        ..config(&sim)
    })
    .unwrap();
    client.ensure_session().await.unwrap();

    // Three calls of about 2 kB in pieces of 512 bytes a quarter-second apart: the answer takes
    // well over the request timeout, but never waits that long for its next bytes.
    sim.inject(
        Route::LiveCalls,
        Fault::SlowBody {
            chunk: 512,
            pause: Duration::from_millis(250),
        },
    );
    let started = tokio::time::Instant::now();
    let answer = client.live_calls(&groups(&[FIRE])).await.unwrap();
    assert_eq!(answer.parsed.calls.len(), 3);
    assert!(
        started.elapsed() > timeout,
        "the answer took {:?}, not longer than the request timeout",
        started.elapsed()
    );

    // A wait as long as the request timeout, for the next bytes or for the headers, is a stall.
    for stall in [
        Fault::SlowBody {
            chunk: 512,
            pause: timeout.mul_f64(1.5),
        },
        Fault::Slow(timeout.mul_f64(1.5)),
    ] {
        sim.inject(Route::LiveCalls, stall.clone());
        let error = client.live_calls(&groups(&[FIRE])).await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::Stalled {
                    endpoint: Endpoint::LiveCalls,
                    after
                } if after == timeout
            ),
            "{stall:?}: {error}"
        );
        assert!(error.retry_hint().transient);
        assert_eq!(error.kind(), "stalled");
    }
}
