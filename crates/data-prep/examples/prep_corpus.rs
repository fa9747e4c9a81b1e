//! Run the data-prep pipeline on a corpus and look at the result.
//!
//! ```text
//! cargo run -p infuse-data-prep --example prep_corpus                 # the bundled messy fixture corpus
//! cargo run -p infuse-data-prep --example prep_corpus -- prep.toml mix.order=icp
//! ```
//!
//! Without arguments it cleans, deduplicates, anonymizes, mixes and packs the test fixtures
//! (JSONL with bad lines and PII, a Markdown folder, a small code repository, SFT and preference
//! files) with the tiny byte-level tokenizer in `tests/fixtures/tokenizer`, writes everything to a
//! temporary directory and prints what happened.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use infuse_data_prep::{PrepConfig, TokenStore, run_prep};

fn fixture_config(out: &std::path::Path) -> infuse_data_prep::Result<PrepConfig> {
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let toml = format!(
        r#"
output_dir = "{out}"
tokenizer = "{f}/tokenizer/tokenizer.json"
seq_len = 512

[pii]
names = ["Marta Kowalska"]

[compliance]
blocklist = ["Project Nightingale"]
blocked_domains = ["leaked.example"]

[mix]
order = "icp"
valid_fraction = 0.1

[[sources]]
name = "domain"
paths = ["{f}/domain"]
weight = 0.7
max_epochs = 3

[[sources]]
name = "general"
kind = "text"
paths = ["{f}/general"]
weight = 0.3

[[sft]]
name = "chat"
paths = ["{f}/sft.jsonl"]

[[preference]]
name = "prefs"
paths = ["{f}/preference.jsonl"]

[chat]
chat_template = "llama3"
"#,
        out = out.display(),
        f = f.display()
    );
    PrepConfig::from_str_with(&toml, false, &[])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _tmp;
    let config = match args.split_first() {
        Some((path, overrides)) => PrepConfig::load(path, overrides)?,
        None => {
            let dir =
                std::env::temp_dir().join(format!("infuse-prep-example-{}", std::process::id()));
            _tmp = dir.clone();
            fixture_config(&dir)?
        }
    };
    let report = run_prep(&config)?;
    for s in &report.sources {
        println!(
            "source {:<10} {:>4} in {:>4} out, {} bad input, {} tokens",
            s.name,
            s.records_in,
            s.records_out,
            s.issues.values().sum::<u64>(),
            s.tokens_out
        );
        for (reason, r) in &s.removed {
            println!(
                "    removed {reason:<28} {:>3}  e.g. {}",
                r.count,
                r.examples.first().map_or("", |e| e.id.as_str())
            );
        }
    }
    println!(
        "PII replaced: {:?}",
        report
            .pii
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>()
    );
    if let Some(mix) = &report.mix {
        for e in &mix.sources {
            println!(
                "mix {:<10} target {:>5.1}%  achieved {:>5.1}%  ({:.2} epochs)",
                e.name,
                e.target_fraction * 100.0,
                e.achieved_fraction * 100.0,
                e.epochs
            );
        }
    }
    let train = config.output_dir.join("cpt/train");
    if train.exists() {
        let store = TokenStore::open(&train)?;
        let seq = store.sequence(0)?;
        println!(
            "cpt/train: {} sequences, {} tokens; sequence 0 has {} documents starting at {:?}",
            store.num_sequences(),
            store.meta().num_tokens,
            seq.doc_starts.len(),
            seq.doc_starts
        );
    }
    println!(
        "report: {}",
        config.output_dir.join("report.html").display()
    );
    Ok(())
}
