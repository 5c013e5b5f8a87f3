//! Finds the libtorch folder torch-sys linked against (its `libtorch_lib` metadata, only with
//! the `tch` feature) and
//! - bakes it into this crate (`NNLENS_LIBTORCH_LIB`, to name it in messages and to find
//!   `libtorch_cuda.so` at run time),
//! - embeds it as the run-time search path of this crate's own test binaries,
//! - passes it on as `DEP_NNLENS_TCH_LIBTORCH_LIB` to the crates that link this one (the CLI
//!   and the tests embed it in their binaries the same way), so that a binary built against a
//!   torch wheel runs without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    println!("cargo:rustc-env=NNLENS_LIBTORCH_LIB={lib}");
    if !lib.is_empty() {
        println!("cargo:libtorch_lib={lib}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
