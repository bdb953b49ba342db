//! Making calls that keep every invariant of the captures (protocol §9.5), and the ledger of
//! every call made available.
//!
//! - `filename = "{start}-{tg}"`, `call_duration = stop - start`, `ts = stop + timediff` with a
//!   timediff of 5-6 s, `call-ttl = ts + 31536000`;
//! - `id = "{sid}-{tg}"` (shared by every call of the talkgroup: not unique, on purpose),
//!   `call_src_key = "{sid}-{src}"`, `hash` = 8 characters `[a-z0-9]`;
//! - `metadata` (trunk-recorder JSON) on m4a nodes, absent on some mp3 nodes;
//! - a late call has a `ts` already behind the live edge when it becomes visible.

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::audio;
use crate::clips::Clip;
use crate::world::{Node, Talkgroup};

/// Seconds of retention Broadcastify advertises (`call-ttl - ts`).
const CALL_TTL_SECONDS: i64 = 31_536_000;

/// One entry of the ledger: a call the simulator made available, and what its audio says.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// `{systemId}-{filename}-{hash}`: the pipeline's `call_id` for this call.
    pub key: String,
    /// RadioReference system id.
    pub sid: i64,
    /// Talkgroup.
    pub tg: i64,
    /// Ingest node id.
    pub system_id: i64,
    /// `ts` of the call.
    pub ts: i64,
    /// `meta_starttime` of the call.
    pub start: i64,
    /// `m4a` or `mp3`.
    pub enc: &'static str,
    /// Which clip the audio is.
    pub clip: &'static str,
    /// What the audio says.
    pub reference_text: &'static str,
    /// SHA-256 (hex) of the exact audio bytes served.
    pub audio_sha256: String,
    /// Size of the audio served.
    pub audio_bytes: usize,
    /// When the call appeared in live-calls answers.
    pub available_at: SystemTime,
    /// When its audio stops answering 404.
    pub audio_available_at: SystemTime,
    /// True when the call was published late (its `ts` behind the live edge).
    pub late: bool,
}

/// A stored call.
#[derive(Debug, Clone)]
pub struct SimCall {
    /// The ledger entry.
    pub entry: LedgerEntry,
    /// The call object exactly as served (archive answers add `score`).
    pub json: serde_json::Map<String, Value>,
    /// `json` as text, written once: live answers at load-test rates serve each call many times.
    pub json_text: String,
    /// Its CDN path, e.g. `/k3v9q0ma/1502/1767225600-2345.m4a`.
    pub cdn_path: String,
    /// The exact audio bytes served.
    pub audio: bytes::Bytes,
}

/// What a test (or the generator) asks for; everything unset is drawn at random.
#[derive(Debug, Clone, Default)]
pub struct CallSpec {
    /// (sid, tg) of the talkgroup.
    pub talkgroup: Option<(i64, i64)>,
    /// Node id (must record the talkgroup's system).
    pub node: Option<i64>,
    /// Clip index (into the spoken clips).
    pub clip: Option<usize>,
    /// Non-speech clip index (into [`crate::clips::non_speech`]); wins over `clip`.
    pub non_speech: Option<usize>,
    /// Publish late: the `ts` lies this far in the past.
    pub late_by: Option<Duration>,
    /// The audio 404s for this long after the call appears.
    pub audio_lag: Option<Duration>,
    /// Whether to attach trunk-recorder metadata (default: always on m4a, mostly on mp3).
    pub with_metadata: Option<bool>,
    /// The call's `ts` (default: now, or now minus `late_by`).
    pub ts: Option<i64>,
    /// Pad m4a audio up to this many bytes (load tests); smaller files are left as they are.
    pub audio_bytes_at_least: Option<usize>,
}

/// Everything needed to make one call.
pub(crate) struct Ingredients<'a> {
    pub(crate) talkgroup: &'a Talkgroup,
    pub(crate) node: &'a Node,
    pub(crate) clip: &'a Clip,
    pub(crate) ts: i64,
    pub(crate) late: bool,
    pub(crate) with_metadata: bool,
    pub(crate) now: SystemTime,
    pub(crate) audio_lag: Duration,
    pub(crate) audio_bytes_at_least: usize,
}

fn hash8(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Makes a call from its ingredients.
pub(crate) fn make_call(rng: &mut StdRng, i: Ingredients<'_>) -> SimCall {
    let Ingredients {
        talkgroup: tg,
        node,
        clip,
        ts,
        late,
        with_metadata,
        now,
        audio_lag,
        audio_bytes_at_least,
    } = i;
    let duration = clip.duration_seconds.ceil() as i64;
    let timediff = rng.random_range(5.08..6.19_f64);
    let stop = ts - timediff.round() as i64;
    let start = stop - duration;
    let timediff = ((ts - stop) as f64 + rng.random_range(-0.45..0.45_f64)).max(0.01);
    let timediff = (timediff * 100.0).round() / 100.0;
    let src = rng.random_range(1_200_000..1_299_999_i64);
    let hash = hash8(rng);
    let filename = format!("{start}-{}", tg.tg);
    let key = format!("{}-{filename}-{hash}", node.system_id);
    let freq_mhz = 851.0125 + f64::from(rng.random_range(0..40_u8)) * 0.025;

    let mut call = json!({
        "id": format!("{}-{}", tg.sid, tg.tg),
        "sid": tg.sid,
        "systemId": node.system_id,
        "siteId": 31_234,
        "call_type": 3,
        "call_tg": tg.tg,
        "tgId": tg.tg_id,
        "tgCid": tg.tg_cid,
        "call_src": src,
        "call_src_key": format!("{}-{src}", tg.sid),
        "call_freq": freq_mhz,
        "call_duration": stop - start,
        "call_timediff": timediff,
        "meta_starttime": start,
        "meta_stoptime": stop,
        "ts": ts,
        "call-ttl": ts + CALL_TTL_SECONDS,
        "filename": filename,
        "hash": hash,
        "enc": node.enc,
        "display": tg.display,
        "descr": tg.descr,
        "grouping": tg.grouping,
        "tag": tg.tag,
    });
    if with_metadata {
        let freq_hz = (freq_mhz * 1_000_000.0).round() as i64;
        let half = (clip.duration_seconds / 2.0 * 100.0).round() / 100.0;
        let third = (clip.duration_seconds / 3.0 * 100.0).round() / 100.0;
        // Dispatch, a responding unit, dispatch again: who talks changes within the clip.
        let responder = src + 1 + rng.random_range(0..400);
        call["metadata"] = json!({
            "freq": freq_hz, "freq_error": rng.random_range(-600..600), "signal": 999, "noise": 999,
            "source_num": 0, "recorder_num": rng.random_range(0..8), "tdma_slot": 0, "phase2_tdma": 0,
            "start_time": start, "stop_time": stop, "emergency": 0, "encrypted": 0, "duplex": 0,
            "mode": 0, "priority": 4, "call_length": clip.duration_seconds.round() as i64,
            "talkgroup": tg.tg, "talkgroup_tag": tg.display,
            "talkgroup_description": tg.descr, "talkgroup_group": tg.grouping,
            "talkgroup_group_tag": tg.tag_label, "audio_type": "digital",
            "short_name": node.short_name,
            "freqList": [
                {"freq": freq_hz, "time": start, "pos": 0, "len": half, "error_count": rng.random_range(0..20), "spike_count": rng.random_range(0..3)},
                {"freq": freq_hz, "time": start + half as i64, "pos": half, "len": half, "error_count": rng.random_range(0..20), "spike_count": 0},
            ],
            "srcList": [
                {"src": src, "time": start, "pos": 0, "emergency": 0, "signal_system": null, "tag": "Dispatch"},
                {"src": responder, "time": start + third as i64, "pos": third, "emergency": 0, "signal_system": null, "tag": null},
                {"src": src, "time": start + (2.0 * third) as i64, "pos": 2.0 * third, "emergency": 0, "signal_system": null, "tag": "Dispatch"},
            ],
        });
    }
    let audio = match node.enc {
        "mp3" => audio::tagged_mp3(clip.mp3, &key),
        _ => audio::tagged_m4a(clip.m4a, &key, audio_bytes_at_least),
    };
    let audio_sha256 = Sha256::digest(&audio)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cdn_path = format!("/{hash}/{}/{filename}.{}", node.system_id, node.enc);
    let Value::Object(json) = call else {
        unreachable!("built as an object")
    };
    SimCall {
        entry: LedgerEntry {
            key,
            sid: tg.sid,
            tg: tg.tg,
            system_id: node.system_id,
            ts,
            start,
            enc: node.enc,
            clip: clip.name,
            reference_text: clip.text,
            audio_sha256,
            audio_bytes: audio.len(),
            available_at: now,
            audio_available_at: now + audio_lag,
            late,
        },
        json_text: Value::Object(json.clone()).to_string(),
        json,
        cdn_path,
        audio: audio.into(),
    }
}
