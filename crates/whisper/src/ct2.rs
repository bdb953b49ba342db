//! Reads a CTranslate2 model file (`model.bin`, binary version 6): the variables by name, with
//! their shape and element type, and the aliases. The layout comes from CTranslate2's
//! `ModelSpec` serializer: little-endian `u32` version, a length-prefixed name, a `u32`
//! revision, then each variable as name, `u8` rank, `u32` dims, `u8` type, `u32` byte count and
//! the raw bytes, then the aliases as (alias, target) name pairs.

use std::collections::HashMap;

use half::{bf16, f16};

use crate::convert::ConvertError;

/// The element types CTranslate2 writes, by their id in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_id(id: u8) -> Result<DType, ConvertError> {
        Ok(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            other => {
                return Err(ConvertError::Format(format!(
                    "unknown element type {other}"
                )));
            }
        })
    }

    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One variable: its shape (outermost first, row-major) and raw little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Variable<'a> {
    pub(crate) shape: &'a [usize],
    pub(crate) dtype: DType,
    pub(crate) bytes: &'a [u8],
}

impl Variable<'_> {
    /// Number of rows: the outermost dimension (1 for a scalar).
    pub(crate) fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The elements as `f32`, whatever the floating-point type on disk.
    pub(crate) fn to_f32(self) -> Result<Vec<f32>, ConvertError> {
        let pairs = |bytes: &[u8]| -> Vec<[u8; 2]> {
            bytes.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
        };
        Ok(match self.dtype {
            DType::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => pairs(self.bytes)
                .into_iter()
                .map(|b| f16::from_le_bytes(b).to_f32())
                .collect(),
            DType::Bf16 => pairs(self.bytes)
                .into_iter()
                .map(|b| bf16::from_le_bytes(b).to_f32())
                .collect(),
            DType::I8 | DType::I16 | DType::I32 => {
                return Err(ConvertError::Unsupported(format!(
                    "{:?} weights (a quantized model); convert from a float16 or float32 model",
                    self.dtype
                )));
            }
        })
    }

    /// A small integer scalar (such as `num_heads`).
    pub(crate) fn to_int(self) -> Option<i64> {
        match (self.dtype, self.bytes) {
            (DType::I8, [b]) => Some(i64::from(i8::from_le_bytes([*b]))),
            (DType::I16, [a, b]) => Some(i64::from(i16::from_le_bytes([*a, *b]))),
            (DType::I32, [a, b, c, d]) => Some(i64::from(i32::from_le_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }

    /// Rows `from..to` of the outermost dimension, as their own variable.
    pub(crate) fn rows_range(&self, from: usize, to: usize) -> Result<Variable<'_>, ConvertError> {
        let rows = self.rows();
        if from > to || to > rows || rows == 0 {
            return Err(ConvertError::Format(format!(
                "rows {from}..{to} of a variable with {rows}"
            )));
        }
        let row_bytes = self.bytes.len() / rows;
        Ok(Variable {
            shape: self.shape,
            dtype: self.dtype,
            bytes: &self.bytes[from * row_bytes..to * row_bytes],
        })
    }
}

/// A parsed `model.bin`, borrowing the file's bytes.
#[derive(Debug)]
pub(crate) struct Ct2Model<'a> {
    /// The spec name, such as `WhisperSpec`.
    pub(crate) spec: String,
    variables: HashMap<String, (Vec<usize>, DType, &'a [u8])>,
    aliases: HashMap<String, String>,
}

/// A cursor over the file's bytes that reports truncation as a format error.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConvertError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| ConvertError::Format(format!("truncated at byte {}", self.at)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, ConvertError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ConvertError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<usize, ConvertError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// A `u16` length (counting a trailing NUL), the UTF-8 bytes, the NUL.
    fn string(&mut self) -> Result<String, ConvertError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(text.to_vec())
            .map_err(|_| ConvertError::Format(format!("a name that is not UTF-8 at {}", self.at)))
    }
}

/// The only binary version this reader knows (CTranslate2 ≥ 3 writes it).
const BINARY_VERSION: usize = 6;

impl<'a> Ct2Model<'a> {
    /// Parses the whole file.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Ct2Model<'a>, ConvertError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u32()?;
        if version != BINARY_VERSION {
            return Err(ConvertError::Unsupported(format!(
                "CTranslate2 binary version {version} (expected {BINARY_VERSION})"
            )));
        }
        let spec = reader.string()?;
        let _revision = reader.u32()?;
        let count = reader.u32()?;
        let mut variables = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = reader.string()?;
            let rank = usize::from(reader.u8()?);
            let shape = (0..rank)
                .map(|_| reader.u32())
                .collect::<Result<Vec<_>, _>>()?;
            let dtype = DType::from_id(reader.u8()?)?;
            let len = reader.u32()?;
            let elements: usize = shape.iter().product();
            if elements * dtype.size() != len {
                return Err(ConvertError::Format(format!(
                    "`{name}`: {len} bytes for shape {shape:?} of {dtype:?}"
                )));
            }
            variables.insert(name, (shape, dtype, reader.take(len)?));
        }
        let alias_count = reader.u32()?;
        let mut aliases = HashMap::with_capacity(alias_count);
        for _ in 0..alias_count {
            let alias = reader.string()?;
            aliases.insert(alias, reader.string()?);
        }
        Ok(Ct2Model {
            spec,
            variables,
            aliases,
        })
    }

    /// The variable called `name` (following an alias).
    pub(crate) fn get(&self, name: &str) -> Result<Variable<'_>, ConvertError> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.variables
            .get(target)
            .map(|(shape, dtype, bytes)| Variable {
                shape,
                dtype: *dtype,
                bytes,
            })
            .ok_or_else(|| ConvertError::Missing(name.to_owned()))
    }

    /// How many `{prefix}/layer_{i}` blocks there are.
    pub(crate) fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                let start = format!("{prefix}/layer_{i}/");
                self.variables.keys().any(|name| name.starts_with(&start))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a file the way CTranslate2's serializer does.
    fn file(variables: &[(&str, &[u32], u8, &[u8])], aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
        for (name, shape, dtype, bytes) in variables {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for dim in *shape {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        out
    }

    #[test]
    fn reads_variables_aliases_and_scalars() {
        let weights: Vec<u8> = [1.0f32, -2.0, 0.5, 4.0]
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        let bytes = file(
            &[
                ("decoder/embeddings/weight", &[2, 2], 4, &weights),
                ("decoder/num_heads", &[], 2, &6i16.to_le_bytes()),
                (
                    "decoder/layer_0/ffn/linear_0/bias",
                    &[1],
                    0,
                    &1f32.to_le_bytes(),
                ),
                (
                    "decoder/layer_1/ffn/linear_0/bias",
                    &[1],
                    0,
                    &2f32.to_le_bytes(),
                ),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        let model = Ct2Model::parse(&bytes).expect("parses");
        assert_eq!(model.spec, "WhisperSpec");
        let projection = model.get("decoder/projection/weight").expect("alias");
        assert_eq!(projection.shape, &[2, 2]);
        assert_eq!(
            projection.to_f32().expect("floats"),
            vec![1.0, -2.0, 0.5, 4.0]
        );
        assert_eq!(
            projection
                .rows_range(1, 2)
                .expect("row")
                .to_f32()
                .expect("floats"),
            vec![0.5, 4.0]
        );
        assert_eq!(
            model.get("decoder/num_heads").expect("scalar").to_int(),
            Some(6)
        );
        assert_eq!(model.layers("decoder"), 2);
        assert!(matches!(
            model.get("encoder/conv1/weight"),
            Err(ConvertError::Missing(_))
        ));
    }

    #[test]
    fn truncated_and_foreign_files_are_format_errors() {
        let bytes = file(&[("a", &[4], 0, &[0u8; 16])], &[]);
        assert!(matches!(
            Ct2Model::parse(&bytes[..bytes.len() - 9]),
            Err(ConvertError::Format(_))
        ));
        let mut other = bytes.clone();
        other[0] = 5;
        assert!(matches!(
            Ct2Model::parse(&other),
            Err(ConvertError::Unsupported(_))
        ));
        let int8 = file(&[("w", &[2], 1, &[1, 2])], &[]);
        let model = Ct2Model::parse(&int8).expect("parses");
        assert!(matches!(
            model.get("w").expect("present").to_f32(),
            Err(ConvertError::Unsupported(_))
        ));
    }
}
