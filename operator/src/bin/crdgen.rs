//! Prints the `SocketFleet` CRD as YAML (`make crds` writes it to `crds/` and the chart).
fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("--chart") => print!("{}", socketfleet_operator::crdgen::chart_crd_template()?),
        _ => print!("{}", socketfleet_operator::crdgen::crd_yaml()?),
    }
    Ok(())
}
