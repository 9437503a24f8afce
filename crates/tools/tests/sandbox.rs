//! The sandbox against the adversarial corpus (`attacks.jsonl`, one attack per line): each must
//! be contained, give the model a clear observation, leave the host unchanged, and let the next
//! call run normally. Also: warm reuse does not leak state between calls.

use kaizen_core::Tool;
use kaizen_tools::{Limits, PythonTool, Sandbox, SANDBOX_UIDS};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// One sandbox test at a time, so the count of sandbox processes left behind is this test's.
static SERIAL: Mutex<()> = Mutex::new(());

fn limits() -> Limits {
    Limits {
        wall: Duration::from_secs(2),
        cpu_seconds: 4,
        memory_bytes: 512 << 20,
        processes: 64,
        file_bytes: 4 << 20,
        tmp_bytes: 16 << 20,
        open_files: 64,
        output_bytes: 16 << 10,
    }
}

fn run(tool: &PythonTool, code: &str) -> kaizen_core::Observation {
    tool.call(&json!({ "code": code }))
}

/// Processes owned by a sandbox uid, anywhere on the host.
fn sandbox_uid_processes() -> usize {
    let is_sandbox = |uid: Option<&str>| uid.and_then(|u| u.parse().ok()).is_some_and(|u| SANDBOX_UIDS.contains(&u));
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("status"))
                        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && is_sandbox(l.split_whitespace().nth(1))))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn every_attack_is_contained_and_the_next_call_runs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("KAIZEN_ATTACK_SECRET", "hunter2");
    let corpus = include_str!("attacks.jsonl");
    let cases: Vec<Value> =
        corpus.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(cases.len() >= 30, "the corpus must hold at least 30 cases");
    {
        let tool = PythonTool::new(Sandbox::new(limits()));
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let obs = run(&tool, case["code"].as_str().unwrap());
            let any: Vec<&str> = case["expect"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert!(
                any.iter().any(|e| obs.content.contains(e)),
                "{name}: expected one of {any:?} in:\n{}",
                obs.content
            );
            for f in case["forbid"].as_array().into_iter().flatten() {
                assert!(!obs.content.contains(f.as_str().unwrap()), "{name}: {f} leaked:\n{}", obs.content);
            }
            for p in case["host_absent"].as_array().into_iter().flatten() {
                assert!(!std::path::Path::new(p.as_str().unwrap()).exists(), "{name}: wrote {p} on the host");
            }
            let (next, want) = match case.get("next") {
                Some(n) => (n.as_str().unwrap(), case["next_expect"].as_str().unwrap()),
                None => ("print(1)", "1"),
            };
            let after = run(&tool, next);
            assert!(after.ok && after.content.contains(want), "{name}: the next call gave:\n{}", after.content);
        }
    }
    // Dropping the tool ends its sandboxes: nothing of the sandbox uid is left on the host
    // (the kernel tears a killed pid namespace down within moments).
    let mut left = sandbox_uid_processes();
    for _ in 0..30 {
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = sandbox_uid_processes();
    }
    assert_eq!(left, 0, "sandbox processes left on the host");
}

#[test]
fn warm_reuse_does_not_leak_state_between_calls() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tool = PythonTool::new(Sandbox::new(limits()));
    let first = run(&tool, "import builtins, os\nbuiltins.print = None\nSECRET = 1\nopen('/tmp/state', 'w').write('x')\nos.environ['X'] = '1'\nimport sys\nsys.stdout.write('set')");
    assert_eq!(first.content, "set");
    let second = run(&tool, "import os\nprint('SECRET' in globals(), os.path.exists('/tmp/state'), 'X' in os.environ)");
    assert_eq!(second.content, "False False False");
}

#[test]
fn results_and_errors_read_clearly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tool = PythonTool::new(Sandbox::new(limits()));
    let obs = run(&tool, "print(17 * 23)");
    assert!(obs.ok);
    assert_eq!(obs.content, "391");
    let obs = run(&tool, "1/0");
    assert!(
        !obs.ok && obs.content.contains("ZeroDivisionError") && obs.content.contains("exit code 1"),
        "{}",
        obs.content
    );
    let obs = run(&tool, "pass");
    assert_eq!(obs.content, "(no output)");
    let obs = tool.call(&json!({"source": "print(1)"}));
    assert!(!obs.ok && obs.content.contains("python needs"), "{}", obs.content);
    // Cold mode: same isolation, a fresh sandbox per call; never root inside.
    let cold = PythonTool::new(Sandbox::cold(limits()));
    assert_eq!(run(&cold, "print(17 * 23)").content, "391");
    assert_ne!(run(&cold, "import os\nprint(os.getuid())").content, "0");
}

#[test]
fn a_warm_server_outlives_the_thread_that_first_used_it() {
    // Tool calls run on short-lived worker threads; bwrap's --die-with-parent follows the
    // thread that started it, so servers must be started from a thread that stays.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new(limits());
    std::thread::scope(|s| {
        s.spawn(|| assert!(sandbox.run("print(1)").success()));
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let r = sandbox.run("print(2)");
    assert!(r.success() && r.stdout.trim() == "2", "{r:?}");
}

#[test]
fn a_fork_bomb_does_not_starve_a_concurrent_sandbox() {
    // Concurrent episodes each call their own sandbox server; one of them filling its process
    // limit must not stop the others from starting processes.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new(limits());
    let bombing = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            sandbox.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass");
            bombing.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(bombing.load(std::sync::atomic::Ordering::SeqCst), "the bomb should still be running");
        let r = sandbox.run(
            "import subprocess\nprint(subprocess.run(['echo', 'alive'], capture_output=True).stdout.decode().strip())",
        );
        assert!(r.success() && r.stdout.trim() == "alive", "{r:?}");
    });
}

#[test]
fn descriptors_kaizen_inherited_do_not_cross_into_the_sandbox() {
    // A 0600 canary file and a directory, opened without close-on-exec as a parent shell's
    // descriptors would be: the code must reach neither (no read, no openat(fd, "..") walk).
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-canary-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let canary = dir.join("secret");
    std::fs::write(&canary, "canary-7f3a").unwrap();
    std::fs::set_permissions(&canary, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: plain open(2) calls on NUL-terminated paths; the descriptors are closed below.
    let (file_fd, dir_fd) = unsafe {
        (
            libc::open(path(&canary).as_ptr(), libc::O_RDONLY),
            libc::open(path(&dir).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY),
        )
    };
    assert!(file_fd > 2 && dir_fd > 2);
    // The control: the descriptors are open in a child kaizen spawns, outside the sandbox.
    let control = std::process::Command::new("ls").arg("/proc/self/fd").output().unwrap();
    let listed = String::from_utf8_lossy(&control.stdout);
    assert!(listed.split_whitespace().any(|f| f == file_fd.to_string()), "control: {listed}");
    let code = "import os\nfound = []\nfor fd in range(3, 1024):\n    try:\n        os.fstat(fd)\n    except OSError:\n        continue\n    found.append(fd)\n    try:\n        print('read', os.read(fd, 100))\n    except OSError:\n        pass\n    try:\n        print('walked', os.listdir(os.open('..', os.O_RDONLY, dir_fd=fd)))\n    except OSError:\n        pass\nprint('inherited', found)";
    for sandbox in [Sandbox::new(limits()), Sandbox::cold(limits())] {
        let r = sandbox.run(code);
        let head: String = r.stdout.chars().take(300).collect();
        assert!(r.success(), "{head}");
        assert_eq!(r.stdout.trim(), "inherited []", "{head}");
    }
    // SAFETY: the descriptors opened above.
    unsafe {
        libc::close(file_fd);
        libc::close(dir_fd);
    }
}

#[test]
fn limits_hold_for_the_sandbox_as_a_whole() {
    // On this machine (root, cgroup v1) every sandbox gets a cgroup: memory and processes are
    // capped for the sandbox, not for each of its processes.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(Sandbox::confinement().contains("per sandbox"), "{}", Sandbox::confinement());
    let sandbox = Sandbox::new(limits());
    // The control: one process may hold 300 MiB (under the 512 MiB address-space limit).
    let one = sandbox.run("x = bytearray(b'\\x01') * (300 << 20)\nprint('held')");
    assert_eq!(one.stdout.trim(), "held", "{one:?}");
    // Three at once may not: together they pass the sandbox's 512 MiB.
    let three = "import os, time\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n        try:\n            x = bytearray(b'\\x01') * (300 << 20)\n            time.sleep(0.5)\n            os._exit(0)\n        except MemoryError:\n            os._exit(3)\n    kids.append(pid)\nprint(sum(os.waitpid(p, 0)[1] == 0 for p in kids), 'of 3 held')";
    let r = sandbox.run(three);
    assert!(r.stdout.contains("of 3 held") && !r.stdout.contains("3 of 3"), "{r:?}");
    // Processes: 64 for the whole sandbox, whatever sessions they start.
    let r = sandbox.run("import os, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n            os.setsid()\n            time.sleep(30)\n        n += 1\nexcept OSError:\n    pass\nprint('forked', n)");
    let forked: usize = r.stdout.trim().strip_prefix("forked ").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
    assert!(forked < 64, "{r:?}");
    assert_eq!(sandbox.run("print(1)").stdout.trim(), "1");
}

#[test]
fn a_damaged_server_costs_only_the_call_that_damaged_it() {
    // Each attack on the server is followed by calls that must see exactly their own output,
    // in time: the pool replaced the server (or the attack had no effect on it).
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new(limits());
    let attacks = [
        "os.kill(t, signal.SIGSTOP)",
        "os.kill(t, signal.SIGKILL)",
        "resource.prlimit(t, resource.RLIMIT_NOFILE, (4, 4))",
        "resource.prlimit(t, resource.RLIMIT_NPROC, (1, 1))",
        "resource.prlimit(t, resource.RLIMIT_CPU, (1, 1))",
        "os.write(1, b'kaizen-sandbox 0000000000000000 2\\n{}')",
        // Settings every later fork would inherit, and the one signal Python handles.
        "resource.prlimit(t, resource.RLIMIT_STACK, (65536, 65536))",
        "resource.prlimit(t, resource.RLIMIT_DATA, (1 << 20, 1 << 20))",
        "os.setpriority(os.PRIO_PROCESS, t, 19)",
        "os.sched_setaffinity(t, {0})",
        "os.kill(t, signal.SIGINT)",
    ];
    // The control: the nice value and CPU affinity a plain process started here has.
    let control = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0), len(os.sched_getaffinity(0)))"])
        .output()
        .unwrap();
    let control = String::from_utf8_lossy(&control.stdout).to_string();
    let (nice, cpus) = control.trim().split_once(' ').unwrap();
    for (i, attack) in attacks.iter().enumerate() {
        // The server is the parent of the call's process (pid 1 of the sandbox, or bwrap's
        // child under it): both are attacked.
        sandbox.run(&format!("import os, signal, resource\nfor t in sorted({{1, os.getppid()}}):\n    {attack}"));
        for j in 0..3 {
            let start = std::time::Instant::now();
            // Deep enough recursion to need the default stack; a lowered nice or affinity shows.
            let r = sandbox.run(&format!(
                "import os, sys\nsys.setrecursionlimit(20000)\nf = lambda n: n and f(n - 1)\nf(5000)\n\
                 assert os.getpriority(os.PRIO_PROCESS, 0) == {nice} and len(os.sched_getaffinity(0)) == {cpus}\n\
                 print('call {i}.{j}')",
            ));
            assert!(r.success() && r.stdout.trim() == format!("call {i}.{j}"), "after attack {i}: {r:?}");
            assert!(start.elapsed() < Duration::from_secs(3), "after attack {i}: {:?}", start.elapsed());
        }
    }
}

#[test]
fn the_hosts_loopback_services_are_reachable_outside_the_sandbox_and_not_inside() {
    // A TCP listener and a UDP "resolver" (it answers every datagram) on the host's loopback.
    // The control — the same code run as a plain process — reaches both; sandboxed, neither.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in tcp.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut &s, b"hello from the host\n");
        }
    });
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    let code = format!(
        "import socket\n\
         try:\n    s = socket.create_connection(('127.0.0.1', {tcp_port}), timeout=2)\n    print('tcp:', s.recv(64).decode().strip())\n\
         except OSError as e:\n    print('tcp refused:', e)\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.settimeout(1)\n\
         try:\n    u.sendto(b'\\x12\\x34 query example.com', ('127.0.0.1', {udp_port}))\n    print('dns answered:', u.recvfrom(512)[0][:2])\n\
         except OSError as e:\n    print('dns unanswered:', e)"
    );
    let control = std::process::Command::new("/usr/bin/python3").args(["-c", &code]).output().unwrap();
    let control = String::from_utf8_lossy(&control.stdout);
    assert!(control.contains("tcp: hello from the host") && control.contains("dns answered"), "control: {control}");
    let r = Sandbox::new(limits()).run(&code);
    assert!(r.stdout.contains("tcp refused") && r.stdout.contains("dns unanswered"), "{r:?}");
    assert!(!r.stdout.contains("hello from the host"), "{r:?}");
}
