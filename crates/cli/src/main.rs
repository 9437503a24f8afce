//! The `kaizen` command-line tool: thin glue over the library crates.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kaizen",
    version,
    about = "Make tool-using language agents better: Best-of-Q, RL for tool use, self-evolution."
)]
struct Cli {
    /// CPU threads for model compute (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Memory for the shared-prefix KV cache of each local model, in MiB (default 1024; 0:
    /// off — every prompt prefix computed again, with the same numbers).
    #[arg(long, global = true, value_name = "MIB")]
    prefix_cache_mib: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample completions of a prompt, with per-token log-probs.
    #[command(after_help = "Examples:\n  kaizen generate --prompt 'What is 17 * 23?'\n  \
        kaizen generate --prompt 'Name a fruit.' --n 4 --temperature 1 --seed 7\n  \
        kaizen generate --policy openai:http://127.0.0.1:8000 --remote-model Qwen2.5-7B --prompt 'Hi'")]
    Generate(commands::generate::Args),
    /// Chat with a model in the terminal (streaming); /reset clears the history, /exit quits.
    #[command(after_help = "Example:\n  kaizen chat --system 'You are terse.' --temperature 0.7")]
    Chat(commands::chat::Args),
    /// Sentence embeddings (all-MiniLM-L6-v2) as JSON lines, or a cosine-similarity table.
    #[command(
        after_help = "Examples:\n  kaizen embed 'The weather is lovely today.' \"It's so sunny outside!\" --similarity\n  \
        kaizen embed --file sentences.txt > vectors.jsonl"
    )]
    Embed(commands::embed::Args),
    /// Serve the local model over an OpenAI-compatible HTTP API.
    #[command(after_help = "Example:\n  kaizen serve --port 8080 &\n  \
        curl -s localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":20}'")]
    Serve(commands::serve::Args),
    /// List installed models and where they are (`--verify` re-checks SHA-256).
    #[command(after_help = "Example:\n  kaizen models --verify")]
    Models(commands::models::Args),
    /// Run episodes of an env with a policy and tools; record them in a run directory.
    #[command(
        after_help = "Examples:\n  kaizen run --env arith --policy smollm2 --episodes 200 --out runs/arith-greedy\n  \
        kaizen run --env arith --shots 3 --episodes 50 --out runs/arith-3shot    # worked examples first\n  \
        kaizen run --env jsonl:my_tasks.jsonl --policy openai:http://127.0.0.1:8000 --remote-model qwen --out runs/mine"
    )]
    Run(commands::run::Args),
    /// Train a policy with a recipe: SFT cold start on demonstrations, then RL (GRPO, Dr.GRPO,
    /// ADPO), held-out evaluation, metrics.jsonl and policy.gguf in the run directory.
    #[command(after_help = "Examples:\n  kaizen train recipes/arith-tiny-grpo.toml --out runs/grpo\n  \
                            kaizen train --resume runs/grpo    # after a crash: continues from the latest checkpoint")]
    Train(commands::train::Args),
    /// Self-evolution from zero data (Agent0): a curriculum agent learns to write tasks at the
    /// edge of the executor's ability; the executor learns from majority-vote pseudo-labels
    /// with ADPO; held-out ground-truth accuracy after every iteration. `--mode vl`: Agent0-VL's
    /// cycle — one policy solves, verifies its own steps, repairs the unsure ones, and trains
    /// on the process rewards; held-out accuracy of the solver alone and with verifier + repair.
    #[command(after_help = "Examples:\n  kaizen evolve recipes/agent0-smollm2.toml --out runs/agent0\n  \
                            kaizen evolve recipes/agent0-smollm2.toml --estimator grpo --out runs/agent0-grpo   # ablation\n  \
                            kaizen evolve --mode vl recipes/agent0-vl-shape-grid-tiny.toml --out runs/agent0-vl\n  \
                            kaizen evolve --resume runs/agent0    # after a crash: the first unfinished stage")]
    Evolve(commands::evolve::Args),
    /// Export tasks for other trainers: `kaizen export verl` writes verl's RL dataset Parquet
    /// and a reward file.
    #[command(subcommand)]
    Export(commands::export::Export),
    /// Training diagnostics of several runs side by side: where each ended, and held-out
    /// pass@1 over training.
    #[command(after_help = "Example:\n  kaizen compare runs/grpo runs/dr-grpo")]
    Compare(commands::compare::Args),
    /// One offline HTML report of runs: training curves, evaluation tables and a trajectory
    /// browser (transcripts, tool calls, images, candidates with scores, log-prob heat-map).
    Report(commands::report::Args),
    /// Print an episode of a run as a readable transcript.
    #[command(after_help = "Example:\n  kaizen show runs/arith-greedy --episode 3")]
    Show(commands::show::Args),
    /// Run one tool call exactly as an episode would and print the observation.
    #[command(after_help = "Examples:\n  kaizen tool python --args '{\"code\": \"print(17*23)\"}'\n  \
        kaizen tool calculator --args '{\"expr\": \"(17*23 + 4) / 5\"}'\n  kaizen tool --list")]
    Tool(commands::tool::Args),
    /// Collect data for Best-of-Q: several episodes per task with N candidate actions per
    /// step, all recorded.
    #[command(
        after_help = "Examples:\n  kaizen collect --env miniwob:click-button --policy random --tasks 40 --out runs/web-data\n  \
        kaizen collect --env arith --shots 3 --candidates 8 --temperature 0.7 --out runs/arith-data"
    )]
    Collect(commands::collect::Args),
    /// The Best-of-Q table on held-out tasks: the policy alone (greedy, sampled), random /
    /// max-log-prob / Q pick among the same N candidates, and the oracle pass@N, with 95%
    /// intervals.
    #[command(
        after_help = "Example:\n  kaizen eval-rerank --env miniwob-easy --policy random --q q.safetensors --candidates 4 --episodes 80"
    )]
    EvalRerank(commands::eval_rerank::Args),
    /// The verifier as a process reward model: N solutions per held-out task, the verifier's
    /// pick beside majority vote, a random pick and pass@N, with 95% intervals.
    #[command(
        after_help = "Example:\n  kaizen eval-prm --env arith --policy smollm2 --verifier runs/vl/policy.gguf --candidates 8 --episodes 50"
    )]
    EvalPrm(commands::eval_prm::Args),
    /// Best-of-Q's offline side: train a Q-function on recorded runs.
    #[command(subcommand)]
    Q(commands::q::Q),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(commands::bench::Bench),
}

fn main() {
    kaizen_models::tune_allocator();
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        // candle sizes its thread pools from this variable on first use, so set it first.
        std::env::set_var("RAYON_NUM_THREADS", t.max(1).to_string());
    }
    if let Some(mib) = cli.prefix_cache_mib {
        kaizen_models::runtime::prefix_cache::set_default_budget(mib.saturating_mul(1 << 20));
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KAIZEN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Generate(a) => commands::generate::run(a),
        Command::Chat(a) => commands::chat::run(a),
        Command::Embed(a) => commands::embed::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Models(a) => commands::models::run(a),
        Command::Tool(a) => commands::tool::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Evolve(a) => commands::evolve::run(a),
        Command::Export(e) => commands::export::run(e),
        Command::Compare(a) => commands::compare::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Show(a) => commands::show::run(a),
        Command::Bench(b) => commands::bench::run(b),
        Command::Collect(a) => commands::collect::run(a),
        Command::Q(q) => commands::q::run(q),
        Command::EvalRerank(a) => commands::eval_rerank::run(a),
        Command::EvalPrm(a) => commands::eval_prm::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
