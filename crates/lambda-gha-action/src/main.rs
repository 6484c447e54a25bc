//! `lambda-gha-action`: the binary `action.yml` runs. It reads the step's environment, runs the
//! action, and exits 1 with an error annotation when it fails.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use lambda_gha_action::{Env, Workflow, run};

fn main() -> ExitCode {
    if let Some("-V" | "--version") = std::env::args().nth(1).as_deref() {
        println!("lambda-gha-action {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let env = Env::from_process();
    let debug = env
        .input("debug")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_env_filter(if debug { "debug" } else { "warn" })
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            println!("::error title=lambda-gha::cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut workflow = Workflow::new(
        std::io::stdout().lock(),
        env.var("GITHUB_OUTPUT").map(PathBuf::from),
        env.var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
    );
    match runtime.block_on(run(&env, &mut workflow)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
