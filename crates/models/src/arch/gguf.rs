//! Reading GGUF files with clear errors: a file that is missing, truncated, corrupt or of an
//! architecture kaizen does not run is reported as such, never as a panic deep in a loader.

use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}; run `{}` if this is a kaizen model", crate::home::SETUP_COMMAND)]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a GGUF file (bad magic bytes)")]
    NotGguf { path: PathBuf },
    #[error("{path} is corrupt or truncated: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: missing metadata key '{key}'")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: architecture '{arch}' is not supported (supported: {supported})")]
    UnknownArchitecture { path: PathBuf, arch: String, supported: String },
}

/// A parsed GGUF header plus the path, for loading tensors later.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    file_len: u64,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let path = path.to_path_buf();
        let mut file = File::open(&path).map_err(|source| GgufError::Open { path: path.clone(), source })?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 4];
        if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(GgufError::NotGguf { path });
        }
        drop(file);
        let file = File::open(&path).map_err(|source| GgufError::Open { path: path.clone(), source })?;
        let mut reader = BufReader::new(file);
        // candle's reader trusts length fields; a corrupt file can ask for absurd allocations or
        // panic on a slice. Contain that here so callers always get an error value.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)));
        let content = match parsed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(GgufError::Corrupt { path, reason: e.to_string() }),
            Err(_) => return Err(GgufError::Corrupt { path, reason: "unreadable header".into() }),
        };
        let g = GgufFile { path, content, file_len };
        g.check_tensor_extents()?;
        Ok(g)
    }

    /// Every tensor must lie inside the file; a truncated download fails here, at open.
    fn check_tensor_extents(&self) -> Result<(), GgufError> {
        for (name, info) in &self.content.tensor_infos {
            let elems = info.shape.elem_count();
            let bs = info.ggml_dtype.block_size();
            if bs == 0 || elems % bs != 0 {
                return Err(self.corrupt(format!("tensor {name} has {elems} elements, not a multiple of {bs}")));
            }
            let bytes = (elems / bs) as u64 * info.ggml_dtype.type_size() as u64;
            let end = self.content.tensor_data_offset + info.offset + bytes;
            if end > self.file_len {
                return Err(self.corrupt(format!(
                    "tensor {name} ends at byte {end} but the file has {} bytes (truncated download?)",
                    self.file_len
                )));
            }
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> GgufError {
        GgufError::Corrupt { path: self.path.clone(), reason }
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.to_string() })
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.get(key)?;
        v.to_u32()
            .or_else(|_| v.to_u64().map(|x| x as u32))
            .or_else(|_| v.to_i32().map(|x| x as u32))
            .map_err(|e| self.corrupt(format!("{key}: {e}")))
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.get(key)?;
        v.to_f32().or_else(|_| v.to_f64().map(|x| x as f32)).map_err(|e| self.corrupt(format!("{key}: {e}")))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.to_string().map(|s| s.as_str()).map_err(|e| self.corrupt(format!("{key}: {e}")))
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<String>, GgufError> {
        let arr = self.get(key)?.to_vec().map_err(|e| self.corrupt(format!("{key}: {e}")))?;
        arr.iter().map(|v| v.to_string().cloned().map_err(|e| self.corrupt(format!("{key}: {e}")))).collect()
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        let arr = self.get(key)?.to_vec().map_err(|e| self.corrupt(format!("{key}: {e}")))?;
        arr.iter().map(|v| v.to_f32().map_err(|e| self.corrupt(format!("{key}: {e}")))).collect()
    }

    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        let arr = self.get(key)?.to_vec().map_err(|e| self.corrupt(format!("{key}: {e}")))?;
        arr.iter()
            .map(|v| {
                v.to_i32().or_else(|_| v.to_u32().map(|x| x as i32)).map_err(|e| self.corrupt(format!("{key}: {e}")))
            })
            .collect()
    }

    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    /// Reads one tensor's raw quantised data.
    pub fn tensor(
        &self,
        name: &str,
        device: &candle_core::Device,
    ) -> Result<candle_core::quantized::QTensor, GgufError> {
        let file = File::open(&self.path).map_err(|source| GgufError::Open { path: self.path.clone(), source })?;
        let mut reader = BufReader::new(file);
        self.content.tensor(&mut reader, name, device).map_err(|e| self.corrupt(format!("tensor {name}: {e}")))
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
}
