//! A worker that answers every request with "hello": the wasm size baseline.

#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    _req: worker::Request,
    _env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    worker::Response::ok("hello")
}
