//! Each CA generation carries its own JWT-SVID signing key, which moves with the generation
//! through `rotate prepare|activate|finish` (in a CA directory and in the database), and a CA
//! directory made before JWT-SVIDs still loads and rotates into one that has a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ward_ca::authority::Authority;
use ward_ca::keys::dir::rotation::{self, IssuerRole, NEXT, PREVIOUS};
use ward_ca::keys::dir::JWT_KEY;

fn kids(dir: &Path) -> Vec<(IssuerRole, String)> {
    let a = Authority::load(dir, &"example.org".parse().unwrap()).unwrap();
    a.jwt_keys
        .iter()
        .map(|(role, key)| (*role, key.kid().to_owned()))
        .collect()
}

fn signer(dir: &Path) -> Option<String> {
    let a = Authority::load(dir, &"example.org".parse().unwrap()).unwrap();
    a.jwt_signer().map(|k| k.kid().to_owned())
}

#[test]
fn the_jwt_key_moves_with_its_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    ward_ca::keys::dir::init(&dir, &"example.org".parse().unwrap(), false).unwrap();
    let mode = std::fs::metadata(dir.join(JWT_KEY))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let first = signer(&dir).expect("a new CA signs JWT-SVIDs");

    rotation::prepare(&dir, false, 0, Default::default()).unwrap();
    assert!(dir.join(NEXT).join(JWT_KEY).exists());
    let prepared = kids(&dir);
    assert_eq!(prepared.len(), 2, "{prepared:?}");
    assert_eq!(prepared[0], (IssuerRole::Signing, first.clone()));
    let next = prepared[1].1.clone();
    assert_ne!(next, first);
    assert_eq!(signer(&dir), Some(first.clone()), "published, not signing");

    rotation::activate(&dir, 1000, 1, false).unwrap();
    assert_eq!(signer(&dir), Some(next.clone()));
    assert_eq!(
        kids(&dir),
        vec![
            (IssuerRole::Signing, next.clone()),
            (IssuerRole::Previous, first)
        ],
        "the previous key still verifies what it signed"
    );

    rotation::finish(&dir).unwrap();
    assert_eq!(kids(&dir), vec![(IssuerRole::Signing, next)]);
}

#[test]
fn a_ca_made_before_jwt_svids_loads_and_rotates_into_one_with_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    ward_ca::keys::dir::init(&dir, &"example.org".parse().unwrap(), false).unwrap();
    std::fs::remove_file(dir.join(JWT_KEY)).unwrap();
    assert_eq!(signer(&dir), None, "no key: no JWT-SVIDs, but the CA loads");

    rotation::prepare(&dir, false, 0, Default::default()).unwrap();
    rotation::activate(&dir, 1000, 1, false).unwrap();
    assert!(signer(&dir).is_some(), "the new generation signs JWT-SVIDs");
    assert!(
        !dir.join(PREVIOUS).join(JWT_KEY).exists(),
        "no key of another generation is left in previous/"
    );
    assert_eq!(kids(&dir).len(), 1);

    // A key others can read is refused, as every CA key is.
    std::fs::set_permissions(dir.join(JWT_KEY), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Authority::load(&dir, &"example.org".parse().unwrap()).is_err());
}
