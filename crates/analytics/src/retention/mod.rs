//! retention: to be built.
