//! Call audio (AAC-LC in MP4 from trunk-recorder-style nodes, MP3 from SDRTrunk) to the 16 kHz
//! mono `f32` samples Whisper reads: decoded by symphonia, channels averaged, resampled by
//! rubato's FFT resampler. Everything happens in memory; a call is seconds to minutes long.

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// The rate Whisper expects.
pub const WHISPER_RATE: u32 = 16_000;

/// Why audio could not be turned into samples. Always permanent for that audio.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The container or codec could not be read.
    #[error("undecodable audio")]
    Undecodable(#[source] symphonia::core::errors::Error),
    /// The container holds no audio track, or one without audio parameters.
    #[error("no audio track")]
    NoAudioTrack,
    /// The audio holds no samples.
    #[error("the audio holds no samples")]
    Empty,
    /// Resampling to 16 kHz failed.
    #[error("cannot resample from {rate} Hz: {reason}")]
    Resample {
        /// The source rate.
        rate: u32,
        /// What failed.
        reason: String,
    },
}

fn undecodable(error: symphonia::core::errors::Error) -> DecodeError {
    DecodeError::Undecodable(error)
}

/// A file-name extension symphonia's probe can start from, by MIME type (the probe also reads
/// the bytes, so a wrong hint only costs a little time).
fn extension(content_type: &str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("audio/mpeg") || essence.eq_ignore_ascii_case("audio/mp3") {
        "mp3"
    } else {
        "m4a"
    }
}

/// Decodes `audio` (of MIME type `content_type`) to 16 kHz mono samples.
///
/// # Errors
///
/// [`DecodeError`] when the bytes are not audio symphonia can read, hold no samples, or cannot
/// be resampled.
pub fn decode_16k<A>(audio: A, content_type: &str) -> Result<Vec<f32>, DecodeError>
where
    A: AsRef<[u8]> + Send + Sync + 'static,
{
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(audio)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension(extension(content_type));
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(undecodable)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or(DecodeError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or(DecodeError::NoAudioTrack)?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(undecodable)?;
    let mut mono = Vec::new();
    let mut interleaved = Vec::<f32>::new();
    let mut rate = 0;
    while let Some(packet) = format.next_packet().map_err(undecodable)? {
        if packet.track_id != track_id {
            continue;
        }
        let buffer = decoder.decode(&packet).map_err(undecodable)?;
        rate = buffer.spec().rate();
        let channels = buffer.spec().channels().count().max(1);
        buffer.copy_to_vec_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
    }
    if mono.is_empty() || rate == 0 {
        return Err(DecodeError::Empty);
    }
    resample(&mono, rate)
}

/// Resamples mono samples at `rate` to 16 kHz.
fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, DecodeError> {
    if rate == WHISPER_RATE {
        return Ok(mono.to_vec());
    }
    let failed = |reason: String| DecodeError::Resample { rate, reason };
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        WHISPER_RATE as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|e| failed(e.to_string()))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| failed(e.to_string()))?;
    Ok(resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| failed(e.to_string()))?
        .take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_pick_the_probe_hint() {
        assert_eq!(extension("audio/mpeg"), "mp3");
        assert_eq!(extension("audio/MP3; charset=binary"), "mp3");
        assert_eq!(extension("audio/mp4"), "m4a");
        assert_eq!(extension(""), "m4a");
    }

    #[test]
    fn bytes_that_are_not_audio_are_undecodable() {
        let error =
            decode_16k(b"<html>not found</html>".to_vec(), "audio/mp4").expect_err("not audio");
        assert!(matches!(error, DecodeError::Undecodable(_)), "{error}");
    }

    #[test]
    fn resampling_doubles_8_khz_and_keeps_a_tone() {
        // One second of a 440 Hz tone at 8 kHz.
        let tone: Vec<f32> = (0..8_000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8_000.0).sin() * 0.5)
            .collect();
        let out = resample(&tone, 8_000).expect("resampled");
        assert!((out.len() as i64 - 16_000).abs() < 1_100, "{}", out.len());
        let peak = out.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.4..0.6).contains(&peak), "{peak}");
    }
}
