//! The tools an episode may use, by name, and the one place a parsed tool call becomes an
//! observation: unknown tools and malformed calls are observations too.

use crate::{Calculator, PythonTool, Sandbox};
use kaizen_core::{MalformedCall, Observation, Tool, ToolCall, ToolSpec};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in tools: `python` (sandboxed, default limits) and `calculator`.
    pub fn standard() -> Self {
        let mut r = Self::new();
        r.add(Arc::new(PythonTool::new(Sandbox::new(Default::default()))));
        r.add(Arc::new(Calculator));
        r
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
