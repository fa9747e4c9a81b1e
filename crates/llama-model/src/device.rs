//! Choosing a burn device from a user string, and the dtype names users type.

use burn::prelude::*;
use burn::tensor::DType;

use crate::{Error, Result};

/// The default device of this build: the first compiled-in backend, CUDA before CPU (burn's order),
/// overridable with `BURN_DEVICE`.
pub fn default_device() -> Device {
    Device::default()
}

/// Parse `cpu` / `flex`, `cuda`, `cuda:N`, `tch`, `tch:cuda:N` or `auto` into a device.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let index = |s: &str| -> Result<usize> {
        s.parse::<usize>().map_err(|_| Error::UnsupportedDevice(format!("{spec} (bad device index `{s}`)")))
    };
    match spec.as_str() {
        "auto" | "" => Ok(default_device()),
        #[cfg(feature = "flex")]
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" | "gpu" => Ok(Device::cuda(0)),
        #[cfg(feature = "tch")]
        "tch" | "libtorch" => Ok(Device::libtorch()),
        #[cfg(feature = "cuda")]
        s if s.starts_with("cuda:") => Ok(Device::cuda(index(&s[5..])?)),
        #[cfg(feature = "tch")]
        s if s.starts_with("tch:cuda:") => Ok(Device::libtorch_cuda(index(&s[9..])?)),
        _ => {
            let _ = index;
            Err(Error::UnsupportedDevice(spec))
        }
    }
}

/// Parse `f32` / `float32`, `f16` / `float16`, `bf16` / `bfloat16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::InvalidInput(format!("unknown dtype `{other}` (expected f32, f16 or bf16)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dtypes_and_rejects_unknown() {
        assert_eq!(parse_dtype("bfloat16").expect("bf16"), DType::BF16);
        assert!(parse_dtype("int4").is_err());
    }

    #[test]
    fn unknown_device_names_itself() {
        let err = parse_device("tpu:3").expect_err("no tpu");
        assert!(err.to_string().contains("tpu:3"), "{err}");
    }
}
