//! Integration tests of the collection service against a real PostgreSQL:
//! each test gets a fresh migrated database of its own.

mod appends;
mod helpers;
mod imports;
mod sources;
