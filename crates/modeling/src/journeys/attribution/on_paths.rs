//! Attribution on paths the caller supplies, as text in the common
//! `path;conversions;value;nulls` layout or as structured rows: checked, aggregated (the same
//! path twice adds up) and run through the models.

use touchline_analytics::attribution::{
    AttributionError, PathTable, PathTableBuilder, PathsTextError, parse_paths_text_parallel,
};

use super::models::{self, ModelFigures, ModelsError, Summary};
use super::query::{ModelRequest, check_costs, check_models};
use crate::journeys::query::Violations;

/// Most lines of a paths text, and most structured paths.
pub const MAX_PATHS: usize = 1_000_000;
/// The largest paths text.
pub const MAX_PATHS_TEXT_BYTES: usize = 32 << 20;
/// The longest channel separator.
const MAX_SEPARATOR_CHARS: usize = 16;

/// One structured path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SuppliedPath {
    /// Channel names in order.
    pub channels: Vec<String>,
    /// Converting journeys.
    pub conversions: f64,
    /// Their value.
    pub value: f64,
    /// Non-converting journeys.
    pub nulls: f64,
}

/// The paths as supplied.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PathsInput {
    /// None was given.
    #[default]
    Missing,
    /// The text layout.
    Text(String),
    /// Structured rows.
    Rows(Vec<SuppliedPath>),
}

/// Attribution on supplied paths as a caller asked for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnPathsQuery {
    /// The paths.
    pub paths: PathsInput,
    /// The channel separator of the text (empty: `>`).
    pub separator: String,
    /// The models.
    pub models: Vec<ModelRequest>,
    /// Costs by channel name.
    pub costs: Vec<(String, f64)>,
}

/// Attribution results with their totals.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionFigures {
    /// Totals.
    pub summary: Summary,
    /// One per model, in request order.
    pub results: Vec<ModelFigures>,
}

/// Why attribution on supplied paths could not answer.
#[derive(Debug)]
pub enum OnPathsError {
    /// Fields that break a rule.
    Invalid(Violations),
    /// See [`ModelsError`].
    Models(ModelsError),
}

fn text_violations(err: &PathsTextError, problems: &mut Violations) {
    for violation in &err.violations {
        problems.add(
            format!(
                "paths_text.line[{}].{}",
                violation.line,
                violation.field.as_str()
            ),
            "INVALID_PATH_LINE",
            format!("line {}: {}", violation.line, violation.reason),
        );
    }
    if err.total > err.violations.len() {
        problems.add(
            "paths_text",
            "MORE_INVALID_LINES",
            format!(
                "{} more problem(s) past the first {}",
                err.total - err.violations.len(),
                err.violations.len()
            ),
        );
    }
}

fn structured(rows: &[SuppliedPath], problems: &mut Violations) -> PathTable {
    let mut builder = PathTableBuilder::new();
    for (index, row) in rows.iter().enumerate() {
        if let Err(err) =
            builder.add_named_path(index, &row.channels, row.conversions, row.value, row.nulls)
        {
            let (field, reason) = match err {
                AttributionError::InvalidPath { field, reason, .. } => (field, reason),
                _ => ("channels", "is malformed"),
            };
            if problems.0.len() < touchline_analytics::attribution::MAX_REPORTED_VIOLATIONS {
                problems.add(
                    format!("paths.paths[{index}].{field}"),
                    "INVALID_PATH",
                    reason,
                );
            }
        }
    }
    builder.finish()
}

fn table_of(query: &OnPathsQuery, threads: usize, problems: &mut Violations) -> PathTable {
    let separator = if query.separator.is_empty() {
        ">"
    } else {
        query.separator.as_str()
    };
    if separator.trim().is_empty() || separator.chars().count() > MAX_SEPARATOR_CHARS {
        problems.add(
            "separator",
            "INVALID_SEPARATOR",
            format!("1 to {MAX_SEPARATOR_CHARS} characters, not only spaces"),
        );
        return PathTable::default();
    }
    match &query.paths {
        PathsInput::Missing => {
            problems.add("paths_input", "REQUIRED", "paths or paths_text");
            PathTable::default()
        }
        PathsInput::Text(text) => {
            let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
            if text.len() > MAX_PATHS_TEXT_BYTES || lines > MAX_PATHS {
                problems.add(
                    "paths_text",
                    "TOO_LARGE",
                    format!(
                        "at most {MAX_PATHS} lines and {} MiB",
                        MAX_PATHS_TEXT_BYTES >> 20
                    ),
                );
                return PathTable::default();
            }
            parse_paths_text_parallel(text, separator, threads).unwrap_or_else(|err| {
                text_violations(&err, problems);
                PathTable::default()
            })
        }
        PathsInput::Rows(rows) => {
            if rows.len() > MAX_PATHS {
                problems.add(
                    "paths.paths",
                    "TOO_MANY_PATHS",
                    format!("at most {MAX_PATHS} paths"),
                );
                return PathTable::default();
            }
            structured(rows, problems)
        }
    }
}

/// Checks the query, aggregates its paths and runs its models on up to `threads` threads.
pub fn run(query: &OnPathsQuery, threads: usize) -> Result<AttributionFigures, OnPathsError> {
    let mut problems = Violations::default();
    let models = check_models(&query.models, false, &mut problems);
    check_costs(&query.costs, "costs.channel_costs", &mut problems);
    let table = table_of(query, threads, &mut problems);
    if !problems.is_empty() {
        return Err(OnPathsError::Invalid(problems));
    }
    let costs = models::costs_by_code(&table, &query.costs);
    let (summary, results) =
        models::run(&table, &models, &[], &costs, threads).map_err(OnPathsError::Models)?;
    Ok(AttributionFigures { summary, results })
}
