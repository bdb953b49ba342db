//! Writes whisper.cpp's model file (the legacy `ggml` layout its loader reads): the magic, eleven
//! `i32` hyper-parameters, the mel filters, the vocabulary, then each tensor as `i32` rank, name
//! length and type, its dimensions innermost first, the name and the data. All little-endian.

use std::io::{self, Write};

use half::f16;

/// `"ggml"` as whisper.cpp reads it (a little-endian `u32`).
const MAGIC: u32 = 0x6767_6d6c;

/// whisper.cpp's `ftype` for "matrices in f16, everything else in f32".
pub(crate) const FTYPE_F16: i32 = 1;

/// The model's shape, as whisper.cpp's header lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// How a tensor is stored: whisper.cpp expects weight matrices (and the convolutions) in the
/// model's f16 and biases, norms and positional embeddings in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    F32,
    F16,
}

/// A streaming writer of one model file.
pub(crate) struct GgmlWriter<W: Write> {
    out: W,
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
        out.write_all(&FTYPE_F16.to_le_bytes())?;
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
        Ok(GgmlWriter { out })
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
        self.out.write_all(&int(dims.len())?)?;
        self.out.write_all(&int(name.len())?)?;
        let type_id = match storage {
            Storage::F32 => 0,
            Storage::F16 => 1,
        };
        self.out.write_all(&int(type_id)?)?;
        for dim in dims.iter().rev() {
            self.out.write_all(&int(*dim)?)?;
        }
        self.out.write_all(name.as_bytes())?;
        let mut data = Vec::with_capacity(values.len() * 4);
        match storage {
            Storage::F32 => values
                .iter()
                .for_each(|v| data.extend_from_slice(&v.to_le_bytes())),
            Storage::F16 => values
                .iter()
                .for_each(|v| data.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
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
            GgmlWriter::start(Vec::new(), &params, &[0.25, 0.5], 2, &tokens).expect("header");
        writer
            .tensor("encoder.conv1.bias", &[4, 1], Storage::F32, &[1.0; 4])
            .expect("tensor");
        writer
            .tensor("w", &[2, 3], Storage::F16, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
            .expect("tensor");
        let bytes = writer.finish().expect("flushed");
        assert_eq!(&bytes[..4], b"lmgg");
        assert_eq!(i32_at(&bytes, 4), 3);
        assert_eq!(i32_at(&bytes, 4 + 10 * 4), FTYPE_F16);
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
        let params = HyperParameters {
            n_vocab: 0,
            n_audio_ctx: 0,
            n_audio_state: 0,
            n_audio_head: 0,
            n_audio_layer: 0,
            n_text_ctx: 0,
            n_text_state: 0,
            n_text_head: 0,
            n_text_layer: 0,
            n_mels: 0,
        };
        let mut writer = GgmlWriter::start(Vec::new(), &params, &[], 0, &[]).expect("header");
        assert!(writer.tensor("x", &[2, 2], Storage::F32, &[1.0]).is_err());
    }
}
