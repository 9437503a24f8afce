//! `kaizen tool NAME --args JSON`: one tool call exactly as an episode makes it (same parser,
//! same registry, same sandbox), printing the observation the model would read. The image
//! tools (`crop`, `zoom`, `rotate`) act on the picture given with `--image` and write the
//! picture they answer with to `--save`.

use kaizen_core::{parse_tool_calls, Observation, ToolCall};
use kaizen_tools::image::{decode, ImageTools, IMAGE_TOOLS};
use kaizen_tools::ToolRegistry;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  kaizen tool python --args '{\"code\": \"print(17*23)\"}'\n  \
    kaizen tool zoom --image scene.png --args '{\"box\": [64, 0, 128, 64], \"factor\": 2}' --save cell.png")]
pub struct Args {
    /// Tool name (`python`, `calculator`, or an image tool: `crop`, `zoom`, `rotate`); `--list`
    /// shows them.
    name: Option<String>,
    /// Arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// The picture (PNG or JPEG) an image tool acts on.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Where an image tool writes the picture it answers with (PNG).
    #[arg(long)]
    save: Option<PathBuf>,
    /// List the tools with their schemas.
    #[arg(long)]
    list: bool,
    /// Print the observation as JSON (content, ok, elapsed_ms, images as data: URLs).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let registry = ToolRegistry::standard();
    if a.list {
        for spec in registry.specs() {
            println!("{}", serde_json::to_string_pretty(&spec.0)?);
        }
        // The image tools' schemas name their picture's size; an episode's name its own.
        eprintln!("[image tools shown for a 1×1 picture; an episode's schemas give its picture's size]");
        let blank = ImageTools::new(image::RgbImage::new(1, 1));
        for spec in blank.specs() {
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
    let obs = if let Some(call) = call.as_ref().ok().filter(|c| IMAGE_TOOLS.contains(&c.name.as_str())) {
        image_call(call, a.image.as_ref(), a.save.as_ref())?
    } else {
        anyhow::ensure!(
            a.image.is_none() && a.save.is_none(),
            "--image and --save are for the image tools (crop, zoom, rotate)"
        );
        registry.dispatch(&call)
    };
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

/// One image tool call on the picture at `image`; the answer's picture written to `save`.
fn image_call(call: &ToolCall, image: Option<&PathBuf>, save: Option<&PathBuf>) -> anyhow::Result<Observation> {
    let path =
        image.ok_or_else(|| anyhow::anyhow!("{} acts on a picture: give --image FILE (PNG or JPEG)", call.name))?;
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mime = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    let picture = decode(mime, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let obs = ImageTools::new(picture).act(call);
    if let (Some(out), Some(url)) = (save, obs.images.first()) {
        let (_, png) = kaizen_core::image::data_url_bytes(url).map_err(anyhow::Error::msg)?;
        std::fs::write(out, png).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    }
    Ok(obs)
}
