//! The weight types a converted model can be written in, and ggml's block quantization for the
//! smaller ones, computed here exactly as ggml's reference quantizers do (`quantize_row_*_ref`),
//! so whisper.cpp reads the file as if its own `quantize` tool had written it.
//!
//! Every format cuts a row into blocks of 32 values and stores one f16 scale per block:
//!
//! - `q8_0` (34 bytes): scale `max|x| / 127`, then 32 signed bytes `round(x / scale)`;
//! - `q5_0` (22 bytes): scale `-(the value of largest magnitude) / 16`, 32 five-bit values
//!   `x / scale + 16`: their fifth bits packed in a `u32`, their low nibbles two per byte
//!   (value `j` in the low nibble of byte `j`, value `16 + j` in its high nibble);
//! - `q5_1` (24 bytes): scale `(max - min) / 31` and the minimum, then five-bit `(x - min) /
//!   scale` packed as in `q5_0`.

use half::f16;
use serde::{Deserialize, Serialize};

/// Values per quantization block, for every format here.
pub const BLOCK: usize = 32;

/// How the model's weight matrices are stored (biases, norms and positional embeddings stay
/// f32, the convolutions f16, whatever is chosen).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Half precision, as converted: the reference.
    #[default]
    F16,
    /// 8-bit blocks (8.5 bits a weight).
    Q8_0,
    /// 5-bit blocks with a scale (5.5 bits a weight).
    Q5_0,
    /// 5-bit blocks with a scale and a minimum (6 bits a weight).
    Q5_1,
}

impl Weights {
    /// The name used in file names and logs.
    pub fn name(self) -> &'static str {
        match self {
            Weights::F16 => "f16",
            Weights::Q8_0 => "q8_0",
            Weights::Q5_0 => "q5_0",
            Weights::Q5_1 => "q5_1",
        }
    }

    /// ggml's tensor type id.
    pub(crate) fn type_id(self) -> i32 {
        match self {
            Weights::F16 => 1,
            Weights::Q5_0 => 6,
            Weights::Q5_1 => 7,
            Weights::Q8_0 => 8,
        }
    }

    /// The file header's `ftype`: ggml's "mostly this type", plus the quantization format's
    /// version (2) × 1000 for quantized files, as whisper.cpp's `quantize` writes it.
    pub(crate) fn file_type(self) -> i32 {
        const QUANTIZATION_VERSION: i32 = 2 * 1000;
        match self {
            Weights::F16 => 1,
            Weights::Q8_0 => 7 + QUANTIZATION_VERSION,
            Weights::Q5_0 => 8 + QUANTIZATION_VERSION,
            Weights::Q5_1 => 9 + QUANTIZATION_VERSION,
        }
    }

    /// Appends `values` (whole rows whose length is a multiple of [`BLOCK`] for the quantized
    /// types) in this type's layout.
    pub(crate) fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        match self {
            Weights::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
            Weights::Q8_0 => values.chunks(BLOCK).for_each(|b| q8_0(b, out)),
            Weights::Q5_0 => values.chunks(BLOCK).for_each(|b| q5_0(b, out)),
            Weights::Q5_1 => values.chunks(BLOCK).for_each(|b| q5_1(b, out)),
        }
    }

    /// Whether rows of `columns` values can be stored in this type.
    pub(crate) fn fits(self, columns: usize) -> bool {
        self == Weights::F16 || columns.is_multiple_of(BLOCK)
    }
}

fn inverse(scale: f32) -> f32 {
    if scale == 0.0 { 0.0 } else { 1.0 / scale }
}

fn q8_0(block: &[f32], out: &mut Vec<u8>) {
    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = amax / 127.0;
    let id = inverse(scale);
    out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
    // `as` saturates, and |x·id| ≤ 127 anyway.
    out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Packs 32 five-bit values: fifth bits in a little-endian `u32`, low nibbles two per byte.
fn pack_five_bits(values: &[u8; BLOCK], out: &mut Vec<u8>) {
    let high = values
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, v)| h | (u32::from((v >> 4) & 1) << j));
    out.extend_from_slice(&high.to_le_bytes());
    let half = BLOCK / 2;
    out.extend((0..half).map(|j| (values[j] & 0x0f) | ((values[half + j] & 0x0f) << 4)));
}

fn q5_0(block: &[f32], out: &mut Vec<u8>) {
    let largest = block
        .iter()
        .fold(0.0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
    let scale = largest / -16.0;
    let id = inverse(scale);
    out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
    let mut values = [0u8; BLOCK];
    for (q, v) in values.iter_mut().zip(block) {
        // ggml truncates towards zero through an `int8_t`, then caps at 31.
        *q = ((v * id + 16.5) as i8).min(31) as u8;
    }
    pack_five_bits(&values, out);
}

fn q5_1(block: &[f32], out: &mut Vec<u8>) {
    let min = block.iter().copied().fold(f32::MAX, f32::min);
    let max = block.iter().copied().fold(-f32::MAX, f32::max);
    let scale = (max - min) / 31.0;
    let id = inverse(scale);
    out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
    let mut values = [0u8; BLOCK];
    for (q, v) in values.iter_mut().zip(block) {
        *q = ((v - min) * id + 0.5) as u8;
    }
    pack_five_bits(&values, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a block back the way ggml's `dequantize_row_*` does.
    fn dequantize(weights: Weights, block: &[u8]) -> Vec<f32> {
        let half = |at: usize| f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        let five = |at: usize| {
            let high = u32::from_le_bytes(block[at..at + 4].try_into().expect("4 bytes"));
            let low = &block[at + 4..at + 20];
            (0..BLOCK)
                .map(|j| {
                    let nibble = if j < 16 {
                        low[j] & 0x0f
                    } else {
                        low[j - 16] >> 4
                    };
                    f32::from(nibble | ((((high >> j) & 1) as u8) << 4))
                })
                .collect::<Vec<_>>()
        };
        match weights {
            Weights::F16 => block
                .chunks(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Weights::Q8_0 => block[2..]
                .iter()
                .map(|q| f32::from(*q as i8) * half(0))
                .collect(),
            Weights::Q5_0 => five(2).into_iter().map(|q| (q - 16.0) * half(0)).collect(),
            Weights::Q5_1 => five(4).into_iter().map(|q| q * half(0) + half(2)).collect(),
        }
    }

    fn ramp() -> Vec<f32> {
        (0..BLOCK).map(|i| (i as f32 - 12.0) * 0.05).collect()
    }

    #[test]
    fn q8_0_lays_out_scale_then_bytes() {
        let values = ramp();
        let mut out = Vec::new();
        Weights::Q8_0.encode(&values, &mut out);
        assert_eq!(out.len(), 34);
        // The largest magnitude (19 × 0.05 = 0.95) maps to 127, and -12 × 0.05 to -80.
        assert_eq!(out[2 + 31] as i8, 127);
        assert_eq!(out[2] as i8, -80);
        assert_eq!(out[2 + 12], 0);
    }

    #[test]
    fn q5_0_packs_fifth_bits_and_nibbles() {
        let values = ramp();
        let mut out = Vec::new();
        Weights::Q5_0.encode(&values, &mut out);
        assert_eq!(out.len(), 22);
        // Largest magnitude 0.95 → scale -0.059375: 0.95 maps to 0, -0.6 to 16 + 10.1 → 26.
        let q = |j: usize| {
            let high = u32::from_le_bytes(out[2..6].try_into().expect("4"));
            let low = if j < 16 {
                out[6 + j] & 0x0f
            } else {
                out[6 + j - 16] >> 4
            };
            low | ((((high >> j) & 1) as u8) << 4)
        };
        assert_eq!(q(31), 0);
        assert_eq!(q(0), 26);
        assert_eq!(q(12), 16);
    }

    #[test]
    fn every_type_reads_back_within_its_step() {
        let values: Vec<f32> = (0..BLOCK * 4)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 70.0)
            .collect();
        for (weights, size, step) in [
            (Weights::F16, 2 * BLOCK, 0.001),
            (Weights::Q8_0, 34, 1.0 / 127.0),
            (Weights::Q5_0, 22, 1.0 / 16.0),
            (Weights::Q5_1, 24, 1.0 / 31.0),
        ] {
            let mut out = Vec::new();
            weights.encode(&values, &mut out);
            assert_eq!(out.len(), 4 * size, "{weights:?}");
            for (block, original) in out.chunks(size).zip(values.chunks(BLOCK)) {
                let amax = original.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let range = 2.0 * amax;
                for (got, want) in dequantize(weights, block).iter().zip(original) {
                    assert!(
                        (got - want).abs() <= range * step,
                        "{weights:?}: {got} for {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_block_of_zeros_stays_zero() {
        for weights in [Weights::Q8_0, Weights::Q5_0, Weights::Q5_1] {
            let mut out = Vec::new();
            weights.encode(&[0.0; BLOCK], &mut out);
            assert!(
                dequantize(weights, &out).iter().all(|v| *v == 0.0),
                "{weights:?}"
            );
        }
    }
}
