//! One operation on a Durable Object, typed at both ends: the request type names its answer and
//! its error ([`Op`]), the object encodes exactly those ([`Encoded::answer`]) and the worker
//! decodes exactly those, once (`transport::call`).
//!
//! On the wire an answer is `{"ok": answer}` or `{"err": error}` ([`Reply`]). The wire is
//! internal (worker and objects are one deployment) and nothing here is stored.

use domain::errors::{ApiError, Failure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A request to a Durable Object and what it answers.
pub trait Op {
    /// What the object answers when the operation went through.
    type Answer: Serialize + DeserializeOwned;
    /// What the object answers when it refused.
    type Error: Serialize + DeserializeOwned;
}

/// An answer on the wire.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T, E> {
    Ok(T),
    Err(E),
}

/// Why a call did not give an answer.
#[derive(Debug)]
pub enum CallError<E> {
    /// The object refused, with the operation's own error.
    Refused(E),
    /// The object was not reached or its answer not read: `ApiError::Unavailable` (nothing the
    /// caller can observe changed; it may retry) or `ApiError::Internal`.
    Transport(ApiError),
}

impl<E> CallError<E> {
    /// The failure to render: the refusal's (by `refused`), or the transport's.
    pub fn into_failure(self, refused: impl FnOnce(E) -> Failure) -> Failure {
        match self {
            CallError::Refused(e) => refused(e),
            CallError::Transport(e) => e.failure(),
        }
    }
}

impl CallError<Failure> {
    /// The failure to render, for an operation whose object renders its refusals itself.
    pub fn failure(self) -> Failure {
        self.into_failure(|f| f)
    }
}

/// An answer encoded for the wire.
pub struct Encoded(String);

impl Encoded {
    /// The answer of operation `O`.
    pub fn answer<O: Op>(result: Result<O::Answer, O::Error>) -> serde_json::Result<Encoded> {
        let reply = match result {
            Ok(answer) => Reply::Ok(answer),
            Err(error) => Reply::Err(error),
        };
        serde_json::to_string(&reply).map(Encoded)
    }

    /// A refusal, for a dispatcher whose operations all have the error type of `error`.
    pub fn refusal<E: Serialize>(error: E) -> serde_json::Result<Encoded> {
        serde_json::to_string(&Reply::<(), E>::Err(error)).map(Encoded)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}
