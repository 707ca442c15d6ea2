//! Compiles the `.proto` files with protox (pure Rust), so no system `protoc` is needed.

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
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
