//! How much work the pipeline still holds: a test reads the streams only once nothing is left
//! in flight, so a late duplicate cannot slip in after the read.

use async_nats::jetstream::{self, consumer};
use bcfy_bus::topology::{
    CONSUMER_AUDIO_FETCHER, CONSUMER_TRANSCRIBER, STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE,
};

/// Messages a durable consumer has not finished (pending plus unacknowledged); `u64::MAX` when
/// it cannot be read.
pub async fn unfinished(js: &jetstream::Context, stream: &str, consumer: &str) -> u64 {
    let Ok(mut consumer) = js
        .get_consumer_from_stream::<consumer::pull::Config, _, _>(consumer, stream)
        .await
    else {
        return u64::MAX;
    };
    consumer
        .info()
        .await
        .map_or(u64::MAX, |i| i.num_pending + i.num_ack_pending as u64)
}

/// True when neither the audio fetcher nor the transcriber has anything left to do.
pub async fn pipeline_idle(js: &jetstream::Context) -> bool {
    unfinished(js, STREAM_CALLS_LIVE, CONSUMER_AUDIO_FETCHER).await == 0
        && unfinished(js, STREAM_CALLS_AUDIO, CONSUMER_TRANSCRIBER).await == 0
}
