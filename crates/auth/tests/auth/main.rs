//! Integration tests of touchline-auth: verification, JWKS refetch and the tower layer, all
//! against the committed test-only keys in `tests/fixtures`.

mod helpers;
mod layer;
mod refetch;
mod verify;
