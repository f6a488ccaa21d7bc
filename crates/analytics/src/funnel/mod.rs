//! funnel: to be built.
