//! The shape of the house, checked from the resolved dependency graph (`cargo metadata`):
//! services never depend on services (they call each other through gRPC clients), shared
//! crates never depend on services, and the analytics and projection crates stay pure — no
//! tonic, sqlx or tokio anywhere beneath them. And every crate uses what it declares: a dependency no source
//! names is dead weight in every build, and hides what the crate really stands on.

use std::collections::{BTreeMap, BTreeSet};

const SERVICES: &[&str] = &[
    "touchline-collection",
    "touchline-governance",
    "touchline-identity",
    "touchline-modeling",
    "touchline-reporting",
];
const SHARED: &[&str] = &[
    "touchline-proto",
    "touchline-error",
    "touchline-telemetry",
    "touchline-auth",
    "touchline-db",
    "touchline-runtime",
    "touchline-pipeline",
    "touchline-webhooks",
    "touchline-bounds",
    "touchline-analytics",
    "touchline-projection",
];
/// The rest of the workspace: the binary that mounts every service, and what only tests and
/// benchmarks use.
const ASSEMBLY: &[&str] = &[
    "touchline",
    "touchline-testkit",
    "touchline-sim",
    "touchline-e2e",
];

/// Package name → the names of its normal (non-dev, non-build) dependencies, resolved.
fn graph() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    // Not offline: the resolve names every platform's crates, and a fresh machine has fetched
    // only this platform's for the build.
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = node["id"].as_str().and_then(|id| names.get(id)) else {
            continue;
        };
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null())
            })
            .filter_map(|d| d["pkg"].as_str().and_then(|id| names.get(id)))
            .map(|n| (*n).to_owned())
            .collect();
        graph.insert((*name).to_owned(), deps);
    }
    Ok(graph)
}

fn beneath(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        for dep in graph.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn services_and_shared_crates_depend_only_where_the_house_allows() -> anyhow::Result<()> {
    let graph = graph()?;
    // The binary mounts every service: the graph is read right, so the checks below can fail.
    let binary = beneath(&graph, "touchline");
    // A new crate has to take a side before the checks below can speak for it.
    let unplaced: Vec<&String> = graph
        .keys()
        .filter(|name| name.starts_with("touchline"))
        .filter(|name| {
            ![SERVICES, SHARED, ASSEMBLY]
                .concat()
                .contains(&name.as_str())
        })
        .collect();
    assert!(unplaced.is_empty(), "crates in no list: {unplaced:?}");
    assert!(SERVICES.iter().all(|s| binary.contains(*s)), "{binary:?}");
    for crate_name in SERVICES.iter().chain(SHARED) {
        let below = beneath(&graph, crate_name);
        anyhow::ensure!(
            graph.contains_key(*crate_name),
            "{crate_name} is in the workspace"
        );
        let services: Vec<&&str> = SERVICES.iter().filter(|s| below.contains(**s)).collect();
        assert!(
            services.is_empty(),
            "{crate_name} depends on the services {services:?}"
        );
    }
    for pure_crate in ["touchline-analytics", "touchline-projection"] {
        let pure = beneath(&graph, pure_crate);
        for io in ["tonic", "sqlx", "tokio", "redis"] {
            assert!(!pure.contains(io), "{pure_crate} pulls in {io}");
        }
    }
    Ok(())
}

/// Declared dependencies that no source of the crate names, allowed with the reason.
const NAMED_ELSEWHERE: &[(&str, &str, &str)] = &[(
    "touchline-proto",
    "tonic-prost",
    "the code generated into OUT_DIR names it",
)];

/// The `.rs` text of every file under `path` (a file or a folder).
fn sources(path: &std::path::Path, out: &mut String) -> std::io::Result<()> {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(path)?);
        }
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        sources(&entry?.path(), out)?;
    }
    Ok(())
}

/// Whether `text` names `ident` as a whole word.
fn names(text: &str, ident: &str) -> bool {
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ident.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

#[test]
fn every_declared_dependency_is_used_by_the_code_that_declares_it() -> anyhow::Result<()> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()?;
    anyhow::ensure!(output.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut unused = Vec::new();
    let mut checked = 0;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        // Normal dependencies serve the library and binaries (and the build script); what only
        // tests, examples or benches use belongs under dev-dependencies.
        let mut text = String::new();
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .collect();
            let Some(src) = target["src_path"].as_str().map(std::path::Path::new) else {
                continue;
            };
            if kinds.contains(&"custom-build") {
                sources(src, &mut text)?;
            } else if kinds
                .iter()
                .any(|k| ["lib", "bin", "proc-macro"].contains(k))
            {
                sources(src.parent().unwrap_or(src), &mut text)?;
            }
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if !dep["kind"].is_null() {
                continue;
            }
            let declared = dep["name"].as_str().unwrap_or_default();
            let ident = dep["rename"].as_str().unwrap_or(declared).replace('-', "_");
            checked += 1;
            let allowed = NAMED_ELSEWHERE
                .iter()
                .any(|(p, d, _)| *p == name && *d == declared);
            if !allowed && !names(&text, &ident) {
                unused.push(format!("{name} → {declared}"));
            }
        }
    }
    assert!(
        checked > 50,
        "the manifests were read ({checked} dependencies)"
    );
    assert!(
        unused.is_empty(),
        "declared but never named (remove, or move to dev-dependencies): {unused:?}"
    );
    Ok(())
}

/// Every production `.rs` file under `crates/*/src`, with its text. Test modules that live in
/// their own files (`tests.rs`, `*_tests.rs`, `proptests.rs`) are not production code.
fn production_files() -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    fn walk(
        dir: &std::path::Path,
        out: &mut Vec<(std::path::PathBuf, String)>,
    ) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    walk(&path, out)?;
                }
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let test_module =
                name == "tests.rs" || name.ends_with("_tests.rs") || name == "proptests.rs";
            if name.ends_with(".rs") && !test_module {
                let text = std::fs::read_to_string(&path)?;
                out.push((path, text));
            }
        }
        Ok(())
    }
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(crates)? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            walk(&src, &mut files)?;
        }
    }
    Ok(files)
}

/// Past this a file says why it is whole, in a `//! Kept whole: …` line of its charter.
const MAX_FILE_LINES: usize = 600;

#[test]
fn a_production_file_over_600_lines_says_why() -> anyhow::Result<()> {
    let files = production_files()?;
    assert!(files.len() > 100, "the sources were read ({})", files.len());
    let unexplained: Vec<String> = files
        .iter()
        .filter(|(_, text)| text.lines().count() > MAX_FILE_LINES)
        .filter(|(_, text)| {
            !text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.is_empty())
                .any(|l| l.starts_with("//! Kept whole: "))
        })
        .map(|(path, text)| format!("{} ({} lines)", path.display(), text.lines().count()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "split these, or say why they are whole: {unexplained:?}"
    );
    Ok(())
}

/// Where a status may be built by hand: the shared mapping itself, the auth layer's own, and
/// the transport layers that answer before any handler runs.
const STATUS_BUILDERS: &[&str] = &[
    "crates/error/src/",
    "crates/auth/src/",
    "crates/runtime/src/codes.rs",
    "crates/runtime/src/gate.rs",
    "crates/runtime/src/metadata.rs",
    "crates/telemetry/src/",
    "crates/proto/",
];

#[test]
fn services_build_statuses_only_through_the_shared_mapping() -> anyhow::Result<()> {
    let constructors = [
        "Status::new(",
        "Status::invalid_argument(",
        "Status::internal(",
        "Status::unavailable(",
        "Status::not_found(",
        "Status::permission_denied(",
        "Status::unauthenticated(",
        "Status::failed_precondition(",
        "Status::resource_exhausted(",
        "Status::out_of_range(",
        "Status::aborted(",
        "Status::already_exists(",
        "Status::deadline_exceeded(",
        "Status::cancelled(",
        "Status::unimplemented(",
        "Status::data_loss(",
        "Status::with_error_details(",
    ];
    let mut found = Vec::new();
    for (path, text) in production_files()? {
        let shown = path.display().to_string();
        let at = shown
            .find("crates/")
            .map_or(shown.as_str(), |i| &shown[i..]);
        if STATUS_BUILDERS
            .iter()
            .any(|allowed| at.starts_with(allowed))
        {
            continue;
        }
        // A file's own unit tests may build upstream answers to map.
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in production.lines().enumerate() {
            let built = constructors.iter().any(|c| {
                line.match_indices(c).any(|(at, _)| {
                    !line[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|p| p.is_alphanumeric() || p == '_')
                })
            });
            if built {
                found.push(format!("{at}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "build these through an error type and touchline_error::to_status: {found:?}"
    );
    Ok(())
}
