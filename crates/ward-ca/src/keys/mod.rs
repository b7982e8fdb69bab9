//! Where the CA's own key material persists: a CA directory (dir, with its rotation steps as
//! file operations), the database with its keys sealed (db), under a key-encryption key (kek).

pub mod db;
pub mod dir;
pub mod error;
pub mod kek;

pub use error::KeysError;
