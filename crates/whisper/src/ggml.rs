//! Writes whisper.cpp's model file (the legacy `ggml` layout its loader reads): the magic, eleven
//! `i32` hyper-parameters, the mel filters, the vocabulary, then each tensor as `i32` rank, name
//! length and type, its dimensions innermost first, the name and the data. All little-endian.

use std::io::{self, Write};

use crate::quantize::Weights;

/// `"ggml"` as whisper.cpp reads it (a little-endian `u32`).
const MAGIC: u32 = 0x6767_6d6c;

/// The model's shape, as whisper.cpp's header lists it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HyperParameters {
    pub(crate) n_vocab: usize,
    pub(crate) n_audio_ctx: usize,
    pub(crate) n_audio_state: usize,
    pub(crate) n_audio_head: usize,
    pub(crate) n_audio_layer: usize,
    pub(crate) n_text_ctx: usize,
    pub(crate) n_text_state: usize,
    pub(crate) n_text_head: usize,
    pub(crate) n_text_layer: usize,
    pub(crate) n_mels: usize,
}

/// How a tensor is stored: whisper.cpp expects weight matrices in the model's weight type, the
/// convolutions in f16 (f32 only in an all-f32 model), and biases, norms and positional
/// embeddings in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    F32,
    F16,
    /// The file's [`Weights`].
    Matrix,
}

/// A streaming writer of one model file.
pub(crate) struct GgmlWriter<W: Write> {
    out: W,
    weights: Weights,
}

fn int(value: usize) -> io::Result<[u8; 4]> {
    i32::try_from(value)
        .map(i32::to_le_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a size beyond i32"))
}

impl<W: Write> GgmlWriter<W> {
    /// Writes the magic, the header, the filters (`n_mels × n_bins`) and the vocabulary.
    pub(crate) fn start(
        mut out: W,
        weights: Weights,
        params: &HyperParameters,
        filters: &[f32],
        n_bins: usize,
        tokens: &[Vec<u8>],
    ) -> io::Result<GgmlWriter<W>> {
        out.write_all(&MAGIC.to_le_bytes())?;
        for value in [
            params.n_vocab,
            params.n_audio_ctx,
            params.n_audio_state,
            params.n_audio_head,
            params.n_audio_layer,
            params.n_text_ctx,
            params.n_text_state,
            params.n_text_head,
            params.n_text_layer,
            params.n_mels,
        ] {
            out.write_all(&int(value)?)?;
        }
        out.write_all(&weights.file_type().to_le_bytes())?;
        out.write_all(&int(params.n_mels)?)?;
        out.write_all(&int(n_bins)?)?;
        for value in filters {
            out.write_all(&value.to_le_bytes())?;
        }
        out.write_all(&int(tokens.len())?)?;
        for token in tokens {
            out.write_all(&int(token.len())?)?;
            out.write_all(token)?;
        }
        Ok(GgmlWriter { out, weights })
    }

    /// Writes one tensor. `dims` are outermost first (PyTorch order); the file lists them
    /// innermost first, as ggml counts.
    pub(crate) fn tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        storage: Storage,
        values: &[f32],
    ) -> io::Result<()> {
        if dims.iter().product::<usize>() != values.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}`: {} values for dims {dims:?}", values.len()),
            ));
        }
        let weights = match storage {
            Storage::F32 => None,
            Storage::F16 => Some(Weights::F16),
            Storage::Matrix => Some(self.weights),
        };
        let columns = dims.last().copied().unwrap_or(1);
        if weights.is_some_and(|w| !w.fits(columns)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{name}`: rows of {columns} values cannot be stored in {}",
                    self.weights.name()
                ),
            ));
        }
        self.out.write_all(&int(dims.len())?)?;
        self.out.write_all(&int(name.len())?)?;
        self.out
            .write_all(&weights.map_or(0, Weights::type_id).to_le_bytes())?;
        for dim in dims.iter().rev() {
            self.out.write_all(&int(*dim)?)?;
        }
        self.out.write_all(name.as_bytes())?;
        let mut data = Vec::with_capacity(values.len() * 4);
        match weights {
            None => values
                .iter()
                .for_each(|v| data.extend_from_slice(&v.to_le_bytes())),
            Some(weights) => weights.encode(values, &mut data),
        }
        self.out.write_all(&data)
    }

    /// Flushes and hands back the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    fn i32_at(bytes: &[u8], at: usize) -> i32 {
        i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn lays_out_header_filters_vocabulary_and_tensors() {
        let params = HyperParameters {
            n_vocab: 3,
            n_audio_ctx: 2,
            n_audio_state: 4,
            n_audio_head: 1,
            n_audio_layer: 1,
            n_text_ctx: 2,
            n_text_state: 4,
            n_text_head: 1,
            n_text_layer: 1,
            n_mels: 1,
        };
        let tokens = vec![b"a".to_vec(), b" bc".to_vec()];
        let mut writer =
            GgmlWriter::start(Vec::new(), Weights::F16, &params, &[0.25, 0.5], 2, &tokens)
                .expect("header");
        writer
            .tensor("encoder.conv1.bias", &[4, 1], Storage::F32, &[1.0; 4])
            .expect("tensor");
        writer
            .tensor(
                "w",
                &[2, 3],
                Storage::Matrix,
                &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            )
            .expect("tensor");
        let bytes = writer.finish().expect("flushed");
        assert_eq!(&bytes[..4], b"lmgg");
        assert_eq!(i32_at(&bytes, 4), 3);
        assert_eq!(i32_at(&bytes, 4 + 10 * 4), 1, "mostly f16");
        // filters: n_mel, n_fft, values
        let f = 4 + 11 * 4;
        assert_eq!((i32_at(&bytes, f), i32_at(&bytes, f + 4)), (1, 2));
        assert_eq!(
            f32::from_le_bytes(bytes[f + 12..f + 16].try_into().expect("4")),
            0.5
        );
        // vocabulary: count, then length-prefixed bytes
        let v = f + 16;
        assert_eq!(i32_at(&bytes, v), 2);
        assert_eq!(&bytes[v + 8..v + 9], b"a");
        assert_eq!(i32_at(&bytes, v + 9), 3);
        // first tensor: rank 2, name length, f32, dims innermost first [1, 4]
        let t = v + 16;
        assert_eq!(
            [0, 4, 8, 12, 16].map(|o| i32_at(&bytes, t + o)),
            [2, 18, 0, 1, 4]
        );
        assert_eq!(&bytes[t + 20..t + 38], b"encoder.conv1.bias");
        // the f16 tensor's last value
        let end = bytes.len();
        assert_eq!(
            f16::from_le_bytes([bytes[end - 2], bytes[end - 1]]).to_f32(),
            5.0
        );
        assert_eq!(end, t + 38 + 16 + 20 + 1 + 12);
    }

    #[test]
    fn a_tensor_whose_values_do_not_fill_its_dims_is_refused() {
        let params = HyperParameters::default();
        let mut writer =
            GgmlWriter::start(Vec::new(), Weights::F16, &params, &[], 0, &[]).expect("header");
        assert!(writer.tensor("x", &[2, 2], Storage::F32, &[1.0]).is_err());
    }

    #[test]
    fn a_quantized_file_quantizes_matrices_only() {
        let params = HyperParameters::default();
        let header = 4 + 11 * 4 + 8 + 4;
        let mut writer =
            GgmlWriter::start(Vec::new(), Weights::Q8_0, &params, &[], 0, &[]).expect("header");
        writer
            .tensor("m", &[2, 32], Storage::Matrix, &[0.5; 64])
            .expect("a matrix");
        writer
            .tensor("c", &[1, 1, 2], Storage::F16, &[0.5; 2])
            .expect("a convolution");
        assert!(
            writer
                .tensor("odd", &[2, 3], Storage::Matrix, &[0.5; 6])
                .is_err(),
            "rows not a whole number of blocks"
        );
        let bytes = writer.finish().expect("flushed");
        assert_eq!(
            i32_at(&bytes, 4 + 10 * 4),
            2007,
            "mostly q8_0, format version 2"
        );
        // matrix: rank, name length, type q8_0, dims [32, 2], name, two 34-byte blocks
        assert_eq!(i32_at(&bytes, header + 8), 8);
        let convolution = header + 20 + 1 + 2 * 34;
        assert_eq!(i32_at(&bytes, convolution + 8), 1, "f16");
        assert_eq!(bytes.len(), convolution + 24 + 1 + 4);
    }
}
