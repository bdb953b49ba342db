//! Tones in a call: sustained single tones, two-tone sequential pages and DTMF.
//!
//! - **Tonal runs.** Frames of 64 ms every 16 ms are Hann-windowed and transformed; a frame is
//!   tonal when one peak holds 80 % of the 150–4000 Hz band's power. Consecutive tonal frames
//!   at the same frequency (within 10 Hz) make a run; a run of at least 0.3 s is a tone. Its
//!   frequency is then measured again over the whole run, zero-padded to a fine grid, so a
//!   second-long tone is read to a fraction of a hertz even under noise.
//! - **Two-tone pages.** A tone of 0.35–1.6 s followed within 0.3 s by a tone of another
//!   frequency lasting 0.7–3.6 s is one page (the fire-paging A tone, then the B tone); every
//!   other tone is a single tone.
//! - **DTMF.** Frames of 25.6 ms every 12.8 ms are read at the eight DTMF frequencies
//!   (Goertzel); a frame is a key when one row and one column frequency hold most of its
//!   power; a key held for two frames or more is a press (up to three frames without it
//!   inside are bridged), and presses less than half a second apart are one sequence of digits.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::RATE;

/// Samples per analysis frame (64 ms).
const WINDOW: usize = 1024;
/// Samples between frames (16 ms).
const HOP: usize = 256;
/// The band tones are looked for in.
const BAND_HZ: (f64, f64) = (150.0, 4000.0);
/// Share of the band's power one peak must hold for a frame to be tonal.
const PURITY: f64 = 0.8;
/// Largest drift, frame to frame, within one tone.
const SAME_TONE_HZ: f64 = 10.0;
/// Shortest tone reported.
const MIN_TONE_SECONDS: f64 = 0.3;
/// A-tone and B-tone durations of a two-tone page, and the largest gap between them.
const A_TONE_SECONDS: (f64, f64) = (0.35, 1.6);
const B_TONE_SECONDS: (f64, f64) = (0.7, 3.6);
const AB_GAP_SECONDS: f64 = 0.3;
/// Quieter frames than this RMS are not read (digital silence, the end of a squelch tail).
const MIN_RMS: f64 = 0.003;

/// DTMF frame and hop (25.6 ms, 12.8 ms).
const DTMF_FRAME: usize = 410;
const DTMF_HOP: usize = 205;
/// DTMF row and column frequencies.
const DTMF_ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const DTMF_COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Keys by row, then column.
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Frames without a key bridged inside one press (38 ms): noise inside a press, and the echo
/// AAC leaves just after a tone ends, do not make a second press. Two presses of the same key
/// closer than that are read as one.
const DTMF_BRIDGE: usize = 3;
/// Presses further apart than this start a new sequence.
const DTMF_SEQUENCE_GAP_SECONDS: f64 = 0.5;

/// What kind of tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneKind {
    /// One sustained tone (an alert tone, a long-tone page, a carrier whistle).
    Single,
    /// A two-tone sequential page: the A tone, then the B tone.
    TwoTone,
    /// DTMF digits.
    Dtmf,
}

/// One tone found.
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    /// The kind.
    pub kind: ToneKind,
    /// The tone's frequency; the A tone's for a page; 0 for DTMF.
    pub frequency_hz: f64,
    /// The B tone's frequency for a page; else 0.
    pub second_frequency_hz: f64,
    /// Seconds into the call where it starts.
    pub start: f64,
    /// Seconds it lasts (the A tone's for a page, the whole sequence for DTMF).
    pub duration: f64,
    /// The B tone's duration for a page; else 0.
    pub second_duration: f64,
    /// The keys pressed, for DTMF.
    pub digits: String,
}

/// A run of tonal frames.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    first: usize,
    last: usize,
    coarse_hz: f64,
}

impl Run {
    fn start_seconds(&self) -> f64 {
        (self.first * HOP) as f64 / f64::from(RATE)
    }

    fn end_seconds(&self) -> f64 {
        (self.last * HOP + WINDOW) as f64 / f64::from(RATE)
    }

    fn seconds(&self) -> f64 {
        self.end_seconds() - self.start_seconds()
    }
}

fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos())
        .collect()
}

fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The peak's offset from bin `k`, in bins, by a parabola through the log powers around it.
fn interpolate(power: &[f64], k: usize) -> f64 {
    if k == 0 || k + 1 >= power.len() {
        return 0.0;
    }
    let (a, b, c) = (
        power[k - 1].max(1e-30).ln(),
        power[k].max(1e-30).ln(),
        power[k + 1].max(1e-30).ln(),
    );
    let denominator = a - 2.0 * b + c;
    if denominator.abs() < 1e-12 {
        0.0
    } else {
        (0.5 * (a - c) / denominator).clamp(-0.5, 0.5)
    }
}

/// Power spectrum of `samples` windowed by `window`, zero-padded to `fft.len()`.
fn spectrum(fft: &Arc<dyn Fft<f64>>, samples: &[f32], window: &[f64]) -> Vec<f64> {
    let mut buffer: Vec<Complex<f64>> = samples
        .iter()
        .zip(window)
        .map(|(s, w)| Complex::new(f64::from(*s) * w, 0.0))
        .collect();
    buffer.resize(fft.len(), Complex::new(0.0, 0.0));
    fft.process(&mut buffer);
    buffer[..fft.len() / 2]
        .iter()
        .map(Complex::norm_sqr)
        .collect()
}

/// The tonal frames' frequencies (None where a frame is not tonal).
fn tonal_frames(samples: &[f32], planner: &mut FftPlanner<f64>) -> Vec<Option<f64>> {
    let fft = planner.plan_fft_forward(WINDOW);
    let window = hann(WINDOW);
    let bin_hz = f64::from(RATE) / WINDOW as f64;
    let (low, high) = ((BAND_HZ.0 / bin_hz) as usize, (BAND_HZ.1 / bin_hz) as usize);
    let frames = samples.len().saturating_sub(WINDOW) / HOP + usize::from(samples.len() >= WINDOW);
    (0..frames)
        .map(|i| {
            let frame = &samples[i * HOP..i * HOP + WINDOW];
            if rms(frame) < MIN_RMS {
                return None;
            }
            let power = spectrum(&fft, frame, &window);
            let band = &power[low..=high];
            let total: f64 = band.iter().sum();
            let (peak, _) = band.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
            let k = low + peak;
            let around: f64 = power[k.saturating_sub(2)..=(k + 2).min(power.len() - 1)]
                .iter()
                .sum();
            (total > 0.0 && around / total >= PURITY)
                .then(|| (k as f64 + interpolate(&power, k)) * bin_hz)
        })
        .collect()
}

/// Runs of tonal frames at one frequency, a missed frame bridged.
fn runs(frames: &[Option<f64>]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut current: Option<Run> = None;
    for (i, frame) in frames.iter().enumerate() {
        match (frame, current.as_mut()) {
            (Some(hz), Some(run)) if (hz - run.coarse_hz).abs() <= SAME_TONE_HZ => run.last = i,
            (Some(hz), _) => {
                runs.extend(current.take());
                current = Some(Run {
                    first: i,
                    last: i,
                    coarse_hz: *hz,
                });
            }
            // One missed frame inside a tone (a click, a dropout) does not end it.
            (None, Some(run)) if i == run.last + 1 => {}
            (None, _) => runs.extend(current.take()),
        }
    }
    runs.extend(current);
    runs.retain(|run| run.seconds() >= MIN_TONE_SECONDS);
    runs
}

/// The run's frequency measured over its whole length (its edges left out).
fn refine(samples: &[f32], run: &Run, planner: &mut FftPlanner<f64>) -> f64 {
    let from = run.first * HOP + WINDOW / 2;
    let to = (run.last * HOP + WINDOW / 2).min(samples.len());
    if to <= from + WINDOW {
        return run.coarse_hz;
    }
    let segment = &samples[from..to];
    let size = (segment.len().next_power_of_two() * 16).min(1 << 21);
    let fft = planner.plan_fft_forward(size);
    let power = spectrum(&fft, segment, &hann(segment.len()));
    let bin_hz = f64::from(RATE) / size as f64;
    let around = |hz: f64| (hz / bin_hz).round() as usize;
    let (low, high) = (
        around(run.coarse_hz - 2.0 * SAME_TONE_HZ),
        around(run.coarse_hz + 2.0 * SAME_TONE_HZ).min(power.len() - 2),
    );
    let Some((peak, _)) = power[low..=high]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return run.coarse_hz;
    };
    let k = low + peak;
    (k as f64 + interpolate(&power, k)) * bin_hz
}

/// Single tones and two-tone pages from the runs, in order.
fn classify(runs: &[(Run, f64)]) -> Vec<Tone> {
    let within = |seconds: f64, (low, high): (f64, f64)| (low..=high).contains(&seconds);
    let mut tones = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let (a, a_hz) = &runs[i];
        if let Some((b, b_hz)) = runs.get(i + 1)
            && within(a.seconds(), A_TONE_SECONDS)
            && within(b.seconds(), B_TONE_SECONDS)
            && b.start_seconds() - a.end_seconds() <= AB_GAP_SECONDS
            && (a_hz - b_hz).abs() > SAME_TONE_HZ
        {
            tones.push(Tone {
                kind: ToneKind::TwoTone,
                frequency_hz: *a_hz,
                second_frequency_hz: *b_hz,
                start: a.start_seconds(),
                duration: a.seconds(),
                second_duration: b.seconds(),
                digits: String::new(),
            });
            i += 2;
            continue;
        }
        tones.push(Tone {
            kind: ToneKind::Single,
            frequency_hz: *a_hz,
            second_frequency_hz: 0.0,
            start: a.start_seconds(),
            duration: a.seconds(),
            second_duration: 0.0,
            digits: String::new(),
        });
        i += 1;
    }
    tones
}

/// Goertzel power of `frequency` in `frame`, as a share of the frame's energy (a pure sinusoid
/// at that frequency gives about 1).
fn goertzel_share(frame: &[f32], frequency: f64, energy: f64) -> f64 {
    let n = frame.len() as f64;
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for sample in frame {
        let s0 = f64::from(*sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    2.0 * power / (n * energy)
}

/// The strongest of `frequencies` in the frame, if it stands out from the others.
fn dominant(frame: &[f32], frequencies: &[f64; 4], energy: f64) -> Option<(usize, f64)> {
    let mut shares: Vec<(usize, f64)> = frequencies
        .iter()
        .map(|f| goertzel_share(frame, *f, energy))
        .enumerate()
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (best, second) = (shares[0], shares[1]);
    (best.1 >= 0.15 && second.1 < 0.3 * best.1).then_some(best)
}

/// The DTMF key in each frame, if any.
fn dtmf_frames(samples: &[f32]) -> Vec<Option<char>> {
    let frames = samples.len().saturating_sub(DTMF_FRAME) / DTMF_HOP
        + usize::from(samples.len() >= DTMF_FRAME);
    (0..frames)
        .map(|i| {
            let frame = &samples[i * DTMF_HOP..i * DTMF_HOP + DTMF_FRAME];
            let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
            if rms(frame) < MIN_RMS {
                return None;
            }
            let (row, row_share) = dominant(frame, &DTMF_ROWS, energy)?;
            let (column, column_share) = dominant(frame, &DTMF_COLUMNS, energy)?;
            (row_share + column_share >= 0.7).then_some(DTMF_KEYS[row][column])
        })
        .collect()
}

/// Presses (a key held two frames or more) grouped into sequences.
fn dtmf(samples: &[f32]) -> Vec<Tone> {
    let seconds = |frame: usize| (frame * DTMF_HOP) as f64 / f64::from(RATE);
    let frame_seconds = DTMF_FRAME as f64 / f64::from(RATE);
    // (key, first frame, last frame)
    let mut presses: Vec<(char, usize, usize)> = Vec::new();
    let mut current: Option<(char, usize, usize)> = None;
    for (i, key) in dtmf_frames(samples).into_iter().enumerate() {
        match (key, current.as_mut()) {
            // A frame or two lost to noise inside a press does not make two presses.
            (Some(key), Some(press)) if press.0 == key && i <= press.2 + DTMF_BRIDGE + 1 => {
                press.2 = i;
            }
            (None, Some(press)) if i <= press.2 + DTMF_BRIDGE => {}
            (key, _) => {
                presses.extend(current.take().filter(|p| p.2 > p.1));
                current = key.map(|key| (key, i, i));
            }
        }
    }
    presses.extend(current.filter(|p| p.2 > p.1));
    let mut tones: Vec<Tone> = Vec::new();
    for (key, first, last) in presses {
        let start = seconds(first);
        let end = seconds(last) + frame_seconds;
        match tones.last_mut() {
            Some(sequence)
                if start - (sequence.start + sequence.duration) <= DTMF_SEQUENCE_GAP_SECONDS =>
            {
                sequence.digits.push(key);
                sequence.duration = end - sequence.start;
            }
            _ => tones.push(Tone {
                kind: ToneKind::Dtmf,
                frequency_hz: 0.0,
                second_frequency_hz: 0.0,
                start,
                duration: end - start,
                second_duration: 0.0,
                digits: key.to_string(),
            }),
        }
    }
    tones
}

/// Every tone in `samples` (16 kHz mono, −1..1), by start time.
pub fn detect_tones(samples: &[f32]) -> Vec<Tone> {
    let mut planner = FftPlanner::new();
    let frames = tonal_frames(samples, &mut planner);
    let runs: Vec<(Run, f64)> = runs(&frames)
        .into_iter()
        .map(|run| {
            let hz = refine(samples, &run, &mut planner);
            (run, hz)
        })
        .collect();
    let mut tones = classify(&runs);
    tones.extend(dtmf(samples));
    tones.sort_by(|a, b| a.start.total_cmp(&b.start));
    tones
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn silence(seconds: f64) -> Vec<f32> {
        vec![0.0; (seconds * f64::from(RATE)) as usize]
    }

    fn sine(hz: f64, seconds: f64, amplitude: f32) -> Vec<f32> {
        (0..(seconds * f64::from(RATE)) as usize)
            .map(|i| {
                amplitude
                    * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(RATE)).sin() as f32
            })
            .collect()
    }

    fn dual(low: f64, high: f64, seconds: f64) -> Vec<f32> {
        sine(low, seconds, 0.3)
            .into_iter()
            .zip(sine(high, seconds, 0.3))
            .map(|(a, b)| a + b)
            .collect()
    }

    /// Adds white noise `snr_db` below the signal's power.
    fn noisy(signal: Vec<f32>, snr_db: f64, seed: u64) -> Vec<f32> {
        let power = rms(&signal).powi(2);
        let noise_rms = (power / 10f64.powf(snr_db / 10.0)).sqrt();
        let amplitude = noise_rms * 3f64.sqrt();
        let mut rng = StdRng::seed_from_u64(seed);
        signal
            .into_iter()
            .map(|s| s + rng.random_range(-amplitude..amplitude) as f32)
            .collect()
    }

    #[test]
    fn a_two_tone_page_is_found_with_both_frequencies_within_two_hertz_under_noise() {
        for (seed, (a, b)) in [(349.0, 433.7), (600.9, 1153.4), (1062.9, 788.5)]
            .into_iter()
            .enumerate()
        {
            let mut audio = silence(0.4);
            audio.extend(sine(a, 1.0, 0.4));
            audio.extend(sine(b, 3.0, 0.4));
            audio.extend(silence(0.5));
            let tones = detect_tones(&noisy(audio, 12.0, seed as u64));
            assert_eq!(tones.len(), 1, "{tones:?}");
            let page = &tones[0];
            assert_eq!(page.kind, ToneKind::TwoTone);
            assert!((page.frequency_hz - a).abs() <= 2.0, "A {a}: {page:?}");
            assert!(
                (page.second_frequency_hz - b).abs() <= 2.0,
                "B {b}: {page:?}"
            );
            assert!((page.start - 0.4).abs() < 0.1, "{page:?}");
            assert!((page.duration - 1.0).abs() < 0.15, "{page:?}");
            assert!((page.second_duration - 3.0).abs() < 0.15, "{page:?}");
        }
    }

    #[test]
    fn a_long_tone_is_a_single_tone_and_short_blips_are_not_tones() {
        let mut audio = sine(1000.0, 5.0, 0.5);
        audio.extend(silence(0.3));
        audio.extend(sine(1500.0, 0.1, 0.5));
        let tones = detect_tones(&audio);
        assert_eq!(tones.len(), 1, "{tones:?}");
        assert_eq!(tones[0].kind, ToneKind::Single);
        assert!((tones[0].frequency_hz - 1000.0).abs() <= 2.0, "{tones:?}");
        assert!((tones[0].duration - 5.0).abs() < 0.1, "{tones:?}");
    }

    #[test]
    fn dtmf_digits_are_read_in_order_as_one_sequence() {
        let mut audio = silence(0.2);
        for (row, column) in [(697.0, 1209.0), (697.0, 1336.0), (941.0, 1477.0)] {
            audio.extend(dual(row, column, 0.12));
            audio.extend(silence(0.08));
        }
        let tones = detect_tones(&noisy(audio, 20.0, 7));
        assert_eq!(tones.len(), 1, "{tones:?}");
        assert_eq!(tones[0].kind, ToneKind::Dtmf);
        assert_eq!(tones[0].digits, "12#");
        assert!((tones[0].start - 0.2).abs() < 0.05, "{tones:?}");
    }

    #[test]
    fn noise_and_silence_hold_no_tones() {
        assert!(detect_tones(&silence(3.0)).is_empty());
        let mut rng = StdRng::seed_from_u64(9);
        let mut noise = |level: f32| -> Vec<f32> {
            (0..48_000)
                .map(|_| rng.random_range(-level..level))
                .collect()
        };
        assert!(detect_tones(&noise(0.01)).is_empty(), "hiss");
        assert!(detect_tones(&noise(0.8)).is_empty(), "static");
        assert!(detect_tones(&[]).is_empty());
    }
}
