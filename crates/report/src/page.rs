//! The report page: HTML with the style and script inlined (`assets/report.css`,
//! `assets/report.js`), the charts as inline SVG, and the episodes as one JSON document,
//! compressed (`packed`), that the script unpacks (the trajectory browser renders only the rows
//! in view, so a 10,000-episode run is still a few dozen list nodes).

use crate::svg::escape;
use crate::Run;
use kaizen_core::Trajectory;
use serde_json::{json, Value};
use std::fmt::Write;

const STYLE: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");

/// Added to the page by `kaizen report --serve`: polls `/version` every 2 s and reloads the page
/// when the runs' records changed (the file report has no server to ask, and no such script).
pub const LIVE_SCRIPT: &str = "<script>(function(){let v=null;setInterval(async()=>{try{const r=await fetch('version',{cache:'no-store'});const t=await r.text();if(v!==null&&t!==v)location.reload();v=t;}catch(e){}},2000);})();</script>";

/// Token texts of a trajectory's generated tokens (by id), when the policy's tokenizer is at
/// hand; `None` leaves the heat-map showing ids.
pub type TokenText<'a> = &'a dyn Fn(&Run, &[u32]) -> Option<Vec<String>>;

/// The page's data as it is embedded: the JSON gzip-compressed, then base64 — about a sixth of
/// the JSON's size (a 10,000-episode run's report stays a few MB), unpacked by the browser's
/// own `DecompressionStream`. Base64 has no `<` and no `:`, so the data can neither close its
/// `<script>` element nor spell a URL.
pub fn packed(v: &Value) -> std::io::Result<String> {
    use base64::Engine;
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(v.to_string().as_bytes())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(gz.finish()?))
}

/// A log-prob as the page shows it: three decimals are more than a heat-map can show.
fn rounded(lp: f32) -> f64 {
    (lp as f64 * 1000.0).round() / 1000.0
}

/// One episode as the browser reads it.
pub fn episode(run: usize, t: &Trajectory, token_text: Option<Vec<String>>) -> Value {
    let end = serde_json::to_value(&t.end).ok().and_then(|e| e["kind"].as_str().map(String::from));
    let turns: Vec<Value> = t
        .turns
        .iter()
        .map(|turn| {
            json!({
                "text": turn.text,
                "calls": turn.tool_calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
                "malformed": turn.malformed,
                "observations": turn.observations.iter().map(|o| json!({"text": o.content, "ok": o.ok, "images": o.images})).collect::<Vec<_>>(),
                "candidates": turn.candidates.iter().map(|c| json!({"text": c.text, "logprob": c.logprob, "score": c.score, "chosen": c.chosen})).collect::<Vec<_>>(),
            })
        })
        .collect();
    // The policy's own tokens (loss mask 1) with their sampled log-probs.
    let generated: Vec<(u32, f32)> = t
        .token_ids
        .iter()
        .zip(&t.loss_mask)
        .zip(&t.logprobs)
        .filter(|((_, m), _)| **m == 1)
        .map(|((id, _), lp)| (*id, *lp))
        .collect();
    let ids: Vec<u32> = generated.iter().map(|g| g.0).collect();
    let texts = token_text.filter(|t| t.len() == ids.len());
    let tokens = json!({
        "text": texts.unwrap_or_else(|| ids.iter().map(|id| format!("#{id}")).collect()),
        "logprob": generated.iter().map(|(_, lp)| rounded(*lp)).collect::<Vec<_>>(),
    });
    json!({
        "run": run, "id": t.episode_id, "task": t.task.id, "prompt": t.task.prompt, "images": t.task.images, "reward": t.reward,
        "end": end.unwrap_or_else(|| "unknown".into()), "solved": t.solved(), "tools": t.used_tool(), "answer": t.final_answer,
        "turns": turns, "tokens": tokens,
    })
}

/// A share as a percentage with one decimal ("—" when absent).
fn pct(x: &Value) -> String {
    x.as_f64().map_or("—".to_string(), |v| format!("{:.1}", 100.0 * v))
}

/// A paired difference as the evaluation verbs write it (`{difference, lo, hi}`), in points;
/// empty when there is none, "—" when it is malformed.
fn pair(p: &Value) -> String {
    match (p["difference"].as_f64(), p["lo"].as_f64(), p["hi"].as_f64()) {
        (Some(d), Some(lo), Some(hi)) => format!("{:+.1} pts ({:+.1} to {:+.1})", 100.0 * d, 100.0 * lo, 100.0 * hi),
        _ if p.is_null() => String::new(),
        _ => "—".into(),
    }
}

/// A selection row's first cells, as the evaluation verbs write rows (`selection`,
/// `successes`, `tasks`, `lo`, `hi`): its name, its success rate with counts, its interval.
fn selection_cells(row: &Value) -> String {
    let (k, n) = (row["successes"].as_u64().unwrap_or(0), row["tasks"].as_u64().unwrap_or(0));
    format!(
        "<td>{}</td><td>{:.1}% ({k}/{n})</td><td>{}–{}%</td>",
        escape(row["selection"].as_str().unwrap_or("?")),
        100.0 * k as f64 / n.max(1) as f64,
        pct(&row["lo"]),
        pct(&row["hi"])
    )
}

/// How an evaluation's tasks were held out from training, as its file says.
fn held_out_how(b: &Value) -> &'static str {
    if b["held_out_by_content"] == true {
        "by content"
    } else {
        "by seed"
    }
}

/// A Best-of-Q evaluation (`eval_rerank.json`) as a table: each selection's success with its
/// Wilson interval, and the paired differences the command computed.
fn best_of_q_table(b: &Value) -> String {
    let mut out = format!(
        "<table class=\"best-of-q\"><caption>Best-of-Q: {} on {}, N = {}, {} tasks held out {}</caption>\
         <tr><th>selection</th><th>success</th><th>95% interval (Wilson)</th><th>vs sampled (paired Δ, 95% bootstrap)</th>\
         <th>vs random of N</th></tr>",
        escape(b["policy"].as_str().unwrap_or("?")),
        escape(b["env"].as_str().unwrap_or("?")),
        b["candidates"].as_u64().map_or("?".to_string(), |n| n.to_string()),
        b["tasks"].as_array().map_or(0, Vec::len),
        held_out_how(b)
    );
    for row in b["rows"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr>{}<td>{}</td><td>{}</td></tr>",
            selection_cells(row),
            pair(&row["vs_sampled"]),
            pair(&row["vs_random"])
        );
    }
    out.push_str("</table>");
    out
}

/// The verifier as a process reward model (`eval_prm.json`) as a table: each way of picking
/// one of N solutions with its success and Wilson interval, the verifier's pick beside each as
/// the paired difference the command computed, and how many verdicts were unreadable.
fn prm_table(b: &Value) -> String {
    let mut out = format!(
        "<table class=\"prm\"><caption>Verifier as PRM: {} judging {} on {}, N = {}, {} tasks held out {}; \
         {} of {} judged steps unreadable</caption>\
         <tr><th>selection</th><th>success</th><th>95% interval (Wilson)</th><th>PRM pick − this (paired Δ, 95% bootstrap)</th></tr>",
        escape(b["verifier"].as_str().unwrap_or("?")),
        escape(b["policy"].as_str().unwrap_or("?")),
        escape(b["env"].as_str().unwrap_or("?")),
        b["candidates"].as_u64().map_or("?".to_string(), |n| n.to_string()),
        b["tasks"].as_array().map_or(0, Vec::len),
        held_out_how(b),
        b["unreadable"].as_u64().unwrap_or(0),
        b["steps"].as_u64().unwrap_or(0)
    );
    for row in b["rows"].as_array().into_iter().flatten() {
        let _ = write!(out, "<tr>{}<td>{}</td></tr>", selection_cells(row), pair(&row["prm_vs"]));
    }
    out.push_str("</table>");
    out
}

/// `kaizen evolve`'s iterations (`evolution.jsonl`) as a table: held-out accuracy with its
/// Wilson interval per set, then what the curriculum's tasks were like and what the pool kept.
fn evolution_table(lines: &[Value]) -> String {
    let mut out = String::from(
        "<table class=\"evolution\"><caption>Self-evolution (Agent0): held-out ground truth after each iteration</caption>\
         <tr><th>iteration</th><th>held-out accuracy (95% Wilson)</th><th>executor pass rate on its own tasks (mean p̂)</th>\
         <th>tool calls / task</th><th>pool kept / judged</th><th>repetition clusters (largest)</th><th>format failures</th>\
         <th>curriculum reward</th><th>sample tasks</th></tr>",
    );
    for l in lines {
        let held: Vec<String> = l["held_out"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} {:.1}% ({}–{}%, {}/{})",
                    escape(s["set"].as_str().unwrap_or("?")),
                    100.0 * s["accuracy"].as_f64().unwrap_or(0.0),
                    format_args!("{:.1}", 100.0 * s["low"].as_f64().unwrap_or(0.0)),
                    format_args!("{:.1}", 100.0 * s["high"].as_f64().unwrap_or(0.0)),
                    s["solved"],
                    s["tasks"]
                )
            })
            .collect();
        let (t, p) = (&l["tasks"], &l["pool"]);
        let num = |v: &Value, d: usize| v.as_f64().map_or("—".to_string(), |x| format!("{x:.d$}"));
        let pct = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{:.0}%", 100.0 * x));
        let samples: Vec<String> =
            t["samples"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).map(escape).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l["iteration"],
            held.join("<br>"),
            num(&t["executor_pass_rate"], 2),
            num(&t["tool_calls_per_task"], 2),
            if p.is_null() { "—".to_string() } else { format!("{} / {}", p["kept"], p["judged"]) },
            if t.is_null() { "—".to_string() } else { format!("{} ({})", t["clusters"], t["largest_cluster"]) },
            pct(&t["format_failure_rate"]),
            num(&l["curriculum"]["mean_reward"], 3),
            samples.join("<br>")
        );
    }
    out.push_str("</table>");
    out
}

/// `kaizen evolve --mode vl`'s iterations (`evolution.jsonl` lines with a `repaired` score):
/// held-out accuracy of the solver alone and with verifier + repair (95% Wilson), what the
/// repairs did, how many verdicts were unreadable, the verifier as a PRM where measured, and
/// the iteration's RL reward.
fn vl_cycle_table(lines: &[Value]) -> String {
    let mut out = String::from(
        "<table class=\"evolution\"><caption>Agent0-VL cycle: held-out accuracy after each iteration</caption>\
         <tr><th>iteration</th><th>solver alone (95% Wilson)</th><th>verifier + repair</th><th>repairs (episodes)</th>\
         <th>wrong → right</th><th>right → wrong</th><th>declined</th><th>unreadable verdicts</th>\
         <th>PRM best-of-N</th><th>majority</th><th>random</th><th>pass@N</th><th>RL reward</th></tr>",
    );
    let score = |s: &Value| match (s["solved"].as_u64(), s["tasks"].as_u64()) {
        (Some(k), Some(n)) => {
            format!("{:.1}% ({}–{}%, {k}/{n})", 100.0 * k as f64 / n.max(1) as f64, pct(&s["low"]), pct(&s["high"]))
        }
        _ => "—".into(),
    };
    for l in lines {
        let p = &l["prm"];
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l["iteration"],
            score(&l["solver"]),
            score(&l["repaired"]),
            format_args!("{} ({})", l["repairs"], l["episodes_repaired"]),
            l["wrong_to_right"],
            l["right_to_wrong"],
            l["declined"],
            l["unreadable"].as_f64().map_or("—".to_string(), |u| format!("{:.0}%", 100.0 * u)),
            if p.is_null() { "—".to_string() } else { format!("{} (N = {})", score(&p["prm"]), p["candidates"]) },
            if p.is_null() { "—".to_string() } else { score(&p["majority"]) },
            if p.is_null() { "—".to_string() } else { score(&p["random"]) },
            if p.is_null() { "—".to_string() } else { score(&p["oracle"]) },
            l["training"]["mean_reward"].as_f64().map_or("(before RL)".to_string(), |r| format!("{r:.3}")),
        );
    }
    out.push_str("</table>");
    out
}

fn tables(runs: &[Run]) -> String {
    let mut out = String::new();
    for r in runs.iter().filter(|r| {
        r.summary.is_some()
            || !r.trajectories.is_empty()
            || r.best_of_q.is_some()
            || r.prm.is_some()
            || !r.evolution.is_empty()
    }) {
        let _ = write!(out, "<h3>{}</h3>", escape(&r.name));
        if r.evolution.iter().any(|l| l.get("repaired").is_some()) {
            out.push_str(&vl_cycle_table(&r.evolution));
        } else if !r.evolution.is_empty() {
            out.push_str(&evolution_table(&r.evolution));
        }
        if let Some(b) = &r.best_of_q {
            out.push_str(&best_of_q_table(b));
        }
        if let Some(b) = &r.prm {
            out.push_str(&prm_table(b));
        }
        if let Some(s) = &r.summary {
            out.push_str("<table class=\"summary\"><tr><th>measure</th><th>value</th></tr>");
            if let Some(map) = s.as_object() {
                for (k, v) in map.iter().filter(|(_, v)| v.is_number()) {
                    let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(k), v);
                }
            }
            out.push_str("</table>");
        }
        if !r.trajectories.is_empty() {
            // Every episode, then each task kind (web tasks name theirs in `meta.task`).
            let solved = r.trajectories.iter().filter(|t| t.solved()).count();
            let mut rows = vec![("all episodes".to_string(), r.trajectories.len(), solved)];
            rows.extend(kaizen_rollout::run_dir::per_task(&r.trajectories).into_iter().map(|row| {
                let k = (row.success_rate * row.episodes as f64).round() as usize;
                (row.task, row.episodes, k)
            }));
            out.push_str("<table class=\"per-task\"><tr><th>tasks</th><th>episodes</th><th>success</th><th>95% interval (Wilson)</th></tr>");
            for (task, n, k) in rows {
                let (lo, hi) = kaizen_q::metrics::wilson_interval(k, n, 1.96);
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{n}</td><td>{:.1}%</td><td>{:.1}–{:.1}%</td></tr>",
                    escape(&task),
                    100.0 * k as f64 / n.max(1) as f64,
                    100.0 * lo,
                    100.0 * hi
                );
            }
            out.push_str("</table>");
        }
    }
    out
}

/// The whole page; an error only if compressing the episodes fails.
pub fn render(runs: &[Run], token_text: TokenText) -> std::io::Result<String> {
    let charts = crate::charts(runs);
    let episodes: Vec<Value> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.trajectories.iter().map(move |t| {
                let ids: Vec<u32> =
                    t.token_ids.iter().zip(&t.loss_mask).filter(|(_, m)| **m == 1).map(|(id, _)| *id).collect();
                episode(i, t, token_text(r, &ids))
            })
        })
        .collect();
    let data = json!({
        "runs": runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        "episodes": episodes,
    });
    let mut html = String::with_capacity(1 << 16);
    html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kaizen report</title>");
    let _ = write!(html, "<style>{STYLE}</style></head><body data-smooth=\"1\"><h1>kaizen report</h1>");
    let _ =
        write!(html, "<p class=\"runs\">{}</p>", runs.iter().map(|r| escape(&r.name)).collect::<Vec<_>>().join(" · "));
    for w in runs.iter().flat_map(|r| &r.warnings) {
        let _ = write!(html, "<p class=\"warning\">{}</p>", escape(w));
    }
    html.push_str("<h2>Training curves</h2>");
    if charts.is_empty() {
        html.push_str("<p class=\"none\">No training metrics in these runs (metrics.jsonl comes from <code>kaizen train</code>).</p>");
    } else {
        html.push_str("<label>smoothing <select id=\"smoothing\">");
        for (k, a) in crate::svg::SMOOTHING.iter().enumerate() {
            let _ = write!(html, "<option value=\"{k}\"{}>{a}</option>", if k == 1 { " selected" } else { "" });
        }
        html.push_str("</select></label><div id=\"charts\">");
        for (_, svg) in &charts {
            html.push_str(svg);
        }
        html.push_str("</div>");
    }
    let _ = write!(html, "<h2>Evaluation</h2>{}", tables(runs));
    html.push_str(
        "<h2>Episodes</h2><div id=\"filters\"><select id=\"f-run\"></select><input id=\"f-task\" placeholder=\"task or prompt contains\">\
         <select id=\"f-reward\"><option value=\"\">any reward</option><option value=\"solved\">solved</option><option value=\"failed\">failed</option></select>\
         <select id=\"f-end\"><option value=\"\">any end</option></select>\
         <select id=\"f-tools\"><option value=\"\">tools or not</option><option value=\"yes\">used a tool</option><option value=\"no\">no tool</option></select>\
         <span id=\"count\"></span></div><div id=\"browser\"><div id=\"list\"><div id=\"spacer\"></div></div><div id=\"episode\"><p class=\"none\">Pick an episode.</p></div></div>",
    );
    let _ = write!(html, "<script type=\"application/octet-stream\" id=\"kaizen-data\">{}</script>", packed(&data)?);
    let _ = write!(html, "<script>{SCRIPT}</script></body></html>");
    Ok(html)
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
