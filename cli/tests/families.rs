//! Each metric family's own flags: `nnlens run <metric> --help` lists its family's flags only,
//! another family's flag is a usage error (status 2, one line), and gradient metrics pick among
//! the backends that give gradients.

mod common;
use common::{fails, nnlens, stdout};

/// Runs a command that must be a usage error: status 2, one line naming `needle`.
fn usage_error(args: &[&str], needle: &str) {
    let out = nnlens().arg("-q").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "{args:?}: {stderr}");
}

#[test]
fn help_of_a_metric_lists_its_familys_flags_only() {
    let help = stdout(&["run", "nvi", "--help"]);
    assert!(help.contains("--transformations") && help.contains("--param"), "{help}");
    for other in ["--sim-fn", "--nb-samples", "--taus", "--reference"] {
        assert!(!help.contains(other), "nvi --help lists {other}: {help}");
    }
    let help = stdout(&["run", "similarity", "--help"]);
    assert!(help.contains("--sim-fn") && help.contains("[default: auto]"), "{help}");
    assert!(!help.contains("--transformations") && !help.contains("--nb-samples"), "{help}");
    let help = stdout(&["run", "performance", "--help"]);
    assert!(help.contains("--metric") && help.contains("--taus"), "{help}");
    // `nnlens run --help` lists every registered metric.
    let help = stdout(&["run", "--help"]);
    for metric in ["nvi", "linearity", "similarity", "influence", "performance"] {
        assert!(help.contains(metric), "run --help lacks {metric}: {help}");
    }
}

#[test]
fn another_familys_flag_is_a_usage_error() {
    usage_error(&["run", "nvi", "--samples", "3", "--sim-fn", "grad_dot"], "--sim-fn");
    usage_error(&["run", "similarity", "--per-class"], "--per-class");
    usage_error(&["run", "linearity", "--transformations", "rotation:n=2"], "--transformations");
    usage_error(&["run", "influence", "-p", "alpha=0.1"], "-p");
    usage_error(&["run", "linearity", "--activations", "a.npy"], "--activations");
    usage_error(&["run"], "subcommand");
}

#[test]
fn gradient_metrics_name_the_backends_that_give_gradients() {
    let e = fails(&["run", "similarity", "--reference", "5", "--backend", "tract"]);
    assert!(e.contains("tract") && e.contains("gives no gradients") && e.contains("candle"), "{e}");
}
