//! Speech and tones read from real call audio: the simulator's spoken clips (flite voices,
//! band-limited and encoded as the nodes upload them), decoded as the transcriber decodes them.

use bcfy_signal::{SpeechSettings, detect_speech, detect_tones, listen};

fn decoded(audio: &'static [u8], content_type: &str) -> Vec<f32> {
    bcfy_whisper::decode_16k(audio, content_type).expect("the clip decodes")
}

#[test]
fn every_spoken_clip_has_speech_and_no_tones_in_both_encodings() {
    for clip in bcfy_simulator::clips::all() {
        for (audio, content_type) in [(clip.m4a, "audio/mp4"), (clip.mp3, "audio/mpeg")] {
            let samples = decoded(audio, content_type);
            let speech = detect_speech(&samples, &SpeechSettings::default());
            assert!(
                speech.has_speech,
                "{} ({content_type}): {speech:?}",
                clip.name
            );
            assert!(
                speech.speech_seconds > 0.3 * clip.duration_seconds,
                "{} ({content_type}): {speech:?}",
                clip.name
            );
            let tones = detect_tones(&samples);
            assert!(
                tones.is_empty(),
                "{} ({content_type}): {tones:?}",
                clip.name
            );
        }
    }
}

/// `seconds` of a sine at `hz`, amplitude 0.4.
fn sine(hz: f64, seconds: f64) -> Vec<f32> {
    let rate = f64::from(bcfy_signal::RATE);
    (0..(seconds * rate) as usize)
        .map(|i| 0.4 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate).sin() as f32)
        .collect()
}

#[test]
fn tones_hiss_and_silence_are_not_speech() {
    let mut page = sine(600.9, 1.0);
    page.extend(sine(1153.4, 3.0));
    let mut seed = 0x2545_f491_u32;
    let hiss: Vec<f32> = (0..64_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 - 0.5) * 0.05
        })
        .collect();
    for (name, samples) in [
        ("page", page),
        ("hiss", hiss),
        ("silence", vec![0.0; 48_000]),
    ] {
        let speech = detect_speech(&samples, &SpeechSettings::default());
        assert!(!speech.has_speech, "{name}: {speech:?}");
    }
}

#[test]
fn a_dispatch_after_a_page_has_both_its_speech_and_its_page() {
    let clip = bcfy_simulator::clips::all()[0];
    let mut call = sine(707.3, 1.0);
    call.extend(sine(1092.4, 2.0));
    call.extend(vec![0.0; 8_000]);
    call.extend(decoded(clip.m4a, "audio/mp4"));
    let (speech, tones) = listen(&call, &SpeechSettings::default());
    assert!(speech.has_speech, "{speech:?}");
    assert_eq!(tones.len(), 1, "{tones:?}");
    assert!((tones[0].frequency_hz - 707.3).abs() <= 2.0, "{tones:?}");
    assert!(
        (tones[0].second_frequency_hz - 1092.4).abs() <= 2.0,
        "{tones:?}"
    );
}

#[test]
fn no_non_speech_clip_has_speech_and_each_holds_its_tone() {
    for clip in bcfy_simulator::clips::non_speech() {
        for (audio, content_type) in [(clip.m4a, "audio/mp4"), (clip.mp3, "audio/mpeg")] {
            let samples = decoded(audio, content_type);
            let (speech, tones) = listen(&samples, &SpeechSettings::default());
            assert!(
                !speech.has_speech,
                "{} ({content_type}): {speech:?} {tones:?}",
                clip.name
            );
            let fields: Vec<&str> = clip.holds.split_whitespace().collect();
            let expected = match fields[0] {
                "two_tone" | "single" | "dtmf" => 1,
                _ => 0,
            };
            assert_eq!(
                tones.len(),
                expected,
                "{} ({content_type}): {tones:?}",
                clip.name
            );
        }
    }
}
