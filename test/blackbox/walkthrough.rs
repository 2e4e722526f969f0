//! The README walkthrough, run literally: every `$ appctl ...` command of its console blocks,
//! against a worker configured like `make dev` (`.dev.vars.example`, the default catalog), with
//! each output line the README shows found in the real output (`…` stands for ids and times).

use std::path::Path;
use std::process::Command;

use app_tests::{root, DevWorker, Options};
use libtest_mimic::Trial;

use crate::common::case;

pub fn trials() -> Vec<Trial> {
    vec![case(
        "walkthrough::the_readme_walkthrough_runs_as_written",
        the_readme_walkthrough_runs_as_written,
    )]
}

struct Step {
    command: String,
    expected: Vec<String>,
}

/// The `$ ` commands and their output lines, from the README's walkthrough section.
fn steps(readme: &str) -> Vec<Step> {
    let start = readme
        .find("## Walkthrough")
        .expect("a Walkthrough section");
    let section = &readme[start..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map(|i| i + 3)
        .unwrap_or(section.len())];
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in section.lines() {
        if line.starts_with("```console") {
            in_console = true;
        } else if line.starts_with("```") {
            in_console = false;
        } else if in_console {
            if let Some(cmd) = line.strip_prefix("$ ") {
                steps.push(Step {
                    command: cmd.to_string(),
                    expected: Vec::new(),
                });
            } else if let Some(step) = steps.last_mut() {
                step.expected.push(line.to_string());
            }
        }
    }
    steps
}

/// `…` in `pattern` matches anything; the rest must appear in order, anchored at both ends.
fn matches(pattern: &str, actual: &str) -> bool {
    let parts: Vec<&str> = pattern.trim_end().split('…').collect();
    let actual = actual.trim_end();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first)
        || !actual.ends_with(last)
        || actual.len() < first.len() + last.len() && parts.len() > 1
    {
        return false;
    }
    if parts.len() == 1 {
        return actual == first;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

fn the_readme_walkthrough_runs_as_written() {
    let status = Command::new("cargo")
        .args(["build", "--quiet", "-p", "app-client", "--bin", "appctl"])
        .current_dir(root())
        .status()
        .expect("cargo build appctl");
    assert!(status.success());
    let bin_dir = root().join("target/debug");
    let worker = DevWorker::start(Options::dev_vars());
    let dir = worker.run_dir.join("walkthrough");
    std::fs::create_dir_all(&dir).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let steps = steps(&readme);
    assert!(
        steps.len() >= 15,
        "the walkthrough has its steps: {}",
        steps.len()
    );
    for step in &steps {
        assert!(step.command.starts_with("appctl "), "{}", step.command);
        let out = run(&step.command, &dir, &bin_dir, &worker);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = text.replace(&worker.base_url, "http://127.0.0.1:8787");
        let fails = step.expected.iter().any(|l| l.starts_with("error:"));
        assert_eq!(!out.status.success(), fails, "$ {}\n{text}", step.command);
        for expected in &step.expected {
            assert!(
                text.lines().any(|l| matches(expected, l)),
                "$ {}\nexpected a line like:\n{expected}\nin:\n{text}",
                step.command
            );
        }
        if step.command.starts_with("appctl simulate") {
            // The stand-in delivers the webhook asynchronously, as Stripe does.
            assert!(worker
                .stand_in
                .wait_for_deliveries(std::time::Duration::from_secs(10)));
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    assert!(dir.join(".env").exists(), "appctl env wrote .env");
}

fn run(command: &str, dir: &Path, bin_dir: &Path, worker: &DevWorker) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("APP_PROVIDER_URL", &worker.base_url)
        .env("APP_STAND_IN_URL", &worker.stand_in.base_url)
        .env_remove("APP_ORCHESTRATOR_SECRET")
        .env_remove("APP_OPERATOR_SECRET")
        .env_remove("APP_CLI_STATE")
        .output()
        .expect("run appctl")
}

#[test]
fn pattern_matching() {
    assert!(matches(
        "resource res_… (paid, project proj_local): complete",
        "resource res_ab12 (paid, project proj_local): complete"
    ));
    assert!(matches(
        "chain ok: … records, last hash …",
        "chain ok: 28 records, last hash b93f"
    ));
    assert!(matches(
        "…  plan.past_due   stripe evt_…",
        "  22  plan.past_due   stripe evt_x   "
    ));
    assert!(!matches(
        "resource res_… : complete",
        "resource res_x : errored"
    ));
    assert!(matches("  PLAN        paid", "  PLAN        paid"));
    assert!(!matches("  PLAN        paid", "  PLAN        paid extra"));
}
