//! Subcommands; each parses arguments into a library config and calls the library.
pub(crate) mod dedup;
pub(crate) mod eval;
pub(crate) mod model;
pub(crate) mod prep;
pub(crate) mod train;
