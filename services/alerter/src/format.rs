//! What each kind of destination receives for an alert: the alert's JSON for a webhook, and a
//! short message for Slack, Discord and Microsoft Teams (the talkgroup, the unit, the
//! transcript and, when the gateway's address is configured, a link to the call in its
//! console).

use bcfy_proto::Alert;
use serde_json::json;
use url::Url;

use crate::config::DestinationKind;

/// Discord refuses messages longer than this.
const DISCORD_MAX_CHARS: usize = 2000;
/// A chat message quotes at most this much of the transcript.
const QUOTED_CHARS: usize = 600;

/// The JSON body `kind` takes for `alert`.
///
/// # Errors
///
/// When the alert has no JSON form (it always has: it is a `broadcastify.v1` message).
pub fn body(
    kind: DestinationKind,
    alert: &Alert,
    console: Option<&Url>,
) -> Result<serde_json::Value, bcfy_proto::proto_json::JsonError> {
    let link = console.and_then(|base| call_link(base, alert));
    Ok(match kind {
        DestinationKind::Webhook => {
            let mut value = bcfy_proto::proto_json::to_json(alert, &[])?;
            if let (Some(link), Some(object)) = (&link, value.as_object_mut()) {
                object.insert("consoleUrl".into(), json!(link.as_str()));
            }
            value
        }
        DestinationKind::Slack => {
            let mut text = lines(alert, "*", "*", "> ").join("\n");
            if let Some(link) = &link {
                text.push_str(&format!("\n<{link}|Open the call>"));
            }
            json!({ "text": text })
        }
        DestinationKind::Discord => {
            let mut text = lines(alert, "**", "**", "> ").join("\n");
            if let Some(link) = &link {
                text.push_str(&format!("\n[Open the call]({link})"));
            }
            json!({ "content": truncate(&text, DISCORD_MAX_CHARS) })
        }
        DestinationKind::Teams => {
            let mut blocks: Vec<serde_json::Value> = lines(alert, "", "", "")
                .into_iter()
                .enumerate()
                .map(|(i, line)| {
                    let mut block = json!({ "type": "TextBlock", "text": line, "wrap": true });
                    if i == 0 {
                        block["weight"] = json!("Bolder");
                        block["size"] = json!("Medium");
                    }
                    block
                })
                .collect();
            blocks.truncate(8);
            let actions: Vec<serde_json::Value> = link
                .iter()
                .map(|l| json!({ "type": "Action.OpenUrl", "title": "Open the call", "url": l.as_str() }))
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": blocks,
                        "actions": actions,
                    }
                }]
            })
        }
    })
}

/// The call's page in the gateway's console.
pub fn call_link(console: &Url, alert: &Alert) -> Option<Url> {
    if alert.call_id.is_empty() {
        return None;
    }
    let mut link = console.clone();
    link.set_fragment(Some(&format!("/call/{}", alert.call_id)));
    Some(link)
}

/// The message's lines: the summary in bold, the talkgroup and unit, the quoted transcript;
/// for a system alert, its condition.
fn lines(alert: &Alert, bold: &str, bold_end: &str, quote: &str) -> Vec<String> {
    let mut lines = vec![format!("{bold}{}{bold_end}", alert.summary)];
    if let Some(condition) = &alert.system {
        lines.push(format!(
            "{} {} (value {}, threshold {}, from {})",
            condition.kind,
            if condition.resolved {
                "resolved"
            } else {
                "raised"
            },
            condition.value,
            condition.threshold,
            if condition.service.is_empty() {
                "the streams"
            } else {
                &condition.service
            },
        ));
        return lines;
    }
    let call = alert.call.clone().unwrap_or_default();
    let shard = alert.shard_key.unwrap_or_default();
    let talkgroup = match (&call.display, &call.descr) {
        (Some(display), Some(descr)) => format!("{display} ({descr})"),
        (Some(display), None) => display.clone(),
        _ => String::new(),
    };
    lines.push(format!(
        "Talkgroup {} on system {}{}",
        shard.talkgroup_id,
        shard.system_id,
        if talkgroup.is_empty() {
            String::new()
        } else {
            format!(": {talkgroup}")
        }
    ));
    let transcript = alert.transcript.clone().unwrap_or_default();
    let unit = transcript
        .segments
        .iter()
        .find_map(|s| s.unit.map(|unit| (unit, s.unit_tag.clone())))
        .or_else(|| {
            call.call_src
                .filter(|src| *src > 0)
                .map(|src| (src, String::new()))
        });
    if let Some((unit, tag)) = unit {
        lines.push(if tag.is_empty() {
            format!("Unit {unit}")
        } else {
            format!("Unit {unit} ({tag})")
        });
    }
    if !transcript.text.is_empty() {
        lines.push(format!(
            "{quote}{}",
            truncate(&transcript.text, QUOTED_CHARS)
        ));
    }
    lines
}

/// `text` cut to at most `max` characters, marked with "…" when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use bcfy_proto::{Call, ShardKey, TranscriptSegment, TranscriptionResult};

    use super::*;

    fn alert() -> Alert {
        Alert {
            id: "fire.c1".into(),
            rule: "fire".into(),
            summary: "fire: \"Structure Fire\" on FD Dispatch".into(),
            call_id: "c1".into(),
            shard_key: Some(ShardKey {
                system_id: 7001,
                talkgroup_id: 2345,
            }),
            call: Some(Call {
                display: Some("FD Dispatch".into()),
                ..Call::default()
            }),
            transcript: Some(TranscriptionResult {
                text: "Engine 12, structure fire at Main and 5th.".into(),
                segments: vec![TranscriptSegment {
                    unit: Some(5001),
                    unit_tag: "Dispatch".into(),
                    ..TranscriptSegment::default()
                }],
                ..TranscriptionResult::default()
            }),
            ..Alert::default()
        }
    }

    fn console() -> Url {
        Url::parse("https://radio.example.org/").unwrap()
    }

    #[test]
    fn chat_messages_name_the_talkgroup_unit_transcript_and_link() {
        let slack = body(DestinationKind::Slack, &alert(), Some(&console())).unwrap();
        assert_eq!(
            slack["text"],
            "*fire: \"Structure Fire\" on FD Dispatch*\nTalkgroup 2345 on system 7001: FD Dispatch\nUnit 5001 (Dispatch)\n> Engine 12, structure fire at Main and 5th.\n<https://radio.example.org/#/call/c1|Open the call>"
        );
        let discord = body(DestinationKind::Discord, &alert(), None).unwrap();
        assert!(discord["content"].as_str().unwrap().starts_with("**fire:"));
        let teams = body(DestinationKind::Teams, &alert(), Some(&console())).unwrap();
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(
            card["body"][3]["text"],
            "Engine 12, structure fire at Main and 5th."
        );
        assert_eq!(
            card["actions"][0]["url"],
            "https://radio.example.org/#/call/c1"
        );
    }

    #[test]
    fn a_webhook_gets_the_alert_json() {
        let json = body(DestinationKind::Webhook, &alert(), Some(&console())).unwrap();
        assert_eq!(json["id"], "fire.c1");
        assert_eq!(json["shardKey"]["talkgroupId"], "2345");
        assert_eq!(json["consoleUrl"], "https://radio.example.org/#/call/c1");
    }

    #[test]
    fn long_text_is_cut_for_discord() {
        let mut long = alert();
        long.summary = "x".repeat(3000);
        let discord = body(DestinationKind::Discord, &long, None).unwrap();
        let content = discord["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), DISCORD_MAX_CHARS);
        assert!(content.ends_with('…'));
    }
}
