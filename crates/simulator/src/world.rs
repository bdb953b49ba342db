//! The simulated radio world: trunked systems, their talkgroups and ingest nodes, and one
//! public playlist. Numbers follow the captures' shape (sids 7001.., talkgroups 2345.., nodes
//! 1502..) and a node id never equals a sid, so a client that swaps them fails.

use rand::Rng as _;
use rand::rngs::StdRng;

use crate::config::SimConfig;

/// One talkgroup and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Talkgroup {
    /// RadioReference system id.
    pub sid: i64,
    /// Talkgroup number.
    pub tg: i64,
    /// Alpha tag (`display`).
    pub display: String,
    /// Description (`descr`).
    pub descr: String,
    /// Agency (`grouping`).
    pub grouping: String,
    /// Service tag id.
    pub tag: i64,
    /// Service tag label.
    pub tag_label: &'static str,
    /// RadioReference talkgroup id.
    pub tg_id: i64,
    /// RadioReference category id.
    pub tg_cid: i64,
}

/// An ingest node (a trunk-recorder or SDRTrunk station) uploading one system's calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Broadcastify node id (`systemId`).
    pub system_id: i64,
    /// The system it records.
    pub sid: i64,
    /// `m4a` (trunk-recorder) or `mp3` (SDRTrunk).
    pub enc: &'static str,
    /// The node's short name.
    pub short_name: String,
}

/// Everything the generator draws from.
#[derive(Debug, Clone)]
pub struct World {
    /// Every talkgroup.
    pub talkgroups: Vec<Talkgroup>,
    /// Every node.
    pub nodes: Vec<Node>,
    /// The public playlist's UUID (it holds every talkgroup of the first system).
    pub playlist_uuid: String,
}

/// (label, tag id, description) of the services talkgroups are given, in turn.
const SERVICES: &[(&str, i64, &str, &str)] = &[
    ("Fire Dispatch", 3, "FD Disp", "Fire Dispatch Main"),
    ("Law Dispatch", 2, "SO Disp", "Sheriff Dispatch"),
    ("EMS Dispatch", 4, "EMS Disp", "EMS Dispatch"),
    ("Fire-Tac", 8, "FD Tac", "Fireground Tactical"),
    ("Law Tac", 7, "SO Tac", "Sheriff Tactical"),
    ("Public Works", 14, "DPW", "Public Works Operations"),
];

/// First RadioReference sid.
pub const FIRST_SID: i64 = 7001;
/// First talkgroup.
pub const FIRST_TG: i64 = 2345;
/// First node id.
pub const FIRST_NODE: i64 = 1502;

impl World {
    /// The world `config` describes; `rng` picks which nodes send mp3.
    pub fn new(config: &SimConfig, rng: &mut StdRng) -> Self {
        let mut talkgroups = Vec::new();
        let mut nodes = Vec::new();
        for s in 0..i64::from(config.systems) {
            let sid = FIRST_SID + s;
            for t in 0..i64::from(config.talkgroups_per_system) {
                let (label, tag, display, descr) = SERVICES[(t as usize) % SERVICES.len()];
                talkgroups.push(Talkgroup {
                    sid,
                    tg: FIRST_TG + t,
                    display: format!("{display} {}", t + 1),
                    descr: descr.to_owned(),
                    grouping: format!(
                        "Example County {}",
                        label.split(' ').next().unwrap_or(label)
                    ),
                    tag,
                    tag_label: label,
                    tg_id: 412_000 + s * 100 + t,
                    tg_cid: 20_100 + t,
                });
            }
            for n in 0..i64::from(config.nodes_per_system.max(1)) {
                let system_id = FIRST_NODE + s * 10 + n;
                let enc = if rng.random_bool(config.mp3_node_ratio) {
                    "mp3"
                } else {
                    "m4a"
                };
                nodes.push(Node {
                    system_id,
                    sid,
                    enc,
                    short_name: format!("examplecty{:02}", s * 10 + n + 1),
                });
            }
        }
        // Deterministic per seed, in the 8-4-4-4-12 UUID shape.
        let hex = |n: usize, rng: &mut StdRng| -> String {
            (0..n)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let playlist_uuid = format!(
            "{}-{}-{}-{}-{}",
            hex(8, rng),
            hex(4, rng),
            hex(4, rng),
            hex(4, rng),
            hex(12, rng)
        );
        Self {
            talkgroups,
            nodes,
            playlist_uuid,
        }
    }

    /// The talkgroups of the public playlist.
    pub fn playlist(&self) -> impl Iterator<Item = &Talkgroup> {
        let first = self.talkgroups.first().map(|t| t.sid);
        self.talkgroups.iter().filter(move |t| Some(t.sid) == first)
    }

    /// The talkgroup `sid`/`tg`, if simulated.
    pub fn talkgroup(&self, sid: i64, tg: i64) -> Option<&Talkgroup> {
        self.talkgroups.iter().find(|t| t.sid == sid && t.tg == tg)
    }

    /// The nodes recording `sid`.
    pub fn nodes_of(&self, sid: i64) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.sid == sid)
    }
}
