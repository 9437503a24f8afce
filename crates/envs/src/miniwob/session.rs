//! One MiniWoB++ episode in a leased browser: start the seeded task, show the page, run the
//! policy's actions, read the page's own reward.

use super::dom;
use kaizen_core::{EnvSession, Observation, SessionStatus, ToolCall, ToolSpec};
use kaizen_tools::browser::{BrowserError, Lease};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Reads the episode's state and the page in one call.
const READ_PAGE: &str = "return {utterance: core.getUtterance(), dom: core.getDOMInfo(), \
    done: WOB_DONE_GLOBAL, reward: WOB_RAW_REWARD_GLOBAL, ready: WOB_TASK_READY};";

/// Seeds the task generator, turns off the 10-second episode timer (the policy's thinking time
/// must not count), and starts the episode. `endEpisode(0)` first ends whatever the previous
/// lease left running on this page (a no-op after a finished episode).
const START: &str = "core.endEpisode(0); Math.seedrandom(arguments[0]); \
    core.EPISODE_MAX_TIME = 1000000000; core.startEpisodeReal(); return WOB_TASK_READY;";

pub struct WebSession {
    browser: Lease,
    utterance: String,
    /// The first view: instruction and page.
    prompt: String,
    status: SessionStatus,
}

/// What a step returns: the rendered page, or the end of the episode.
struct Page {
    utterance: String,
    text: String,
    done: bool,
    reward: f32,
}

fn read_page(browser: &mut Lease) -> Result<Page, BrowserError> {
    let v = browser.execute(READ_PAGE, &[])?;
    Ok(Page {
        utterance: v["utterance"].as_str().unwrap_or("").to_string(),
        text: dom::render(&v["dom"]),
        done: v["done"].as_bool().unwrap_or(false),
        reward: v["reward"].as_f64().unwrap_or(0.0) as f32,
    })
}

impl WebSession {
    /// Opens `url` (unless the lease already shows it) and starts the task seeded with `seed`.
    pub fn start(mut browser: Lease, url: &str, seed: u64) -> Result<WebSession, BrowserError> {
        let here = browser.execute("return location.href;", &[]).ok();
        if here.as_ref().and_then(Value::as_str) != Some(url) {
            browser.navigate(url)?;
        }
        let mut ready = browser.execute(START, &[json!(seed.to_string())])?.as_bool().unwrap_or(true);
        // A few tasks build their page asynchronously and say so with WOB_TASK_READY.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !ready && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            ready = browser.execute("return WOB_TASK_READY;", &[])?.as_bool().unwrap_or(true);
        }
        let page = read_page(&mut browser)?;
        let prompt = format!("Task: {}\nPage:\n{}", page.utterance, page.text);
        Ok(WebSession { browser, utterance: page.utterance, prompt, status: SessionStatus::Running })
    }

    /// The task's instruction (`core.getUtterance()`).
    pub fn utterance(&self) -> &str {
        &self.utterance
    }

    /// The browser process of this episode (tests kill it to check recovery).
    pub fn browser_pid(&self) -> Option<u32> {
        self.browser.chrome_pid()
    }

    fn run(&mut self, call: &ToolCall) -> Result<Option<String>, BrowserError> {
        let a = &call.arguments;
        let ref_arg = || a["ref"].as_i64().ok_or_else(|| BrowserError::Page("'ref' must be an element number".into()));
        let text_arg = |k: &str| {
            a[k].as_str().map(str::to_string).ok_or_else(|| BrowserError::Page(format!("'{k}' must be a string")))
        };
        match call.name.as_str() {
            "click" => {
                let r = ref_arg()?;
                let out = self.browser.execute("return core.elementClick(arguments[0]);", &[json!(r)])?;
                if out != Value::Bool(true) {
                    return Ok(Some(format!("cannot click [{r}]: no such element on the page")));
                }
            }
            "type" => {
                let (r, text) = (ref_arg()?, text_arg("text")?);
                // Click into the field (as a user would), then enter the text at the caret.
                let focused = self.browser.execute(
                    "var e = core.previousDOMInfo[arguments[0]]; if (!e) return false; \
                     core.elementClick(arguments[0]); return document.activeElement === e;",
                    &[json!(r)],
                )?;
                if focused != Value::Bool(true) {
                    return Ok(Some(format!("cannot type into [{r}]: no such text field on the page")));
                }
                self.browser.insert_text(&text)?;
            }
            "press" => {
                let key = text_arg("key")?;
                let Some(keys) = key_chord(&key) else {
                    return Ok(Some(format!("unknown key '{key}' (keys: {}, or one character)", KEY_NAMES.join(", "))));
                };
                self.browser.press_keys(&keys)?;
            }
            "select" => {
                let (r, option) = (ref_arg()?, text_arg("option")?);
                let out = self.browser.execute(SELECT_OPTION, &[json!(r), json!(option)])?;
                if let Some(err) = out.as_str() {
                    return Ok(Some(err.to_string()));
                }
            }
            "scroll" => {
                let dy = match a["direction"].as_str() {
                    Some("down") => 100,
                    Some("up") => -100,
                    _ => return Ok(Some("'direction' must be \"up\" or \"down\"".into())),
                };
                self.browser.execute(
                    "var e = core.previousDOMInfo[arguments[0]] || document.scrollingElement; e.scrollTop += arguments[1];",
                    &[a["ref"].clone(), json!(dy)],
                )?;
            }
            other => return Ok(Some(format!("unknown action '{other}'; actions: click, type, press, select, scroll"))),
        }
        Ok(None)
    }
}

/// Chooses the option whose text or value matches (case and spacing aside) and fires
/// `change`, as a user picking it would. Returns an error string, or null on success.
const SELECT_OPTION: &str = "var e = core.previousDOMInfo[arguments[0]]; \
    if (!e || e.tagName !== 'SELECT') return 'cannot select in [' + arguments[0] + ']: not a drop-down'; \
    var want = String(arguments[1]).trim().toLowerCase(); \
    for (var i = 0; i < e.options.length; i++) { var o = e.options[i]; \
      if (o.text.trim().toLowerCase() === want || o.value.trim().toLowerCase() === want) { \
        e.selectedIndex = i; e.dispatchEvent(new Event('input', {bubbles: true})); \
        e.dispatchEvent(new Event('change', {bubbles: true})); return null; } } \
    return 'no option \"' + arguments[1] + '\" in [' + arguments[0] + ']';";

const KEY_NAMES: [&str; 12] = [
    "Enter",
    "Tab",
    "Backspace",
    "Delete",
    "Escape",
    "Space",
    "ArrowUp",
    "ArrowDown",
    "ArrowLeft",
    "ArrowRight",
    "Home",
    "End",
];

/// `Enter`, `Control+a`, `Shift+Tab`, `x` → WebDriver key values (modifiers first).
fn key_chord(spec: &str) -> Option<Vec<char>> {
    let named = |k: &str| -> Option<char> {
        Some(match k.to_ascii_lowercase().as_str() {
            "enter" | "return" => '\u{E007}',
            "tab" => '\u{E004}',
            "backspace" => '\u{E003}',
            "delete" => '\u{E017}',
            "escape" | "esc" => '\u{E00C}',
            "space" => ' ',
            "arrowup" | "up" => '\u{E013}',
            "arrowdown" | "down" => '\u{E015}',
            "arrowleft" | "left" => '\u{E012}',
            "arrowright" | "right" => '\u{E014}',
            "home" => '\u{E011}',
            "end" => '\u{E010}',
            "control" | "ctrl" => '\u{E009}',
            "shift" => '\u{E008}',
            "alt" => '\u{E00A}',
            "meta" | "cmd" => '\u{E03D}',
            _ => {
                let mut cs = k.chars();
                let c = cs.next()?;
                return cs.next().is_none().then_some(c);
            }
        })
    };
    // A lone "+" is the plus key, not a chord separator.
    if spec == "+" {
        return Some(vec!['+']);
    }
    spec.split('+').map(|k| named(k.trim())).collect()
}

impl EnvSession for WebSession {
    fn prompt(&self) -> String {
        self.prompt.clone()
    }

    fn tools(&self) -> Vec<ToolSpec> {
        actions()
    }

    fn act(&mut self, call: &ToolCall) -> Observation {
        let t = Instant::now();
        if self.status != SessionStatus::Running {
            return Observation::error("the episode is over");
        }
        let outcome = self.run(call).and_then(|refusal| read_page(&mut self.browser).map(|p| (refusal, p)));
        let mut obs = match outcome {
            Ok((_, page)) if page.done => {
                self.status = SessionStatus::Ended { reward: page.reward };
                Observation::ok(format!("The episode is over (reward {}).", page.reward))
            }
            Ok((Some(refusal), page)) => Observation::error(format!("{refusal}\nPage:\n{}", page.text)),
            Ok((None, page)) => Observation::ok(format!("Page:\n{}", page.text)),
            Err(e @ BrowserError::Page(_)) => Observation::error(e.to_string()),
            Err(e) => {
                self.status = SessionStatus::Failed { message: e.to_string() };
                Observation::error(e.to_string())
            }
        };
        obs.elapsed_ms = t.elapsed().as_secs_f64() * 1e3;
        obs
    }

    fn status(&self) -> SessionStatus {
        self.status.clone()
    }

    /// MiniWoB's own timer would have ended an unfinished episode with −1.
    fn unfinished_reward(&self) -> f32 {
        -1.0
    }

    /// The page as the browser shows it (the text rendering is what text policies read).
    fn screenshot(&mut self) -> Option<Result<String, String>> {
        Some(self.browser.screenshot().map_err(|e| e.to_string()))
    }
}

/// The action tools every web episode offers.
pub fn actions() -> Vec<ToolSpec> {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| {
        ToolSpec::function(name, description, json!({"type": "object", "properties": properties, "required": required}))
    };
    let r = json!({"type": "integer", "description": "the element's number, as in [12]"});
    vec![
        tool("click", "Click an element of the page.", json!({"ref": r}), &["ref"]),
        tool(
            "type",
            "Type text into an input field (focuses it first).",
            json!({"ref": r, "text": {"type": "string"}}),
            &["ref", "text"],
        ),
        tool(
            "press",
            "Press a key or chord: Enter, Tab, Backspace, Escape, ArrowDown, Control+a, or one character.",
            json!({"key": {"type": "string"}}),
            &["key"],
        ),
        tool(
            "select",
            "Choose an option of a drop-down by its text.",
            json!({"ref": r, "option": {"type": "string"}}),
            &["ref", "option"],
        ),
        tool(
            "scroll",
            "Scroll the page (or a scrollable element) up or down.",
            json!({"ref": r, "direction": {"type": "string", "enum": ["up", "down"]}}),
            &["direction"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::key_chord;

    #[test]
    fn keys_and_chords() {
        assert_eq!(key_chord("Enter"), Some(vec!['\u{E007}']));
        assert_eq!(key_chord("Control+a"), Some(vec!['\u{E009}', 'a']));
        assert_eq!(key_chord("x"), Some(vec!['x']));
        assert_eq!(key_chord("+"), Some(vec!['+']));
        assert_eq!(key_chord("Hyper"), None);
    }
}
