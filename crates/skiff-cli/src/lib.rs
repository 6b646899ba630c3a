//! `skiff`'s kubectl-like verbs. Each verb reads the kubeconfig the server wrote, talks to the API
//! only (server-side Tables for columns, discovery-free paths from `skiff_api::resource`), and prints
//! what kubectl prints, with kubectl's exit codes.

pub mod client;
pub mod commands;
pub mod describe;
pub mod error;
pub mod generate;
pub mod jsonpath;
pub mod output;
pub mod progress;
pub mod resources;
pub mod rollout;
pub mod tabwriter;
pub mod term;
pub mod yaml;

pub use commands::{Common, Verb};
pub use error::CliError;

/// Runs one verb and returns the process exit code, printing errors as kubectl does.
pub async fn run(verb: Verb) -> i32 {
    match commands::dispatch(verb).await {
        Ok(()) => 0,
        Err(CliError::Exit(code)) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}
