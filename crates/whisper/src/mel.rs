//! Whisper's mel filterbank: the matrix that turns a 400-point FFT's 201 power bins at 16 kHz
//! into `n_mels` bands. whisper.cpp reads it from the model file, and OpenAI's Whisper computes
//! it with librosa (`librosa.filters.mel(sr=16000, n_fft=400, n_mels=…)`: the Slaney mel scale,
//! triangular filters, Slaney area normalisation). CTranslate2 models do not carry it, so the
//! converter computes it the same way (in `f64`, stored as `f32`).

/// Whisper's sample rate.
pub(crate) const SAMPLE_RATE: f64 = 16_000.0;
/// Whisper's FFT size (25 ms at 16 kHz).
pub(crate) const N_FFT: usize = 400;
/// Number of FFT bins the filters weigh: `N_FFT / 2 + 1`.
pub(crate) const N_BINS: usize = N_FFT / 2 + 1;

/// Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1_000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// The `n_mels × N_BINS` filter matrix, row-major (one row per mel band).
pub(crate) fn filters(n_mels: usize) -> Vec<f32> {
    let nyquist = SAMPLE_RATE / 2.0;
    let bin_hz: Vec<f64> = (0..N_BINS)
        .map(|k| nyquist * k as f64 / (N_BINS - 1) as f64)
        .collect();
    // n_mels + 2 points evenly spaced in mel from 0 to Nyquist: each band's left, centre, right.
    let top = hz_to_mel(nyquist);
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * N_BINS);
    for band in 0..n_mels {
        let (left, centre, right) = (edges[band], edges[band + 1], edges[band + 2]);
        // Slaney normalisation: every filter has the same area.
        let norm = 2.0 / (right - left);
        out.extend(bin_hz.iter().map(|&hz| {
            let rising = (hz - left) / (centre - left);
            let falling = (right - hz) / (right - centre);
            (rising.min(falling).max(0.0) * norm) as f32
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_linear_below_1_khz_and_round_trips() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(1_000.0) - 15.0).abs() < 1e-12);
        for hz in [0.0, 123.4, 999.0, 1_000.0, 3_456.7, 8_000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    /// Values printed by `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` (librosa 0.11,
    /// numpy 2), an implementation independent of this one.
    #[test]
    fn matches_librosa() {
        let f = filters(80);
        assert_eq!(f.len(), 80 * N_BINS);
        let at = |band: usize, bin: usize| f64::from(f[band * N_BINS + bin]);
        for (band, bin, librosa) in LIBROSA {
            assert!(
                (at(band, bin) - librosa).abs() < 1e-7,
                "band {band} bin {bin}: {} vs {librosa}",
                at(band, bin)
            );
        }
        // Every band weighs some bin; each bin belongs to at most two bands.
        for band in 0..80 {
            assert!((0..N_BINS).any(|bin| at(band, bin) > 0.0), "band {band}");
        }
        for bin in 0..N_BINS {
            assert!((0..80).filter(|band| at(*band, bin) > 0.0).count() <= 2);
        }
    }

    const LIBROSA: [(usize, usize, f64); 12] = [
        (0, 1, 0.024_862_594_902_515_41),
        (0, 2, 0.0),
        (1, 1, 0.001_990_821_911_022_067),
        (1, 2, 0.022_871_771_827_340_126),
        (9, 9, 0.017_917_396_500_706_673),
        (9, 10, 0.006_945_197_004_824_877),
        (30, 29, 0.015_856_036_916_375_16),
        (30, 30, 0.008_962_770_923_972_13),
        (55, 74, 0.000_924_591_091_461_479_7),
        (55, 75, 0.003_870_812_011_882_662_8),
        (79, 186, 0.000_366_741_674_952_209),
        (79, 187, 0.000_833_070_022_054_016_6),
    ];
}
