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
