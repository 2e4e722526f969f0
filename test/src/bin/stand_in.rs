//! `stand-in`: the local stand-in for Stripe, the registrar and the operator backend, for local
//! development. See `app_tests::stand_in` for what it implements and checks.
//!
//! ```text
//! stand-in [--port 12111] [--api-key sk_test_dev_stand_in]
//!          [--operator-secret op_backend_dev_secret] [--registrar-key rk_dev_registrar]
//! ```

use app_tests::stand_in::{Config, StandIn};

const USAGE: &str = "usage: stand-in [--port <u16>] [--api-key <key>] [--operator-secret <secret>] [--registrar-key <key>]";

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
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    for (name, value) in [
        ("--api-key", &config.api_key),
        ("--operator-secret", &config.operator_secret),
        ("--registrar-key", &config.registrar_key),
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
    let stand_in = StandIn::start(config);
    println!("stand-in listening on {}", stand_in.base_url);
    loop {
        std::thread::park();
    }
}
