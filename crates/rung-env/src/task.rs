//! Task identifiers and dataset splits, named exactly as AppWorld names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A task id such as `50e1ac9_1`: a 7-hex scenario id, an underscore and the variant number.
///
/// Scenario-level metrics (SGC) group tasks by the scenario id, so it must be recoverable from the
/// id alone; parsing validates the shape once so that later code can rely on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

/// Why a string is not a task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{id}` is not a task id: expected `<scenario>_<n>`, a 7-character hexadecimal scenario id, \
     an underscore and a variant number ≥ 1 (for example `50e1ac9_1`)"
)]
pub struct TaskIdError {
    /// The rejected text.
    pub id: String,
}

impl TaskId {
    /// Builds the id of variant `variant` of `scenario`.
    pub fn new(scenario: &str, variant: u32) -> Result<Self, TaskIdError> {
        format!("{scenario}_{variant}").parse()
    }

    /// The scenario this task is a variant of.
    pub fn scenario_id(&self) -> &str {
        self.0.split_once('_').map(|(s, _)| s).unwrap_or(&self.0)
    }

    /// The variant number within the scenario (1-based).
    pub fn variant(&self) -> u32 {
        self.0
            .split_once('_')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TaskId {
    type Err = TaskIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TaskIdError { id: s.to_owned() };
        let (scenario, variant) = s.split_once('_').ok_or_else(err)?;
        let hex = scenario.len() == 7 && scenario.bytes().all(|b| b.is_ascii_hexdigit());
        let number = !variant.is_empty()
            && variant.bytes().all(|b| b.is_ascii_digit())
            && variant.parse::<u32>().is_ok_and(|n| n >= 1);
        if hex && number {
            Ok(Self(s.to_owned()))
        } else {
            Err(err())
        }
    }
}

impl TryFrom<String> for TaskId {
    type Error = TaskIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// AppWorld's dataset splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training tasks (with gold solutions).
    Train,
    /// Validation tasks (with gold solutions).
    Dev,
    /// Test tasks from scenario kinds seen in training.
    TestNormal,
    /// Test tasks that combine sub-task kinds never seen together in training.
    TestChallenge,
}

impl Split {
    /// All splits in their canonical order.
    pub const ALL: [Split; 4] = [
        Split::Train,
        Split::Dev,
        Split::TestNormal,
        Split::TestChallenge,
    ];

    /// The split's name as AppWorld writes it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::TestNormal => "test_normal",
            Split::TestChallenge => "test_challenge",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|split| split.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown split `{s}`: expected one of train, dev, test_normal, test_challenge"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_parts() {
        let id: TaskId = "50e1ac9_3".parse().unwrap();
        assert_eq!(id.scenario_id(), "50e1ac9");
        assert_eq!(id.variant(), 3);
        assert_eq!(TaskId::new("50e1ac9", 3).unwrap(), id);
    }

    #[test]
    fn task_id_rejects_malformed() {
        for bad in [
            "",
            "50e1ac9",
            "50e1ac9_",
            "50e1ac9_0",
            "50e1ac_1",
            "50e1acz_1",
            "50e1ac9_x",
            "x_1",
        ] {
            let err = bad.parse::<TaskId>().unwrap_err();
            assert_eq!(err.id, bad);
        }
    }

    #[test]
    fn task_id_serde_validates() {
        assert!(serde_json::from_str::<TaskId>("\"nope\"").is_err());
        let id: TaskId = serde_json::from_str("\"abcdef0_2\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abcdef0_2\"");
    }

    #[test]
    fn split_names_round_trip() {
        for split in Split::ALL {
            assert_eq!(split.name().parse::<Split>().unwrap(), split);
            assert_eq!(
                serde_json::to_string(&split).unwrap(),
                format!("\"{}\"", split.name())
            );
        }
        assert!("test".parse::<Split>().unwrap_err().contains("test_normal"));
    }
}

/// Why a task-id file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskListError {
    /// The file could not be read.
    #[error("cannot read the task list {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a task id.
    #[error("{}:{line}: {source}", path.display())]
    BadId {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// The rejected id.
        source: TaskIdError,
    },
    /// The file names no task.
    #[error("{} lists no task ids", path.display())]
    Empty {
        /// The file.
        path: std::path::PathBuf,
    },
}

/// Reads a task-id file: one id per line, blank lines and `#` comments skipped — the shape of
/// AppWorld's split files (`data/datasets/<split>.txt`).
pub fn read_task_ids(path: &std::path::Path) -> Result<Vec<TaskId>, TaskListError> {
    let text = std::fs::read_to_string(path).map_err(|source| TaskListError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = line.parse().map_err(|source| TaskListError::BadId {
            path: path.to_path_buf(),
            line: n + 1,
            source,
        })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(TaskListError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod task_list_tests {
    use super::*;

    #[test]
    fn task_lists_skip_comments_and_name_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rung-task-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "# dev\n50e1ac9_1\n\n 50e1ac9_2 \n").unwrap();
        let ids = read_task_ids(&good).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].as_str(), "50e1ac9_2");
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "50e1ac9_1\nnope\n").unwrap();
        let err = read_task_ids(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.txt:2") && err.contains("nope"), "{err}");
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "# nothing\n").unwrap();
        assert!(matches!(
            read_task_ids(&empty),
            Err(TaskListError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
