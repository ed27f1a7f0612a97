//! `trailhose check-config FILE`: every problem with its location, the memory bound term by
//! term, warnings (local dead letters in a fleet), filter patterns and detection rules
//! compiled — what `run` would trip over, without running.

use crate::{default_jobs, rules, run};
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use trailhose_config::Config;

#[derive(clap::Args)]
pub struct CheckArgs {
    pub file: PathBuf,
}

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let file = &args.file;
    match Config::load(file) {
        Ok(mut cfg) => {
            let sinks: Vec<&str> = cfg.sinks.iter().map(|s| s.name()).collect();
            println!(
                "{}: ok ({} sinks: {})",
                file.display(),
                sinks.len(),
                sinks.join(", "),
            );
            // The worker applies these at start, so the bound is the one `run` would have.
            if let trailhose_config::SourceConfig::Sqs(s) = &mut cfg.source {
                match s.apply_env(|k| std::env::var(k).ok()) {
                    Ok(applied) if !applied.is_empty() => {
                        println!("  with environment overrides: {}", applied.join(", "))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = writeln!(std::io::stderr(), "{}: {e}", file.display());
                        return Ok(ExitCode::from(1));
                    }
                }
                let problems = cfg.problems();
                if !problems.is_empty() {
                    let _ = writeln!(
                        std::io::stderr(),
                        "{}: with the environment overrides: {}",
                        file.display(),
                        problems.join("; ")
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            print!("{}", cfg.memory_bound(default_jobs()).render());
            for w in cfg.warnings() {
                let _ = writeln!(std::io::stderr(), "{}: warning: {w}", file.display());
            }
            // Filter patterns compile now, not when `run` starts.
            for s in &cfg.sinks {
                if let Err(e) = run::compile_filter(s.name(), s.filter()) {
                    let _ = writeln!(std::io::stderr(), "{}: {e:#}", file.display());
                    return Ok(ExitCode::from(1));
                }
            }
            if let Some(d) = &cfg.detection {
                match rules::check(d) {
                    Ok(s) => println!("  {s}"),
                    Err(e) => {
                        let _ = writeln!(std::io::stderr(), "{}: {e:#}", file.display());
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            Ok(ExitCode::from(1))
        }
    }
}
