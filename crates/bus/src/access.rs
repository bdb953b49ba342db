//! Who may do what on the bus: one NATS user per service with the publish and subscribe
//! permissions its own subjects, streams, consumers and KV buckets need, a read-only user for
//! consumers of the events (a newsroom), and the operator. Derived from the [`Topology`], so the
//! nats-server `authorization` block ([`authorization`]) cannot drift from what the code does.
//!
//! What every role gets:
//! - replies on its own inbox prefix only (`_INBOX_{role}.>`, see [`inbox_prefix`]), so no user
//!   reads the answers another gets (a KV read of the session cookie is such an answer);
//! - to look up and create the declared streams and buckets (every service ensures the whole
//!   topology at start, so start order does not matter); updating, purging or deleting a stream
//!   is the operator's alone;
//! - to publish its health on `status.{role}`.
//!
//! A role that reads a stream it does not consume durably is denied the pipeline's durable
//! consumers on it (it could otherwise change or delete them); the alerter's per-destination
//! consumers (`alert-delivery-{name}`) and per-shard pools (`transcriber-{pool}`) are named at
//! run time and are not covered by that denial (subject wildcards match whole tokens only).

use std::collections::BTreeSet;

use crate::subject;
use crate::topology::{
    CONSUMER_ALERTER, CONSUMER_AUDIO_FETCHER, CONSUMER_TRANSCRIBER, KV_ALERT_RULES, KV_ALERT_STATE,
    KV_ARCHIVE_CACHE, KV_DEADLETTER_REDRIVES, KV_DIRECTORY, KV_POLLER_CURSORS, KV_POLLER_LEASES,
    KV_UPSTREAM_BUDGET, KV_UPSTREAM_SESSION, STREAM_ALERTS, STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE,
    STREAM_DEAD_LETTERS, STREAM_TRANSCRIPTIONS, Topology,
};

/// Request subjects of the archive cache's NATS API (`archive.*`, its default prefix).
const ARCHIVE_API: &str = "archive";
/// Request subjects of the directory's NATS API (`directory.*`).
const DIRECTORY_API: &str = "directory";

/// A NATS user of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Polls Broadcastify and publishes live calls.
    Poller,
    /// Downloads each call's audio.
    AudioFetcher,
    /// Transcribes audio.
    Transcriber,
    /// Serves archived calls and the directory.
    ArchiveCache,
    /// Serves the events over HTTP.
    Gateway,
    /// Matches rules, delivers alerts, watches the system.
    Alerter,
    /// Reads the events and their history, changes nothing (a newsroom's consumer).
    Reader,
    /// Everything: redrives dead letters, changes stream limits, removes consumers.
    Operator,
}

/// What one user may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: BTreeSet<String>,
    /// Subjects it may not publish to although `publish` matches them.
    pub deny_publish: BTreeSet<String>,
    /// Subjects it may subscribe to.
    pub subscribe: BTreeSet<String>,
    /// Whether it may answer requests it received (a service endpoint).
    pub allow_responses: bool,
}

impl Role {
    /// Every role, in the order the authorization block lists them.
    pub const ALL: [Role; 8] = [
        Role::Poller,
        Role::AudioFetcher,
        Role::Transcriber,
        Role::ArchiveCache,
        Role::Gateway,
        Role::Alerter,
        Role::Reader,
        Role::Operator,
    ];

    /// The user name, which is also the service's name (and so its inbox prefix).
    pub fn name(self) -> &'static str {
        match self {
            Role::Poller => "poller",
            Role::AudioFetcher => "audio-fetcher",
            Role::Transcriber => "transcriber",
            Role::ArchiveCache => "archive-cache",
            Role::Gateway => "gateway",
            Role::Alerter => "alerter",
            Role::Reader => "reader",
            Role::Operator => "operator",
        }
    }

    /// Whether this is one of the services (not a person or a consumer of the events).
    pub fn is_service(self) -> bool {
        !matches!(self, Role::Reader | Role::Operator)
    }

    /// The environment variable nats-server reads this user's password from
    /// (`NATS_PASSWORD_AUDIO_FETCHER`); a bcrypt hash works too.
    pub fn password_variable(self) -> String {
        format!(
            "NATS_PASSWORD_{}",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// The inbox prefix a client connecting as `name` uses for replies (`_INBOX_{name}`); its user
/// may subscribe to nothing else of the kind.
pub fn inbox_prefix(name: &str) -> String {
    format!("_INBOX_{name}")
}

/// The permissions of `role` on `topology`.
pub fn permissions(role: Role, topology: &Topology) -> Permissions {
    let mut grant = Grant::default();
    if role == Role::Operator {
        grant.publish(">");
        grant.subscribe(">");
        grant.0.allow_responses = true;
        return grant.0;
    }
    grant.subscribe(&format!("{}.>", inbox_prefix(role.name())));
    if role != Role::Reader {
        grant.ensure(topology);
        grant.publish(&subject::status(role.name()));
    }
    match role {
        Role::Poller => {
            grant.publish(subject::ALL_LIVE);
            grant.watch_backlog(STREAM_CALLS_LIVE, CONSUMER_AUDIO_FETCHER);
            for bucket in [
                KV_POLLER_CURSORS,
                KV_POLLER_LEASES,
                KV_UPSTREAM_SESSION,
                KV_UPSTREAM_BUDGET,
            ] {
                grant.write_bucket(bucket);
            }
            grant.request(DIRECTORY_API);
            grant.dead_letters(subject::Stage::Poller);
        }
        Role::AudioFetcher => {
            grant.consume(STREAM_CALLS_LIVE);
            grant.publish(subject::ALL_AUDIO);
            grant.watch_backlog(STREAM_CALLS_AUDIO, CONSUMER_TRANSCRIBER);
            grant.dead_letters(subject::Stage::AudioFetcher);
        }
        Role::Transcriber => {
            // Its durable consumers, and the re-transcription jobs' ones, on the audio.
            grant.consume(STREAM_CALLS_AUDIO);
            grant.publish(subject::ALL_TRANSCRIPTIONS);
            // A revision is published after the last transcript of its call.
            grant.read_stream(STREAM_TRANSCRIPTIONS);
            grant.dead_letters(subject::Stage::Transcriber);
        }
        Role::ArchiveCache => {
            for bucket in [
                KV_ARCHIVE_CACHE,
                KV_DIRECTORY,
                KV_UPSTREAM_SESSION,
                KV_UPSTREAM_BUDGET,
            ] {
                grant.write_bucket(bucket);
            }
            // Its cache evicts the oldest blocks when full, set on the bucket at start.
            grant.api(&format!("STREAM.UPDATE.KV_{KV_ARCHIVE_CACHE}"));
            grant.serve(ARCHIVE_API);
            grant.serve(DIRECTORY_API);
            grant.dead_letters(subject::Stage::ArchiveCache);
        }
        Role::Gateway => {
            for stream in [STREAM_CALLS_LIVE, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS] {
                grant.read_stream(stream);
            }
            grant.request(DIRECTORY_API);
            grant.request(ARCHIVE_API);
        }
        Role::Alerter => {
            grant.consume(STREAM_TRANSCRIPTIONS);
            // Alerts, and their delivery to each destination.
            grant.publish(subject::ALL_ALERTS);
            grant.consume(STREAM_ALERTS);
            grant.read_bucket(KV_ALERT_RULES);
            grant.write_bucket(KV_ALERT_STATE);
            // The integration monitor: every service's health, the dead letters and whether
            // they were sent through again, every consumer's backlog.
            grant.subscribe(subject::ALL_STATUS);
            for stream in topology.streams() {
                grant.api(&format!("CONSUMER.LIST.{}", stream.name));
            }
            grant.read_stream(STREAM_DEAD_LETTERS);
            grant.read_bucket(KV_DEADLETTER_REDRIVES);
            grant.dead_letters(subject::Stage::Alerter);
        }
        Role::Reader => {
            for stream in [
                STREAM_CALLS_LIVE,
                STREAM_CALLS_AUDIO,
                STREAM_TRANSCRIPTIONS,
                STREAM_ALERTS,
            ] {
                grant.read_stream(stream);
            }
            for events in [
                subject::ALL_LIVE,
                subject::ALL_AUDIO,
                subject::ALL_TRANSCRIPTIONS,
                subject::ALL_ALERTS,
            ] {
                grant.subscribe(events);
            }
        }
        Role::Operator => unreachable!("handled above"),
    }
    // Whoever reads a stream without being its durable consumer may not touch the pipeline's.
    for (stream, durable, owner) in [
        (
            STREAM_CALLS_LIVE,
            CONSUMER_AUDIO_FETCHER,
            Role::AudioFetcher,
        ),
        (STREAM_CALLS_AUDIO, CONSUMER_TRANSCRIBER, Role::Transcriber),
        (STREAM_TRANSCRIPTIONS, CONSUMER_ALERTER, Role::Alerter),
    ] {
        let reads = grant
            .0
            .publish
            .contains(&format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        if reads && role != owner {
            grant.deny_durable(stream, durable);
        }
    }
    grant.0
}

/// The nats-server `authorization` block for every role, each user's password read from its
/// [`Role::password_variable`] when the server starts.
pub fn authorization(topology: &Topology) -> String {
    let list = |subjects: &BTreeSet<String>| {
        let lines: String = subjects
            .iter()
            .map(|s| format!("            \"{s}\"\n"))
            .collect();
        format!("[\n{lines}          ]")
    };
    let mut out = String::from(
        "# One NATS user per service, each limited to its own subjects, streams, consumers and\n\
         # KV buckets; `reader` reads the events and changes nothing; `operator` may do anything.\n\
         # Generated from the topology (crates/bus/src/access.rs; its `authorization_file` test\n\
         # rewrites this file when they differ): do not edit by hand.\n\
         # Each password comes from the environment variable named beside it (a bcrypt hash\n\
         # from `nats server passwd` works too).\n\
         authorization {\n  users = [\n",
    );
    for role in Role::ALL {
        let permissions = permissions(role, topology);
        let deny = if permissions.deny_publish.is_empty() {
            String::new()
        } else {
            format!("          deny: {}\n", list(&permissions.deny_publish))
        };
        let responses = if permissions.allow_responses {
            "        allow_responses: true\n"
        } else {
            ""
        };
        out.push_str(&format!(
            "    {{\n      user: \"{}\"\n      password: ${}\n      permissions: {{\n        \
             publish: {{\n          allow: {}\n{deny}        }}\n        \
             subscribe: {{\n          allow: {}\n        }}\n{responses}",
            role.name(),
            role.password_variable(),
            list(&permissions.publish),
            list(&permissions.subscribe),
        ));
        out.push_str("      }\n    }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

/// Builds one role's [`Permissions`] from what it does.
#[derive(Default)]
struct Grant(Permissions);

impl Grant {
    fn publish(&mut self, subject: &str) {
        self.0.publish.insert(subject.to_owned());
    }

    fn subscribe(&mut self, subject: &str) {
        self.0.subscribe.insert(subject.to_owned());
    }

    fn api(&mut self, call: &str) {
        self.publish(&format!("$JS.API.{call}"));
    }

    /// Looks up and creates every declared stream and bucket (never updates or deletes one).
    fn ensure(&mut self, topology: &Topology) {
        self.api("INFO");
        let streams = topology.streams().into_iter().map(|s| s.name);
        let buckets = topology
            .buckets()
            .into_iter()
            .map(|b| format!("KV_{}", b.bucket));
        for stream in streams.chain(buckets) {
            self.api(&format!("STREAM.INFO.{stream}"));
            self.api(&format!("STREAM.CREATE.{stream}"));
        }
    }

    /// Reads `stream` without a durable consumer: its info, messages by sequence or subject,
    /// and ordered (ephemeral) consumers.
    fn read_stream(&mut self, stream: &str) {
        for call in [
            format!("STREAM.INFO.{stream}"),
            format!("STREAM.MSG.GET.{stream}"),
            format!("DIRECT.GET.{stream}"),
            format!("DIRECT.GET.{stream}.>"),
            format!("CONSUMER.CREATE.{stream}"),
            format!("CONSUMER.CREATE.{stream}.>"),
            format!("CONSUMER.INFO.{stream}.*"),
            format!("CONSUMER.DELETE.{stream}.*"),
            format!("CONSUMER.MSG.NEXT.{stream}.*"),
        ] {
            self.api(&call);
        }
        // Flow control of push consumers (a KV watch).
        self.publish(&format!("$JS.FC.{stream}.>"));
    }

    /// Reads `stream` through durable consumers of its own, acknowledging what it handled.
    fn consume(&mut self, stream: &str) {
        self.read_stream(stream);
        self.api(&format!("CONSUMER.DURABLE.CREATE.{stream}.*"));
        self.publish(&format!("$JS.ACK.{stream}.>"));
    }

    /// Forbids every consumer API call on `stream`'s durable `name` and acknowledging for it.
    fn deny_durable(&mut self, stream: &str, name: &str) {
        for denied in [
            format!("$JS.API.CONSUMER.*.{stream}.{name}"),
            format!("$JS.API.CONSUMER.*.{stream}.{name}.>"),
            format!("$JS.API.CONSUMER.*.*.{stream}.{name}"),
            format!("$JS.ACK.{stream}.{name}.>"),
        ] {
            self.0.deny_publish.insert(denied);
        }
    }

    /// Reads a downstream consumer's backlog (for back-pressure).
    fn watch_backlog(&mut self, stream: &str, consumer: &str) {
        self.api(&format!("STREAM.INFO.{stream}"));
        self.api(&format!("CONSUMER.INFO.{stream}.{consumer}"));
    }

    fn read_bucket(&mut self, bucket: &str) {
        self.read_stream(&format!("KV_{bucket}"));
    }

    fn write_bucket(&mut self, bucket: &str) {
        self.read_bucket(bucket);
        self.publish(&format!("$KV.{bucket}.>"));
    }

    /// Sends requests to a NATS service under `prefix` (answers come to its inbox).
    fn request(&mut self, prefix: &str) {
        self.publish(&format!("{prefix}.>"));
    }

    /// Answers requests under `prefix` as a NATS micro service (discoverable on `$SRV`).
    fn serve(&mut self, prefix: &str) {
        self.subscribe(&format!("{prefix}.>"));
        self.subscribe("$SRV.>");
        self.0.allow_responses = true;
    }

    fn dead_letters(&mut self, stage: subject::Stage) {
        self.publish(&format!(
            "{}.{}.>",
            subject::DEAD_LETTER_PREFIX,
            stage.as_str()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::TopologyConfig;

    fn of(role: Role) -> Permissions {
        permissions(role, &Topology::new(TopologyConfig::default()))
    }

    #[test]
    fn the_poller_cannot_publish_audio_nor_the_transcriber_read_the_session() {
        assert!(of(Role::Poller).publish.contains("calls.live.>"));
        assert!(
            !of(Role::Poller)
                .publish
                .iter()
                .any(|s| s.starts_with("calls.audio"))
        );
        // Looking the bucket up (to ensure the topology) is not reading what it holds.
        let transcriber = of(Role::Transcriber);
        let reads_session = |subject: &String| {
            [
                "GET.KV_upstream-session",
                "CONSUMER.CREATE.KV_upstream-session",
                "$KV.upstream-session",
            ]
            .iter()
            .any(|read| subject.contains(read))
        };
        assert!(
            !transcriber.publish.iter().any(reads_session),
            "{transcriber:?}"
        );
        assert!(of(Role::Poller).publish.iter().any(reads_session));
    }

    #[test]
    fn the_reader_publishes_nothing_but_reads() {
        let reader = of(Role::Reader);
        assert!(
            reader.publish.iter().all(|s| s.starts_with("$JS.")),
            "{reader:?}"
        );
        assert!(!reader.publish.iter().any(|s| s.contains("STREAM.CREATE")));
        assert!(reader.subscribe.contains("transcription.complete.>"));
        assert!(
            reader
                .deny_publish
                .contains("$JS.API.CONSUMER.*.CALLS_AUDIO.transcriber.>")
        );
    }

    #[test]
    fn every_role_has_a_user_with_its_password_variable() {
        let block = authorization(&Topology::new(TopologyConfig::default()));
        for role in Role::ALL {
            assert!(block.contains(&format!("user: \"{}\"", role.name())));
            assert!(block.contains(&format!("password: ${}", role.password_variable())));
        }
        assert!(block.contains("NATS_PASSWORD_AUDIO_FETCHER"));
    }
}
