//! The `lambda-gha` GitHub Action: inputs as GitHub passes them (`INPUT_*`), composed into
//! `gha-runner-core` with the Lambda provider; outputs, masks, annotations and the job
//! summary as GitHub reads them. `action.yml` at the repository root runs the binary.
//!
//! ```no_run
//! # async fn demo() {
//! use lambda_gha_action::{Env, Workflow, run};
//! let env = Env::from_process();
//! let mut workflow = Workflow::new(std::io::stdout(), None, None);
//! let exit = run(&env, &mut workflow).await.is_ok();
//! # }
//! ```

pub mod inputs;
mod run;
pub mod summary;
mod workflow;

pub use inputs::Env;
pub use run::{Failure, run};
pub use workflow::Workflow;
