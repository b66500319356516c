//! cloudsync
