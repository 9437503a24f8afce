//! `kaizen tool NAME --args JSON`: one tool call exactly as an episode makes it (same parser,
//! same registry, same sandbox), printing the observation the model would read.

use kaizen_core::parse_tool_calls;
use kaizen_tools::ToolRegistry;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tool name (`python`, `calculator`); `--list` shows them.
    name: Option<String>,
    /// Arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// List the tools with their schemas.
    #[arg(long)]
    list: bool,
    /// Print the observation as JSON (content, ok, elapsed_ms).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let registry = ToolRegistry::standard();
    if a.list {
        for spec in registry.specs() {
            println!("{}", serde_json::to_string_pretty(&spec.0)?);
        }
        return Ok(());
    }
    let Some(name) = a.name else { anyhow::bail!("give a tool name (or --list)") };
    // Through the same text form the model writes, so the parser is exercised too.
    let args: serde_json::Value =
        serde_json::from_str(&a.args).map_err(|e| anyhow::anyhow!("--args is not valid JSON: {e}"))?;
    let text = format!("<tool_call>{}</tool_call>", serde_json::json!({"name": name, "arguments": args}));
    let call = parse_tool_calls(&text).into_iter().next().ok_or_else(|| anyhow::anyhow!("no tool call parsed"))?;
    let obs = registry.dispatch(&call);
    if a.json {
        println!("{}", serde_json::to_string(&obs)?);
    } else {
        println!("{}", obs.content);
        eprintln!("[{} in {:.1} ms]", if obs.ok { "ok" } else { "error" }, obs.elapsed_ms);
    }
    if !obs.ok {
        std::process::exit(2);
    }
    Ok(())
}
