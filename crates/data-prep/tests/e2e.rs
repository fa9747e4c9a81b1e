//! End-to-end: the messy fixture corpus through `run_prep`, checking what was kept, removed and
//! replaced, that outputs are byte-identical across runs, and that a 2-shard run keeps the same
//! documents as a single-process run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use infuse_data_prep::config::Stage;
use infuse_data_prep::pii::PiiKind;
use infuse_data_prep::{PrepConfig, PrepReport, Shard, TokenStore, run_prep};
use infuse_text::{Decode, Tokenizer};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn config(out: &Path) -> PrepConfig {
    let f = fixtures();
    let toml = format!(
        r#"
output_dir = "{out}"
tokenizer = "{f}/tokenizer/tokenizer.json"
seq_len = 256
seed = 7
batch_size = 4

[pii]
names = ["Marta Kowalska"]

[compliance]
blocklist = ["Project Nightingale"]
max_blocklist_hits = 1
blocked_domains = ["leaked.example"]

[mix]
valid_fraction = 0.2

[[sources]]
name = "domain"
paths = ["{f}/domain"]
weight = 0.7
max_epochs = 2

[[sources]]
name = "general"
kind = "text"
paths = ["{f}/general"]
weight = 0.3

[[sources]]
name = "code"
kind = "code"
paths = ["{f}/repo"]
weight = 0.1

[[sft]]
name = "chat"
paths = ["{f}/sft.jsonl"]

[[preference]]
name = "prefs"
paths = ["{f}/preference.jsonl"]

[chat]
chat_template = "llama3"
valid_fraction = 0.0
"#,
        out = out.display(),
        f = f.display()
    );
    PrepConfig::from_str_with(&toml, false, &[]).expect("config")
}

fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn ids(p: &Path) -> BTreeSet<String> {
    read_jsonl(p)
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

fn source<'a>(r: &'a PrepReport, name: &str) -> &'a infuse_data_prep::report::SourceReport {
    r.sources.iter().find(|s| s.name == name).expect("source")
}

/// All files under `dir` with their bytes, by relative path.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).expect("prefix").display().to_string(),
                    std::fs::read(&p).expect("read"),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn messy_corpus_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let report = run_prep(&config(&out)).expect("prep");

    // --- domain: bad lines are counted with their line numbers, nothing crashed.
    let d = source(&report, "domain");
    let issue = |k: &str| d.issues.get(k).copied().unwrap_or(0);
    assert_eq!(
        (
            issue("malformed_json"),
            issue("invalid_utf8"),
            issue("missing_field"),
            issue("wrong_type"),
            issue("empty_text"),
            issue("not_an_object"),
            issue("empty_file")
        ),
        (1, 1, 1, 1, 1, 1, 1),
        "{:?}",
        d.issues
    );
    let lines: BTreeSet<(String, u64)> = d
        .issue_list
        .iter()
        .filter_map(|i| {
            i.line.map(|l| {
                (
                    i.path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned(),
                    l,
                )
            })
        })
        .collect();
    for l in [4, 6, 8, 10, 12, 13] {
        assert!(
            lines.contains(&("docs.jsonl".to_owned(), l)),
            "line {l} missing from {lines:?}"
        );
    }
    assert_eq!(d.records_in, 15, "21 lines - 6 bad");

    // --- removed per reason.
    let removed = |r: &str| d.removed.get(r).map_or(0, |x| x.count);
    assert_eq!(
        removed("near_duplicate"),
        2,
        "{:?}",
        d.removed.keys().collect::<Vec<_>>()
    );
    assert_eq!(removed("gopher_short_doc"), 1);
    assert_eq!(removed("garbled_text"), 1);
    assert_eq!(removed("compliance_blocklist"), 1);
    assert_eq!(removed("compliance_blocked_domain"), 1);
    assert_eq!(d.removed_total(), 7, "{:?}", d.removed);
    let dup_examples: Vec<&str> = d.removed["near_duplicate"]
        .examples
        .iter()
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        dup_examples.contains(&"duplicate of d02") && dup_examples.contains(&"duplicate of d04"),
        "{dup_examples:?}"
    );
    let kept = ids(&out.join("clean/domain.jsonl"));
    let expected: BTreeSet<String> = ["d00", "d01", "d02", "d03", "d04", "d05-pii", "d08", "d09"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(d.records_out, 8);

    // --- replaced: every PII type, no raw value left, metadata kept, mojibake repaired.
    let docs = read_jsonl(&out.join("clean/domain.jsonl"));
    let pii_doc = docs.iter().find(|v| v["id"] == "d05-pii").expect("pii doc");
    let text = pii_doc["text"].as_str().expect("text");
    for raw in [
        "marta.kowalska@example.com",
        "7946 0958",
        "123-4567",
        "203.0.113.42",
        "2001:db8",
        "4111 1111",
        "GB82",
        "Sup3rSecret",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_",
        "xoxb-",
        "hunter2",
        "9fK2xQ7pL4vB8nZ3mW6tR1yH5cJ0dG",
        "MIIEowIBAAKCAQEA7v",
        "Marta Kowalska",
    ] {
        assert!(!text.contains(raw), "{raw} survived in {text}");
    }
    for ph in [
        "<EMAIL>",
        "<PHONE>",
        "<IP_ADDRESS>",
        "<CREDIT_CARD>",
        "<IBAN>",
        "<CREDENTIALS>",
        "<SECRET>",
        "<NAME>",
    ] {
        assert!(text.contains(ph), "{ph} missing in {text}");
    }
    assert_eq!(pii_doc["lang"], "en");
    for kind in PiiKind::ALL {
        assert!(d.pii.get(kind) >= 1, "{kind:?} not counted: {:?}", d.pii);
    }
    assert_eq!(d.pii_documents, 1);
    let d03 = docs.iter().find(|v| v["id"] == "d03").expect("d03");
    assert!(d03["text"].as_str().expect("text").contains("café"));
    assert_eq!(
        docs.iter().find(|v| v["id"] == "d00").expect("d00")["url"],
        "https://wiki.example/pumps"
    );

    // --- general (folder) and code sources.
    let g = source(&report, "general");
    assert_eq!(
        (g.issues.get("empty_file"), g.issues.get("binary")),
        (Some(&1), Some(&1))
    );
    assert_eq!(ids(&out.join("clean/general.jsonl")).len(), 3);
    let c = source(&report, "code");
    assert_eq!(c.skipped_files.get("code_skip_lock_file"), Some(&1));
    assert_eq!(c.skipped_files.get("code_skip_generated"), Some(&2));
    assert_eq!(c.skipped_files.get("code_skip_unknown_language"), Some(&1));
    assert_eq!(
        c.removed.get("code_max_line_length").map(|r| r.count),
        Some(1)
    );
    let code = read_jsonl(&out.join("clean/code.jsonl"));
    let langs: BTreeSet<(String, String)> = code
        .iter()
        .map(|v| {
            (
                v["id"].as_str().expect("id").to_owned(),
                v["language"].as_str().expect("lang").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        langs,
        [
            ("src/main.rs".to_owned(), "Rust".to_owned()),
            ("src/util.py".to_owned(), "Python".to_owned())
        ]
        .into()
    );

    // --- CPT token stores: every complete document is [BOS] ... [EOS], positions restart.
    let tok = Tokenizer::from_file(fixtures().join("tokenizer/tokenizer.json")).expect("tokenizer");
    let (bos, eos) = (tok.special().bos.expect("bos"), tok.special().eos[0]);
    let train = TokenStore::open(out.join("cpt/train")).expect("train store");
    assert!(train.num_sequences() > 0);
    assert!(train.meta().shuffled);
    let mut total = 0u64;
    let mut starts_with_bos = 0;
    for i in 0..train.num_sequences() {
        let s = train.sequence(i).expect("seq");
        assert!(s.len() <= 256);
        total += s.len() as u64;
        let pos = s.position_ids();
        for (a, b) in s.documents() {
            assert_eq!(pos[a], 0);
            if s.tokens[a] == bos {
                starts_with_bos += 1;
            }
            // Inside a document no EOS appears except as its last token.
            assert!(!s.tokens[a..b.saturating_sub(1)].contains(&eos));
        }
    }
    assert!(starts_with_bos > 0);
    assert_eq!(total, train.meta().num_tokens);
    let mix = report.mix.as_ref().expect("mix");
    let achieved: f64 = mix.sources.iter().map(|e| e.achieved_fraction).sum();
    assert!((achieved - 1.0).abs() < 1e-9);
    assert_eq!(
        mix.total_achieved_tokens,
        train.meta().num_tokens - report.stores["cpt/train"].packing.tokens_dropped
    );
    let valid_docs: u64 = report.sources.iter().map(|s| s.valid_documents).sum();
    if valid_docs > 0 {
        assert!(
            TokenStore::open(out.join("cpt/valid"))
                .expect("valid")
                .num_sequences()
                > 0
        );
    }

    // --- SFT: invalid records named by line and field; loss only on assistant turns + <|eot_id|>.
    let sft = &report.sft[0];
    assert_eq!((sft.records_in, sft.valid), (9, 6));
    assert_eq!(sft.issues.get("invalid"), Some(&3));
    assert_eq!(sft.issues.get("malformed_json"), Some(&1));
    let fields: Vec<(u64, String)> = sft
        .issue_list
        .iter()
        .filter_map(|i| Some((i.line?, i.field.clone()?)))
        .collect();
    assert!(fields.contains(&(7, "output".to_owned())), "{fields:?}");
    assert!(
        fields.contains(&(8, "messages[1].role".to_owned())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&(9, "conversations[1].from".to_owned())),
        "{fields:?}"
    );
    assert_eq!(sft.task_types.get("code"), Some(&1));
    assert_eq!(sft.task_types.get("translation"), Some(&1));
    assert_eq!(sft.pii.get(PiiKind::Email), 1);
    let st = TokenStore::open(out.join("sft/train")).expect("sft store");
    let eot = tok.token_to_id("<|eot_id|>").expect("eot");
    let mut trained_text = String::new();
    let mut segments = 0;
    for i in 0..st.num_sequences() {
        let s = st.sequence(i).expect("seq");
        let mask = s.loss_mask.expect("mask");
        segments += s.doc_starts.len();
        // Every sample ends with a trained <|eot_id|> (the assistant's end of turn).
        for (_, b) in s.documents() {
            assert_eq!((s.tokens[b - 1], mask[b - 1]), (eot, 1));
        }
        let trained: Vec<u32> = s
            .tokens
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m == 1)
            .map(|(t, _)| *t)
            .collect();
        trained_text.push_str(&tok.decode(&trained, Decode::KeepSpecial).expect("decode"));
    }
    assert_eq!(segments, 6, "one segment per valid conversation");
    assert!(trained_text.contains("Ventil.<|eot_id|>"), "{trained_text}");
    assert!(trained_text.contains("The shift leader.<|eot_id|>"));
    assert!(trained_text.contains("In the log, with the date and the reason.<|eot_id|>"));
    assert!(
        !trained_text.contains("Translate"),
        "user text must not be trained: {trained_text}"
    );
    assert!(
        !trained_text.contains("plant assistant"),
        "system text must not be trained"
    );
    assert!(
        !trained_text.contains("marta.kowalska"),
        "PII in SFT replaced"
    );

    // --- preference pairs: aligned chosen/rejected stores.
    let p = &report.preference[0];
    assert_eq!((p.records_in, p.valid, p.written), (5, 3, 3));
    let chosen = TokenStore::open(out.join("dpo/train/chosen")).expect("chosen");
    let rejected = TokenStore::open(out.join("dpo/train/rejected")).expect("rejected");
    assert_eq!((chosen.num_sequences(), rejected.num_sequences()), (3, 3));
    let c0 = chosen.sequence(0).expect("seq");
    let trained: Vec<u32> = c0
        .tokens
        .iter()
        .zip(c0.loss_mask.expect("mask"))
        .filter(|(_, m)| **m == 1)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        tok.decode(&trained, Decode::KeepSpecial).expect("decode"),
        "No. Stop it and let it cool first.<|eot_id|>"
    );

    // --- report files.
    let html = std::fs::read_to_string(out.join("report.html")).expect("html");
    assert!(html.contains("<svg") && html.contains("near_duplicate") && !html.contains("<script"));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).expect("json"),
        report.to_json().expect("json")
    );
    assert!(!out.join("work").exists(), "work dir removed");

    // --- a second run into another directory is byte-identical.
    let out2 = tmp.path().join("out2");
    let mut cfg2 = config(&out2);
    cfg2.output_dir = out2.clone();
    run_prep(&cfg2).expect("second run");
    let (a, b) = (snapshot(&out), snapshot(&out2));
    assert_eq!(
        a.iter().map(|x| &x.0).collect::<Vec<_>>(),
        b.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between runs");
    }
}

#[test]
fn sharded_run_keeps_the_same_documents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let single = tmp.path().join("single");
    let one = run_prep(&config(&single)).expect("single");
    let sharded = tmp.path().join("sharded");
    for rank in 0..2 {
        let mut cfg = config(&sharded);
        cfg.shard = Some(Shard::new(rank, 2).expect("shard"));
        cfg.stage = Stage::Clean;
        run_prep(&cfg).expect("clean stage");
    }
    // Merging before all shards finished would have been refused; now it works.
    let mut cfg = config(&sharded);
    cfg.stage = Stage::Merge;
    let report = run_prep(&cfg).expect("merge");
    assert_eq!(report.shards, 2);
    for name in ["domain", "general", "code"] {
        let f = format!("clean/{name}.jsonl");
        assert_eq!(ids(&single.join(&f)), ids(&sharded.join(&f)), "{name}");
    }
    // Same documents, same tokens, same split (the split hashes ids, not positions); only the
    // order of documents inside the cleaned files differs (shard by shard).
    for (a, b) in one.sources.iter().zip(&report.sources) {
        assert_eq!(
            (a.records_out, a.tokens_out, a.tokens_in, a.valid_documents, &a.pii),
            (b.records_out, b.tokens_out, b.tokens_in, b.valid_documents, &b.pii),
            "{}",
            a.name
        );
        assert_eq!(
            a.removed.keys().collect::<Vec<_>>(),
            b.removed.keys().collect::<Vec<_>>()
        );
    }
    let valid = |d: &Path| {
        TokenStore::open(d.join("cpt/valid"))
            .map(|s| s.meta().num_tokens)
            .unwrap_or(0)
    };
    assert_eq!(valid(&single), valid(&sharded));
}

#[test]
fn merge_refuses_missing_shards() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("o");
    let mut cfg = config(&out);
    cfg.shard = Some(Shard::new(1, 3).expect("shard"));
    cfg.stage = Stage::Clean;
    run_prep(&cfg).expect("clean");
    cfg.stage = Stage::Merge;
    let err = run_prep(&cfg).expect_err("missing shards");
    assert!(err.to_string().contains("[0, 2]"), "{err}");
}

#[test]
fn hundred_megabyte_line_is_counted_not_fatal() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("big.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
        f.write_all(b"{\"text\": \"").expect("write");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).expect("write");
        }
        f.write_all(b"\"}\n{\"text\": \"a small record after the big one\"}\n")
            .expect("write");
    }
    let io = infuse_data_prep::StepIo::new(&input, tmp.path().join("out.jsonl"));
    let rep = infuse_data_prep::anonymize_jsonl(&io, &infuse_data_prep::pii::PiiConfig::default())
        .expect("run");
    assert_eq!(rep.issues.get("too_long"), Some(&1));
    assert_eq!(rep.issue_list[0].line, Some(1));
    assert_eq!(rep.records_out, 1);
}

#[test]
fn parquet_output_curriculum_order_and_no_tokenizer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("o");
    let cfg = config(&out);
    let toml_overrides = [
        "output_format=\"parquet\"".to_owned(),
        "mix.order=\"curriculum\"".to_owned(),
        "mix.shuffle_sequences=false".to_owned(),
    ];
    let mut value = serde_json::to_value(&cfg).expect("to json");
    for o in &toml_overrides {
        infuse_data_prep::config::apply_override(&mut value, o).expect("override");
    }
    let mut cfg: PrepConfig = serde_json::from_value(value).expect("config");
    cfg.sft.clear();
    cfg.preference.clear();
    run_prep(&cfg).expect("curriculum run");
    let train = TokenStore::open(out.join("cpt/train")).expect("store");
    assert!(!train.meta().shuffled);
    assert_eq!(train.meta().extra["order"], "curriculum");
    // Parquet output reads back with the same ids and metadata.
    let items: Vec<infuse_data_prep::ReadItem> = infuse_data_prep::parquet::ParquetReader::new(
        vec![out.join("clean/domain.parquet")],
        infuse_data_prep::parquet::ParquetOptions::default(),
    )
    .collect();
    let got: BTreeSet<String> = items
        .iter()
        .filter_map(|i| {
            if let infuse_data_prep::ReadItem::Record(r) = i {
                Some(r.id.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(got.len(), 8);
    assert!(got.contains("d05-pii"));
    // Without a tokenizer the cleaned records are still written, with a note and no stores.
    let out2 = tmp.path().join("o2");
    let mut cfg2 = config(&out2);
    cfg2.tokenizer = None;
    cfg2.sft.clear();
    cfg2.preference.clear();
    let rep = run_prep(&cfg2).expect("no tokenizer");
    assert!(rep.stores.is_empty());
    assert_eq!(rep.notes.len(), 1);
    assert_eq!(ids(&out2.join("clean/domain.jsonl")).len(), 8);
}

/// With the real Llama 3 tokenizer (skipped when `cargo xtask fetch-assets` has not run): its
/// `tokenizer_config.json` template always appends a generation prompt, so `auto` falls back to
/// the built-in Llama 3 template, and the trained tokens are exactly the assistant answer plus
/// `<|eot_id|>`.
#[test]
fn llama3_tokenizer_masks_and_document_tokens() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/assets/tokenizers/llama3/tokenizer.json");
    if !path.exists() {
        eprintln!("skipping: {} not present", path.display());
        return;
    }
    let tok = Tokenizer::from_file(&path).expect("tokenizer");
    assert_eq!(
        (tok.special().bos, tok.special().eos.first().copied()),
        (Some(128_000), Some(128_001))
    );
    let (template, name) = infuse_data_prep::sft::choose_template("auto", &tok).expect("template");
    assert_eq!(name, "llama3");
    let messages = [
        infuse_text::Message::system("Be brief."),
        infuse_text::Message::user("What is 2 + 2?"),
        infuse_text::Message::assistant("4."),
        infuse_text::Message::user("And 3 + 3?"),
        infuse_text::Message::assistant("6."),
    ];
    let enc = infuse_data_prep::sft::encode_conversation(
        &tok,
        &template,
        &messages,
        4096,
        infuse_data_prep::sft::Truncation::Drop,
    )
    .expect("encode")
    .expect("kept");
    assert_eq!(enc.ids[0], 128_000);
    let trained: Vec<u32> = enc
        .ids
        .iter()
        .zip(&enc.mask)
        .filter(|(_, m)| **m)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        tok.decode(&trained, Decode::KeepSpecial).expect("decode"),
        "4.<|eot_id|>6.<|eot_id|>"
    );
    let full = tok.decode(&enc.ids, Decode::KeepSpecial).expect("decode");
    assert_eq!(
        full,
        template
            .render(
                &messages,
                &infuse_text::RenderOptions {
                    add_generation_prompt: false
                }
            )
            .expect("render")
    );
}

#[test]
fn tokens_in_are_counted_per_source() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path());
    let report = run_prep(&cfg).expect("prep");
    let tok = Tokenizer::from_file(fixtures().join("tokenizer/tokenizer.json")).expect("tokenizer");
    // The text source: one record per readable, non-empty file; tokens of the normalized text.
    let mut expected = 0u64;
    for e in std::fs::read_dir(fixtures().join("general")).expect("dir") {
        let path = e.expect("entry").path();
        if let Ok(text) = std::fs::read_to_string(&path)
            && !text.trim().is_empty()
            && !text.contains('\0')
        {
            let text = infuse_data_prep::normalize::normalize(&text, &cfg.normalize);
            expected += tok.encode(&text).expect("encode").len() as u64;
        }
    }
    let general = source(&report, "general");
    assert_eq!(general.tokens_in, Some(expected));
    for s in &report.sources {
        let tin = s.tokens_in.expect("counted for every source");
        // Removed records count in, not out (tokens_out has BOS + EOS per document).
        if s.removed_total() > 0 {
            assert!(tin + 2 * s.records_out > s.tokens_out, "{}: {tin} in, {} out", s.name, s.tokens_out);
        }
    }
    let html = std::fs::read_to_string(tmp.path().join("report.html")).expect("html");
    assert!(html.contains("tokens in"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("report.json")).expect("json")).expect("json");
    assert_eq!(json["sources"][1]["tokens_in"].as_u64(), Some(expected));
    // Switched off, or without a tokenizer: null, not zero.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let mut off = config(tmp2.path());
    off.count_tokens_in = false;
    let report = run_prep(&off).expect("prep");
    assert!(report.sources.iter().all(|s| s.tokens_in.is_none()));
}

/// One JSONL source: a kept document, a too-short one (removed by the Gopher filter), a copy of
/// the first (removed by dedup) and one with an e-mail address (kept, anonymized).
fn tokens_in_run(dir: &Path, with_short: bool) -> (PrepReport, PrepConfig) {
    let general = |name: &str| std::fs::read_to_string(fixtures().join("general").join(name)).expect("fixture");
    let keep = general("00-river-mill.md");
    let pii = general("01-old-bridge.md").replacen(". ", ". Write to anna.berg@example.org about it. ", 1);
    let mut lines = vec![serde_json::json!({"id": "keep", "text": keep})];
    if with_short {
        lines.push(serde_json::json!({"id": "short", "text": "Buy now, cheap pills."}));
    }
    lines.push(serde_json::json!({"id": "copy", "text": keep}));
    lines.push(serde_json::json!({"id": "pii", "text": pii}));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("dir");
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(data.join("docs.jsonl"), body).expect("write");
    let toml = format!(
        "output_dir = \"{out}\"\ntokenizer = \"{tok}\"\nseq_len = 64\n[mix]\nvalid_fraction = 0.0\n[[sources]]\nname = \"docs\"\npaths = [\"{data}\"]\n",
        out = dir.join("out").display(),
        tok = fixtures().join("tokenizer/tokenizer.json").display(),
        data = data.display()
    );
    let cfg = PrepConfig::from_str_with(&toml, false, &[]).expect("config");
    (run_prep(&cfg).expect("prep"), cfg)
}

#[test]
fn tokens_in_count_removed_records_and_the_text_before_changes() {
    let tok = Tokenizer::from_file(fixtures().join("tokenizer/tokenizer.json")).expect("tokenizer");
    let tmp = tempfile::tempdir().expect("tmp");
    let (report, cfg) = tokens_in_run(tmp.path(), true);
    let s = source(&report, "docs");
    assert_eq!(s.records_in, 4);
    assert_eq!(s.records_out, 2, "{:?}", s.removed.keys().collect::<Vec<_>>());
    assert!(s.removed.contains_key("near_duplicate") && s.removed.len() == 2, "{:?}", s.removed.keys().collect::<Vec<_>>());
    assert_eq!(s.pii.total(), 1);
    let n = |t: &str| tok.encode(&infuse_data_prep::normalize::normalize(t, &cfg.normalize)).expect("encode").len() as u64;
    let input = std::fs::read_to_string(tmp.path().join("data/docs.jsonl")).expect("input");
    let expected: u64 = input.lines().map(|l| n(serde_json::from_str::<Value>(l).expect("json")["text"].as_str().expect("text"))).sum();
    assert_eq!(s.tokens_in, Some(expected), "every record read, on its normalized text");
    // tokens_out: the kept final texts (the anonymized one included) with BOS/EOS.
    let out = read_jsonl(&tmp.path().join("out/clean/docs.jsonl"));
    let specials = s.tokens_out - out.iter().map(|v| tok.encode(v["text"].as_str().expect("text")).expect("encode").len() as u64).sum::<u64>();
    assert_eq!(specials % 2, 0);
    assert!(s.tokens_in.expect("in") >= s.tokens_out, "{s:?}");
    assert!(out.iter().all(|v| v.as_object().expect("object").keys().all(|k| !k.contains("infuse"))), "{out:?}");

    // The record the filter removes counts in tokens_in and not in tokens_out.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let (without, _) = tokens_in_run(tmp2.path(), false);
    let w = source(&without, "docs");
    assert_eq!(w.tokens_out, s.tokens_out);
    assert_eq!(s.tokens_in.expect("in") - w.tokens_in.expect("in"), n("Buy now, cheap pills."));
}
