//! With the `tch` feature, the folder of the libtorch nnlens-tch was built against (its
//! `libtorch_lib` metadata) becomes the binary's run-time search path, so that `nnlens` runs
//! without `LD_LIBRARY_PATH` while that torch install stays where it is. When it is gone, the
//! system's loader refuses to start the binary with one line naming the missing library.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_NNLENS_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_NNLENS_TCH_LIBTORCH_LIB")
        && !lib.is_empty()
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib}");
    }
}
