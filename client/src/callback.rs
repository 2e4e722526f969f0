//! The orchestrator's OAuth callback: after the owner approves or denies on the provider's
//! consent page, the browser is sent (303) to the orchestrator's callback with `code` and `state`,
//! or `error=access_denied`. This listens on a local address for that one redirect, answers the
//! browser with a short HTML page, and hands the decision back.
//!
//! Only a redirect whose `state` is the awaited account request id counts, so another page cannot
//! slip its own code in (login CSRF).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Paths the callback answers on: the documented one, and the dev `.dev.vars` one.
pub const PATHS: &[&str] = &["/oauth/callback", "/callback"];

/// What the owner decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approved: the code to exchange at `/oauth/token`.
    Approved { code: String },
    /// Denied or failed: the OAuth `error` (`access_denied`) and its description.
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// Why no decision came.
#[derive(Debug)]
pub enum WaitError {
    TimedOut,
    Io(std::io::Error),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::TimedOut => write!(f, "no answer from the browser in time"),
            WaitError::Io(e) => write!(f, "callback listener: {e}"),
        }
    }
}

/// A bound callback listener.
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Binds `addr` (`127.0.0.1:8788`).
    pub fn bind(addr: &str) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Listener { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the browser until a redirect for `state` arrives or `timeout` passes.
    pub fn wait(&self, state: &str, timeout: Duration) -> Result<Decision, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(decision) = serve(stream, state) {
                        return Ok(decision);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(WaitError::TimedOut);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WaitError::Io(e)),
            }
        }
    }
}

/// What one browser request asks, and the page it gets.
#[derive(Debug, PartialEq, Eq)]
pub struct Handled {
    pub status: u16,
    pub page: String,
    pub decision: Option<Decision>,
}

/// Decides on one request line (`GET /oauth/callback?code=...&state=... HTTP/1.1`).
pub fn handle(request_line: &str, state: &str) -> Handled {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" || !PATHS.contains(&path) {
        return Handled {
            status: 404,
            page: page(
                "Not found",
                "appctl is only waiting for the sign-in answer.",
            ),
            decision: None,
        };
    }
    let params = crate::form_decode(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some(state) {
        return Handled {
            status: 400,
            page: page(
                "Not for this request",
                "This answer is not for the account request appctl is waiting for; it was ignored.",
            ),
            decision: None,
        };
    }
    if let Some(code) = get("code").filter(|c| !c.is_empty()) {
        return Handled {
            status: 200,
            page: page(
                "Approved",
                "The account is linked. You can close this tab and return to the terminal.",
            ),
            decision: Some(Decision::Approved { code }),
        };
    }
    let error = get("error").unwrap_or_else(|| "invalid_request".into());
    Handled {
        status: 200,
        page: page(
            "Not linked",
            "Nothing was linked. You can close this tab; the terminal says what happened.",
        ),
        decision: Some(Decision::Denied {
            error,
            description: get("error_description"),
        }),
    }
}

fn page(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>appctl: {title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>"
    )
}

fn serve(mut stream: TcpStream, state: &str) -> Option<Decision> {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        return None;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let request_line = text.lines().next().unwrap_or("");
    let handled = handle(request_line, state);
    let reason = match handled.status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'none'\r\nConnection: close\r\n\r\n{}",
        handled.status,
        handled.page.len(),
        handled.page
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    handled.decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let ok = handle(
            "GET /oauth/callback?code=c%2B1&state=acctreq_1 HTTP/1.1",
            "acctreq_1",
        );
        assert_eq!(ok.status, 200);
        assert_eq!(ok.decision, Some(Decision::Approved { code: "c+1".into() }));
        let dev_path = handle("GET /callback?code=x&state=s HTTP/1.1", "s");
        assert!(matches!(dev_path.decision, Some(Decision::Approved { .. })));

        let denied = handle(
            "GET /oauth/callback?error=access_denied&state=acctreq_1 HTTP/1.1",
            "acctreq_1",
        );
        assert_eq!(
            denied.decision,
            Some(Decision::Denied {
                error: "access_denied".into(),
                description: None
            })
        );

        let other_state = handle(
            "GET /oauth/callback?code=x&state=evil HTTP/1.1",
            "acctreq_1",
        );
        assert_eq!((other_state.status, other_state.decision), (400, None));
        let no_state = handle("GET /oauth/callback?code=x HTTP/1.1", "acctreq_1");
        assert_eq!(no_state.decision, None);
        let favicon = handle("GET /favicon.ico HTTP/1.1", "acctreq_1");
        assert_eq!((favicon.status, favicon.decision), (404, None));
        assert_eq!(handle("", "s").status, 404);
        assert_eq!(
            handle("POST /oauth/callback?code=x&state=s HTTP/1.1", "s").status,
            404
        );
    }

    #[test]
    fn serves_a_browser() {
        let listener = Listener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let browser = std::thread::spawn(move || {
            let get = |path: &str| {
                let mut s = TcpStream::connect(addr).expect("connect");
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            };
            let favicon = get("/favicon.ico");
            let page = get("/oauth/callback?code=abc&state=acctreq_9");
            (favicon, page)
        });
        let decision = listener
            .wait("acctreq_9", Duration::from_secs(10))
            .expect("decision");
        assert_eq!(decision, Decision::Approved { code: "abc".into() });
        let (favicon, page) = browser.join().expect("browser");
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("close this tab"), "{page}");
    }

    #[test]
    fn times_out() {
        let listener = Listener::bind("127.0.0.1:0").expect("bind");
        let r = listener.wait("s", Duration::from_millis(100));
        assert!(matches!(r, Err(WaitError::TimedOut)));
    }
}
