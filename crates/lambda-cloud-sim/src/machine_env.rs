//! The environment a simulated machine's user data runs in: every variable the simulator sets,
//! one spelling each. Scripts written for a real Lambda machine ignore them; the lambda-gha
//! boot script and agent read the time scale and the sandbox root from them.

/// Set to `1` on every simulated machine.
pub const SIMULATED: &str = "LAMBDA_SIM";
/// The machine's instance id (a real machine has no metadata service to ask).
pub const INSTANCE_ID: &str = "LAMBDA_SIM_INSTANCE_ID";
/// The simulator's base URL.
pub const API_URL: &str = "LAMBDA_SIM_API_URL";
/// A sandboxed machine's root directory, where its `/` would be (every simulated machine's,
/// Lambda's or not: [`sim_machine::SANDBOX_ENV`]).
pub const SANDBOX: &str = sim_machine::SANDBOX_ENV;
/// The simulator's time scale: the same variable a client reads
/// ([`lambda_cloud::TIME_SCALE_ENV`]), so that programs on the machine keep its clock.
pub const TIME_SCALE: &str = lambda_cloud::TIME_SCALE_ENV;
