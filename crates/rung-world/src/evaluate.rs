//! State-based evaluation, as AppWorld does it: compare the start and end states of an episode.
//!
//! A task's expectations come from replaying its gold plan on the same start state: the changes
//! each sub-task makes and the answer. An episode passes when every sub-task's changes are present
//! in its end state, its answer matches after AppWorld's normalisation, and it changed nothing
//! else (no collateral damage). Inserted rows are compared without their ids, so the agent may
//! create records in another order than the gold plan.

use serde_json::{Map, Value};

use rung_env::protocol::{LABEL_NO_OP_FAIL, LABEL_NO_OP_PASS};
use rung_env::{Evaluation, TestFailure, TestPass};

use crate::db::Change;

/// A change reduced to what evaluation compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalChange {
    table: &'static str,
    /// `Some(id)` for updates and deletes; inserts are matched by content.
    id: Option<u32>,
    /// The row after the change (normalised JSON text), `None` for a delete.
    after: Option<String>,
}

impl NormalChange {
    /// Normalises one change.
    pub fn of(change: &Change) -> Self {
        let inserted = change.before.is_none();
        let after = change.after.as_ref().map(|row| {
            let mut row = normalise_row(row);
            if inserted && let Value::Object(map) = &mut row {
                map.remove("id");
            }
            row.to_string()
        });
        Self {
            table: change.table,
            id: (!inserted).then_some(change.id),
            after,
        }
    }

    /// A short description for failure traces.
    pub fn describe(&self) -> String {
        match (&self.id, &self.after) {
            (None, Some(row)) => format!("a new row in {}: {row}", self.table),
            (Some(id), Some(row)) => format!("{} #{id} changed to {row}", self.table),
            (Some(id), None) => format!("{} #{id} deleted", self.table),
            (None, None) => format!("a change in {}", self.table),
        }
    }
}

/// Normalises every change of a diff.
pub fn normalise_changes(changes: &[Change]) -> Vec<NormalChange> {
    changes.iter().map(NormalChange::of).collect()
}

fn normalise_row(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.trim().to_lowercase()),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            serde_json::Number::from_f64((x * 100.0).round() / 100.0)
                .map_or(Value::Null, Value::Number)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise_row).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise_row(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// AppWorld's answer normalisation: strings stripped, lower-cased and unquoted; integral numbers
/// as ints, others rounded to 2 decimals; lists sorted and joined with " | "; None as "null".
pub fn normalise_answer(answer: Option<&Value>) -> String {
    fn scalar(value: &Value) -> String {
        match value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => text(s),
            Value::Array(items) => {
                let mut parts: Vec<String> = items.iter().map(scalar).collect();
                parts.sort();
                parts.join(" | ")
            }
            Value::Object(_) => value.to_string().to_lowercase(),
        }
    }
    fn number(x: f64) -> String {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            let rounded = (x * 100.0).round() / 100.0;
            format!("{rounded}")
        }
    }
    fn text(s: &str) -> String {
        let s = s.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| s.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
            .unwrap_or(s)
            .trim()
            .to_lowercase();
        // A numeric answer given as text compares as a number ("45.20" == 45.2).
        match unquoted.parse::<f64>() {
            Ok(x) if x.is_finite() && !unquoted.is_empty() => number(x),
            _ => unquoted,
        }
    }
    answer.map_or_else(|| "null".into(), scalar)
}

/// What a task expects, derived from its gold replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// Per sub-task: its one-line instruction and the changes it makes.
    pub subtasks: Vec<(String, Vec<NormalChange>)>,
    /// All changes of the gold plan.
    pub total: Vec<NormalChange>,
    /// The expected answer; `None` when the task asks no question.
    pub answer: Option<Value>,
    /// The scenario's difficulty.
    pub difficulty: u8,
}

impl Expectation {
    /// Evaluates an episode's changes and answer.
    pub fn evaluate(&self, changes: &[Change], answer: Option<&Value>) -> Evaluation {
        let actual = normalise_changes(changes);
        let mut passes = Vec::new();
        let mut failures = Vec::new();
        let mut record =
            |requirement: String, outcome: Result<(), String>, label: &str| match outcome {
                Ok(()) => passes.push(TestPass {
                    requirement,
                    label: label.into(),
                }),
                Err(trace) => failures.push(TestFailure {
                    requirement,
                    trace,
                    label: label.into(),
                }),
            };
        for (index, (instruction, expected)) in self.subtasks.iter().enumerate() {
            if expected.is_empty() {
                continue;
            }
            let missing = multiset_missing(expected, &actual);
            let outcome = match missing.first() {
                None => Ok(()),
                Some(first) => Err(format!(
                    "{} of {} expected changes missing, e.g. {}",
                    missing.len(),
                    expected.len(),
                    first.describe()
                )),
            };
            record(
                format!("sub-task {}: {instruction}", index + 1),
                outcome,
                LABEL_NO_OP_FAIL,
            );
        }
        if let Some(expected) = &self.answer {
            let want = normalise_answer(Some(expected));
            let got = normalise_answer(answer);
            let outcome = if want == got {
                Ok(())
            } else {
                Err(format!("expected answer \"{want}\", got \"{got}\""))
            };
            record(
                format!("the answer is \"{want}\""),
                outcome,
                LABEL_NO_OP_FAIL,
            );
        }
        let extra = multiset_missing(&actual, &self.total);
        let outcome = match extra.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{} unexpected changes, e.g. {}",
                extra.len(),
                first.describe()
            )),
        };
        record(
            "no changes other than the task's (no collateral damage)".into(),
            outcome,
            LABEL_NO_OP_PASS,
        );
        Evaluation {
            success: failures.is_empty(),
            difficulty: self.difficulty,
            num_tests: passes.len() + failures.len(),
            passes,
            failures,
        }
    }
}

/// Items of `wanted` not matched one-to-one in `available`.
fn multiset_missing<'a>(
    wanted: &'a [NormalChange],
    available: &[NormalChange],
) -> Vec<&'a NormalChange> {
    let mut pool: Vec<&NormalChange> = available.iter().collect();
    pool.sort();
    let mut used = vec![false; pool.len()];
    let mut missing = Vec::new();
    for want in wanted {
        let start = pool.partition_point(|c| *c < want);
        let slot = (start..pool.len())
            .take_while(|&i| pool[i] == want)
            .find(|&i| !used[i]);
        match slot {
            Some(i) => used[i] = true,
            None => missing.push(want),
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_normalise_like_appworld() {
        assert_eq!(
            normalise_answer(Some(&json!("  'Hello World' "))),
            "hello world"
        );
        assert_eq!(normalise_answer(Some(&json!(3.0))), "3");
        assert_eq!(normalise_answer(Some(&json!(45.204))), "45.2");
        assert_eq!(normalise_answer(Some(&json!("45.20"))), "45.2");
        assert_eq!(normalise_answer(Some(&json!(["b", "A"]))), "a | b");
        assert_eq!(normalise_answer(None), "null");
        assert_eq!(normalise_answer(Some(&Value::Null)), "null");
    }

    fn change(table: &'static str, id: u32, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            table,
            id,
            before,
            after,
        }
    }

    #[test]
    fn inserts_match_by_content_and_collateral_is_caught() {
        let gold = [change(
            "notes",
            7,
            None,
            Some(json!({"id": 7, "title": "Groceries", "amount": 1.004})),
        )];
        let expectation = Expectation {
            subtasks: vec![("make a note".into(), normalise_changes(&gold))],
            total: normalise_changes(&gold),
            answer: Some(json!(12)),
            difficulty: 1,
        };
        let agent = [change(
            "notes",
            9,
            None,
            Some(json!({"id": 9, "title": " groceries", "amount": 1.0})),
        )];
        let ok = expectation.evaluate(&agent, Some(&json!("12")));
        assert!(ok.success, "{ok:?}");
        assert_eq!(ok.num_tests, 3);
        let noop = expectation.evaluate(&[], None);
        assert!(!noop.success);
        assert_eq!(noop.failures.len(), 2);
        assert!(noop.failures.iter().all(|f| f.label == LABEL_NO_OP_FAIL));
        assert_eq!(noop.passes[0].label, LABEL_NO_OP_PASS);
        let mut extra = agent.to_vec();
        extra.push(change("notes", 3, Some(json!({"id": 3})), None));
        let damaged = expectation.evaluate(&extra, Some(&json!(12)));
        assert_eq!(damaged.failures.len(), 1);
        assert!(
            damaged.failures[0].trace.contains("notes #3 deleted"),
            "{:?}",
            damaged.failures
        );
        let twice = [agent[0].clone(), agent[0].clone()];
        assert!(
            !expectation.evaluate(&twice, Some(&json!(12))).success,
            "a duplicate insert is collateral"
        );
    }
}
