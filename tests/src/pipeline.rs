//! The live pipeline for load runs: poller, audio fetcher and transcriber as processes, against
//! the simulator's every talkgroup and a fast fake STT, so what a run measures is the pipeline
//! (and whatever follows it), not a speech engine.

use std::path::Path;

use bcfy_simulator::Simulator;
use bcfy_test_support::FakeStt;
use bcfy_test_support::stt::Options;

use crate::Service;
use crate::yaml::{common, site};

/// The API key the fake STT expects.
pub const STT_KEY: &str = "bench-key";

/// The fake STT the transcriber is pointed at: answers at once, never fails.
pub async fn fake_stt() -> FakeStt {
    FakeStt::start(Options {
        key: Some(STT_KEY.to_owned()),
        ..Options::default()
    })
    .await
}

/// Starts the three services in `dir`; `poller` is extra poller config (e.g. `live_producer`),
/// `shared` extra config of all three (e.g. `topology`, which they must agree on), `log_filter`
/// their log level.
pub fn start(
    nats_url: &str,
    sim: &Simulator,
    stt: &FakeStt,
    poller: &str,
    shared: &str,
    log_filter: &str,
    dir: &Path,
) -> [Service; 3] {
    // Called once per service: each gets a free admin port of its own.
    let common = || format!("{}{shared}", common(nats_url, log_filter));
    let groups: Vec<String> = sim
        .world()
        .talkgroups
        .iter()
        .map(|t| format!("\"{}-{}\"", t.sid, t.tg))
        .collect();
    [
        Service::start(
            "poller",
            &format!(
                "{}{}{poller}shards:\n  - name: all\n    groups: [{}]\n",
                common(),
                site(sim, true),
                groups.join(", ")
            ),
            dir,
        ),
        Service::start(
            "audio-fetcher",
            &format!(
                "{}{}audio:\n  max_concurrency: 64\n",
                common(),
                site(sim, false)
            ),
            dir,
        ),
        Service::start(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\n  max_concurrency: 64\n",
                common(),
                stt.url()
            ),
            dir,
        ),
    ]
}
