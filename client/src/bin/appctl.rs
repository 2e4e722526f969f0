//! `appctl`: plays the orchestrator's part of APP 0.1d against a provider. See `appctl help`;
//! everything is in `app_client::cli`.

fn main() {
    std::process::exit(app_client::cli::main());
}
