//! The tools an episode may use, by name, and the one place a parsed tool call becomes an
//! observation: unknown tools and malformed calls are observations too.

use crate::{Calculator, PythonTool, Sandbox};
use kaizen_core::{MalformedCall, Observation, Tool, ToolCall, ToolSpec};
use std::sync::Arc;

/// The built-in tools, by name: adding a tool is its file and one line here (text envs offer
/// every tool listed; a test checks each name is its tool's own).
pub const STANDARD: &[(&str, fn() -> Arc<dyn Tool>)] = &[
    ("python", || Arc::new(PythonTool::new(Sandbox::new(Default::default())))),
    ("calculator", || Arc::new(Calculator)),
];

#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in tools (`STANDARD`): `python` (sandboxed, default limits) and `calculator`.
    pub fn standard() -> Self {
        let mut r = Self::new();
        for (_, make) in STANDARD {
            r.add(make());
        }
        r
    }

    /// The names of the built-in tools, without starting any: what a text env that lets its
    /// tasks use every general tool allows (`Env::tool_names`).
    pub fn standard_names() -> Vec<String> {
        STANDARD.iter().map(|(name, _)| name.to_string()).collect()
    }

    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(tool);
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name()).collect()
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.name() == name)
    }

    /// Runs a parsed call (or explains why it could not run).
    pub fn dispatch(&self, call: &Result<ToolCall, MalformedCall>) -> Observation {
        match call {
            Err(bad) => Observation::error(format!("malformed tool call: {}", bad.message)),
            Ok(c) => match self.get(&c.name) {
                Some(t) => t.call(&c.arguments),
                None => {
                    Observation::error(format!("unknown tool '{}'; available: {}", c.name, self.names().join(", ")))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_standard_name_is_its_tools_own() {
        for (name, make) in STANDARD {
            assert_eq!(make().name(), *name);
        }
        assert_eq!(ToolRegistry::standard_names(), ["python", "calculator"]);
        assert_eq!(ToolRegistry::standard().names(), ["python", "calculator"]);
    }
}
