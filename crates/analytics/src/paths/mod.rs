//! paths: to be built.
