//! Compiles the `rung train` subcommand (crates/rung-cli/src/train_cmd.rs) against this crate
//! and checks its argument rules, until the CLI wires it.

#[path = "../../rung-cli/src/train_cmd.rs"]
#[allow(dead_code)]
mod train_cmd;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: train_cmd::TrainArgs,
}

#[test]
fn train_args_parse() {
    assert!(Cli::try_parse_from(["rung", "--config", "c.toml"]).is_ok());
    assert!(Cli::try_parse_from(["rung", "--resume", "runs/x"]).is_ok());
    assert!(Cli::try_parse_from(["rung", "--config", "c.toml", "--resume", "runs/x"]).is_err());
    let cli = Cli::try_parse_from(["rung", "--resume", "/nonexistent/run"]).unwrap();
    let err = train_cmd::run(&cli.args).unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a training run"),
        "{err:#}"
    );
}
