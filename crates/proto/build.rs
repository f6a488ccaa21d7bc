// protoc comes from nowhere on the machine: `protox` (a pure-Rust protobuf
// compiler) parses proto/ and hands the descriptors to tonic-prost-build.
// Besides the Rust code this writes two artefacts: the encoded descriptor set
// served by gRPC reflection, and the RPC → required scope table read from the
// `touchline.common.v1.required_scope` method option.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=TOUCHLINE_PROTO_ROOT");
    let proto_root = match std::env::var_os("TOUCHLINE_PROTO_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto"),
    };
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(&files)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("touchline_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    std::fs::write(
        out_dir.join("required_scopes.rs"),
        scope_table(&compiler.descriptor_pool())?,
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(compiler.file_descriptor_set())?;
    name_default_stubs(&out_dir)?;
    Ok(())
}

/// tonic's default stubs all answer "Not yet implemented"; callers should
/// learn which RPC is missing, so each stub is rewritten to name itself.
fn name_default_stubs(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    const STUB: &str = "Status::unimplemented(\"Not yet implemented\")";
    for entry in std::fs::read_dir(out_dir)? {
        let path = entry?.path();
        let Some(package) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".rs"))
            .filter(|name| name.starts_with("touchline."))
            .map(str::to_owned)
        else {
            continue;
        };
        let source = std::fs::read_to_string(&path)?;
        let (mut service, mut method) = (String::new(), String::new());
        let mut rewritten = String::with_capacity(source.len() + 1024);
        for line in source.lines() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("pub trait ") {
                service = rest
                    .split([':', ' ', '<'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            } else if let Some(rest) = trimmed.strip_prefix("async fn ") {
                method = pascal_case(rest.split('(').next().unwrap_or_default());
            }
            if line.contains(STUB) {
                let named = format!(
                    "Status::unimplemented(\"{package}.{service}/{method} is not implemented yet\")"
                );
                rewritten.push_str(&line.replace(STUB, &named));
            } else {
                rewritten.push_str(line);
            }
            rewritten.push('\n');
        }
        std::fs::write(&path, rewritten)?;
    }
    Ok(())
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every touchline RPC must name its scope; a missing one fails the build so
/// that an RPC can never ship unguarded.
fn scope_table(pool: &prost_reflect::DescriptorPool) -> Result<String, Box<dyn std::error::Error>> {
    let extension = pool
        .get_extension_by_name("touchline.common.v1.required_scope")
        .ok_or("extension touchline.common.v1.required_scope not found")?;
    let mut rows = Vec::new();
    for service in pool.services() {
        if !service.full_name().starts_with("touchline.") {
            continue;
        }
        for method in service.methods() {
            let options = method.options();
            let scope = options
                .get_extension(&extension)
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default();
            if scope.is_empty() {
                return Err(format!(
                    "rpc {}.{} declares no required_scope",
                    service.full_name(),
                    method.name()
                )
                .into());
            }
            rows.push((format!("/{}/{}", service.full_name(), method.name()), scope));
        }
    }
    rows.sort();
    let mut out = String::from("/// Every RPC's gRPC path and the scope a caller needs for it.\n");
    out.push_str("pub const REQUIRED_SCOPES: &[(&str, &str)] = &[\n");
    for (path, scope) in rows {
        writeln!(out, "    ({path:?}, {scope:?}),")?;
    }
    out.push_str("];\n");
    Ok(out)
}
