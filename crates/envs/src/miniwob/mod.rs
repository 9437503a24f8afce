//! MiniWoB++ in headless Chromium: the 130 tasks of the `miniwob` wheel (installed by
//! `scripts/setup.sh` under `$KAIZEN_HOME/miniwob/html`), served from loopback, one browser per
//! concurrent episode. The page is shown as text (`dom`), the policy acts through tools
//! (`session::actions`: click, type, press, select, scroll), the page's own reward is the
//! episode's (−1..1; an unfinished episode scores −1, as MiniWoB's timer would give).
//!
//! Specs: `miniwob-easy`, `miniwob-medium`, `miniwob-all`, `miniwob:TASK[,TASK…]`,
//! `miniwob-list:FILE` (one task per line, `#` comments).

pub mod agents;
pub mod dom;
pub mod session;

use kaizen_core::{Checker, Env, EnvSession, Task};
use kaizen_tools::browser::{BrowserConfig, BrowserPool, NetworkTrap, StaticServer};
use session::WebSession;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Single-step tasks: one click or one field and a submit.
pub const EASY: &[&str] = &[
    "click-test",
    "click-test-2",
    "click-button",
    "click-link",
    "click-dialog",
    "click-widget",
    "focus-text",
    "focus-text-2",
    "enter-text",
    "enter-password",
    "login-user",
];

/// A few steps each: several fields, lists, tabs, menus.
pub const MEDIUM: &[&str] = &[
    "click-button-sequence",
    "click-checkboxes",
    "click-collapsible",
    "click-option",
    "click-tab",
    "click-dialog-2",
    "choose-list",
    "enter-text-2",
    "enter-date",
    "enter-time",
    "navigate-tree",
    "use-autocomplete",
    "search-engine",
    "email-inbox-delete",
];

/// Browsers in the pool (each concurrent episode needs one): `$KAIZEN_BROWSERS`, default 4.
/// Browsers launch on first use, so a run with fewer concurrent episodes starts fewer.
fn pool_size() -> usize {
    std::env::var("KAIZEN_BROWSERS").ok().and_then(|v| v.parse().ok()).filter(|&k| k > 0).unwrap_or(4)
}

pub fn html_root() -> PathBuf {
    kaizen_core::home::kaizen_home().join("miniwob").join("html")
}

pub struct MiniWob {
    name: String,
    tasks: Vec<String>,
    pool: Arc<BrowserPool>,
    pages: StaticServer,
    trap: NetworkTrap,
}

impl MiniWob {
    /// Opens a spec (see the module doc) with the browsers configured by `cfg` (its proxy is
    /// set to this env's network trap).
    pub fn open_with(spec: &str, browsers: usize, mut cfg: BrowserConfig) -> Result<MiniWob, String> {
        let root = html_root();
        if !root.join("core").join("core.js").exists() {
            return Err(format!(
                "MiniWoB++ pages not found under {} (run scripts/setup.sh; it installs the miniwob wheel)",
                root.display()
            ));
        }
        let tasks = suite(spec, &root)?;
        let trap = NetworkTrap::start().map_err(|e| format!("network trap: {e}"))?;
        cfg.proxy_trap = Some(trap.port());
        let pages = StaticServer::start(root).map_err(|e| format!("page server: {e}"))?;
        Ok(MiniWob { name: spec.to_string(), tasks, pool: BrowserPool::new(browsers, cfg), pages, trap })
    }

    pub fn open(spec: &str) -> Result<MiniWob, String> {
        Self::open_with(spec, pool_size(), BrowserConfig::default())
    }

    pub fn task_names(&self) -> &[String] {
        &self.tasks
    }

    pub fn pool(&self) -> &Arc<BrowserPool> {
        &self.pool
    }

    /// Requests the browsers made for any host but loopback (refused and recorded).
    pub fn outside_requests(&self) -> Vec<String> {
        self.trap.attempts()
    }

    /// The page URL of a task.
    pub fn url(&self, task: &str) -> String {
        self.pages.url(&format!("miniwob/{task}.html"))
    }

    /// Starts one episode of `task` seeded with `seed`.
    pub fn start(&self, task: &str, seed: u64) -> Result<WebSession, String> {
        let lease = self.pool.lease().map_err(|e| e.to_string())?;
        WebSession::start(lease, &self.url(task), seed).map_err(|e| e.to_string())
    }
}

/// The task names a spec selects, each checked against the installed pages.
pub fn suite(spec: &str, root: &Path) -> Result<Vec<String>, String> {
    let names: Vec<String> = match spec.split_once(':') {
        None if spec == "miniwob-easy" => EASY.iter().map(|s| s.to_string()).collect(),
        None if spec == "miniwob-medium" => MEDIUM.iter().map(|s| s.to_string()).collect(),
        None if spec == "miniwob-all" => {
            let dir = root.join("miniwob");
            let mut all: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".html").map(str::to_string))
                .collect();
            all.sort();
            all
        }
        Some(("miniwob", list)) => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        Some(("miniwob-list", file)) => std::fs::read_to_string(file)
            .map_err(|e| format!("task list {file}: {e}"))?
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        _ => return Err(format!("unknown web env '{spec}' (known: miniwob-easy, miniwob-medium, miniwob-all, miniwob:TASK,…, miniwob-list:FILE)")),
    };
    if names.is_empty() {
        return Err(format!("'{spec}' selects no tasks"));
    }
    let missing: Vec<&str> =
        names.iter().filter(|n| !root.join("miniwob").join(format!("{n}.html")).exists()).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(format!("unknown MiniWoB++ task(s): {} (see {}/miniwob/)", missing.join(", "), root.display()));
    }
    Ok(names)
}

const SYSTEM_PROMPT: &str = "You operate a web page to complete a task. The page is shown as lines \
like [12] button \"Submit\": the number in brackets is the element's ref. Act with one tool call per \
turn (click, type, press, select, scroll); after each action you see the page again. The episode \
ends when the task is done.";

impl Env for MiniWob {
    fn name(&self) -> &str {
        &self.name
    }

    fn system_prompt(&self) -> String {
        SYSTEM_PROMPT.to_string()
    }

    /// None from the registry: the actions come with each episode's session.
    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Task `i` is the suite's task `i mod len`, with its own page seed drawn from `seed`.
    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        (0..n)
            .map(|i| {
                let name = &self.tasks[i % self.tasks.len()];
                let page_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                Task {
                    id: format!("{name}#{page_seed}"),
                    prompt: name.clone(),
                    answer: String::new(),
                    checker: Checker::Env,
                    meta: serde_json::json!({"task": name, "page_seed": page_seed}),
                    images: Vec::new(),
                }
            })
            .collect()
    }

    /// The oracle: it solves every `miniwob-easy` task.
    fn reference_agent(&self) -> Option<Box<dyn kaizen_core::Policy>> {
        Some(Box::new(agents::Oracle))
    }

    fn open_session(&self, task: &Task) -> Option<Result<Box<dyn EnvSession>, String>> {
        let name = task.meta["task"].as_str().unwrap_or(&task.prompt);
        let seed = task.meta["page_seed"].as_u64().unwrap_or(0);
        Some(self.start(name, seed).map(|s| Box::new(s) as Box<dyn EnvSession>))
    }

    fn has_sessions(&self) -> bool {
        true
    }

    fn max_concurrent_episodes(&self) -> Option<usize> {
        Some(self.pool.size())
    }
}
