//! Trajectories as Parquet (`trajectories.parquet`), one row per episode, for tools that read
//! columns (pandas, DuckDB, Ray-based trainers such as verl). Schema version 1:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `schema_version` | int32 | 1 |
//! | `episode_id`, `env`, `policy`, `task_id` | string | identifiers |
//! | `seed` | int64 | the episode's sampling seed |
//! | `prompt`, `reference_answer` | string | the task |
//! | `final_answer` | string, nullable | what the policy answered |
//! | `reward` | float | the checker's reward |
//! | `end` | string | `answered`, `no_answer`, `max_turns`, `max_tokens`, `error` |
//! | `prompt_tokens` | int32 | length of the initial prompt in `token_ids` |
//! | `token_ids` | list<int32> | every token the policy saw or wrote |
//! | `loss_mask` | list<int32> | 1 on tokens the policy wrote |
//! | `logprobs` | list<float> | sampling log-prob of each written token, 0 elsewhere |
//! | `turns`, `tool_calls`, `malformed_calls` | int32 | counts |
//! | `generation_ms`, `tool_ms`, `total_ms` | double | timings |
//! | `trajectory_json` | string | the full JSONL record (turns, calls, observations) |

use kaizen_core::trajectory::{EpisodeEnd, Trajectory};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use std::path::Path;
use std::sync::Arc;

pub const PARQUET_FILE: &str = "trajectories.parquet";

const SCHEMA: &str = "message trajectory {
  REQUIRED INT32 schema_version;
  REQUIRED BYTE_ARRAY episode_id (UTF8);
  REQUIRED BYTE_ARRAY env (UTF8);
  REQUIRED BYTE_ARRAY policy (UTF8);
  REQUIRED BYTE_ARRAY task_id (UTF8);
  REQUIRED INT64 seed;
  REQUIRED BYTE_ARRAY prompt (UTF8);
  REQUIRED BYTE_ARRAY reference_answer (UTF8);
  OPTIONAL BYTE_ARRAY final_answer (UTF8);
  REQUIRED FLOAT reward;
  REQUIRED BYTE_ARRAY end (UTF8);
  REQUIRED INT32 prompt_tokens;
  REQUIRED GROUP token_ids (LIST) { REPEATED GROUP list { REQUIRED INT32 element; } }
  REQUIRED GROUP loss_mask (LIST) { REPEATED GROUP list { REQUIRED INT32 element; } }
  REQUIRED GROUP logprobs (LIST) { REPEATED GROUP list { REQUIRED FLOAT element; } }
  REQUIRED INT32 turns;
  REQUIRED INT32 tool_calls;
  REQUIRED INT32 malformed_calls;
  REQUIRED DOUBLE generation_ms;
  REQUIRED DOUBLE tool_ms;
  REQUIRED DOUBLE total_ms;
  REQUIRED BYTE_ARRAY trajectory_json (UTF8);
}";

pub fn end_name(e: &EpisodeEnd) -> &'static str {
    match e {
        EpisodeEnd::Answered => "answered",
        EpisodeEnd::NoAnswer => "no_answer",
        EpisodeEnd::MaxTurns => "max_turns",
        EpisodeEnd::MaxTokens => "max_tokens",
        EpisodeEnd::EnvDone => "env_done",
        EpisodeEnd::Error { .. } => "error",
    }
}

/// Definition and repetition levels of a list column (one list per row): an empty list is one
/// level pair (0, 0) with no value; element j of a row has definition 1 and repetition 0 for the
/// row's first element, 1 after.
pub(crate) fn list_levels(lens: impl Iterator<Item = usize>) -> (Vec<i16>, Vec<i16>) {
    let (mut def, mut rep) = (Vec::new(), Vec::new());
    for n in lens {
        if n == 0 {
            def.push(0);
            rep.push(0);
        }
        for j in 0..n {
            def.push(1);
            rep.push(if j == 0 { 0 } else { 1 });
        }
    }
    (def, rep)
}

/// Writes one row group of `schema` (a Parquet message type) to `path`, replacing it: column
/// `i`, in schema order, by `column(i, writer)`, which writes its values and levels (an index
/// past the schema's columns is an error).
pub(crate) fn write_row_group(
    path: &Path,
    schema: &str,
    mut column: impl FnMut(usize, &mut SerializedColumnWriter<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let err = |e: parquet::errors::ParquetError| format!("writing {}: {e}", path.display());
    let schema = Arc::new(parse_message_type(schema).map_err(err)?);
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let file = std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    let mut rg = writer.next_row_group().map_err(err)?;
    let mut col = 0usize;
    while let Some(mut c) = rg.next_column().map_err(err)? {
        column(col, &mut c).map_err(|e| format!("writing {}: {e}", path.display()))?;
        c.close().map_err(err)?;
        col += 1;
    }
    rg.close().map_err(err)?;
    writer.close().map_err(err)?;
    Ok(())
}

/// Writes `ts` to `path` (replacing it).
pub fn write_parquet(ts: &[Trajectory], path: &Path) -> Result<(), String> {
    let s =
        |f: &dyn Fn(&Trajectory) -> String| ts.iter().map(|t| ByteArray::from(f(t).into_bytes())).collect::<Vec<_>>();
    let i32s = |f: &dyn Fn(&Trajectory) -> i32| ts.iter().map(f).collect::<Vec<_>>();
    let f64s = |f: &dyn Fn(&Trajectory) -> f64| ts.iter().map(f).collect::<Vec<_>>();
    write_row_group(path, SCHEMA, |col, c| {
        match col {
            0 => c.typed::<Int32Type>().write_batch(&i32s(&|t| t.schema_version as i32), None, None),
            1 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.episode_id.clone()), None, None),
            2 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.env.clone()), None, None),
            3 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.policy.clone()), None, None),
            4 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.task.id.clone()), None, None),
            5 => c.typed::<Int64Type>().write_batch(&ts.iter().map(|t| t.seed as i64).collect::<Vec<_>>(), None, None),
            6 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.task.prompt.clone()), None, None),
            7 => c.typed::<ByteArrayType>().write_batch(&s(&|t| t.task.answer.clone()), None, None),
            8 => {
                let vals: Vec<ByteArray> =
                    ts.iter().filter_map(|t| t.final_answer.clone()).map(|a| ByteArray::from(a.into_bytes())).collect();
                let def: Vec<i16> = ts.iter().map(|t| t.final_answer.is_some() as i16).collect();
                c.typed::<ByteArrayType>().write_batch(&vals, Some(&def), None)
            }
            9 => c.typed::<FloatType>().write_batch(&ts.iter().map(|t| t.reward).collect::<Vec<_>>(), None, None),
            10 => c.typed::<ByteArrayType>().write_batch(&s(&|t| end_name(&t.end).to_string()), None, None),
            11 => c.typed::<Int32Type>().write_batch(&i32s(&|t| t.prompt_tokens as i32), None, None),
            12 => {
                let (def, rep) = list_levels(ts.iter().map(|t| t.token_ids.len()));
                let v: Vec<i32> = ts.iter().flat_map(|t| t.token_ids.iter().map(|&x| x as i32)).collect();
                c.typed::<Int32Type>().write_batch(&v, Some(&def), Some(&rep))
            }
            13 => {
                let (def, rep) = list_levels(ts.iter().map(|t| t.loss_mask.len()));
                let v: Vec<i32> = ts.iter().flat_map(|t| t.loss_mask.iter().map(|&x| x as i32)).collect();
                c.typed::<Int32Type>().write_batch(&v, Some(&def), Some(&rep))
            }
            14 => {
                let (def, rep) = list_levels(ts.iter().map(|t| t.logprobs.len()));
                let v: Vec<f32> = ts.iter().flat_map(|t| t.logprobs.iter().copied()).collect();
                c.typed::<FloatType>().write_batch(&v, Some(&def), Some(&rep))
            }
            15 => c.typed::<Int32Type>().write_batch(&i32s(&|t| t.turns.len() as i32), None, None),
            16 => c.typed::<Int32Type>().write_batch(&i32s(&|t| t.tool_calls() as i32), None, None),
            17 => c.typed::<Int32Type>().write_batch(&i32s(&|t| t.malformed_calls() as i32), None, None),
            18 => c.typed::<DoubleType>().write_batch(&f64s(&|t| t.timing.generation_ms), None, None),
            19 => c.typed::<DoubleType>().write_batch(&f64s(&|t| t.timing.tool_ms), None, None),
            20 => c.typed::<DoubleType>().write_batch(&f64s(&|t| t.timing.total_ms), None, None),
            21 => c.typed::<ByteArrayType>().write_batch(
                &s(&|t| serde_json::to_string(t).unwrap_or_default()),
                None,
                None,
            ),
            _ => return Err("schema has more columns than the writer knows".into()),
        }
        .map(|_| ())
        .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_levels_by_hand() {
        // rows [a, b], [], [c]: def 1 1 0 1, rep 0 1 0 0
        assert_eq!(list_levels([2, 0, 1].into_iter()), (vec![1, 1, 0, 1], vec![0, 1, 0, 0]));
    }
}
