//! lifecycle: to be built.
