//! The `python` tool: runs the model's code in the sandbox and reports what it printed.

use crate::sandbox::{RunResult, Sandbox};
use kaizen_core::{Observation, Tool, ToolSpec};
use serde_json::{json, Value};

pub struct PythonTool {
    pub sandbox: Sandbox,
}

impl PythonTool {
    pub fn new(sandbox: Sandbox) -> Self {
        PythonTool { sandbox }
    }
}

impl Tool for PythonTool {
    fn name(&self) -> &str {
        "python"
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec(json!({"type": "function", "function": {
            "name": "python",
            "description": "Run Python 3 code in a sandbox (no network, no files kept between calls) and return what it prints. Use print() to show results.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "Python source to run"}}, "required": ["code"]},
        }}))
    }

    fn call(&self, arguments: &Value) -> Observation {
        let Some(code) = arguments.get("code").and_then(Value::as_str) else {
            return Observation::error("python needs {\"code\": \"...\"} (a string of Python source)");
        };
        let r = self.sandbox.run(code);
        let mut obs = describe(&r, self.sandbox.limits.wall.as_secs_f64(), self.sandbox.limits.output_bytes);
        obs.elapsed_ms = r.elapsed.as_secs_f64() * 1e3;
        obs
    }
}

/// The observation text for a run: output first, then what went wrong, said plainly.
pub fn describe(r: &RunResult, wall_secs: f64, cap: usize) -> Observation {
    if let Some(e) = &r.sandbox_error {
        return Observation::error(format!("sandbox error: {e}"));
    }
    let mut parts = Vec::new();
    if !r.stdout.is_empty() {
        parts.push(r.stdout.trim_end().to_string());
    }
    if !r.stderr.is_empty() {
        parts.push(format!("stderr:\n{}", r.stderr.trim_end()));
    }
    if r.truncated {
        parts.push(format!("[output truncated at {cap} bytes; the program was stopped]"));
    }
    if r.timed_out {
        parts.push(format!("[timed out after {wall_secs:.0} s; the program was stopped]"));
    } else if let Some(sig) = r.signal {
        let why = match sig {
            libc::SIGXCPU => "CPU time limit exceeded",
            libc::SIGXFSZ => "file size limit exceeded",
            libc::SIGKILL => "killed",
            libc::SIGSEGV => "segmentation fault",
            _ => "terminated by a signal",
        };
        parts.push(format!("[{why} (signal {sig})]"));
    } else if let Some(code) = r.exit_code.filter(|&c| c != 0) {
        parts.push(format!("[exit code {code}]"));
    }
    let content = if parts.is_empty() { "(no output)".to_string() } else { parts.join("\n") };
    Observation { content, ok: r.success() && !r.truncated, elapsed_ms: 0.0, images: Vec::new() }
}
