//! `padnet-wgpu`: parses the command line and runs it (src/commands/).

use clap::Parser;
use padnet_wgpu::commands::{self, Args};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 1 like every other bad input (2 means no usable GPU adapter).
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{e}`, not the chain: our errors already say their cause once.
            eprintln!("error: {e}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
