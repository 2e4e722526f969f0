//! Why an orchestrator flow stopped: the provider's error envelope (kept whole, with its
//! `Request-Id`), a transport failure, or a local reason nothing was sent.

use crate::{ProtocolError, TransportError};

/// Why a flow stopped.
#[derive(Debug)]
pub enum Error {
    /// The provider answered with an error envelope.
    Protocol(ProtocolError),
    /// The provider could not be reached, or its answer could not be read.
    Transport(TransportError),
    /// Nothing was sent, or the answer made no sense: not logged in, no code, state file...
    Local(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Transport(e) => write!(f, "{e}"),
            Error::Local(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}
