//! Calls from the worker to its Durable Objects: one JSON request, one JSON answer, typed at
//! both ends.
//!
//! - [`op`]: an operation's request type names its answer and error; the wire form of answers.
//! - [`transport`]: the POST to an object and the decoding of its answer, once.
//! - [`account`], [`directory`], [`registry`]: the operations of each object, and their calls.
//!   Account objects are addressed by account id, directory objects by `email:<email>` or
//!   `claims:<hh>` (`account_request::claim_object`), registry objects by domain name.

pub mod account;
pub mod directory;
pub mod op;
pub mod registry;
pub mod transport;
