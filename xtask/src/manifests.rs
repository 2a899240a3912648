//! `cargo xtask manifests <scenario>`: the objects a scenario applies, as YAML for kubectl users.

pub fn run(flags: &crate::flags::Manifests) -> anyhow::Result<()> {
    let scenario = &flags.scenario;
    let images = crate::cluster::images::placeholders().objects();
    let objects = crate::cluster::objects::manifests(scenario, &images)?;
    print!("{}", crate::cluster::objects::to_yaml(&objects)?);
    eprintln!("# image tags are content hashes, known once `cargo xtask up` has built the images");
    Ok(())
}
