//! Prints every instance type with its price and the regions that have capacity now,
//! cheapest first.
//!
//! ```sh
//! LAMBDA_API_KEY=... cargo run -p lambda-cloud --example list_types
//! # or against any server that speaks the API (a simulator, a proxy):
//! LAMBDA_API_URL=http://127.0.0.1:8787 LAMBDA_API_KEY=any cargo run -p lambda-cloud --example list_types
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use lambda_cloud::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let client = match Client::builder().build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let types = match client.instance_types().list().await {
        Ok(types) => types,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{:<24} {:>4} {:>9} {:>5} {:>8} {:>9}  regions with capacity",
        "type", "gpus", "$/hour", "vcpu", "ram GiB", "disk GiB"
    );
    for item in types.by_price() {
        let t = &item.instance_type;
        let regions: Vec<&str> = item
            .regions_with_capacity_available
            .iter()
            .map(|region| region.name.as_str())
            .collect();
        println!(
            "{:<24} {:>4} {:>9.2} {:>5} {:>8} {:>9}  {}",
            t.name.as_str(),
            t.specs.gpus,
            t.price_dollars_per_hour(),
            t.specs.vcpus,
            t.specs.memory_gib,
            t.specs.storage_gib,
            if regions.is_empty() {
                "-".to_owned()
            } else {
                regions.join(", ")
            }
        );
    }
    println!(
        "{} types, {} with capacity now (from {})",
        types.len(),
        types.available().len(),
        client.base_url()
    );
    ExitCode::SUCCESS
}
