//! Every ggml block type against gguf-py's reference dequantization
//! (`fixtures/gguf_quants/make_quant_fixtures.py`): random valid blocks, exact f32 equality.

use std::path::Path;

use infuse_llama_model::gguf::{GgmlType, dequantize};

#[test]
fn dequantization_matches_gguf_py() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gguf_quants/blocks.safetensors");
    let bytes = std::fs::read(path).expect("fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let types = [
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q5_0", GgmlType::Q5_0),
        ("Q5_1", GgmlType::Q5_1),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
        ("BF16", GgmlType::BF16),
        ("F16", GgmlType::F16),
    ];
    for (name, ty) in types {
        let raw = st.tensor(&format!("{name}.bytes")).expect("bytes");
        let want: Vec<f32> = st
            .tensor(&format!("{name}.values"))
            .expect("values")
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got = dequantize(ty, raw.data(), want.len());
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}[{i}]: {g} vs {w}");
        }
    }
}
