//! Generates the Hello API's Rust code and descriptor set with a vendored `protoc`,
//! so building needs no system protobuf compiler.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    // The vendored compiler, named to prost-build directly (no `PROTOC` in the environment).
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("hello_descriptor.bin"))
        .compile_with_config(config, &["hello/v1/hello.proto"], &["."])?;
    println!("cargo:rerun-if-changed=hello/v1/hello.proto");
    Ok(())
}
