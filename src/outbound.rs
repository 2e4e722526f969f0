//! Outbound HTTP (Stripe, the upstream registrar, operator backends) with a timeout.
//!
//! Invariant: a call either returns the peer's status and body, or `Err` for a transport
//! failure (network, timeout), which callers treat as transient and retry with the same
//! idempotency key.

use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::Value;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Delay, Method};

/// Default time a peer gets to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Sends one request; `body` is sent as is with `content_type`.
///
/// Through the runtime's own `Request` and `fetch` (as `rpc::transport` does): `worker`'s
/// `RequestInit` conversion and `Response` wrapper were 11 KB of the wasm for what this needs.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<(String, &str)>,
) -> Result<Answer, String> {
    let js = |e: JsValue| e.as_string().unwrap_or_else(|| format!("{e:?}"));
    let h = web_sys::Headers::new().map_err(js)?;
    for (k, v) in headers {
        h.set(k, v).map_err(js)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    if let Some((text, content_type)) = body {
        h.set("content-type", content_type).map_err(js)?;
        init.set_body(&JsValue::from_str(&text));
    }
    init.set_headers(&h);
    let controller = web_sys::AbortController::new().map_err(js)?;
    init.set_signal(Some(&controller.signal()));
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(js)?;
    crate::meter::subrequest();
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let call = JsFuture::from(scope.fetch_with_request(&request));
    let timer = Box::pin(Delay::from(TIMEOUT));
    let response: web_sys::Response = match select(call, timer).await {
        Either::Left((result, _)) => result.and_then(|r| r.dyn_into()).map_err(js)?,
        Either::Right(_) => {
            controller.abort();
            return Err(format!("no answer within {} s", TIMEOUT.as_secs()));
        }
    };
    let status = response.status();
    let text = JsFuture::from(response.text().map_err(js)?)
        .await
        .map_err(js)?
        .as_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}
