//! `crds/` and the chart's CRD template are generated from `operator/src/crd.rs`; this test
//! fails when either was edited by hand or not regenerated (`make crds`).

use std::path::Path;

use socketfleet_operator::crdgen::{CHART_CRD_PATH, CRD_PATH, chart_crd_template, crd_yaml};

fn committed(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}; run `make crds`"))
}

#[test]
fn the_committed_crd_matches_the_code() {
    assert!(committed(CRD_PATH) == crd_yaml().expect("yaml"), "{CRD_PATH} is out of date: run `make crds`");
}

#[test]
fn the_chart_crd_template_matches_the_code() {
    assert!(committed(CHART_CRD_PATH) == chart_crd_template().expect("yaml"), "{CHART_CRD_PATH} is out of date: run `make crds`");
}
