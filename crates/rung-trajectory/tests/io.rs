//! JSONL round trips and the errors of bad files.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;

use rung_env::{Evaluation, Split, TestPass};
use rung_trajectory::{
    Action, Budget, Cost, Episode, EpisodeEnd, Message, Role, SCHEMA_VERSION, SystemConfig,
    SystemKind, TrajectoryError, TrajectoryReader, TrajectoryWriter, Turn, read_file, write_file,
};

fn episode(task: &str, end: EpisodeEnd) -> Episode {
    let system = SystemConfig {
        kind: SystemKind::TwoAgent,
        models: BTreeMap::from([
            (Role::Orchestrator, "expert".to_owned()),
            (Role::Executor, "qwen-0.5b+lora".to_owned()),
        ]),
    };
    let turns = vec![
        Turn {
            role: Role::Orchestrator,
            subtask: Some(0),
            messages: vec![
                Message::system("You are the orchestrator."),
                Message::user("Task: text \"hi\"\nwith a newline"),
                Message::assistant("SUBTASK phone: Text Ava \"hi\".", true),
            ],
            action: Action::Subtask {
                app: "phone".into(),
                instruction: "Text Ava \"hi\".".into(),
            },
            code: None,
            observation: None,
            prompt_tokens: 12,
            generated_tokens: 7,
            flops: 1.5e9,
        },
        Turn {
            role: Role::Executor,
            subtask: Some(0),
            messages: vec![
                Message::system("You are the executor."),
                Message::user("Sub-task: Text Ava \"hi\"."),
                Message::assistant("```python\nprint(1)\n```", false),
            ],
            action: Action::Code {
                code: "print(1)".into(),
            },
            code: Some("print(1)".into()),
            observation: Some("1".into()),
            prompt_tokens: 9,
            generated_tokens: 5,
            flops: 0.0,
        },
    ];
    Episode {
        schema_version: SCHEMA_VERSION,
        task_id: task.parse().unwrap(),
        split: Some(Split::Train),
        system,
        seed: 7,
        instruction: "Text Ava \"hi\".".into(),
        turns,
        evaluation: Evaluation {
            success: true,
            difficulty: 1,
            num_tests: 1,
            passes: vec![TestPass {
                requirement: "no collateral damage".into(),
                label: "no_op_pass".into(),
            }],
            failures: vec![],
        },
        cost: Cost {
            prompt_tokens: 21,
            generated_tokens: 12,
            flops: 1.5e9,
            wall_seconds: 0.25,
            interactions: 1,
        },
        end,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rung-trajectory-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn all_ends() -> Vec<EpisodeEnd> {
    vec![
        EpisodeEnd::Completed,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::ExecutorSteps,
        },
        EpisodeEnd::RepeatedAction {
            role: Role::Executor,
        },
        EpisodeEnd::PolicyError {
            role: Role::Critic,
            message: "out of memory".into(),
        },
    ]
}

#[test]
fn episodes_round_trip_through_a_file() {
    let dir = temp_dir("round-trip");
    let path = dir.join("nested/expert.jsonl");
    let episodes: Vec<Episode> = all_ends()
        .into_iter()
        .enumerate()
        .map(|(i, end)| episode(&format!("abcdef{i}_1"), end))
        .collect();
    write_file(&path, &episodes).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4, "one line per episode");
    assert!(text.ends_with('\n'));
    assert_eq!(read_file(&path).unwrap(), episodes);
    // No temporary file is left next to the result.
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["expert.jsonl"]);
    // The on-disk vocabulary is the documented one.
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["system"]["kind"], "two_agent");
    assert_eq!(first["system"]["models"]["executor"], "qwen-0.5b+lora");
    assert_eq!(first["turns"][0]["messages"][2]["role"], "assistant");
    assert_eq!(first["turns"][0]["messages"][2]["train"], true);
    assert_eq!(first["turns"][0]["action"]["kind"], "subtask");
    assert_eq!(first["turns"][1]["subtask"], 0);
    assert_eq!(first["end"]["reason"], "completed");
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        second["end"],
        serde_json::json!({"reason": "budget_exceeded", "budget": "executor_steps"})
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn appending_continues_a_file_and_blank_lines_are_skipped() {
    let dir = temp_dir("append");
    let path = dir.join("run.jsonl");
    for task in ["aaaaaaa_1", "bbbbbbb_2"] {
        let mut writer = TrajectoryWriter::append(&path).unwrap();
        writer.write(&episode(task, EpisodeEnd::Completed)).unwrap();
        writer.flush().unwrap();
        assert_eq!(writer.lines(), 1);
    }
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n   \n");
    std::fs::write(&path, text).unwrap();
    let read: Vec<String> = read_file(&path)
        .unwrap()
        .into_iter()
        .map(|e| e.task_id.to_string())
        .collect();
    assert_eq!(read, ["aaaaaaa_1", "bbbbbbb_2"]);
    std::fs::remove_dir_all(dir).unwrap();
}

fn lines_of(episodes: &[Episode]) -> Vec<String> {
    let mut writer = TrajectoryWriter::new(Vec::new(), "memory");
    for e in episodes {
        writer.write(e).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_malformed_line_names_file_line_and_serde_message() {
    let good = lines_of(&[episode("aaaaaaa_1", EpisodeEnd::Completed)]);
    let broken_turn = good[0].replace("\"role\":\"executor\"", "\"role\":\"intern\"");
    let input = format!("{}\n\n{{not json\n{broken_turn}\n", good[0]);
    let results: Vec<_> = TrajectoryReader::new(Cursor::new(input), "data/x.jsonl").collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    match &results[1] {
        Err(TrajectoryError::Malformed {
            path,
            line,
            message,
        }) => {
            assert_eq!(path, "data/x.jsonl");
            assert_eq!(*line, 3, "blank lines still count");
            assert!(message.contains("key must be a string"), "{message}");
        }
        other => panic!("expected a malformed-record error, got {other:?}"),
    }
    let err = results[2].as_ref().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("data/x.jsonl:4: malformed trajectory record: unknown variant `intern`"),
        "{text}"
    );
    assert!(text.contains("column"), "serde's position is kept: {text}");
}

#[test]
fn missing_or_unknown_schema_versions_are_clear_errors() {
    let good = lines_of(&[episode("aaaaaaa_1", EpisodeEnd::Completed)]);
    let future = good[0].replace("\"schema_version\":1", "\"schema_version\":2");
    let err = TrajectoryReader::new(Cursor::new(future), "f.jsonl")
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        err,
        TrajectoryError::UnsupportedVersion {
            line: 1,
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("schema_version 2 is not supported"),
        "{err}"
    );
    let missing = good[0].replace("\"schema_version\":1,", "");
    let err = TrajectoryReader::new(Cursor::new(missing), "f.jsonl")
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.jsonl:1: malformed trajectory record: missing field `schema_version`"
    );
    let mut wrong = episode("aaaaaaa_1", EpisodeEnd::Completed);
    wrong.schema_version = 9;
    let mut writer = TrajectoryWriter::new(Vec::new(), "out");
    assert!(matches!(
        writer.write(&wrong),
        Err(TrajectoryError::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = read_file(std::path::Path::new("/nonexistent/rung/t.jsonl")).unwrap_err();
    assert!(matches!(err, TrajectoryError::Io { .. }));
    assert!(
        err.to_string().starts_with("/nonexistent/rung/t.jsonl: "),
        "{err}"
    );
}

#[test]
fn system_kinds_parse_with_dashes_or_underscores() {
    assert_eq!(
        "two-agent".parse::<SystemKind>().unwrap(),
        SystemKind::TwoAgent
    );
    assert_eq!(
        "three_agent".parse::<SystemKind>().unwrap(),
        SystemKind::ThreeAgent
    );
    assert!("four".parse::<SystemKind>().unwrap_err().contains("single"));
    assert_eq!(SystemKind::ThreeAgent.roles().len(), 3);
}
