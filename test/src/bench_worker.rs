//! The benchmarks' reference workers (`bench/hello`, `bench/floor`, `bench/peer-oauth`): each
//! under its own `wrangler dev`, with its local state in a folder of the caller's, stopped (its
//! whole process group) on drop. The load benchmark probes them until they answer; the
//! cold-start benchmark waits for wrangler's "Ready on" line instead, so that its own request
//! is the isolate's first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, root, wrangler_dev};

/// A `bench/<name>` worker under `wrangler dev`.
pub struct BenchWorker {
    child: Child,
    pub url: String,
    pub log_path: PathBuf,
}

/// Builds `bench/<name>` as the real worker is built, when it is a Rust crate (a JS worker,
/// which wrangler bundles itself, is not built first).
pub fn build_bench(name: &str) -> Result<(), String> {
    let crate_dir = format!("bench/{name}");
    if !root().join(&crate_dir).join("Cargo.toml").is_file() {
        return Ok(());
    }
    let status = Command::new("sh")
        .arg(root().join("scripts/build.sh"))
        .arg(&crate_dir)
        .current_dir(root())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("scripts/build.sh {crate_dir}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("scripts/build.sh {crate_dir} failed"))
}

impl BenchWorker {
    /// Starts `bench/<name>` (built already) with its state in `state`, logging to
    /// `bench/<name>/build/<log>`. It may not be serving yet: see [`BenchWorker::wait_ready`].
    pub fn spawn(name: &str, state: &Path, log: &str) -> Result<BenchWorker, String> {
        let dir = root().join("bench").join(name);
        std::fs::create_dir_all(dir.join("build")).map_err(|e| format!("build folder: {e}"))?;
        let log_path = dir.join("build").join(log);
        let out = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let port = free_port();
        let child = wrangler_dev(port, &dir, state, out)
            .and_then(|mut command| command.spawn())
            .map_err(|e| format!("start wrangler dev: {e}"))?;
        Ok(BenchWorker {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
        })
    }

    /// Waits (90 s at most) for wrangler's "Ready on" line, without sending a request.
    pub fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !std::fs::read_to_string(&self.log_path).is_ok_and(|l| l.contains("Ready on")) {
            if Instant::now() > deadline {
                return Err(format!("not ready in 90 s ({})", self.log_path.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for BenchWorker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
