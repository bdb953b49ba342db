//! Shards that follow a county: its trunked talkgroups are looked up in the directory service
//! (`directory.county` over NATS) before the shard's first poll, and again every
//! `directory_refresh`; a change is logged with what was added and removed and applies from the
//! next poll. Until the first lookup succeeds the shard does not poll and `/readyz` names
//! `directory`; a failed refresh keeps the talkgroups it had.

use std::collections::BTreeSet;
use std::time::Duration;

use bcfy_broadcastify::{GroupKey, Selector};
use bcfy_directory::nats_api::Client;
use bcfy_directory::shards::{self, Choice};
use bcfy_runtime::admin::ReadinessLatch;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// First wait after a failed first lookup; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// Longest wait between first-lookup attempts.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// One county shard's lookups.
#[derive(Debug)]
pub(crate) struct CountyShard {
    pub(crate) shard: String,
    pub(crate) ctid: i64,
    pub(crate) tags: Vec<String>,
    pub(crate) directory: Client,
    pub(crate) refresh: Duration,
    pub(crate) latch: ReadinessLatch,
}

impl CountyShard {
    /// The county's talkgroups as a selector.
    async fn lookup(&self) -> Result<Vec<GroupKey>, String> {
        let county = self
            .directory
            .county(self.ctid)
            .await
            .map_err(|error| bcfy_bus::consume::error_chain(&error))?;
        let choice = Choice {
            groups: Vec::new(),
            tags: self.tags.clone(),
        };
        let groups: Vec<GroupKey> = shards::chosen(&county, &choice)
            .into_iter()
            .map(|t| GroupKey {
                sid: t.sid,
                tg: t.tg,
            })
            .collect();
        if groups.is_empty() {
            return Err(format!(
                "county {} has no trunked talkgroup{}",
                self.ctid,
                if self.tags.is_empty() {
                    String::new()
                } else {
                    format!(" tagged {:?}", self.tags)
                }
            ));
        }
        Ok(groups)
    }

    /// Looks the county up until it succeeds (false: shutdown came first) and gives its
    /// talkgroups to the shard through `selector`, then keeps them fresh in the background.
    pub(crate) async fn follow(
        self,
        selector: watch::Sender<Selector>,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut wait = RETRY_FIRST;
        let groups = loop {
            match self.lookup().await {
                Ok(groups) => break groups,
                Err(reason) => {
                    tracing::error!(shard = %self.shard, county = self.ctid, reason, retry_in = ?wait, "Cannot look the shard's county up in the directory; the shard waits.");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        };
        tracing::info!(shard = %self.shard, county = self.ctid, talkgroups = groups.len(), "Shard follows its county's talkgroups.");
        self.latch.set_ready();
        selector.send_replace(Selector::Groups(groups));
        tokio::spawn(self.refresh(selector, shutdown.clone()));
        true
    }

    async fn refresh(self, sender: watch::Sender<Selector>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.refresh) => {}
            }
            match self.lookup().await {
                Ok(groups) => {
                    let before = match &*sender.borrow() {
                        Selector::Groups(groups) => keys(groups),
                        _ => BTreeSet::new(),
                    };
                    let after = keys(&groups);
                    if before != after {
                        let added: Vec<&String> = after.difference(&before).collect();
                        let removed: Vec<&String> = before.difference(&after).collect();
                        tracing::info!(shard = %self.shard, county = self.ctid, ?added, ?removed, "The county's talkgroups changed; the shard polls the new set.");
                        sender.send_replace(Selector::Groups(groups));
                    }
                }
                Err(reason) => {
                    tracing::warn!(shard = %self.shard, county = self.ctid, reason, "Cannot refresh the county's talkgroups; keeping the ones known.");
                }
            }
        }
    }
}

fn keys(groups: &[GroupKey]) -> BTreeSet<String> {
    groups
        .iter()
        .map(|g| format!("{}-{}", g.sid, g.tg))
        .collect()
}
