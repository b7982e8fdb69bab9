//! The names of a CA generation's parts, as files in a CA directory and as the names errors
//! give the same parts held in memory or in the database: one vocabulary for every place a
//! CA is kept.

/// Root certificate file name.
pub const ROOT_CERT: &str = "root.pem";
/// Root private key file name.
pub const ROOT_KEY: &str = "root.key";
/// Issuer (intermediate) certificate file name.
pub const ISSUER_CERT: &str = "issuer.pem";
/// Issuer private key file name.
pub const ISSUER_KEY: &str = "issuer.key";
/// JWT-SVID signing key file name (P-256; a generation made before JWT-SVIDs has none).
pub const JWT_KEY: &str = "jwt.key";
/// Trust bundle (roots) file name.
pub const BUNDLE: &str = "bundle.pem";

/// Directory of the prepared, not yet signing, generation.
pub const NEXT: &str = "next";
/// Directory of the generation that signed before the last activation.
pub const PREVIOUS: &str = "previous";
/// The rotation journal.
pub const JOURNAL: &str = "rotation.json";
