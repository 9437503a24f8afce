use super::*;
use kaizen_core::Task;

/// A web-like env: every episode opens a live session (none is needed to test the refusal).
struct Pages;

impl Env for Pages {
    fn name(&self) -> &str {
        "pages"
    }
    fn system_prompt(&self) -> String {
        String::new()
    }
    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn tasks(&self, _seed: u64, _n: usize) -> Vec<Task> {
        Vec::new()
    }
    fn has_sessions(&self) -> bool {
        true
    }
}

#[test]
fn repairs_refuse_a_session_env_and_verdicts_alone_or_the_checker_take_it() {
    let open = |_: &str| Ok(Box::new(Pages) as Box<dyn Env>);
    let process = Recipe::parse("env = \"pages\"\n[rl]\nestimator = \"process\"\n").unwrap();
    let Err(e) = Setup::of_recipe(&process, &open, ToolRegistry::standard()) else {
        panic!("a process recipe on a session env was accepted")
    };
    assert!(matches!(e, RlError::Env { ref spec, .. } if spec == "pages"), "{e}");
    assert!(e.to_string().contains("cannot be repaired from a step"), "{e}");
    // Verdicts without repairs replay nothing: accepted.
    let verdicts_only =
        Recipe::parse("env = \"pages\"\n[rl]\nestimator = \"process\"\n[rl.process]\nrepair_budget = 0\n").unwrap();
    assert!(Setup::of_recipe(&verdicts_only, &open, ToolRegistry::standard()).is_ok());
    // The same env with the checker's reward is a plain web run.
    let grpo = Recipe::parse("env = \"pages\"\n[rl]\nestimator = \"grpo\"\n").unwrap();
    let setup = Setup::of_recipe(&grpo, &open, ToolRegistry::standard()).unwrap();
    assert!(setup.reward.is_checker() && !setup.reward.writes_verdicts());
}
