//! No model needed: prints a pass@k table, runs a few programs in the sandbox (a passing one, an
//! infinite loop, a fork bomb, a network probe, an escape attempt) and writes a small HTML report.
//!
//! Run: `cargo run -p infuse-eval --example passk_table [-- OUT_DIR]`

use std::time::Instant;

use infuse_eval::code::{CodeEvalConfig, execute, load_tasks};
use infuse_eval::passk::pass_at_k;
use infuse_eval::report::{EvalReport, Named};
use infuse_eval::sandbox::{Sandbox, SandboxConfig, Step, isolation};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut out = String::new();
    out.push_str(
        "pass@k (unbiased estimator, Chen et al. 2021)\n   n    c |  pass@1  pass@10 pass@100\n",
    );
    for (n, c) in [
        (1, 0),
        (1, 1),
        (10, 1),
        (10, 5),
        (100, 1),
        (100, 10),
        (100, 50),
        (200, 3),
    ] {
        let cell = |k: u64| {
            pass_at_k(n, c, k)
                .map(|v| format!("{v:8.4}"))
                .unwrap_or_else(|_| "       -".into())
        };
        out.push_str(&format!(
            "{n:4} {c:4} | {} {} {}\n",
            cell(1),
            cell(10),
            cell(100)
        ));
    }
    out.push_str(&format!(
        "\nsandbox isolation on this machine: {:?}\n",
        isolation()
    ));
    let sb = Sandbox::new(SandboxConfig {
        timeout_secs: 1.0,
        ..SandboxConfig::default()
    })?;
    let programs: [(&str, &str); 5] = [
        ("passing", "print('hello from the sandbox')"),
        ("infinite loop", "while True: pass"),
        (
            "fork bomb",
            "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        ),
        (
            "network",
            "import socket; socket.create_connection(('127.0.0.1', 22), timeout=1)",
        ),
        ("escape", "open('/tmp/infuse-escape-demo', 'w').write('x')"),
    ];
    for (name, code) in programs {
        let t = Instant::now();
        let r = sb.run(
            &[("p.py", code.as_bytes())],
            &[Step::new(["python3", "p.py"])],
        )?;
        out.push_str(&format!(
            "  {name:14} -> {:22} in {:5.2} s\n",
            r.outcome.summary(),
            t.elapsed().as_secs_f64()
        ));
    }
    out.push_str(&format!(
        "  /tmp/infuse-escape-demo exists afterwards: {}\n",
        std::path::Path::new("/tmp/infuse-escape-demo").exists()
    ));

    // The committed generic fixture, with canonical solutions as completions.
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/generic_tasks.jsonl");
    let tasks = load_tasks(&fixture)?;
    let completions: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| vec![t.canonical_solution.clone().unwrap_or_default()])
        .collect();
    let result = execute(
        &tasks,
        &completions,
        &CodeEvalConfig {
            sandbox: SandboxConfig {
                timeout_secs: 10.0,
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    out.push_str(&format!(
        "\ngeneric fixture ({} tasks, canonical solutions): pass@1 = {:?}\n",
        tasks.len(),
        result.pass_at(1)
    ));

    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("infuse-eval-example"));
    let report = EvalReport {
        title: "infuse-eval example".into(),
        model: "canonical solutions".into(),
        code: vec![Named {
            name: "generic fixture".into(),
            result,
        }],
        ..Default::default()
    };
    report.write_json(&dir.join("report.json"))?;
    report.write_html(&dir.join("report.html"))?;
    out.push_str(&format!(
        "report written to {}\n",
        dir.join("report.html").display()
    ));
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes())?;
    Ok(())
}
