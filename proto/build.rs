//! Compiles the `.proto` files with protox (pure Rust), so no system `protoc` is needed,
//! and writes the field numbers of every message as constants (`proto::fields`), so the
//! hand-written readers and writers name each field from the schema instead of a literal.

use std::fmt::Write as _;

/// Each package's module under `proto::fields`, named as the crate names its types.
const FIELD_MODULES: [(&str, &str); 3] = [
    ("prometheus", "prometheus"),
    ("io.prometheus.write.v2", "v2"),
    ("pipeline.v1", "records"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/prometheus/remote.proto",
        "protos/io/prometheus/write/v2/types.proto",
        "protos/pipeline/records.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["protos"])?;

    let mut constants = String::new();
    for (package, module) in FIELD_MODULES {
        writeln!(constants, "/// Field numbers of package `{package}`.")?;
        writeln!(constants, "pub mod {module} {{")?;
        for file in descriptors.file.iter().filter(|f| f.package() == package) {
            for message in &file.message_type {
                let prefix = screaming_snake(message.name());
                let nested = message.nested_type.iter().map(|inner| {
                    // Map entries; deeper nesting would need its own prefix here.
                    assert!(inner.nested_type.is_empty(), "nested in {}", inner.name());
                    (format!("{prefix}_{}", screaming_snake(inner.name())), inner)
                });
                for (prefix, message) in std::iter::once((prefix.clone(), message)).chain(nested) {
                    for field in &message.field {
                        let name = screaming_snake(field.name());
                        writeln!(
                            constants,
                            "    /// `{}.{}`.\n    pub const {prefix}_{name}: u32 = {};",
                            message.name(),
                            field.name(),
                            field.number()
                        )?;
                    }
                }
            }
        }
        writeln!(constants, "}}")?;
    }
    let out_dir = std::env::var("OUT_DIR")?;
    std::fs::write(format!("{out_dir}/fields.rs"), constants)?;

    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}

/// `TimeSeries` and `labels_refs` as `TIME_SERIES` and `LABELS_REFS`.
fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    for (index, character) in name.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 && !out.ends_with('_') {
            out.push('_');
        }
        out.push(character.to_ascii_uppercase());
    }
    out
}
