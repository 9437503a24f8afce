//! MiniWoB++ in real headless Chromium (installed by scripts/setup.sh): seeded tasks, the
//! page's own rewards, actions, recovery from a killed browser, and no outside requests.

use kaizen_core::{Env, EnvSession, SessionStatus, ToolCall};
use kaizen_envs::miniwob::{agents, dom, MiniWob};
use kaizen_tools::browser::BrowserConfig;
use serde_json::json;

fn env(spec: &str) -> MiniWob {
    MiniWob::open_with(spec, 1, BrowserConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn session(env: &MiniWob, task: &kaizen_core::Task) -> Box<dyn EnvSession> {
    env.open_session(task).expect("a web env opens sessions").unwrap_or_else(|e| panic!("{e}"))
}

fn act(s: &mut dyn EnvSession, name: &str, arguments: serde_json::Value) -> kaizen_core::Observation {
    s.act(&ToolCall { id: String::new(), name: name.into(), arguments })
}

/// The elements of the page part of a view.
fn page(view: &str) -> Vec<dom::Element> {
    dom::parse(view.split_once("Page:\n").map(|(_, p)| p).unwrap_or(""))
}

fn utterance(view: &str) -> String {
    view.lines().next().unwrap_or("").trim_start_matches("Task: ").to_string()
}

#[test]
fn same_seed_same_task_and_the_page_is_shown() {
    let env = env("miniwob:click-button");
    let t = env.tasks(7, 2);
    let a = session(&env, &t[0]).prompt();
    let b = session(&env, &t[1]).prompt();
    let a2 = session(&env, &t[0]).prompt();
    assert_eq!(a, a2, "same seed, same page");
    assert_ne!(a, b, "another seed, another page");
    assert!(a.starts_with("Task: Click on the \"") && a.contains("] button \""), "{a}");
}

#[test]
fn screenshots_are_png_images_of_the_viewport() {
    let env = env("miniwob:click-test");
    let mut web = env.start("click-test", 4).unwrap();
    let url = EnvSession::screenshot(&mut web).unwrap().unwrap();
    let b64 = url.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("{}", &url[..40]));
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert!(w >= 160 && h >= 210, "{w}×{h}: smaller than a MiniWoB task");
}

#[test]
fn the_right_click_scores_one_and_a_wrong_click_minus_one() {
    let env = env("miniwob:click-button");
    let (mut rights, mut wrongs) = (0, 0);
    for task in env.tasks(3, 8) {
        let mut s = session(&env, &task);
        let view = s.prompt();
        let want = utterance(&view).split('"').nth(1).unwrap().to_string();
        let els = page(&view);
        let right = els.iter().find(|e| e.tag == "button" && e.text == want).unwrap().r#ref;
        let Some(wrong) = els.iter().find(|e| e.tag == "button" && e.text != want) else { continue };
        let (target, want_reward) = if rights <= wrongs { (right, 1.0) } else { (wrong.r#ref, -1.0) };
        let obs = act(&mut *s, "click", json!({"ref": target}));
        assert!(obs.content.starts_with("The episode is over"), "{}", obs.content);
        assert_eq!(s.status(), SessionStatus::Ended { reward: want_reward });
        if want_reward > 0.0 {
            rights += 1
        } else {
            wrongs += 1
        }
    }
    assert!(rights >= 2 && wrongs >= 2, "{rights} right, {wrongs} wrong");
}

#[test]
fn the_oracle_solves_its_tasks() {
    let env = env(&format!("miniwob:{}", agents::ORACLE_TASKS.join(",")));
    for task in env.tasks(11, agents::ORACLE_TASKS.len() * 2) {
        let mut s = session(&env, &task);
        let mut view = s.prompt();
        let goal = utterance(&view);
        for _ in 0..6 {
            let action = agents::oracle_action(&goal, &page(&view));
            let Some(action) = action else { panic!("{}: no action for\n{view}", task.id) };
            let call = kaizen_core::parse_tool_calls(&action).remove(0).unwrap();
            let obs = s.act(&call);
            assert!(obs.ok, "{}: {}", task.id, obs.content);
            if s.status() != SessionStatus::Running {
                break;
            }
            view = obs.content;
        }
        assert_eq!(s.status(), SessionStatus::Ended { reward: 1.0 }, "{}", task.id);
    }
}

#[test]
fn bad_actions_are_observations_not_crashes() {
    let env = env("miniwob:enter-text");
    let mut s = session(&env, &env.tasks(1, 1)[0]);
    for (name, args, says) in [
        ("click", json!({"ref": 999}), "no such element"),
        ("click", json!({"ref": "three"}), "'ref' must be"),
        ("type", json!({"ref": 999, "text": "x"}), "no such text field"),
        ("press", json!({"key": "Hyper"}), "unknown key"),
        ("select", json!({"ref": 1, "option": "x"}), "not a drop-down"),
        ("scroll", json!({"direction": "sideways"}), "'direction'"),
        ("fly", json!({}), "unknown action"),
    ] {
        let obs = act(&mut *s, name, args);
        assert!(!obs.ok && obs.content.contains(says), "{name}: {}", obs.content);
        assert_eq!(s.status(), SessionStatus::Running);
    }
    // Typing and a key press really reach the page.
    let field = page(&s.prompt()).into_iter().find(|e| e.tag == "input_text").unwrap();
    let obs = act(&mut *s, "type", json!({"ref": field.r#ref, "text": "hello"}));
    assert!(obs.content.contains("value=\"hello\""), "{}", obs.content);
    let obs = act(&mut *s, "press", json!({"key": "Backspace"}));
    assert!(obs.content.contains("value=\"hell\""), "{}", obs.content);
}

#[test]
fn a_killed_browser_fails_its_episode_and_the_next_one_runs() {
    let env = env("miniwob:click-test");
    let tasks = env.tasks(5, 2);
    let web = env.start("click-test", 1).unwrap();
    let pid = web.browser_pid().expect("chromedriver reports the browser's pid");
    let mut s: Box<dyn EnvSession> = Box::new(web);
    assert_eq!(unsafe { kill(pid as i32, 9) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let obs = act(&mut *s, "click", json!({"ref": 1}));
    assert!(!obs.ok, "{}", obs.content);
    assert!(matches!(s.status(), SessionStatus::Failed { .. }), "{:?}", s.status());
    drop(s);
    // The pool throws the dead browser away and starts a new one for the next episode.
    let mut s = session(&env, &tasks[1]);
    let button = page(&s.prompt()).into_iter().find(|e| e.tag == "button").unwrap();
    act(&mut *s, "click", json!({"ref": button.r#ref}));
    assert_eq!(s.status(), SessionStatus::Ended { reward: 1.0 });
    assert_eq!(env.pool().counts(), (2, 1), "(launched, discarded)");
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Task pages request only loopback URLs (the DevTools log of every page request says so),
/// the browser itself asks for nothing outside (its proxy, the network trap, records no
/// request), and a page that does reach out is refused: nothing reaches the network.
#[test]
fn nothing_leaves_the_machine() {
    let cfg = BrowserConfig { log_page_requests: true, ..Default::default() };
    let env = MiniWob::open_with("miniwob:click-test,enter-text,login-user", 1, cfg).unwrap();
    for task in env.tasks(2, 3) {
        let mut s = session(&env, &task);
        let field = page(&s.prompt()).into_iter().find(|e| e.tag == "button" || e.tag.starts_with("input")).unwrap();
        act(&mut *s, "click", json!({"ref": field.r#ref}));
    }
    let mut b = env.pool().lease().unwrap();
    let pages = b.page_requests().unwrap();
    assert!(pages.iter().any(|u| u.ends_with("/miniwob/login-user.html")), "{pages:?}");
    // Network schemes only (chrome:// and data: URLs are the browser's own, served locally).
    let networked = |u: &&String| ["http:", "https:", "ws:", "wss:", "ftp:"].iter().any(|s| u.starts_with(s));
    let outside: Vec<&String> =
        pages.iter().filter(networked).filter(|u| !u.starts_with("http://127.0.0.1:")).collect();
    assert!(outside.is_empty(), "task pages requested {outside:?}");
    // Chromium's own services (updaters, sign-in, time queries, search) made no request either.
    assert_eq!(env.outside_requests(), Vec::<String>::new(), "the browser reached for the network");
    // Both records do catch a page that reaches out, and the trap refuses it.
    let status = b
        .execute(
            "var x = new XMLHttpRequest(); x.open('GET', 'http://example.com/probe', false); \
             try { x.send(); return x.status; } catch (e) { return -1; }",
            &[],
        )
        .unwrap();
    assert_ne!(status, json!(200), "an outside request succeeded");
    assert!(b.page_requests().unwrap().iter().any(|u| u == "http://example.com/probe"));
    assert!(env.outside_requests().iter().any(|r| r.contains("example.com/probe")), "{:?}", env.outside_requests());
}
