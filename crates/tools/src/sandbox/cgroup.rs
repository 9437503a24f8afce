//! One cgroup per sandbox server, so the memory and process limits hold for the whole sandbox
//! and not for each process: rlimits are per process (`RLIMIT_AS`) or per uid
//! (`RLIMIT_NPROC`), so three forks each under 1 GiB reach 3 GiB together, and a tmpfs mounted
//! inside is charged nowhere. The cgroup caps the sum: every process of the sandbox, and the
//! pages of its `/tmp`, count against `memory.limit_in_bytes` and `pids.max`.
//!
//! cgroup v1 (`memory` and `pids` controllers, each mounted under `/sys/fs/cgroup/`), nested
//! under kaizen's own cgroup so whatever caps kaizen caps its sandboxes too. Where none can be
//! had (not root, a read-only or a pure v2 hierarchy whose own cgroup holds processes), the
//! sandbox runs without one: the per-process rlimits and the per-uid process count still hold,
//! and `Sandbox::confinement` says so.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PREFIX: &str = "kaizen-sandbox-";

/// A sandbox's cgroup directories (one per controller) and their `cgroup.procs` files.
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    procs: Vec<CString>,
}

/// Where kaizen's own cgroup sits under controller `name` (`/sys/fs/cgroup/memory/…`).
fn own_dir(name: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers.split(',').any(|c| c == name).then(|| path.trim_start_matches('/').to_string())
    })?;
    let dir = Path::new("/sys/fs/cgroup").join(name).join(path);
    dir.is_dir().then_some(dir)
}

/// Removes the cgroups that a kaizen process which is no longer alive left in `parent`
/// (a run killed with SIGKILL): their processes are killed first.
fn reap_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()?.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        remove(&e.path());
    }
}

/// Kills what is left in a cgroup directory and removes it, retrying while the kernel tears
/// the processes down.
fn remove(dir: &Path) {
    for _ in 0..200 {
        if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                // SAFETY: kill takes plain integers; a pid that is gone gives ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

impl Cgroup {
    /// A fresh cgroup capping total memory at `memory_bytes` and processes at `processes`;
    /// `Err` with the reason where this machine offers none.
    pub fn create(memory_bytes: u64, processes: u64) -> Result<Cgroup, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        static REAPED: std::sync::Once = std::sync::Once::new();
        let memory = own_dir("memory").ok_or("no cgroup v1 memory controller")?;
        let pids = own_dir("pids").ok_or("no cgroup v1 pids controller")?;
        REAPED.call_once(|| {
            reap_stale(&memory);
            reap_stale(&pids);
        });
        let name = format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut group = Cgroup { dirs: Vec::new(), procs: Vec::new() };
        for parent in [&memory, &pids] {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes())
                .map_err(|_| "a cgroup path with a NUL byte".to_string())?;
            group.dirs.push(dir);
            group.procs.push(procs);
        }
        let write = |dir: &Path, file: &str, value: u64| {
            std::fs::write(dir.join(file), value.to_string()).map_err(|e| format!("setting {file}: {e}"))
        };
        write(&group.dirs[0], "memory.limit_in_bytes", memory_bytes)?;
        // With swap accounting, swap would extend the cap; the sum of both gets the same cap.
        if group.dirs[0].join("memory.memsw.limit_in_bytes").exists() {
            write(&group.dirs[0], "memory.memsw.limit_in_bytes", memory_bytes)?;
        }
        write(&group.dirs[1], "pids.max", processes)?;
        Ok(group)
    }

    /// The `cgroup.procs` files that a process about to exec writes "0" into (itself) to enter
    /// the cgroup; handed to `enter` between fork and exec.
    pub fn procs_files(&self) -> Vec<CString> {
        self.procs.clone()
    }
}

/// Moves the calling process into the cgroups. Only async-signal-safe calls (open, write,
/// close): it runs between fork and exec.
pub fn enter(procs: &[CString]) -> std::io::Result<()> {
    for p in procs {
        // SAFETY: `p` is a NUL-terminated path; the buffer written is a static byte.
        unsafe {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

impl Drop for Cgroup {
    /// Removes the cgroup at once when it is empty; while the kernel still tears the sandbox's
    /// processes down, a background thread waits for it, so no call waits.
    fn drop(&mut self) {
        let busy: Vec<PathBuf> =
            self.dirs.drain(..).filter(|d| std::fs::remove_dir(d).is_err() && d.exists()).collect();
        if !busy.is_empty() {
            let spawned = std::thread::Builder::new().name("kaizen-cgroup-reaper".into()).spawn({
                let busy = busy.clone();
                move || busy.iter().for_each(|d| remove(d))
            });
            if spawned.is_err() {
                busy.iter().for_each(|d| remove(d));
            }
        }
    }
}
