//! The report's tables of what the guards measured and how episodes went: task coverage, the
//! expert ceiling, paired comparisons, and per configuration how episodes ended, code cells
//! run and outputs that did not parse.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::claims::{Comparison, Metric};
use crate::report::Results;
use crate::results::ConfigSummary;

/// The guards section: task coverage and the expert ceiling.
pub fn guards(results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Guards\n");
    if let Some(c) = &results.coverage {
        let _ = writeln!(
            md,
            "- Training covers {} templates ({} tasks; the training split has {} templates).",
            c.train_templates, c.train_tasks, c.split_templates
        );
        for s in &c.splits {
            let _ = writeln!(
                md,
                "- `{}`: {} evaluated tasks of {} templates, {} of which training has seen.",
                s.split, s.tasks, s.templates, s.seen_in_training
            );
        }
        md.push('\n');
    }
    if results.expert_ceiling.is_empty() {
        let _ = writeln!(
            md,
            "Expert ceiling: not measured (the environment has no gold plans for the experts \
             to play).\n"
        );
        return md;
    }
    let _ = writeln!(
        md,
        "Expert ceiling: the scripted experts (the trajectories the models learn from) on the \
         evaluated tasks under the evaluation's budgets. Models cannot be measured above it.\n"
    );
    let _ = writeln!(
        md,
        "| system | split | expert TGC | expert SGC | episodes | ends |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---|");
    for c in &results.expert_ceiling {
        let ends: Vec<String> = c.ends.iter().map(|(e, n)| format!("{e} {n}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {} | {} |",
            c.system.name(),
            c.split,
            c.tgc,
            c.sgc,
            c.episodes,
            ends.join(", ")
        );
    }
    md.push('\n');
    md
}

/// Paired comparisons: difference, interval, p-value, tasks each way.
pub fn comparisons(comparisons: &[Comparison]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| a | b | metric | a − b (points) | 95% interval | p | a better / b better / tasks |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|");
    for c in comparisons {
        let Some(p) = &c.paired else { continue };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.1} | {} | {:.3}{} | {} / {} / {} |",
            c.a,
            c.b,
            match c.metric {
                Metric::Tgc => "TGC",
                Metric::SubtaskError => "sub-task error",
            },
            p.mean_difference,
            p.interval.show(true),
            p.p_value,
            if p.exact { "" } else { " (MC)" },
            p.a_better,
            p.b_better,
            p.tasks
        );
    }
    md
}

/// Per configuration: end reasons (a histogram over all seeds' episodes), code cells per
/// episode and parse failures per model turn.
pub fn diagnostics(summaries: &[ConfigSummary]) -> String {
    let ends: BTreeSet<&String> = summaries.iter().flat_map(|s| s.ends.keys()).collect();
    let mut md = String::new();
    let head: Vec<&str> = ends.iter().map(|e| e.as_str()).collect();
    let _ = writeln!(
        md,
        "| configuration | code cells/episode | parse failures/turn (%) | {} |",
        head.join(" | ")
    );
    let _ = writeln!(md, "|---|---:|---:|{}", "---:|".repeat(ends.len()));
    for s in summaries {
        let cells: Vec<String> = ends
            .iter()
            .map(|e| s.ends.get(*e).copied().unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            s.label,
            s.code_cells_per_episode.show(1),
            s.malformed_per_turn.show(1),
            cells.join(" | ")
        );
    }
    md
}
