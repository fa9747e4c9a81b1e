//! Subcommands; each parses arguments into a library config and calls the library.
pub(crate) mod model;
