//! The dashboard's stored parts of an account: deep links and sessions. Below both `account`
//! (which stores them) and the dashboard logic (which reads the account), so neither imports
//! the other's file for them.
//!
//! Invariants: links and sessions hold only SHA-256 hashes of their secrets; their serde names
//! are part of the stored account object.

use serde::{Deserialize, Serialize};

use crate::audit::Authentication;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLink {
    pub hash: String,
    pub purpose: String,
    /// Where inside the dashboard it lands (`place::Place`), when the link was given a path;
    /// absent in links stored before paths existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub hash: String,
    pub expires_at: i64,
    /// Binds a sign-in to this session; replaced after each attempt. Empty in sessions stored
    /// before sign-in existed: those cannot sign in (open a new link).
    #[serde(default)]
    pub nonce: String,
    /// When the owner signed in on this session; `None`: only the deep link.
    #[serde(default)]
    pub signed_in_at: Option<i64>,
    /// The path of the place its deep link lands on (`place::Place`); `None`: the top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

impl Session {
    pub fn authentication(&self) -> Authentication {
        match self.signed_in_at {
            Some(_) => Authentication::OwnerSignIn,
            None => Authentication::DeepLink,
        }
    }
}
