//! Sweeps: a request reaching `look_back` behind the cursor every `look_back_interval`, run
//! beside the polls, for calls that turned up after the polls passed their time.

use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use super::failure::PollError;
use super::publish::identity_id;
use super::{Progress, ShardPoller, query};
use crate::recent::Fingerprint;

impl ShardPoller {
    /// Starts a sweep (`look_back` behind the cursor) in the background when one is due and
    /// the request budget allows; it leaves out the calls published so far.
    pub(super) async fn start_sweep_if_due(&self, progress: &mut Progress) {
        let Some(cursor) = progress.cursor else {
            return;
        };
        let in_flight = progress.sweep.is_some();
        if !query::sweep_due(
            progress.last_sweep,
            self.producer.look_back_interval,
            in_flight,
        ) {
            return;
        }
        if !matches!(self.gate.try_take().await, Ok(None)) {
            // Budget spent (or the gate unreachable): the next poll tries again.
            return;
        }
        let selector = self.selector.borrow().clone();
        let query = query::sweep_query(&selector, cursor, self.producer.look_back);
        let known = progress.recent.snapshot();
        let client = self.client.clone();
        let span = tracing::info_span!("sweep", shard = %self.name);
        progress.last_sweep = Some(Instant::now());
        progress.sweep = Some(AbortOnDropHandle::new(tokio::spawn(
            async move {
                client
                    .live_calls_except(&query, |call| {
                        known.contains(&Fingerprint::of(&identity_id(call)))
                    })
                    .await
            }
            .instrument(span),
        )));
    }

    /// Publishes a finished sweep's late calls; a failed sweep fails the poll (its back-off and
    /// auth handling apply) and is retried at the next one.
    pub(super) async fn finish_sweep_if_done(
        &mut self,
        progress: &mut Progress,
    ) -> Result<(), PollError> {
        let Some(sweep) = progress.sweep.take_if(|sweep| sweep.is_finished()) else {
            return Ok(());
        };
        match sweep.await {
            Ok(Ok(answer)) => self.publish_answer(answer, progress, Vec::new()).await,
            Ok(Err(error)) => {
                progress.last_sweep = None;
                Err(error.into())
            }
            Err(error) => {
                progress.last_sweep = None;
                tracing::warn!(error = %error, shard = %self.name, "A sweep did not finish; retrying.");
                Ok(())
            }
        }
    }
}
