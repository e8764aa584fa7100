//! `padnet-wgpu`: parses the command line and runs it (src/commands/).

use clap::Parser;
use padnet_wgpu::commands::{self, Args};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed stdout (`padnet-wgpu bench compare … | head`) ends the process quietly, as it
    // does every Unix tool, instead of a panic in println!. Files are only ever replaced
    // atomically, so nothing written is left half-done.
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
