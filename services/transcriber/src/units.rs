//! Who said what: each segment gets the unit that was transmitting when it starts — the last
//! `srcList` entry whose `pos` is at or before the segment's start — as its `unit` and
//! `unit_tag`. Segment times from an engine run a little early or late, so an entry up to
//! [`LEEWAY`] seconds after the start still counts, and a segment before the first entry gets
//! the first one (the call's first transmitter). An entry whose `src` is -1 (trunk-recorder did
//! not know the unit) leaves its segments without a unit. Calls without `srcList` keep their
//! segments without a unit; a provider that returns no segments (`json`) gives nothing to
//! attach to.

use bcfy_proto::{SourceEntry, TranscriptSegment};

/// How far after a segment's start an entry still counts as at its start.
pub(crate) const LEEWAY: f64 = 0.25;

/// Sets `unit` and `unit_tag` on each segment from `sources`.
pub(crate) fn assign(segments: &mut [TranscriptSegment], sources: &[SourceEntry]) {
    let mut sources: Vec<&SourceEntry> = sources.iter().filter(|s| s.src.is_some()).collect();
    sources.sort_by(|a, b| a.pos.unwrap_or(0.0).total_cmp(&b.pos.unwrap_or(0.0)));
    let Some(first) = sources.first().copied() else {
        return;
    };
    for segment in segments {
        let speaking = sources
            .iter()
            .rev()
            .find(|s| s.pos.unwrap_or(0.0) <= segment.start + LEEWAY)
            .copied()
            .unwrap_or(first);
        let known = speaking.src.filter(|src| *src > 0);
        segment.unit = known;
        segment.unit_tag = known.and(speaking.tag.clone()).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(src: i64, pos: f64, tag: Option<&str>) -> SourceEntry {
        SourceEntry {
            src: Some(src),
            pos: Some(pos),
            tag: tag.map(str::to_owned),
            ..SourceEntry::default()
        }
    }

    fn segment(start: f64) -> TranscriptSegment {
        TranscriptSegment {
            start,
            end: start + 1.0,
            ..TranscriptSegment::default()
        }
    }

    #[test]
    fn each_segment_gets_the_unit_transmitting_at_its_start() {
        let sources = [
            source(2001, 4.2, Some("Engine 12")),
            source(1001, 0.0, Some("Dispatch")),
            source(3001, 9.0, None),
            source(-1, 11.0, Some("ignored")),
        ];
        let mut segments = [
            segment(0.0),
            segment(3.9),
            segment(4.0),
            segment(8.8),
            segment(12.0),
        ];
        assign(&mut segments, &sources);
        let units: Vec<(Option<i64>, &str)> = segments
            .iter()
            .map(|s| (s.unit, s.unit_tag.as_str()))
            .collect();
        assert_eq!(
            units,
            [
                (Some(1001), "Dispatch"),
                (Some(1001), "Dispatch"),
                (Some(2001), "Engine 12"),
                (Some(3001), ""),
                (None, "")
            ]
        );
    }

    #[test]
    fn without_sources_segments_stay_without_a_unit_and_an_early_segment_gets_the_first() {
        let mut segments = [segment(0.0)];
        assign(&mut segments, &[]);
        assert_eq!(segments[0].unit, None);
        assign(&mut segments, &[source(7, 1.5, None)]);
        assert_eq!(
            segments[0].unit,
            Some(7),
            "before the first entry: the first unit"
        );
    }
}
