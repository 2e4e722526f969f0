//! The black-box suite: one `wrangler dev` for the whole run, one module per feature, cases
//! run in parallel over HTTP. `cargo test -p app-tests --test blackbox -- <filter>` runs a subset.

mod accounts;
mod browser;
mod catalog;
mod common;
mod consent;
mod dashboard;
mod discovery;
mod interop;
mod money;
mod operator;
mod resources;
mod robustness;
mod secrets;
mod shards;
mod signatures;
mod usage;
mod walkthrough;
mod webhooks;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = Vec::new();
    trials.extend(accounts::trials());
    trials.extend(browser::trials());
    trials.extend(catalog::trials());
    trials.extend(consent::trials());
    trials.extend(dashboard::trials());
    trials.extend(discovery::trials());
    trials.extend(interop::trials());
    trials.extend(money::trials());
    trials.extend(operator::trials());
    trials.extend(resources::trials());
    trials.extend(robustness::trials());
    trials.extend(secrets::trials());
    trials.extend(shards::trials());
    trials.extend(signatures::trials());
    trials.extend(usage::trials());
    trials.extend(webhooks::trials());
    trials.extend(walkthrough::trials());
    let conclusion = libtest_mimic::run(&args, trials);
    common::shutdown(conclusion.has_failed());
    conclusion.exit();
}
