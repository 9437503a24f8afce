//! One headless Chromium, driven over WebDriver: a chromedriver process of its own (in its own
//! process group, so the browser it starts dies with it), one session, its own profile dir.
//! Every call has a deadline; a browser that stops answering is `Crashed` or `Hung`, and the
//! caller throws it away (dropping kills the whole process group).
//!
//! Browsers die with kaizen however it ends: on SIGINT, SIGTERM or SIGHUP a handler kills
//! their groups; on SIGKILL (which nothing in the process survives to handle) a watchdog does —
//! a small shell in a process group of its own that holds the read end of a pipe only kaizen
//! writes to, learns each browser's group from it, and kills the groups still listed once the
//! pipe closes. And the first launch of a run removes what a dead run left anyway (its Chromium
//! processes and profile directories, named after the dead process).

use super::http::{self, HttpError};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Process groups of the live browsers. A signal handler may neither lock nor allocate, so this
/// is a fixed table of atomics; 0 marks a free slot. (More browsers than slots still work;
/// only those past the table escape the clean-up on a signal.)
static LIVE_GROUPS: [AtomicI32; 256] = [const { AtomicI32::new(0) }; 256];

fn register_group(pgid: i32) {
    let _ = LIVE_GROUPS.iter().find(|s| s.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
}

fn unregister_group(pgid: i32) {
    let _ = LIVE_GROUPS.iter().find(|s| s.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok());
}

/// Kills every live browser's process group (driver, Chromium and its helpers). Only atomics
/// and `kill(2)`: safe inside a signal handler.
fn kill_live_browsers() {
    for slot in &LIVE_GROUPS {
        let pgid = slot.swap(0, Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) on a process group this process started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// The watchdog's script: `+PGID` lines add a group, `-PGID` lines remove one; at end of input
/// (kaizen is gone) every group still listed is killed.
const WATCHDOG: &str = r#"live=" "
while read -r line; do
  g=${line#?}
  case "$line" in
    +*) live="$live$g " ;;
    -*) case "$live" in *" $g "*) live="${live%% $g *} ${live#* $g }" ;; esac ;;
  esac
done
for g in $live; do kill -s KILL -- "-$g" 2>/dev/null; done"#;

/// Tells the watchdog (started on first use) of a browser group coming or going.
fn tell_watchdog(line: String) {
    use std::io::Write;
    static WATCHDOG_IN: std::sync::OnceLock<Option<std::sync::Mutex<std::process::ChildStdin>>> =
        std::sync::OnceLock::new();
    let stdin = WATCHDOG_IN.get_or_init(|| {
        use std::os::unix::process::CommandExt;
        let child = Command::new("/bin/sh")
            .args(["-c", WATCHDOG])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C to kaizen's group must not end it before it has run.
            .process_group(0)
            .spawn()
            .ok()?;
        // The child is never waited for: it ends after kaizen, and init reaps it.
        child.stdin.map(std::sync::Mutex::new)
    });
    if let Some(stdin) = stdin {
        let mut w = stdin.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(w, "{line}").and_then(|_| w.flush());
    }
}

/// Kills the Chromium processes and removes the profile directories that kaizen processes no
/// longer alive left behind (a run killed before the watchdog existed, or one whose watchdog
/// was killed too). Profiles are `kaizen-browser-PID-PORT` in the temp dir, and Chromium's
/// command line names its profile.
fn reap_dead_runs() {
    let dead_owner = |name: &str| -> bool {
        name.split("kaizen-browser-")
            .nth(1)
            .and_then(|r| r.split('-').next()?.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("--user-data-dir=") && dead_owner(&cmdline) {
                // SAFETY: kill(2) on a Chromium process of a dead kaizen run.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    if let Ok(dirs) = std::fs::read_dir(std::env::temp_dir()) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.starts_with("kaizen-browser-") && dead_owner(&name) {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
}

extern "C" fn on_termination(sig: libc::c_int) {
    kill_live_browsers();
    // SAFETY: signal(2) and raise(3) are async-signal-safe; the default action ends the process
    // with the signal, as if no handler had run.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// On SIGINT, SIGTERM or SIGHUP, kill the live browsers before the process ends: otherwise a
/// stopped run (Ctrl-C, `kill`) leaves Chromium processes behind, since `Drop` never runs.
/// (`kill -9` cannot be caught; nothing runs then.) Installed by the first browser launch, so
/// a process that never starts a browser keeps its own signal handling.
fn kill_browsers_on_termination() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only touches atomics and async-signal-safe calls.
        unsafe {
            libc::signal(sig, on_termination as *const () as libc::sighandler_t);
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrowserConfig {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// Viewport size in CSS pixels.
    pub window: (u32, u32),
    /// Deadline of one WebDriver call; longer means the browser hung.
    pub call_timeout: Duration,
    /// Every request that is not to loopback goes to this port (a `NetworkTrap`), so nothing
    /// leaves the machine and every attempt is counted.
    pub proxy_trap: Option<u16>,
    /// Record every request the pages make (DevTools performance log), for `page_requests`.
    /// Off by default: it costs time on every step.
    pub log_page_requests: bool,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        let from_env = |var: &str, default: &str| {
            std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| default.into())
        };
        BrowserConfig {
            // Debian's `/usr/bin/chromium` is a wrapper that adds flags (remote extensions, API
            // keys) which make the browser call home; the binary behind it does not.
            chromium: from_env("KAIZEN_CHROMIUM", "/usr/lib/chromium/chromium"),
            chromedriver: from_env("KAIZEN_CHROMEDRIVER", "/usr/bin/chromedriver"),
            window: (500, 400),
            call_timeout: Duration::from_secs(15),
            proxy_trap: None,
            log_page_requests: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BrowserError {
    /// The browser could not be started (missing binary, driver refused the session).
    Launch(String),
    /// The driver or browser is gone (killed, crashed, session lost).
    Crashed(String),
    /// No answer within the call deadline.
    Hung,
    /// The page's script threw, or an element was not found: the browser itself is fine.
    Page(String),
}

impl BrowserError {
    /// True when the browser must be thrown away and restarted.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, BrowserError::Page(_))
    }
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowserError::Launch(m) => write!(f, "browser failed to start: {m}"),
            BrowserError::Crashed(m) => write!(f, "browser crashed: {m}"),
            BrowserError::Hung => write!(f, "browser stopped answering"),
            BrowserError::Page(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for BrowserError {}

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
    timeout: Duration,
    chrome_pid: Option<u32>,
    /// Set once a call failed fatally: the owner should discard this browser.
    broken: bool,
}

/// The flags that keep Chromium offline, quiet and runnable as root in a container.
fn chromium_args(cfg: &BrowserConfig, profile: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--mute-audio",
        // Chromium's own background traffic (time queries, updaters, sign-in, search-engine
        // preconnects): each one would otherwise land in the network trap.
        "--disable-breakpad",
        "--disable-client-side-phishing-detection",
        "--disable-component-extensions-with-background-pages",
        "--disable-domain-reliability",
        "--disable-search-engine-choice-screen",
        "--no-default-browser-check",
        "--no-pings",
        "--password-store=basic",
        "--use-mock-keychain",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationGuideModelDownloading,\
         MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,\
         InterestFeedContentSuggestions,SignInProfileCreation,ChromeWhatsNewUI,PrivacySandboxSettings4",
        // Two services ignore every switch above: the component updater (a `update2/json`
        // check at start-up) and the sign-in cookie check (`accounts.google.com`). Their
        // endpoints are pointed at a closed loopback port, so they fail on this machine
        // instead of reaching the network trap.
        "--component-updater=url-source=http://127.0.0.1:9/",
        "--gaia-url=http://127.0.0.1:9/",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--window-size={},{}", cfg.window.0, cfg.window.1));
    args.push(format!("--user-data-dir={}", profile.display()));
    if let Some(port) = cfg.proxy_trap {
        args.push(format!("--proxy-server=http://127.0.0.1:{port}"));
    }
    args
}

fn free_port() -> Result<u16, BrowserError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BrowserError::Launch(format!("no free loopback port: {e}")))
}

impl Browser {
    pub fn launch(cfg: &BrowserConfig) -> Result<Browser, BrowserError> {
        for bin in [&cfg.chromium, &cfg.chromedriver] {
            if !bin.exists() {
                return Err(BrowserError::Launch(format!(
                    "{} not found (scripts/setup.sh installs Debian's chromium and chromium-driver; \
                     KAIZEN_CHROMIUM / KAIZEN_CHROMEDRIVER point elsewhere)",
                    bin.display()
                )));
            }
        }
        let port = free_port()?;
        let profile = std::env::temp_dir().join(format!("kaizen-browser-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).map_err(|e| BrowserError::Launch(format!("profile dir: {e}")))?;
        use std::os::unix::process::CommandExt;
        let driver = Command::new(&cfg.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| BrowserError::Launch(format!("{}: {e}", cfg.chromedriver.display())))?;
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| {
            kill_browsers_on_termination();
            reap_dead_runs();
        });
        register_group(driver.id() as i32);
        tell_watchdog(format!("+{}", driver.id()));
        let mut b = Browser {
            driver,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            session: String::new(),
            profile: profile.clone(),
            timeout: cfg.call_timeout,
            chrome_pid: None,
            broken: false,
        };
        b.wait_ready(Duration::from_secs(10))?;
        let logging = if cfg.log_page_requests { json!({"performance": "ALL"}) } else { json!({}) };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:loggingPrefs": logging,
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"script": b.timeout.as_millis() as u64, "pageLoad": b.timeout.as_millis() as u64},
            "goog:chromeOptions": {
                "binary": cfg.chromium,
                "args": chromium_args(cfg, &profile),
                // No search-engine preconnects, no sign-in, no prefetching. The search engine
                // (DuckDuckGo in Debian's build) is replaced: chromedriver starts the browser
                // on its new-tab page, which would otherwise load the engine's start page.
                "prefs": {
                    "default_search_provider": {"enabled": false},
                    "default_search_provider_data": {"template_url_data": {
                        "keyword": "offline", "short_name": "offline",
                        "url": "http://127.0.0.1:9/?q={searchTerms}", "new_tab_url": "about:blank",
                    }},
                    "net": {"network_prediction_options": 2},
                    "signin": {"allowed": false},
                    "search": {"suggest_enabled": false},
                },
            },
        }}});
        let v = b.call("POST", "/session", Some(&caps)).map_err(|e| BrowserError::Launch(e.to_string()))?;
        b.session = v["sessionId"].as_str().unwrap_or_default().to_string();
        b.chrome_pid = v["capabilities"]["goog:processID"].as_u64().map(|p| p as u32);
        if b.session.is_empty() {
            return Err(BrowserError::Launch(format!("chromedriver gave no session id: {v}")));
        }
        // Started on a blank new-tab page, the window's focus sits in the (headless) location
        // bar, so pages would get no focus events; tasks like focus-text need them.
        let path = b.session_path("/goog/cdp/execute");
        b.call("POST", &path, Some(&json!({"cmd": "Emulation.setFocusEmulationEnabled", "params": {"enabled": true}})))
            .map_err(|e| BrowserError::Launch(format!("focus emulation: {e}")))?;
        Ok(b)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), BrowserError> {
        let start = Instant::now();
        loop {
            if let Ok((200, v)) = http::request(self.addr, "GET", "/status", None, Duration::from_secs(1)) {
                if v["value"]["ready"].as_bool().unwrap_or(false) {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(BrowserError::Launch(format!("chromedriver exited at start ({status})")));
            }
            if start.elapsed() > limit {
                return Err(BrowserError::Launch("chromedriver did not become ready in 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One WebDriver command. Errors the driver reports about the session or browser, and any
    /// transport failure, are fatal; errors about the page are not.
    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, BrowserError> {
        let result = http::request(self.addr, method, path, body, self.timeout);
        let out = match result {
            Err(HttpError::Timeout) => Err(BrowserError::Hung),
            Err(HttpError::Unreachable(m)) | Err(HttpError::Malformed(m)) => Err(BrowserError::Crashed(m)),
            Ok((200, v)) => Ok(v["value"].clone()),
            Ok((_, v)) => {
                let kind = v["value"]["error"].as_str().unwrap_or("unknown error").to_string();
                let message = v["value"]["message"].as_str().unwrap_or("").lines().next().unwrap_or("").to_string();
                Err(match kind.as_str() {
                    "invalid session id"
                    | "session not created"
                    | "no such window"
                    | "unknown error"
                    | "disconnected" => BrowserError::Crashed(format!("{kind}: {message}")),
                    "timeout" | "script timeout" => BrowserError::Hung,
                    _ => BrowserError::Page(format!("{kind}: {message}")),
                })
            }
        };
        if let Err(e) = &out {
            self.broken |= e.is_fatal();
        }
        out
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        let path = self.session_path("/url");
        self.call("POST", &path, Some(&json!({ "url": url }))).map(|_| ())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns what it returns.
    pub fn execute(&mut self, script: &str, args: &[Value]) -> Result<Value, BrowserError> {
        let path = self.session_path("/execute/sync");
        self.call("POST", &path, Some(&json!({ "script": script, "args": args })))
    }

    /// The viewport as a `data:image/png;base64,…` URL (what a vision model is sent; WebDriver
    /// already answers in base64).
    pub fn screenshot(&mut self) -> Result<String, BrowserError> {
        let path = self.session_path("/screenshot");
        let v = self.call("GET", &path, None)?;
        let b64 = v.as_str().ok_or_else(|| BrowserError::Page("the screenshot is not a string".into()))?;
        Ok(format!("data:image/png;base64,{b64}"))
    }

    /// Inserts `text` into the focused element as typed text (one DevTools `Input.insertText`:
    /// the page sees `beforeinput` / `input` events, as from a keyboard's text entry, in one
    /// round trip instead of one key event per character).
    pub fn insert_text(&mut self, text: &str) -> Result<(), BrowserError> {
        let path = self.session_path("/goog/cdp/execute");
        self.call("POST", &path, Some(&json!({"cmd": "Input.insertText", "params": {"text": text}}))).map(|_| ())
    }

    /// Presses and releases `keys` in order (WebDriver key values: `\u{E007}` is Enter).
    pub fn press_keys(&mut self, keys: &[char]) -> Result<(), BrowserError> {
        let mut actions: Vec<Value> = keys.iter().map(|k| json!({"type": "keyDown", "value": k.to_string()})).collect();
        actions.extend(keys.iter().rev().map(|k| json!({"type": "keyUp", "value": k.to_string()})));
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        let path = self.session_path("/actions");
        self.call("POST", &path, Some(&body)).map(|_| ())
    }

    /// URLs the pages requested since the last call (needs `log_page_requests`). Chromium's
    /// own background services (updaters, sign-in) are not pages and do not appear here; the
    /// network trap sees those.
    pub fn page_requests(&mut self) -> Result<Vec<String>, BrowserError> {
        let path = self.session_path("/se/log");
        let entries = self.call("POST", &path, Some(&json!({"type": "performance"})))?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| m["message"]["params"]["request"]["url"].as_str().map(str::to_string))
            .collect())
    }

    /// The browser process itself (for memory readings, and for tests that kill it).
    pub fn chrome_pid(&self) -> Option<u32> {
        self.chrome_pid
    }

    /// True once a call failed in a way that means the browser must be replaced.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Proportional set size of the driver, the browser and its helper processes, in bytes
    /// (PSS splits shared pages between processes, so the sum is not inflated).
    pub fn memory_bytes(&self) -> u64 {
        process_group_pss(self.driver.id())
    }
}

/// Sum of PSS over every process in process group `pgid` (Linux `/proc`).
fn process_group_pss(pgid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // Fields after the command name (which may hold spaces): state ppid pgrp ...
                .and_then(|s| {
                    s.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(2) == Some(&pgid.to_string()))
                })
                .unwrap_or(false)
        })
        .filter_map(|pid| {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
        })
        .sum()
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.broken && !self.session.is_empty() {
            // A clean quit lets Chromium remove its own temporary files.
            let path = self.session_path("");
            let _ = http::request(self.addr, "DELETE", &path, None, Duration::from_secs(2));
        }
        // The driver leads its own process group; the browser and its helpers are in it.
        unregister_group(self.driver.id() as i32);
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
        tell_watchdog(format!("-{}", self.driver.id()));
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
