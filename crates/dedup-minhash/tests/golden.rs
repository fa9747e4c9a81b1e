//! Bit-compatibility with datasketch 2.0.0 (golden values from tests/fixtures/make_golden.py):
//! shingles, sha1_hash32, numpy permutation draws, `legacy` and `affine32` signatures, and
//! `_optimal_param`.

use infuse_dedup_minhash::{BaseHash, Family, LshParams, MinHasher, Shingle, Shingler, optimal_params, shingle::base_hash};
use serde_json::Value;

fn golden() -> Value {
    let text = include_str!("fixtures/golden.json");
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

#[test]
fn shingles_match_python_regex_split() {
    let g = golden();
    let texts = g["texts"].as_array().cloned().unwrap_or_default();
    assert!(texts.len() >= 5);
    for entry in &texts {
        let text = entry["text"].as_str().unwrap_or_default();
        for n in [1usize, 3, 5] {
            let expect: Vec<String> =
                entry["shingles"][n.to_string()].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default();
            let mut sh = Shingler::new(Shingle::Words(n), BaseHash::Xxh3);
            let mut got = sh.shingles(text);
            let mut expect_sorted = expect.clone();
            // Python sorts bytes, Rust sorts str: both are byte order for UTF-8.
            expect_sorted.sort();
            got.sort();
            assert_eq!(got, expect_sorted, "text {text:?} n={n}");
        }
        let sha: Vec<u64> = u64s(&entry["sha1_hash32"]);
        let shingles: Vec<String> = {
            let mut v: Vec<String> = entry["shingles"]["5"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default();
            v.sort();
            v
        };
        let got: Vec<u64> = shingles.iter().map(|s| base_hash(BaseHash::Sha1, s.as_bytes()) & 0xffff_ffff).collect();
        assert_eq!(got, sha, "sha1_hash32 of {text:?}");
    }
}

#[test]
fn numpy_permutations_match() {
    let g = golden();
    for seed in [1u64, 42] {
        let p = &g["permutations"][seed.to_string()];
        let legacy = MinHasher::with_params(8, Family::Mersenne61, BaseHash::Sha1, seed, Shingle::Words(5)).permutations();
        assert_eq!(legacy.0, u64s(&p["legacy_a"]), "legacy a, seed {seed}");
        assert_eq!(legacy.1, u64s(&p["legacy_b"]), "legacy b, seed {seed}");
        let aff = MinHasher::with_params(8, Family::Affine32, BaseHash::Sha1, seed, Shingle::Words(5)).permutations();
        assert_eq!(aff.0, u64s(&p["affine32_a"]), "affine32 a, seed {seed}");
        assert_eq!(aff.1, u64s(&p["affine32_b"]), "affine32 b, seed {seed}");
    }
}

#[test]
fn signatures_are_bit_identical_to_datasketch() {
    let g = golden();
    let texts = g["texts"].as_array().cloned().unwrap_or_default();
    let mut checked = 0;
    for entry in &texts {
        let text = entry["text"].as_str().unwrap_or_default();
        for seed in [1u64, 42] {
            for (scheme, family) in [("legacy", Family::Mersenne61), ("affine32", Family::Affine32)] {
                let expect = u64s(&entry[scheme][seed.to_string()]);
                assert_eq!(expect.len(), 32);
                let h = MinHasher::with_params(32, family, BaseHash::Sha1, seed, Shingle::Words(5));
                let got: Vec<u64> = h.signature(text).into_iter().map(u64::from).collect();
                assert_eq!(got, expect, "{scheme} seed {seed} text {text:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, texts.len() * 4);
}

#[test]
fn optimal_params_match_datasketch_grid() {
    let g = golden();
    let rows = g["optimal_param"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() > 200);
    let mut mismatches = Vec::new();
    for row in rows {
        let a = row.as_array().cloned().unwrap_or_default();
        let n = a[0].as_u64().unwrap_or(0) as usize;
        let t = a[1].as_f64().unwrap_or(0.0);
        let fpw = a[2].as_f64().unwrap_or(0.0);
        let fnw = a[3].as_f64().unwrap_or(0.0);
        let expect = LshParams { bands: a[4].as_u64().unwrap_or(0) as usize, rows: a[5].as_u64().unwrap_or(0) as usize };
        let got = optimal_params(t, n, fpw, fnw);
        if got != expect {
            mismatches.push(format!("n={n} t={t} w=({fpw},{fnw}): got {got:?}, datasketch {expect:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
