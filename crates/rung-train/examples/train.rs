//! `cargo run -p rung-train --example train -- CONFIG.toml` or `-- --resume DIR`: the library
//! entry points without the CLI.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let summary = match args.as_slice() {
        [flag, dir] if flag == "--resume" => rung_train::resume(std::path::Path::new(dir))?,
        [config] => rung_train::train(rung_train::TrainConfig::from_file(std::path::Path::new(
            config,
        ))?)?,
        _ => anyhow::bail!("usage: train CONFIG | --resume DIR"),
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
