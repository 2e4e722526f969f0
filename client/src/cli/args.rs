//! Hand-rolled argument parsing: a table of commands and their flags, global flags accepted
//! anywhere, `--flag value` and `--flag=value`, `--` ending flags, `-h`/`--help` anywhere.

use serde_json::{Map, Value};

/// One flag: its name (without `--`), the placeholder of its value (`None`: a switch), and
/// whether it may be given several times.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub repeat: bool,
}

const fn switch(name: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        value: None,
        repeat: false,
    }
}

const fn valued(name: &'static str, placeholder: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        value: Some(placeholder),
        repeat: false,
    }
}

const fn repeated(name: &'static str, placeholder: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        value: Some(placeholder),
        repeat: true,
    }
}

/// One command: how it is written and what it does.
#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// The command's line in the usage, after `appctl `.
    pub synopsis: &'static str,
    /// What it does, as indented lines of the help.
    pub about: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub flags: &'static [FlagSpec],
}

pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    valued("url", "<base>"),
    valued("secret", "<secret>"),
    valued("state", "<path>"),
    switch("json"),
    valued("stand-in", "<url>"),
];

const PAYMENT_FLAGS: [FlagSpec; 5] = [
    valued("payment-token", "spt_..."),
    switch("test-payment"),
    valued("max", "<cents>"),
    switch("confirm-paid"),
    valued("currency", "<code>"),
];

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "health",
        synopsis: "health",
        about: "Checks that the provider answers signed calls.",
        min_args: 0,
        max_args: 0,
        flags: &[],
    },
    CommandSpec {
        name: "catalog",
        synopsis: "catalog [validate <file>]",
        about: "Lists the services: id, kind, price and configuration (* = required).\n\
                `catalog validate <file>` checks a catalog.json with the validator of the build and\n\
                of the CATALOG setting, calling nothing: prints ok, or the error naming the entry\n\
                and field, and exits 1.",
        min_args: 0,
        max_args: 2,
        flags: &[],
    },
    CommandSpec {
        name: "account-request",
        synopsis: "account-request --email <e> [--name <n>] [--scopes a,b] [--stripe-account <acct>]\n                  [--pkce] [--wait] [--callback <addr>] [--timeout <s>]",
        about: "Asks the provider for an account for <e> (a fresh acctreq_ id, expiring in 10 minutes).\n\
                A new account answers a code: exchange it with `token`. An existing one answers a\n\
                consent URL its owner opens in a browser. --pkce sends an S256 challenge and keeps the\n\
                verifier for `token`. --wait goes on to the tokens: for a consent, it first listens on\n\
                --callback (default 127.0.0.1:8788, path /oauth/callback) for the browser's redirect,\n\
                up to --timeout seconds (default 600). The Stripe account sent is --stripe-account,\n\
                else APP_STRIPE_ACCOUNT, else acct_local_cli.",
        min_args: 0,
        max_args: 0,
        flags: &[
            valued("email", "<e>"),
            valued("name", "<n>"),
            valued("scopes", "a,b"),
            valued("stripe-account", "<acct>"),
            switch("pkce"),
            switch("wait"),
            valued("callback", "<addr>"),
            valued("timeout", "<s>"),
        ],
    },
    CommandSpec {
        name: "token",
        synopsis: "token [--code <c>]",
        about: "Exchanges the last code (or <c>) for tokens, with the PKCE verifier when the request\n\
                had a challenge.",
        min_args: 0,
        max_args: 0,
        flags: &[valued("code", "<c>")],
    },
    CommandSpec {
        name: "refresh",
        synopsis: "refresh",
        about: "Rotates the token pair. (Done automatically when the access token has expired or\n\
                a call answers 401 invalid_token.)",
        min_args: 0,
        max_args: 0,
        flags: &[],
    },
    CommandSpec {
        name: "add",
        synopsis: "add <service_id> [--name <n>] [--project <p>] [--config k=v ...] [--payment-token spt_... | --test-payment]\n      [--max <cents>] [--currency <code>] [--confirm-paid] [--domain <name>] [--timeout <s>]",
        about: "Creates a resource in project <p> (default proj_local). --name names it (sent as\n\
                orchestrator_resource_id <p>/<n>), so a project can hold several resources of one\n\
                service; commands then take the name. --config values are JSON when\n\
                they parse as JSON, else strings: --config scopes='[\"logs:read\"]' --config label=ci.\n\
                A paid service is refused unless --confirm-paid agrees to its catalog price. A domain\n\
                quote lists its candidates; with --confirm-paid, buys --domain <name> (else the first\n\
                available one) at its exact quoted amount, sending the same create again with\n\
                submitted_information {domain, amount}. Polls every second while pending, up to\n\
                --timeout seconds (default 60). --test-payment makes a test payment token of --max\n\
                minor units (default 5000) in --currency (default usd; the catalog's prices' currency)\n\
                at the stand-in; loopback providers only.",
        min_args: 1,
        max_args: 1,
        flags: &[
            valued("name", "<n>"),
            valued("project", "<p>"),
            repeated("config", "k=v"),
            PAYMENT_FLAGS[0],
            PAYMENT_FLAGS[1],
            PAYMENT_FLAGS[2],
            PAYMENT_FLAGS[3],
            PAYMENT_FLAGS[4],
            valued("domain", "<name>"),
            valued("timeout", "<s>"),
        ],
    },
    CommandSpec {
        name: "get",
        synopsis: "get <id|service_id> [--project <p>]",
        about: "Shows a resource. A service id names the state file's resource of that service.",
        min_args: 1,
        max_args: 1,
        flags: &[valued("project", "<p>")],
    },
    CommandSpec {
        name: "update",
        synopsis: "update <id|service_id> <new_service_id> [--project <p>] [--payment-token spt_... | --test-payment]\n      [--max <cents>] [--currency <code>] [--confirm-paid] [--timeout <s>]",
        about: "Moves a resource to another service of its allowed_updates (a plan change); a paid\n\
                target is refused unless --confirm-paid agrees to its price.",
        min_args: 2,
        max_args: 2,
        flags: &[
            valued("project", "<p>"),
            PAYMENT_FLAGS[0],
            PAYMENT_FLAGS[1],
            PAYMENT_FLAGS[2],
            PAYMENT_FLAGS[3],
            PAYMENT_FLAGS[4],
            valued("timeout", "<s>"),
        ],
    },
    CommandSpec {
        name: "rotate",
        synopsis: "rotate <id|service_id> [--project <p>]",
        about: "Issues new credentials; the old ones stop working at once. Run `env` afterwards.",
        min_args: 1,
        max_args: 1,
        flags: &[valued("project", "<p>")],
    },
    CommandSpec {
        name: "remove",
        synopsis: "remove <id|service_id> [--project <p>]",
        about: "Releases the resource and revokes its credentials.",
        min_args: 1,
        max_args: 1,
        flags: &[valued("project", "<p>")],
    },
    CommandSpec {
        name: "deep-link",
        synopsis: "deep-link",
        about: "Prints a single-use URL to the owner's dashboard (valid about 10 minutes).",
        min_args: 0,
        max_args: 0,
        flags: &[],
    },
    CommandSpec {
        name: "env",
        synopsis: "env [--file <path>]",
        about: "Writes every complete resource's access_configuration as KEY=value lines into <path>\n\
                (default .env; created 0600), keeping its other lines, and prints the keys written.",
        min_args: 0,
        max_args: 0,
        flags: &[valued("file", "<path>")],
    },
    CommandSpec {
        name: "status",
        synopsis: "status",
        about: "Shows what the state file knows (provider, account, tokens, resources); calls nothing.",
        min_args: 0,
        max_args: 0,
        flags: &[],
    },
    CommandSpec {
        name: "payment-token",
        synopsis: "payment-token [--max <cents>] [--currency <code>]",
        about: "Creates a test payment token (--currency, default usd; --max minor units, default 5000;\n\
                valid one hour) at the local Stripe stand-in and prints its spt_ id.",
        min_args: 0,
        max_args: 0,
        flags: &[valued("max", "<cents>"), valued("currency", "<code>")],
    },
    CommandSpec {
        name: "simulate",
        synopsis: "simulate payment-failed|payment-recovered",
        about: "Development only (loopback stand-in): makes Stripe's side of the account's paid plan\n\
                fail or recover. The stand-in builds the renewal invoice and sends the signed webhook\n\
                (invoice.payment_failed or invoice.paid) to the provider, as Stripe would.",
        min_args: 1,
        max_args: 1,
        flags: &[],
    },
    CommandSpec {
        name: "audit",
        synopsis: "audit [--verify] [--operator-secret <s>]",
        about: "Shows the account's audit trail through the operator API (who did what, on whose\n\
                behalf, with which consent). --verify recomputes its hash chain. The operator secret\n\
                is --operator-secret, else APP_OPERATOR_SECRET, else the dev value of .dev.vars.example.",
        min_args: 0,
        max_args: 0,
        flags: &[switch("verify"), valued("operator-secret", "<s>")],
    },
    CommandSpec {
        name: "usage",
        synopsis: "usage <id|service_id> --amount <cents> [--quantity <n>] [--key <k>] [--currency <code>]\n      [--project <p>] [--operator-secret <s>]",
        about: "Reports usage of a usage-based resource as the operator's platform does\n\
                (POST /v1/usage): --amount in cents (counted against the cap, billed as a meter\n\
                event), --quantity in the service's unit (default: the amount), --key names the\n\
                report (default: a new one; the same key is recorded once), --currency the account's\n\
                spending currency (default usd).",
        min_args: 1,
        max_args: 1,
        flags: &[
            valued("amount", "<cents>"),
            valued("quantity", "<n>"),
            valued("key", "<k>"),
            valued("currency", "<code>"),
            valued("project", "<p>"),
            valued("operator-secret", "<s>"),
        ],
    },
    CommandSpec {
        name: "credit",
        synopsis: "credit --amount <cents> --reason <text> [--days <n>] [--key <k>] [--currency <code>]\n      [--operator-secret <s>]",
        about: "Grants the account credits as the operator does (POST /v1/accounts/{id}/credits):\n\
                usage draws on them before the payment method. --days until they expire (default 90),\n\
                --currency the account's spending currency (default usd).",
        min_args: 0,
        max_args: 0,
        flags: &[
            valued("amount", "<cents>"),
            valued("reason", "<text>"),
            valued("days", "<n>"),
            valued("key", "<k>"),
            valued("currency", "<code>"),
            valued("operator-secret", "<s>"),
        ],
    },
    CommandSpec {
        name: "help",
        synopsis: "help [<command>]",
        about: "Prints this text, or one command's.",
        min_args: 0,
        max_args: 1,
        flags: &[],
    },
];

const INTRO: &str =
    "appctl: plays the orchestrator's part of the Agentic Provisioning Protocol (APP 0.1d)
against a provider, signing every call, so the whole flow can be watched on a laptop.

usage: appctl [global flags] <command> [arguments]
";

const GLOBAL_HELP: &str = "global flags (anywhere on the line):
  --url <base>        the provider; env APP_PROVIDER_URL, else the state file's, else
                      http://127.0.0.1:8787
  --secret <secret>   the orchestrator's signing secret; env APP_ORCHESTRATOR_SECRET, else the
                      public dev secret of .dev.vars.example (warned about off loopback)
  --state <path>      the state file (0600); env APP_CLI_STATE, else .appctl/state.json
  --json              print the provider's JSON answer on stdout, or
                      {\"error\":{\"code\",\"message\",\"status\"},\"request_id\"} on failure
  --stand-in <url>    the local Stripe stand-in for test payment tokens; env APP_STAND_IN_URL,
                      else http://127.0.0.1:12111

exit status: 0 done; 1 usage, transport or local error; 2 the provider answered an error
";

/// The whole help text (`appctl help`).
pub fn help() -> String {
    let mut text = String::from(INTRO);
    text.push_str("\ncommands:\n");
    for c in COMMANDS {
        text.push_str(&format!("  {}\n", c.synopsis));
        for line in c.about.lines() {
            text.push_str(&format!("      {}\n", line.trim()));
        }
    }
    text.push('\n');
    text.push_str(GLOBAL_HELP);
    text
}

/// One command's usage.
pub fn usage(command: &CommandSpec) -> String {
    let mut text = format!("usage: appctl {}\n", command.synopsis);
    for line in command.about.lines() {
        text.push_str(&format!("    {}\n", line.trim()));
    }
    text.push_str("(global flags: appctl help)\n");
    text
}

pub fn command(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// A usage error, and the command it concerns when known.
#[derive(Debug)]
pub struct Usage {
    pub message: String,
    pub command: Option<&'static CommandSpec>,
}

/// A parsed command line.
#[derive(Debug, Default)]
pub struct Parsed {
    pub command: Option<&'static CommandSpec>,
    pub positionals: Vec<String>,
    /// Global and command flags, in order: name and value (`None` for switches).
    pub flags: Vec<(&'static str, Option<String>)>,
    pub help: bool,
}

impl Parsed {
    /// The value of a valued flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of a repeatable flag, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// True when the flag was given.
    pub fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| *n == name)
    }
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, Usage> {
    let mut parsed = Parsed::default();
    let mut only_positional = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let usage = |message: String, command| Usage { message, command };
        if !only_positional && arg == "--" {
            only_positional = true;
            continue;
        }
        if !only_positional && (arg == "-h" || arg == "--help") {
            parsed.help = true;
            continue;
        }
        if !only_positional && arg.starts_with('-') && arg.len() > 1 {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(usage(
                    format!("unknown flag {arg} (flags are spelled --name)"),
                    parsed.command,
                ));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let spec = GLOBAL_FLAGS
                .iter()
                .chain(parsed.command.map(|c| c.flags).unwrap_or(&[]))
                .find(|f| f.name == name);
            let Some(spec) = spec else {
                let whose = match parsed.command {
                    Some(c) => format!(" for {}", c.name),
                    None => String::new(),
                };
                return Err(usage(
                    format!("unknown flag --{name}{whose}"),
                    parsed.command,
                ));
            };
            let value = match (spec.value, inline) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(usage(format!("--{name} takes no value"), parsed.command))
                }
                (Some(_), Some(v)) => Some(v),
                (Some(placeholder), None) => match args.get(i) {
                    Some(v) if !v.starts_with("--") => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => {
                        return Err(usage(
                            format!("--{name} needs a value: --{name} {placeholder}"),
                            parsed.command,
                        ))
                    }
                },
            };
            if !spec.repeat && parsed.has(spec.name) {
                return Err(usage(format!("--{name} is given twice"), parsed.command));
            }
            parsed.flags.push((spec.name, value));
            continue;
        }
        if parsed.command.is_none() {
            match command(arg) {
                Some(c) => parsed.command = Some(c),
                None => {
                    return Err(usage(
                        format!("unknown command {arg:?} (appctl help lists them)"),
                        None,
                    ))
                }
            }
            continue;
        }
        parsed.positionals.push(arg.clone());
    }
    if parsed.help {
        return Ok(parsed);
    }
    let Some(command) = parsed.command else {
        return Err(Usage {
            message: "no command given".into(),
            command: None,
        });
    };
    if parsed.positionals.len() < command.min_args {
        let wanted: Vec<&str> = command
            .synopsis
            .split_whitespace()
            .skip(1)
            .take_while(|w| w.starts_with('<'))
            .collect();
        return Err(Usage {
            message: format!("{} needs {}", command.name, wanted.join(" ")),
            command: Some(command),
        });
    }
    if parsed.positionals.len() > command.max_args {
        return Err(Usage {
            message: format!(
                "unexpected argument {:?}",
                parsed.positionals[command.max_args]
            ),
            command: Some(command),
        });
    }
    Ok(parsed)
}

/// `--config k=v` items: the value is JSON when it parses as JSON, else the string itself.
pub fn parse_config(items: &[&str]) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("--config expects key=value, got {item:?}"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("--config {item:?} has no key"));
        }
        if map.contains_key(key) {
            return Err(format!("--config {key} is given twice"));
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

/// `--scopes a,b` (commas or spaces).
pub fn parse_scopes(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(line: &[&str]) -> Vec<String> {
        line.iter().map(|s| s.to_string()).collect()
    }

    fn ok(line: &[&str]) -> Parsed {
        match parse(&args(line)) {
            Ok(p) => p,
            Err(e) => panic!("{line:?}: {}", e.message),
        }
    }

    fn err(line: &[&str]) -> String {
        match parse(&args(line)) {
            Ok(p) => panic!("{line:?} parsed: {p:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn commands_flags_and_positionals() {
        let p = ok(&[
            "--json",
            "add",
            "api_token",
            "--config",
            "label=ci",
            "--config=scopes=[\"logs:read\"]",
            "--url",
            "http://x",
            "--confirm-paid",
        ]);
        assert_eq!(p.command.map(|c| c.name), Some("add"));
        assert_eq!(p.positionals, vec!["api_token"]);
        assert!(p.has("json") && p.has("confirm-paid") && !p.has("test-payment"));
        assert_eq!(p.value("url"), Some("http://x"));
        assert_eq!(
            p.values("config"),
            vec!["label=ci", "scopes=[\"logs:read\"]"]
        );

        let p = ok(&["update", "free", "paid", "--payment-token", "spt_1"]);
        assert_eq!(p.positionals, vec!["free", "paid"]);
        assert_eq!(p.value("payment-token"), Some("spt_1"));

        // `--` ends flags; help anywhere.
        let p = ok(&["get", "--", "--odd-id"]);
        assert_eq!(p.positionals, vec!["--odd-id"]);
        assert!(ok(&["add", "-h"]).help);
        assert!(ok(&["--help"]).help);
        assert_eq!(ok(&["help", "add"]).positionals, vec!["add"]);
    }

    #[test]
    fn usage_errors() {
        assert_eq!(err(&[]), "no command given");
        assert!(err(&["fly"]).contains("unknown command \"fly\""));
        assert_eq!(err(&["add"]), "add needs <service_id>");
        assert_eq!(
            err(&["update", "x"]),
            "update needs <id|service_id> <new_service_id>"
        );
        assert_eq!(err(&["get", "a", "b"]), "unexpected argument \"b\"");
        assert_eq!(
            err(&["health", "--email", "x"]),
            "unknown flag --email for health"
        );
        assert_eq!(
            err(&["--email", "x", "account-request"]),
            "unknown flag --email"
        );
        assert!(err(&["account-request", "--email"]).contains("--email needs a value"));
        assert!(err(&["account-request", "--email", "--pkce"]).contains("needs a value"));
        assert_eq!(
            err(&["token", "--code", "a", "--code", "b"]),
            "--code is given twice"
        );
        assert_eq!(err(&["status", "--json=yes"]), "--json takes no value");
        assert!(err(&["status", "-j"]).contains("unknown flag -j"));
        // Every synopsis parses its own flags.
        for c in COMMANDS {
            for f in c.flags {
                assert!(
                    c.synopsis.contains(&format!("--{}", f.name)),
                    "{}: --{}",
                    c.name,
                    f.name
                );
            }
        }
    }

    #[test]
    fn config_values() {
        let map = parse_config(&[
            "scopes=[\"logs:read\"]",
            "label=ci bot",
            "count=3",
            "flag=true",
            "empty=",
            "eq=a=b",
            "quoted=\"42\"",
        ])
        .expect("config");
        assert_eq!(
            Value::Object(map),
            json!({"scopes": ["logs:read"], "label": "ci bot", "count": 3, "flag": true,
                   "empty": "", "eq": "a=b", "quoted": "42"})
        );
        assert!(parse_config(&["novalue"]).is_err());
        assert!(parse_config(&["=x"]).is_err());
        assert!(parse_config(&["a=1", "a=2"]).is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scopes("resources:read, resources:write"),
            vec!["resources:read", "resources:write"]
        );
        assert!(parse_scopes(" , ").is_empty());
    }

    #[test]
    fn help_mentions_every_command() {
        let text = help();
        for c in COMMANDS {
            assert!(text.contains(c.synopsis), "{}", c.name);
        }
        assert!(usage(command("add").expect("add")).starts_with("usage: appctl add <service_id>"));
    }
}
