//! `stcp-loadgen`: run a load test (see `--help`), merge reports (`merge`), run the seed's table in
//! TCP and STCP mode (`suite`), sweep the offered rate (`sweep`), render reports (`report`) or
//! measure loopback TCP (`stream`).

use std::process::ExitCode;

use clap::Parser;
use stcp_loadgen::cli::{Cli, Command};
use stcp_loadgen::{merge, render, run, stream, suite, sweep};

fn main() -> ExitCode {
    stcp_server::messages::init_logging("warn");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            stcp_loadgen::stderr_line!(
                "{}",
                stcp_server::messages::usage_error("stcp-loadgen", &e)
            );
            return ExitCode::from(run::exit::USAGE as u8);
        }
    };
    let status = match cli.command {
        Some(Command::Merge(args)) => merge_command(&args),
        Some(Command::Suite(args)) => suite::run(&args),
        Some(Command::Sweep(args)) => sweep::command(&args),
        Some(Command::Report(args)) => render::command(&args),
        Some(Command::Stream(args)) => stream::command(&args),
        None => match run::run(&cli.run) {
            Ok(status) => status,
            Err(e) => {
                stcp_loadgen::stderr_line!("stcp-loadgen: {e}");
                e.exit_status()
            }
        },
    };
    ExitCode::from(status as u8)
}

fn merge_command(args: &merge::MergeArgs) -> i32 {
    let sweeps = args
        .reports
        .iter()
        .filter(|p| sweep::merge::is_sweep(p))
        .count();
    if sweeps > 0 {
        if sweeps < args.reports.len() {
            stcp_loadgen::stderr_line!(
                "stcp-loadgen merge: give either sweeps or run reports, not both"
            );
            return run::exit::USAGE;
        }
        return merge_sweeps(args);
    }
    let reports = match merge::collect(&args.reports) {
        Ok((reports, notes)) => {
            for note in notes {
                stcp_loadgen::stderr_line!("stcp-loadgen merge: {note}");
            }
            reports
        }
        Err(e) => {
            stcp_loadgen::stderr_line!("stcp-loadgen merge: {e}");
            return run::exit::CANNOT_START;
        }
    };
    let merged = match merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            stcp_loadgen::stderr_line!("stcp-loadgen merge: {e}");
            return run::exit::CANNOT_START;
        }
    };
    let (secs, _) = stcp_loadgen::environment::now_unix();
    match merged.write_into(&args.out, &stcp_loadgen::environment::compact_utc(secs)) {
        Ok(path) => {
            run::print_outcome(&merged, &path, args.json);
            if merged.partial {
                run::exit::PARTIAL
            } else {
                run::exit::OK
            }
        }
        Err(e) => {
            stcp_loadgen::stderr_line!(
                "stcp-loadgen merge: cannot write into {}: {e}",
                args.out.display()
            );
            run::exit::CANNOT_START
        }
    }
}

fn merge_sweeps(args: &merge::MergeArgs) -> i32 {
    let (secs, _) = stcp_loadgen::environment::now_unix();
    let stamp = stcp_loadgen::environment::compact_utc(secs);
    match sweep::merge::merge_sweeps(&args.reports, &args.out, &stamp) {
        Ok((dir, merged)) => {
            let text = match sweep::render_beside(&merged, &dir) {
                Ok(text) => text,
                Err(e) => {
                    stcp_loadgen::stderr_line!("stcp-loadgen merge: {e}");
                    return run::exit::CANNOT_START;
                }
            };
            stcp_loadgen::stdout_text!("{text}");
            stcp_loadgen::stdout_line!(
                "merged sweep: {}",
                dir.join(sweep::schema::SWEEP_FILE_NAME).display()
            );
            if merged.partial {
                run::exit::PARTIAL
            } else {
                run::exit::OK
            }
        }
        Err(e) => {
            stcp_loadgen::stderr_line!("stcp-loadgen merge: {e}");
            run::exit::CANNOT_START
        }
    }
}
