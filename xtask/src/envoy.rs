//! `cargo xtask envoy`: makes sure the pinned Envoy is there, installing it when it is not.

pub fn run() -> anyhow::Result<()> {
    let root = crate::project::root();
    let bin = mesh::envoy::find(&root, &mut |line| eprintln!("==> {line}"))?;
    let version = mesh::envoy::version(&bin)?;
    println!("envoy {version}: {}", bin.display());
    Ok(())
}
