//! attribution: to be built.
