//! What a live poll selects: talkgroup groups, a trunked system, an ingest node or a public
//! playlist, and the page a browser polling it would be on.

use std::fmt;

/// A talkgroup group key, `"{sid}-{tg}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// RadioReference system id.
    pub sid: i64,
    /// Talkgroup.
    pub tg: i64,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.sid, self.tg)
    }
}

/// What to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One or more talkgroups (`groups[]`, repeated).
    Groups(Vec<GroupKey>),
    /// Every talkgroup of a trunked system (`sid`).
    System {
        /// RadioReference system id.
        sid: i64,
    },
    /// Every call of one ingest node (`systemId`).
    Node {
        /// Broadcastify node id.
        system_id: i64,
    },
    /// A public playlist (`playlist_uuid`); no login needed.
    Playlist {
        /// The playlist's UUID.
        uuid: String,
    },
}

// NOTE(protocol): the spec (§3.3) lists only `groups[]` and calls the key
// `{systemId}-{talkgroupId}`; the captures show the key's number is the RadioReference `sid`
// and that `sid`, node `systemId` and `playlist_uuid` are selectors of their own.
impl Selector {
    /// Whether the site requires a session for this selector.
    pub fn needs_session(&self) -> bool {
        !matches!(self, Selector::Playlist { .. })
    }

    /// The page a browser would be on, for `Referer`.
    pub(super) fn page(&self) -> String {
        match self {
            Selector::Groups(groups) => groups.first().map_or_else(
                || "/calls/".to_owned(),
                |g| format!("/calls/tg/{}/{}", g.sid, g.tg),
            ),
            Selector::System { sid } => format!("/calls/trs/{sid}"),
            Selector::Node { system_id } => format!("/calls/node/{system_id}"),
            Selector::Playlist { uuid } => format!("/calls/playlists/?uuid={uuid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_playlists_go_without_a_session_and_each_selector_has_its_page() {
        let groups = Selector::Groups(vec![GroupKey {
            sid: 7001,
            tg: 2345,
        }]);
        assert_eq!(groups.page(), "/calls/tg/7001/2345");
        assert_eq!(
            GroupKey {
                sid: 7001,
                tg: 2345
            }
            .to_string(),
            "7001-2345"
        );
        assert_eq!(Selector::Groups(vec![]).page(), "/calls/");
        assert_eq!(Selector::System { sid: 7001 }.page(), "/calls/trs/7001");
        assert_eq!(
            Selector::Node { system_id: 1502 }.page(),
            "/calls/node/1502"
        );
        let playlist = Selector::Playlist {
            uuid: "ab-12".to_owned(),
        };
        assert_eq!(playlist.page(), "/calls/playlists/?uuid=ab-12");
        assert!(groups.needs_session() && !playlist.needs_session());
    }
}
