//! Untrusted, model-written Python under bubblewrap: no network, a read-only system, a private
//! size-capped `/tmp` that is wiped after every call, no view of the host's home, environment or
//! processes, an unprivileged uid, no nested user namespaces, no descriptor kaizen inherited,
//! and limits on wall time, CPU time, memory, processes, file size, open files and output
//! bytes — memory and processes for the sandbox as a whole where a cgroup can be had
//! (`cgroup.rs`).
//!
//! Warm interpreters: a sandboxed Python server (`server.py`) stays up between calls and runs
//! each call in a fresh fork, then kills every other process in the sandbox and wipes `/tmp` —
//! so a call costs a fork, not a sandbox and interpreter start, and still cannot change what the
//! next call sees. The code cannot reach its server (the server is the sandbox's pid 1 and not
//! dumpable: no signals, no ptrace, no `/proc/1/fd`), every answer is a frame naming the call's
//! nonce and its length (`frame.rs`; the nonce exposes a frame left by an earlier call, while
//! the pipe being out of the code's reach is what keeps the current call from answering), and
//! a server that reports itself damaged, answers with a frame that is not this call's, or
//! died, is replaced before the next call.

mod cgroup;
mod frame;

use frame::{read_frame, Frame, FrameError};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVER: &str = include_str!("server.py");
/// When kaizen runs as root, each sandbox server runs as its own unprivileged uid/gid from
/// this range (as root `RLIMIT_NPROC` is not enforced, so a fork bomb would not be capped).
/// `RLIMIT_NPROC` counts the processes of a uid, so one uid per server keeps a fork bomb in
/// one episode's sandbox from starving the concurrent episodes' sandboxes. (Without root,
/// every sandbox runs as the user's uid and shares the user's process count.)
pub const SANDBOX_UIDS: std::ops::Range<u32> = 61_000..62_000;

/// The next uid of `SANDBOX_UIDS`, round robin across the process.
fn next_sandbox_uid() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SANDBOX_UIDS.start + n % (SANDBOX_UIDS.end - SANDBOX_UIDS.start)
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub wall: Duration,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub processes: u64,
    pub file_bytes: u64,
    pub tmp_bytes: u64,
    pub open_files: u64,
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_seconds: 20,
            memory_bytes: 1 << 30,
            processes: 256,
            file_bytes: 16 << 20,
            tmp_bytes: 64 << 20,
            open_files: 64,
            output_bytes: 16 << 10,
        }
    }
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RunResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    #[serde(skip)]
    pub elapsed: Duration,
    /// Set when the sandbox itself failed (could not start, or died during the call).
    #[serde(skip)]
    pub sandbox_error: Option<String>,
}

impl RunResult {
    fn failed(msg: String, elapsed: Duration) -> Self {
        RunResult {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: None,
            signal: None,
            timed_out: false,
            truncated: false,
            elapsed,
            sandbox_error: Some(msg),
        }
    }

    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.sandbox_error.is_none()
    }
}

/// One sandboxed server process, and the cgroup it runs in (removed after it).
struct Server {
    child: Child,
    stdin: ChildStdin,
    frames: Receiver<Result<Frame, FrameError>>,
    stderr: Arc<Mutex<String>>,
    _cgroup: Option<cgroup::Cgroup>,
}

/// Why a call got no result from its server; the server goes either way.
enum CallError {
    /// The server was gone before it could take the call, or a frame was already waiting on
    /// its pipe (left by an earlier call): this call never ran, so it runs on a fresh server.
    Gone(String),
    /// An answer that is not this call's (another nonce, or not a frame): something other than
    /// the server wrote on its pipe.
    Forged(String),
    /// The server hung or died during the call.
    Failed(String),
}

/// What a server answered: the result, and the damage it found on itself (its limits
/// lowered by the call), if any.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(flatten)]
    result: RunResult,
    damage: Option<String>,
}

/// Whether sandboxes get a cgroup of their own here, with the reason when not (probed once).
fn cgroup_unavailable() -> &'static Option<String> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| cgroup::Cgroup::create(64 << 20, 8).err())
}

/// A server start request and where its answer goes.
type StartRequest = (Limits, std::sync::mpsc::Sender<Result<Server, String>>);

impl Server {
    /// Starts a server from one long-lived spawner thread. bwrap's `--die-with-parent` ties the
    /// sandbox to the *thread* that forked it (`PR_SET_PDEATHSIG`): started from a short-lived
    /// worker thread, a warm server would die with that thread.
    fn start(limits: &Limits) -> Result<Self, String> {
        type Spawner = Result<Mutex<std::sync::mpsc::Sender<StartRequest>>, String>;
        static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
        let spawner = SPAWNER.get_or_init(|| {
            let (tx, rx) = channel::<StartRequest>();
            std::thread::Builder::new()
                .name("kaizen-sandbox-spawner".into())
                .spawn(move || {
                    for (limits, reply) in rx {
                        let _ = reply.send(Self::spawn(&limits));
                    }
                })
                .map(|_| Mutex::new(tx))
                .map_err(|e| format!("starting the sandbox spawner thread: {e}"))
        });
        let (reply, answer) = channel();
        spawner
            .as_ref()
            .map_err(Clone::clone)?
            .lock()
            .map_err(|_| "the sandbox spawner is poisoned".to_string())?
            .send((limits.clone(), reply))
            .map_err(|_| "the sandbox spawner stopped".to_string())?;
        answer.recv().map_err(|_| "the sandbox spawner stopped".to_string())?
    }

    fn spawn(limits: &Limits) -> Result<Self, String> {
        let group = match cgroup_unavailable() {
            None => Some(cgroup::Cgroup::create(limits.memory_bytes, limits.processes)?),
            Some(_) => None,
        };
        let procs = group.as_ref().map(cgroup::Cgroup::procs_files).unwrap_or_default();
        let mut cmd = Command::new("bwrap");
        cmd.env_clear();
        // The server is the sandbox's pid 1 (`--as-pid-1`): the kernel drops every signal sent
        // to a pid namespace's init from inside it, so the code cannot stop or kill its server.
        // `--disable-userns`: no nested user namespace, so no fresh mounts past the /tmp cap
        // and no capabilities over anything the sandbox holds.
        cmd.args(["--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1"])
            .args(["--die-with-parent", "--new-session", "--clearenv"])
            .args(["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8"])
            .args(["--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"])
            .args(["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"])
            .args(["--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev"])
            .args(["--size", &limits.tmp_bytes.to_string(), "--tmpfs", "/tmp", "--chdir", "/tmp"])
            // bwrap's own root and /dev are tmpfs without a size cap: make them read-only so
            // the size-capped /tmp is the only writable place.
            .args(["--remount-ro", "/dev", "--remount-ro", "/"])
            .args(["/usr/bin/python3", "-I", "-S", "-c", SERVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let rl = limits.clone();
        let uid = next_sandbox_uid();
        // SAFETY: only async-signal-safe calls (open, write, close, setrlimit, close_range,
        // setgid, setuid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                cgroup::enter(&procs)?;
                // Every descriptor above 2 that kaizen inherited (from the shell that started
                // it, say) closes at exec: only the three pipes of the protocol cross.
                if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
                    // Kernels before 5.11: mark each descriptor up to the limit by hand.
                    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                    for fd in 3..(lim.rlim_cur.min(1 << 16) as i32) {
                        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    }
                }
                let set = |res, v: u64| {
                    let lim = libc::rlimit { rlim_cur: v as libc::rlim_t, rlim_max: v as libc::rlim_t };
                    if libc::setrlimit(res, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_AS, rl.memory_bytes)?;
                set(libc::RLIMIT_CPU, rl.cpu_seconds)?;
                set(libc::RLIMIT_NPROC, rl.processes)?;
                set(libc::RLIMIT_FSIZE, rl.file_bytes)?;
                set(libc::RLIMIT_NOFILE, rl.open_files)?;
                set(libc::RLIMIT_CORE, 0)?;
                if libc::geteuid() == 0 {
                    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "bubblewrap (bwrap) is not installed: run scripts/setup.sh".to_string()
            } else {
                format!("starting the sandbox: {e}")
            }
        })?;
        let stdin = child.stdin.take().ok_or("sandbox stdin")?;
        let stdout = child.stdout.take().ok_or("sandbox stdout")?;
        let mut err_pipe = child.stderr.take().ok_or("sandbox stderr")?;
        let (tx, frames) = channel();
        // The most an honest answer can take: the output cap, JSON-escaped (≤ 6 bytes a byte),
        // and the fields around it.
        let max_body = limits.output_bytes * 6 + (64 << 10);
        std::thread::spawn(move || {
            let mut stdout = std::io::BufReader::new(stdout);
            loop {
                let frame = read_frame(&mut stdout, max_body);
                let last = frame.is_err();
                if tx.send(frame).is_err() || last {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    if s.len() < 4096 {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        });
        Ok(Server { child, stdin, frames, stderr, _cgroup: group })
    }

    /// Runs one call: its result, and the damage the server found on itself (then it must go).
    fn run(&mut self, code: &str, limits: &Limits) -> Result<Answer, CallError> {
        let nonce = frame::fresh_nonce();
        let req = serde_json::json!({
            "code": code, "timeout": limits.wall.as_secs_f64(), "max_output": limits.output_bytes,
            "nonce": nonce,
        });
        match self.frames.try_recv() {
            Ok(Ok(stale)) => return Err(CallError::Gone(format!("a frame ({}) waiting before the call", stale.nonce))),
            Ok(Err(_)) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(CallError::Gone(self.died())),
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        writeln!(self.stdin, "{req}").and_then(|_| self.stdin.flush()).map_err(|_| CallError::Gone(self.died()))?;
        // The server enforces the wall limit itself; give it time to kill and clean up.
        match self.frames.recv_timeout(limits.wall + Duration::from_secs(5)) {
            Ok(Ok(f)) if f.nonce == nonce => serde_json::from_slice(&f.body)
                .map_err(|e| CallError::Forged(format!("the sandbox answered badly: {e}"))),
            Ok(Ok(f)) => Err(CallError::Forged(format!("an answer for another call ({})", f.nonce))),
            Ok(Err(FrameError::Malformed(m))) => Err(CallError::Forged(m)),
            Ok(Err(FrameError::Closed)) | Err(RecvTimeoutError::Disconnected) => Err(CallError::Failed(self.died())),
            Err(RecvTimeoutError::Timeout) => Err(CallError::Failed("the sandbox stopped answering".into())),
        }
    }

    fn died(&self) -> String {
        let detail = self.stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default();
        if detail.is_empty() {
            "the sandbox process ended during the call (it was restarted)".into()
        } else {
            format!("the sandbox process ended: {detail}")
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs Python code in sandboxes, reusing warm servers (a pool that grows with concurrency).
pub struct Sandbox {
    pub limits: Limits,
    warm: bool,
    pool: Mutex<Vec<Server>>,
}

impl Sandbox {
    pub fn new(limits: Limits) -> Self {
        Sandbox { limits, warm: true, pool: Mutex::new(Vec::new()) }
    }

    /// A sandbox that starts a fresh server for every call (for comparison and debugging).
    pub fn cold(limits: Limits) -> Self {
        Sandbox { limits, warm: false, pool: Mutex::new(Vec::new()) }
    }

    /// How far the limits reach on this machine: the whole sandbox (a cgroup of its own) or
    /// each process (rlimits only), with the reason.
    pub fn confinement() -> String {
        match cgroup_unavailable() {
            None => "memory and processes capped per sandbox (cgroup)".into(),
            Some(why) => format!("memory capped per process, processes per uid (no cgroup: {why})"),
        }
    }

    /// Runs `code` and returns what it did. A pooled server found gone before it took the call,
    /// or with a frame already waiting on its pipe, is dropped and the call runs on a fresh
    /// server, so damage done by one call never becomes the next call's result. An answer
    /// during the call that is not its frame fails the call (only the call's own code could
    /// have written it) and drops the server.
    pub fn run(&self, code: &str) -> RunResult {
        let start = Instant::now();
        let mut last_error = String::new();
        for attempt in 0..2 {
            let pooled = if self.warm && attempt == 0 { self.pool.lock().ok().and_then(|mut p| p.pop()) } else { None };
            let was_pooled = pooled.is_some();
            let mut server = match pooled.map(Ok).unwrap_or_else(|| Server::start(&self.limits)) {
                Ok(s) => s,
                Err(e) => return RunResult::failed(e, start.elapsed()),
            };
            match server.run(code, &self.limits) {
                Ok(Answer { mut result, damage }) => {
                    result.elapsed = start.elapsed();
                    // A damaged server is dropped (killed) here; the next call starts a new one.
                    if self.warm && damage.is_none() {
                        if let Ok(mut p) = self.pool.lock() {
                            p.push(server);
                        }
                    }
                    return result;
                }
                Err(CallError::Gone(e)) if was_pooled => last_error = e,
                // Only the call's own code can have written it: the call is not run again.
                Err(CallError::Gone(e) | CallError::Failed(e)) => return RunResult::failed(e, start.elapsed()),
                Err(CallError::Forged(e)) => {
                    return RunResult::failed(format!("the sandbox's answer was forged: {e}"), start.elapsed())
                }
            }
        }
        RunResult::failed(last_error, start.elapsed())
    }
}
