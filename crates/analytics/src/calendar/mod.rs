//! calendar: to be built.
