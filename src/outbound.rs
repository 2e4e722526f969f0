//! Outbound HTTP (Stripe, the upstream registrar, operator backends) with a timeout.
//!
//! Invariant: a call either returns the peer's status and body, or `Err` for a transport
//! failure (network, timeout), which callers treat as transient and retry with the same
//! idempotency key.

use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// Default time a peer gets to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Sends one request; `body` is sent as is with `content_type`.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<(String, &str)>,
) -> Result<Answer, String> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some((text, content_type)) = body {
        h.set("content-type", content_type)
            .map_err(|e| e.to_string())?;
        init.with_body(Some(JsValue::from_str(&text)));
    }
    init.with_headers(h);
    let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    crate::meter::subrequest();
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let call = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(Delay::from(TIMEOUT));
    let mut response = match select(call, timer).await {
        Either::Left((result, _)) => result.map_err(|e| e.to_string())?,
        Either::Right(_) => {
            controller.abort();
            return Err(format!("no answer within {} s", TIMEOUT.as_secs()));
        }
    };
    let status = response.status_code();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}
