//! From a county to what the poller polls: its trunked talkgroups as `"{sid}-{tg}"` groups,
//! optionally narrowed, and the `shards:` block of a poller config that polls them.
//! Conventional channels (`c-{fid}`) are left out: the live-calls `groups[]` selector the poller
//! sends takes trunked groups only.

use bcfy_proto::{DirectoryTalkgroup, GetCountyResponse};

/// Which of a county's talkgroups to take; empty lists take all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    /// Only these group ids (`"7001-2345"`).
    pub groups: Vec<String>,
    /// Only talkgroups whose service tag contains one of these (case-insensitive):
    /// `fire` takes "Fire Dispatch" and "Fire-Tac".
    pub tags: Vec<String>,
}

impl Choice {
    fn takes(&self, talkgroup: &DirectoryTalkgroup) -> bool {
        let tag = talkgroup.tag.to_lowercase();
        (self.groups.is_empty() || self.groups.contains(&talkgroup.group_id))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tag.contains(&t.to_lowercase())))
    }
}

/// The county's trunked talkgroups `choice` takes, in directory order.
pub fn chosen<'a>(county: &'a GetCountyResponse, choice: &Choice) -> Vec<&'a DirectoryTalkgroup> {
    county
        .talkgroups
        .iter()
        .filter(|t| t.sid > 0 && t.tg > 0 && choice.takes(t))
        .collect()
}

/// The group ids of [`chosen`].
pub fn groups(county: &GetCountyResponse, choice: &Choice) -> Vec<String> {
    chosen(county, choice)
        .into_iter()
        .map(|t| format!("{}-{}", t.sid, t.tg))
        .collect()
}

/// A `shards:` block with one shard named `name` polling `talkgroups`, each commented with its
/// alpha tag and service, ready to paste into a poller config.
pub fn shard_yaml(name: &str, talkgroups: &[&DirectoryTalkgroup]) -> String {
    let mut yaml = format!("shards:\n  - name: {name}\n    groups:\n");
    for talkgroup in talkgroups {
        let label = [talkgroup.display.as_str(), talkgroup.tag.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        yaml.push_str(&format!(
            "      - \"{}-{}\"  # {}\n",
            talkgroup.sid,
            talkgroup.tg,
            label.replace('\n', " ")
        ));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talkgroup(sid: i64, tg: i64, tag: &str) -> DirectoryTalkgroup {
        DirectoryTalkgroup {
            group_id: if sid > 0 {
                format!("{sid}-{tg}")
            } else {
                format!("c-{tg}")
            },
            sid,
            tg: if sid > 0 { tg } else { 0 },
            display: format!("TG {tg}"),
            tag: tag.to_owned(),
            ..Default::default()
        }
    }

    fn county() -> GetCountyResponse {
        GetCountyResponse {
            talkgroups: vec![
                talkgroup(7001, 2345, "Fire Dispatch"),
                talkgroup(7001, 2346, "Law Dispatch"),
                talkgroup(0, 991, "Fire Dispatch"),
                talkgroup(7002, 2345, "Fire-Tac"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_choice_narrows_by_tag_and_group_and_conventional_channels_are_left_out() {
        let county = county();
        assert_eq!(
            groups(&county, &Choice::default()),
            ["7001-2345", "7001-2346", "7002-2345"]
        );
        let fire = Choice {
            tags: vec!["FIRE".into()],
            ..Choice::default()
        };
        assert_eq!(groups(&county, &fire), ["7001-2345", "7002-2345"]);
        let one = Choice {
            groups: vec!["7001-2346".into()],
            ..Choice::default()
        };
        assert_eq!(groups(&county, &one), ["7001-2346"]);
    }

    #[test]
    fn the_yaml_block_is_a_poller_shard_list() {
        let county = county();
        let yaml = shard_yaml("example-fire", &chosen(&county, &Choice::default())[..2]);
        assert_eq!(
            yaml,
            "shards:\n  - name: example-fire\n    groups:\n      - \"7001-2345\"  # TG 2345, Fire Dispatch\n      - \"7001-2346\"  # TG 2346, Law Dispatch\n"
        );
    }
}
