//! `stand-in`: the local stand-in for Stripe, the registrar and the operator backend, for local
//! development. See `app_tests::stand_in` for what it implements and checks.
//!
//! ```text
//! stand-in [--port 12111] [--api-key sk_test_dev_stand_in]
//!          [--operator-secret op_backend_dev_secret] [--registrar-key rk_dev_registrar]
//!          [--webhook-url http://127.0.0.1:8787/webhooks/stripe]
//!          [--webhook-secret whsec_dev_stand_in_webhooks]
//! ```
//!
//! Without `--webhook-url`, events are recorded (`GET /_stand_in/webhooks`) but not delivered;
//! `POST /_stand_in/webhooks/config` can set the URL later.

use app_tests::stand_in::{Config, StandIn};

const USAGE: &str = "usage: stand-in [--port <u16>] [--api-key <key>] [--operator-secret <secret>] [--registrar-key <key>] [--webhook-url <url>] [--webhook-secret <secret>]";

fn parse(args: &[String]) -> Result<Config, String> {
    let mut config = Config {
        port: 12111,
        ..Config::default()
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = match inline {
            Some(value) => value,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))?
            }
        };
        match flag {
            "--port" => {
                config.port = value
                    .parse()
                    .map_err(|_| format!("--port must be a port number, not {value:?}"))?
            }
            "--api-key" => config.api_key = value,
            "--operator-secret" => config.operator_secret = value,
            "--registrar-key" => config.registrar_key = value,
            "--webhook-url" => {
                if !value.starts_with("http://") && !value.starts_with("https://") {
                    return Err(format!(
                        "--webhook-url must be an http:// or https:// URL, not {value:?}"
                    ));
                }
                config.webhook_url = Some(value);
            }
            "--webhook-secret" => config.webhook_secret = value,
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    for (name, value) in [
        ("--api-key", &config.api_key),
        ("--operator-secret", &config.operator_secret),
        ("--registrar-key", &config.registrar_key),
        ("--webhook-secret", &config.webhook_secret),
    ] {
        if value.is_empty() {
            return Err(format!("{name} must not be empty"));
        }
    }
    Ok(config)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return;
            }
            eprintln!("stand-in: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let webhook_url = config.webhook_url.clone();
    let stand_in = StandIn::start(config);
    println!("stand-in listening on {}", stand_in.base_url);
    match webhook_url {
        Some(url) => println!("stand-in delivering webhooks to {url}"),
        None => println!("stand-in recording events without delivering them (no --webhook-url)"),
    }
    loop {
        std::thread::park();
    }
}
