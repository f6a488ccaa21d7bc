//! Nothing here: the suite lives in e2e/.
