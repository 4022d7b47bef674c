//! Building the server, the plugins and the rag examples in release, and
//! finding what cargo produced (from its JSON messages, so `CARGO_TARGET_DIR`
//! and profiles need no guessing).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde_json::Value;

/// Crates built for the benchmarks: the host, the default plugins, and the
/// fixture plugin whose `echo` is the trivial tool of the host-overhead rows.
const PACKAGES: &[&str] = &[
    "agentflow-host",
    "agentflow-fixture",
    "agentflow-bash",
    "agentflow-vm",
    "agentflow-rag",
];

/// What the release build produced.
pub struct Artifacts {
    /// The `agentflow` server binary.
    pub agentflow: PathBuf,
    /// Plugin libraries by plugin name (`bash` for `libagentflow_bash.so`).
    pub plugins: BTreeMap<String, PathBuf>,
    /// The rag plugin's synthetic corpus generator (`examples/gen_corpus.rs`).
    pub gen_corpus: Option<PathBuf>,
    /// Searches a Faiss index file as the rag plugin does (`examples/faiss_search.rs`).
    pub faiss_search: Option<PathBuf>,
    /// Crates that failed to build, for the report.
    pub missing: Vec<String>,
}

impl Artifacts {
    /// The library of plugin `name`, or why it is not there.
    pub fn plugin(&self, name: &str) -> anyhow::Result<&Path> {
        match self.plugins.get(name) {
            Some(p) => Ok(p),
            None => bail!("libagentflow_{name}.so was not built (see the build output)"),
        }
    }
}

/// Builds everything in release. A crate that fails to build does not stop
/// the others (`--keep-going`); its scenarios report it instead.
pub fn build(root: &Path) -> anyhow::Result<Artifacts> {
    let mut args = vec!["build", "--release", "--keep-going"];
    for p in PACKAGES {
        args.extend(["-p", p]);
    }
    let mut found = cargo(root, &args)?;
    let examples = cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "agentflow-rag",
            "--example",
            "gen_corpus",
            "--example",
            "faiss_search",
        ],
    )?;
    found.extend(examples);

    let mut agentflow = None;
    let mut gen_corpus = None;
    let mut faiss_search = None;
    let mut plugins = BTreeMap::new();
    for file in found {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "agentflow" {
            agentflow = Some(file);
        } else if name == "gen_corpus" {
            gen_corpus = Some(file);
        } else if name == "faiss_search" {
            faiss_search = Some(file);
        } else if let Some(plugin) = name
            .strip_prefix("libagentflow_")
            .and_then(|n| n.strip_suffix(".so"))
        {
            plugins.insert(plugin.to_string(), file);
        }
    }
    let Some(agentflow) = agentflow else {
        bail!("the agentflow binary did not build; nothing to measure");
    };
    let mut missing: Vec<String> = ["fixture", "bash", "vm", "rag"]
        .iter()
        .filter(|p| !plugins.contains_key(**p))
        .map(|p| format!("agentflow-{p}"))
        .collect();
    if gen_corpus.is_none() {
        missing.push("agentflow-rag example gen_corpus".into());
    }
    if faiss_search.is_none() {
        missing.push("agentflow-rag example faiss_search".into());
    }
    for m in &missing {
        eprintln!("xtask bench: {m} did not build; its rows are reported as not measured");
    }
    Ok(Artifacts {
        agentflow,
        plugins,
        gen_corpus,
        faiss_search,
        missing,
    })
}

/// Runs one cargo command and returns the executables and shared libraries it produced.
fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask bench: cargo {}", args.join(" "));
    let mut child = Command::new(&cargo)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {cargo}"))?;
    let mut files = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            if let Some(exe) = msg["executable"].as_str() {
                files.push(PathBuf::from(exe));
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".so")) {
                    files.push(PathBuf::from(f));
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        eprintln!("xtask bench: `cargo {}` failed ({status})", args.join(" "));
    }
    Ok(files)
}
