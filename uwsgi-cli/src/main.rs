//! `uwsgi-cli`: talk to and inspect the uwsgi protocol from a shell.
//!
//! Parses the command line, runs it (see the `uwsgi_cli` library) and maps the result to
//! an exit code, in one place: [`uwsgi_cli::exit::code`].

use std::process::ExitCode;

use clap::Parser;
use uwsgi_cli::{Cli, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match uwsgi_cli::run(&cli, &mut stdout) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            // A closed stdout (`| head`) is not worth a message.
            let broken_pipe = err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
            if !broken_pipe {
                eprintln!("uwsgi-cli: {err:#}");
            }
            ExitCode::from(exit::code(&err))
        }
    }
}
