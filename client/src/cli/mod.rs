//! `appctl`, the orchestrator's command line: parses the arguments, calls the
//! [`Orchestrator`](crate::orchestrator::Orchestrator), prints the answers.
//!
//! Output: human text on stdout, progress and warnings on stderr; with `--json`, stdout gets
//! exactly the provider's JSON answer (the last one of a multi-step command), or
//! `{"error":{...},"request_id":...}`. Exit status: 0 done, 1 usage/transport/local error,
//! 2 the provider answered an error.
//!
//! Layout: one file per command group ([`discovery`], [`accounts`], [`resources`],
//! [`handoff`], [`stand_in`], [`operator`]), each adding its commands to [`session::Cli`];
//! [`fail`] reports why a command stopped. This file only parses, dispatches and re-exports;
//! the files import each other directly, never through it.

mod accounts;
pub mod args;
mod discovery;
mod fail;
mod handoff;
mod operator;
pub mod render;
mod resources;
pub mod session;
mod stand_in;

use std::io::Write;

use fail::{report, Fail};
use session::Cli;

pub use operator::DEV_OPERATOR_SECRET;
pub use session::{
    is_loopback_url, DEFAULT_CALLBACK, DEFAULT_PROJECT, DEFAULT_STAND_IN, DEFAULT_STATE,
    DEFAULT_TEST_MAX, DEFAULT_URL, DEV_SECRET,
};

/// Runs `appctl` with the process's arguments, environment and standard streams; answers the
/// exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(&args, &env, &mut stdout.lock(), &mut stderr.lock())
}

/// Runs `appctl` with `args` (without the program name), reading variables through `env` and
/// writing to `out` and `err`; answers the exit status.
pub fn run(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let json = args.iter().any(|a| a == "--json");
    let parsed = match args::parse(args) {
        Ok(p) => p,
        Err(usage) => return report(out, err, json, Fail::Usage(usage.message), usage.command),
    };
    let command = parsed.command;
    if parsed.help || command.is_some_and(|c| c.name == "help") {
        // `appctl help [cmd]`, `appctl [cmd] --help`.
        let topic = match command.filter(|c| c.name != "help") {
            Some(c) => Some(c.name),
            None => parsed.positionals.first().map(String::as_str),
        };
        let text = match topic {
            None => args::help(),
            Some(name) => match args::command(name) {
                Some(c) => args::usage(c),
                None => {
                    let fail = Fail::Usage(format!("unknown command {name:?}"));
                    return report(out, err, json, fail, None);
                }
            },
        };
        let _ = out.write_all(text.as_bytes());
        return 0;
    }
    let mut cli = Cli {
        json: parsed.has("json"),
        p: parsed,
        env,
        out,
        err,
    };
    let result = dispatch(&mut cli);
    let Cli { out, err, json, .. } = cli;
    match result {
        Ok(()) => 0,
        Err(fail) => report(out, err, json, fail, command),
    }
}

fn dispatch(cli: &mut Cli) -> Result<(), Fail> {
    let Some(command) = cli.p.command else {
        return Err(Fail::Usage("no command given".into()));
    };
    match command.name {
        "health" => cli.health(),
        "catalog" => cli.catalog(),
        "account-request" => cli.account_request(),
        "token" => cli.token(),
        "refresh" => cli.refresh(),
        "add" => cli.add(),
        "get" => cli.get(),
        "update" => cli.update(),
        "rotate" => cli.rotate(),
        "remove" => cli.remove(),
        "deep-link" => cli.deep_link(),
        "env" => cli.env_file(),
        "status" => cli.status(),
        "payment-token" => cli.payment_token_command(),
        "simulate" => cli.simulate(),
        "audit" => cli.audit(),
        "usage" => cli.usage(),
        "credit" => cli.credit(),
        other => Err(Fail::Usage(format!("unknown command {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn run_line(line: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &lookup, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn help_and_usage_errors() {
        let (code, out, _) = run_line(&["help"], &[]);
        assert_eq!(code, 0);
        assert!(
            out.contains("commands:") && out.contains("global flags"),
            "{out}"
        );
        let (code, out, _) = run_line(&["help", "env"], &[]);
        assert_eq!(
            (code, out.starts_with("usage: appctl env")),
            (0, true),
            "{out}"
        );
        let (code, out, _) = run_line(&["add", "--help"], &[]);
        assert_eq!(
            (code, out.starts_with("usage: appctl add")),
            (0, true),
            "{out}"
        );

        let (code, out, err) = run_line(&["add"], &[]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("error: add needs <service_id>\nusage: appctl add"),
            "{err}"
        );

        let (code, out, err) = run_line(&["--json", "fly"], &[]);
        assert_eq!(code, 1);
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["error"]["code"], "usage");
        assert!(err.contains("unknown command"), "{err}");

        let (code, _, err) = run_line(
            &[
                "add",
                "x",
                "--config",
                "novalue",
                "--url",
                "http://127.0.0.1:9",
            ],
            &[],
        );
        assert_eq!(code, 1);
        assert!(err.contains("--config expects key=value"), "{err}");

        let (code, _, err) = run_line(&["health", "--url", "ftp://x"], &[]);
        assert_eq!(code, 1);
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[test]
    fn default_secret_is_warned_about_off_loopback() {
        // 0.0.0.0 is not loopback by name (though it reaches this machine): refused at once.
        let (code, _, err) = run_line(
            &["health"],
            &[
                ("APP_PROVIDER_URL", "http://0.0.0.0:1"),
                ("APP_CLI_STATE", "/nonexistent/appctl/state.json"),
            ],
        );
        assert!(
            err.starts_with(
                "warning: signing with the public development secret against http://0.0.0.0:1"
            ),
            "{err}"
        );
        assert_eq!(code, 1, "{err}");
        let (_, _, err) = run_line(
            &["health", "--secret", "s"],
            &[
                ("APP_PROVIDER_URL", "http://0.0.0.0:1"),
                ("APP_CLI_STATE", "/nonexistent/appctl/state.json"),
            ],
        );
        assert!(!err.contains("warning"), "{err}");
    }

    #[test]
    fn status_without_state() {
        let (code, out, _) = run_line(
            &["status", "--state", "/nonexistent/appctl/state.json"],
            &[],
        );
        assert_eq!(code, 0);
        assert!(out.contains("does not exist yet"), "{out}");
    }
}
