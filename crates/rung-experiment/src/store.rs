//! Content-addressed stage directories.
//!
//! A stage's directory is named by a hash of everything that determines its output (its
//! parameters and the keys of the stages it reads), so a re-run finds finished work by name and
//! skips it, a changed parameter lands in a new directory instead of silently reusing stale
//! results, and an interrupted stage is found unfinished (no `done.json`) and resumed or redone.
//! `done.json` is written atomically and last.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ExperimentError;

/// Bumped when a stage's code changes what it writes, so old outputs are not reused.
const FORMAT: u32 = 1;

/// The kinds of stages, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Expert trajectories (segmented into sub-tasks by the trainer's curriculum).
    Data,
    /// The scripted experts on an evaluated split under the evaluation's budgets: the ceiling
    /// the models are measured against.
    Ceiling,
    /// The shared tokenizer.
    Tokenizer,
    /// The world-pretraining corpus.
    Corpus,
    /// A preset's world-pretrained base model.
    Pretrain,
    /// One role's model.
    Train,
    /// One run on one split (or one shard of it).
    Eval,
    /// One point of the learning curve: a run with one epoch's checkpoints.
    Curve,
    /// The report over every run.
    Report,
}

impl StageKind {
    /// Every kind, in pipeline order.
    pub const ALL: [StageKind; 9] = [
        StageKind::Data,
        StageKind::Ceiling,
        StageKind::Tokenizer,
        StageKind::Corpus,
        StageKind::Pretrain,
        StageKind::Train,
        StageKind::Eval,
        StageKind::Curve,
        StageKind::Report,
    ];

    /// Its name on the command line and on disk.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Data => "data",
            StageKind::Ceiling => "ceiling",
            StageKind::Tokenizer => "tokenizer",
            StageKind::Corpus => "corpus",
            StageKind::Pretrain => "pretrain",
            StageKind::Train => "train",
            StageKind::Eval => "eval",
            StageKind::Curve => "curve",
            StageKind::Report => "report",
        }
    }
}

impl std::str::FromStr for StageKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StageKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown stage `{s}`: expected data, ceiling, tokenizer, train, eval or report"
                )
            })
    }
}

/// One stage's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Kind.
    pub kind: StageKind,
    /// Directory.
    pub dir: PathBuf,
    /// Content hash (hex, 16 digits) of the stage's inputs.
    pub key: String,
}

impl Stage {
    /// The recorded result of a finished stage.
    pub fn done_file(&self) -> PathBuf {
        self.dir.join("done.json")
    }
}

/// The experiment's output directory: stages, the event log, forced stages.
pub struct Store {
    root: PathBuf,
    forced: BTreeSet<StageKind>,
    cleared: Mutex<BTreeSet<PathBuf>>,
    events: Mutex<Option<File>>,
    finished: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens (creating) `root`. Forcing a stage forces every later stage too: their inputs
    /// are recomputed, so their old outputs cannot be trusted to match.
    pub fn open(root: &Path, force: &[StageKind]) -> Result<Self, ExperimentError> {
        std::fs::create_dir_all(root.join("stages")).map_err(|e| io(root, e))?;
        let first = force.iter().min();
        let forced = StageKind::ALL
            .into_iter()
            .filter(|k| first.is_some_and(|f| k >= f))
            .collect();
        let events_path = root.join("events.jsonl");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events_path)
            .map_err(|e| io(&events_path, e))?;
        Ok(Store {
            root: root.to_path_buf(),
            forced,
            cleared: Mutex::new(BTreeSet::new()),
            events: Mutex::new(Some(events)),
            finished: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A store for looking only: it names stage directories and reads `done.json`, but creates
    /// nothing and logs nowhere (planning a dry run, showing a submitted experiment's status).
    pub fn reader(root: &Path) -> Self {
        Store {
            root: root.to_path_buf(),
            forced: BTreeSet::new(),
            cleared: Mutex::new(BTreeSet::new()),
            events: Mutex::new(None),
            finished: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a stage named `name` with these inputs.
    pub fn stage(&self, kind: StageKind, name: &str, inputs: &Value) -> Stage {
        let key = content_key(kind, inputs);
        let dir = self
            .root
            .join("stages")
            .join(kind.name())
            .join(format!("{name}-{key}"));
        Stage { kind, dir, key }
    }

    /// The stage's recorded result if it finished (and is not forced in this run). A forced
    /// stage's directory is emptied the first time it is asked for.
    pub fn done(&self, stage: &Stage) -> Result<Option<Value>, ExperimentError> {
        if self.forced.contains(&stage.kind) {
            let mut cleared = self.cleared.lock().unwrap_or_else(|e| e.into_inner());
            if cleared.insert(stage.dir.clone()) && stage.dir.exists() {
                std::fs::remove_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
            }
        }
        let path = stage.done_file();
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            ExperimentError::Corrupt(format!(
                "{} is not valid JSON ({e}); delete the stage directory to redo it",
                path.display()
            ))
        })?;
        Ok(Some(value))
    }

    /// Records a stage as finished with its result (atomically).
    pub fn finish(&self, stage: &Stage, result: &Value) -> Result<(), ExperimentError> {
        std::fs::create_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
        write_atomic(
            &stage.done_file(),
            &serde_json::to_string_pretty(result).expect("JSON values serialise"),
        )?;
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Stages finished (not skipped) by this run so far: a stage call that leaves it unchanged
    /// found its work done.
    pub fn finished(&self) -> usize {
        self.finished.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Appends an event (a JSON object) to `events.jsonl`, with a timestamp.
    pub fn log(&self, mut event: Value) {
        if let Some(object) = event.as_object_mut() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            object.insert("time".into(), Value::from(now));
        }
        // One `write` of the whole line: formatting straight into the file writes it piece by
        // piece, so a run killed mid-event left half a line that broke every reader of the log.
        let line = format!("{event}\n");
        let mut file = self.events.lock().unwrap_or_else(|e| e.into_inner());
        // The event log is a diagnostic; a full disk shows up in the stage writes.
        if let Some(file) = file.as_mut() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The content key of a stage: SHA-256 over the kind, the format version and the canonical
/// JSON of the inputs, as 16 hex digits.
pub fn content_key(kind: StageKind, inputs: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{}\n{FORMAT}\n", kind.name()));
    hasher.update(canonical(inputs).as_bytes());
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted, so the key does not depend on field order.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Writes through a temporary sibling and a rename, so a killed run never leaves half a file.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ExperimentError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| io(path, e))
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> ExperimentError {
    ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_ignore_field_order_and_see_every_value() {
        let a = content_key(
            StageKind::Train,
            &json!({"a": 1, "b": [1, {"c": 2, "d": 3}]}),
        );
        let b = content_key(
            StageKind::Train,
            &json!({"b": [1, {"d": 3, "c": 2}], "a": 1}),
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        let c = content_key(
            StageKind::Train,
            &json!({"a": 1, "b": [1, {"c": 2, "d": 4}]}),
        );
        assert_ne!(a, c);
        assert_ne!(
            a,
            content_key(
                StageKind::Eval,
                &json!({"a": 1, "b": [1, {"c": 2, "d": 3}]})
            )
        );
    }

    #[test]
    fn finished_stages_are_found_and_forcing_redoes_them_and_later_ones() {
        let root = std::env::temp_dir().join(format!("rung-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root, &[]).unwrap();
        let data = store.stage(StageKind::Data, "d", &json!({"x": 1}));
        let eval = store.stage(StageKind::Eval, "e", &json!({"y": 1}));
        assert_eq!(store.done(&data).unwrap(), None);
        store.finish(&data, &json!({"episodes": 3})).unwrap();
        store.finish(&eval, &json!({"tgc": 50})).unwrap();
        assert_eq!(store.done(&data).unwrap(), Some(json!({"episodes": 3})));

        let forced = Store::open(&root, &[StageKind::Train]).unwrap();
        assert!(
            forced.done(&data).unwrap().is_some(),
            "earlier stages are kept"
        );
        assert_eq!(forced.done(&eval).unwrap(), None, "later stages are redone");
        assert!(!eval.dir.exists());
        forced.finish(&eval, &json!({"tgc": 60})).unwrap();
        assert!(
            forced.done(&eval).unwrap().is_some(),
            "cleared once per run"
        );

        std::fs::write(data.done_file(), "{broken").unwrap();
        let err = store.done(&data).unwrap_err().to_string();
        assert!(err.contains("delete the stage directory"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
