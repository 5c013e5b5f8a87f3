//! The registries hold exactly the plugins this build names, seen from a crate that only
//! depends on `nnlens-plugins` (as the CLI, benches and other tests do).

#[test]
fn every_plugin_is_linked_and_registered() {
    nnlens_plugins::link();
    let backends: Vec<&str> = nnlens_core::backends().iter().map(|b| b.name).collect();
    assert_eq!(backends, nnlens_plugins::EXPECTED_BACKENDS);
    let metrics: Vec<&str> = nnlens_core::metrics().iter().map(|m| m.name).collect();
    assert_eq!(metrics, nnlens_plugins::EXPECTED_METRICS);
    for b in nnlens_core::backends() {
        assert!(!b.description.is_empty(), "{} has no description", b.name);
    }
}
