//! A worker that answers every request with "hello": the baseline for wasm size and for
//! throughput. `GET /log` also writes one JSON log line the size of the provider's request log,
//! to measure what logging costs under the same runtime.

#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    _env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    if req.path() == "/log" {
        worker::console_log!(
            "{{\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"req_0123456789abcdef\",\"method\":\"GET\",\"path\":\"/log\",\"route\":\"log\",\"status\":200,\"duration_ms\":0,\"error\":null}}"
        );
    }
    worker::Response::ok("hello")
}
