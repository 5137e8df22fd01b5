//! `uwsgi-cli`: talk to and inspect the uwsgi protocol from a shell.
//!
//! The binary only parses arguments and formats output; the protocol work is done by the
//! `uwsgi-protocol` crate.

mod decode;
mod encode;
mod input;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, one meaning each (also in docs/cli.md).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Bad command line (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The input is not valid uwsgi (or marshal) data.
    pub const INVALID_INPUT: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "uwsgi-cli",
    version,
    about = "Inspect and build uwsgi protocol packets",
    after_help = "Examples:\n  \
        uwsgi-cli encode request --var REQUEST_METHOD=GET --var PATH_INFO=/ | uwsgi-cli decode\n  \
        uwsgi-cli decode --hex --json capture.hex\n  \
        python3 -c 'import marshal,sys; sys.stdout.buffer.write(marshal.dumps((1,\"a\")))' | uwsgi-cli decode --marshal\n\n\
        Exit codes: 0 ok, 2 usage error, 3 invalid input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode every packet in a file or stdin and print it.
    Decode(decode::DecodeArgs),
    /// Build a packet from options and write its bytes to stdout.
    Encode(encode::EncodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Encode(args) => encode::run(&args),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            let code = err
                .downcast_ref::<Failure>()
                .map_or(exit::USAGE, |failure| failure.exit_code);
            eprintln!("uwsgi-cli: {err:#}");
            ExitCode::from(code)
        }
    }
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Failure {
    /// What to print.
    pub message: String,
    /// The process exit code.
    pub exit_code: u8,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An invalid-input failure (exit code 3).
pub fn invalid_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        message: message.into(),
        exit_code: exit::INVALID_INPUT,
    })
}
