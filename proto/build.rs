//! Generates the Hello API's Rust code and descriptor set with a vendored `protoc`,
//! so building needs no system protobuf compiler.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe_set_protoc(&protoc);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("hello_descriptor.bin"))
        .compile_protos(&["hello/v1/hello.proto"], &["."])?;
    println!("cargo:rerun-if-changed=hello/v1/hello.proto");
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // The build script has one thread; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", path) };
}
