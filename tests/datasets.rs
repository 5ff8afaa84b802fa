//! The committed task files are exactly what the suite generates.
//!
//! Other tools (and people) read `datasets/world/*.jsonl` instead of generating worlds, so a
//! change to a template, a skill or the world must come with regenerated files; this test fails
//! until it does, and says how to regenerate them.

use std::path::Path;

use rung::env::Split;
use rung::world::export::split_jsonl;
use rung::world::{Suite, SuiteOptions};

#[test]
fn committed_task_files_equal_the_generated_suite() {
    let suite = Suite::generate(SuiteOptions::default());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join("world");
    let regenerate = "regenerate them with `cargo xtask world export` \
                      (or `cargo run -p rung-cli -- world export`) and commit the result";
    let mut stale = Vec::new();
    for split in Split::ALL {
        let path = dir.join(format!("{split}.jsonl"));
        let expected = split_jsonl(&suite, split);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == expected => {}
            Ok(committed) => {
                let line = committed
                    .lines()
                    .zip(expected.lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(
                        || {
                            format!(
                                "line counts differ: {} committed, {} generated",
                                committed.lines().count(),
                                expected.lines().count()
                            )
                        },
                        |i| format!("first difference on line {}", i + 1),
                    );
                stale.push(format!("{} is stale ({line})", path.display()));
            }
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(stale.is_empty(), "{}; {regenerate}", stale.join("; "));
}
