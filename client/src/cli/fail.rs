//! Why a command stopped, and how that is reported: a human line on stderr, with `--json` the
//! machine envelope on stdout, and the exit status (1 usage/transport/local/refused/pending,
//! 2 the provider answered an error or the resource ended `errored`).

use std::io::Write;

use serde_json::{json, Value};

use crate::cli::args::{self, CommandSpec};
use crate::cli::render;
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::ProtocolError;

/// Why a command stopped.
pub(super) enum Fail {
    /// The command line is wrong: message, then the command's usage.
    Usage(String),
    /// A call failed, or the session could not go on.
    Error(Error),
    /// Refused here, before anything was sent (a paid service without --confirm-paid).
    Refused(String),
    /// `catalog validate`: the file is not a valid catalog (the message names the entry).
    InvalidCatalog(String),
    /// The resource ended `errored`: its answer.
    Errored(Answer),
    /// The resource was still `pending` after the timeout: its answer.
    StillPending(Answer, u64),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

impl From<ProtocolError> for Fail {
    fn from(e: ProtocolError) -> Self {
        Fail::Error(Error::Protocol(e))
    }
}

pub(super) fn report(
    out: &mut dyn Write,
    err: &mut dyn Write,
    json: bool,
    fail: Fail,
    command: Option<&CommandSpec>,
) -> i32 {
    let (human, machine, code) = match fail {
        Fail::Usage(message) => {
            let usage = match command {
                Some(c) => args::usage(c),
                None => "usage: appctl [global flags] <command> [arguments] (appctl help)\n".into(),
            };
            (
                format!("error: {message}\n{usage}"),
                json!({"error": {"code": "usage", "message": message}, "request_id": null})
                    .to_string(),
                1,
            )
        }
        Fail::Error(e) => {
            let code = if matches!(e, Error::Protocol(_)) {
                2
            } else {
                1
            };
            (render::error(&e), render::error_json(&e).to_string(), code)
        }
        Fail::Refused(message) => (
            format!("error: {message}\n"),
            json!({"error": {"code": "confirmation_required", "message": message}, "request_id": null})
                .to_string(),
            1,
        ),
        Fail::InvalidCatalog(message) => (
            format!("error: {message}\n"),
            json!({"error": {"code": "invalid_catalog", "message": message}, "request_id": null})
                .to_string(),
            1,
        ),
        Fail::Errored(answer) => {
            let r = &answer.json;
            let error = answer.resource().and_then(|r| r.error);
            let (code, message) = match error {
                Some(e) => (e.code, e.message),
                None => ("errored".into(), "the resource failed".into()),
            };
            let e = ProtocolError {
                status: answer.status,
                code,
                message,
                request_id: answer.request_id.clone(),
                body: Value::Null,
            };
            (
                format!(
                    "{}{}",
                    render::resource_header(r),
                    render::protocol_error(&e)
                ),
                answer.text.trim().to_string(),
                2,
            )
        }
        Fail::StillPending(answer, timeout) => {
            let id = answer.json["id"].as_str().unwrap_or("<id>").to_string();
            (
                format!(
                    "{}error: still pending after {timeout} s; look again with `appctl get {id}`\n",
                    render::resource(&answer.json)
                ),
                answer.text.trim().to_string(),
                1,
            )
        }
    };
    let _ = err.write_all(human.as_bytes());
    if json {
        let _ = writeln!(out, "{machine}");
    }
    code
}
