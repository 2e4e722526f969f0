//! The transport of calls to Durable Objects: one POST with a JSON body, one JSON answer.
//!
//! A transport failure (object unreachable, reset, not `200`) is `temporarily_unavailable` and
//! changed nothing the caller can observe, so the caller may retry. An answer that does not
//! decode as the operation's answer or error is `internal`.

use domain::errors::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Env, Headers, Response, Stub};

use super::op::{CallError, Encoded, Op, Reply};

/// The object named `name` in namespace `binding`.
pub fn stub(env: &Env, binding: &str, name: &str) -> Result<Stub, ApiError> {
    env.durable_object(binding)
        .and_then(|ns| ns.get_by_name(name))
        .map_err(|_| ApiError::Internal)
}

/// Sends `body` to the object; its answer, decoded as the answer or error of `O`.
pub async fn call<O: Op>(
    stub: Stub,
    body: &impl Serialize,
) -> Result<O::Answer, CallError<O::Error>> {
    let text = post(stub, body).await.map_err(CallError::Transport)?;
    match decode(&text).map_err(CallError::Transport)? {
        Reply::Ok(answer) => Ok(answer),
        Reply::Err(error) => Err(CallError::Refused(error)),
    }
}

/// Decodes JSON text as `T`: the runtime's `JSON.parse`, then serde_wasm_bindgen, the decoder
/// the objects already use for their calls (`Request::json`) and for SQLite rows. serde_json's
/// own parser, instantiated once more for every type read (answers, the stored account), cost
/// 23.5 KB of gzip (BENCHMARKS.md, "Stop 25"). Numbers arrive as JS numbers, as every value
/// crossing to an object already did: integers beyond 2^53 do not round-trip.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let parsed = worker::js_sys::JSON::parse(text).map_err(|_| ApiError::Internal)?;
    serde_wasm_bindgen::from_value(parsed).map_err(|_| ApiError::Internal)
}

/// Sends `body` to the object; the text it answered.
pub async fn post(stub: Stub, body: &impl Serialize) -> Result<String, ApiError> {
    let unavailable = || ApiError::Unavailable("account storage".into());
    let json = serde_json::to_string(body).map_err(|_| ApiError::Internal)?;
    // The runtime's own request, `fetch` and `text()`: `worker`'s `Request` reads its URL, headers
    // and `cf` on creation, and its `Response::text` reads the answer chunk by chunk through a
    // stream reader, one promise per chunk.
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&json));
    let req = web_sys::Request::new_with_str_and_init("https://internal/", &init)
        .map_err(|_| ApiError::Internal)?;
    let object: worker::worker_sys::DurableObject = stub.into_rpc();
    let promise = object.fetch_with_request(&req).map_err(|_| unavailable())?;
    let resp: web_sys::Response = JsFuture::from(promise)
        .await
        .and_then(|r| r.dyn_into())
        .map_err(|_| unavailable())?;
    if resp.status() != 200 {
        return Err(unavailable());
    }
    JsFuture::from(resp.text().map_err(|_| unavailable())?)
        .await
        .map_err(|_| unavailable())?
        .as_string()
        .ok_or_else(unavailable)
}

/// The object's HTTP answer: the encoded answer, or a `500` (the caller sees it as unavailable)
/// when it could not be encoded.
pub fn respond(encoded: serde_json::Result<Encoded>) -> worker::Result<Response> {
    match encoded {
        Ok(encoded) => {
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            Ok(Response::ok(encoded.into_string())?.with_headers(headers))
        }
        Err(e) => Response::error(format!("answer not encoded: {e}"), 500),
    }
}
