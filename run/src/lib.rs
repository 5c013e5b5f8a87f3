//! # nnlens-run
//!
//! What the command line of every metric family shares, so that a family's CLI code lives in
//! its own crate (behind its `cli` feature) and the `nnlens` binary stays a thin layer:
//!
//! | item | what it is |
//! | --- | --- |
//! | [`Runner`], [`register_runner!`] | the seam: a family's flags, how it runs, how it redraws a saved result |
//! | [`add_commands`], [`dispatch`], [`plot`] | `nnlens run <metric>`, `nnlens plot` and the runners' own commands, built from the registry |
//! | [`args`] | the flags every family shares: [`ModelArgs`], [`DataArgs`]; [`RunContext`] (seed, quiet, format) |
//! | [`inputs`] | models (by backend, gradient backends included) and datasets named on the command line |
//! | [`atomic`] | result directories written atomically ([`OutDir`]), Ctrl-C |
//! | [`shard`] | `--shard K/N` and `auto`, shard state files, `nnlens merge`'s checks |
//! | [`slurm`] | `nnlens submit slurm` (job arrays and the merge job) and `nnlens status` |
//! | [`output`] | logging, progress bars, tables, JSON; [`out!`] |
//! | [`process`] | allocator and thread settings at start-up, a closed stdout, errors on one line |
//! | [`charts`] | PNG and SVG of a figure staged in a result directory |
//! | [`assets`] | the embedded model and images, the default of every command |
//!
//! Errors are `anyhow` here: this crate and the families' `cli` modules are the command line,
//! split by family; the libraries under them keep their `thiserror` types.
#![warn(missing_docs)]

pub mod args;
pub mod assets;
pub mod atomic;
pub mod charts;
pub mod inputs;
#[macro_use]
pub mod output;
pub mod process;
mod runner;
pub mod shard;
pub mod slurm;

pub use args::{Color, DataArgs, Format, ModelArgs, RunContext, Scale};
pub use atomic::{MANIFEST, OutDir};
pub use runner::{
    CommandMerger, Runner, RunnerEntry, add_commands, dispatch, merge, plot, runnable, runners,
};
pub use shard::ShardArgs;

#[doc(hidden)]
pub use inventory as __inventory;
