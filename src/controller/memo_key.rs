//! How the operator keys what it remembers about each object: `namespace/name`, and a compact hash of it
//! per controller.

use std::hash::{DefaultHasher, Hash, Hasher};

use kube::Resource;

/// How the operator keys what it remembers about one object of one controller (an object and a
/// VaultProtection of the same name are different objects): a hash of the controller's name and the
/// object's `namespace/name`, 8 bytes where a `String` key costs some 60 per object in each map.
///
/// Beside the key comes a second hash of the same, the salt: values kept by the key are salted with it
/// ([`MemoKey::salted`]). Two objects whose keys collide (odds about n²/2⁶⁵: 3·10⁻¹² for 10,000
/// objects) then only overwrite each other's entries and find values that match neither of them: a
/// status written once more or an Event not held back, never a needed write or Event skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoKey {
    key: u64,
    salt: u64,
}

impl MemoKey {
    pub fn new(controller: &str, key: &str) -> Self {
        let hash = |part: u8| {
            let mut hasher = DefaultHasher::new();
            (part, controller, key).hash(&mut hasher);
            hasher.finish()
        };
        Self {
            key: hash(0),
            salt: hash(1),
        }
    }

    /// What the object's entries are kept by.
    pub fn key(self) -> u64 {
        self.key
    }

    /// `value` as kept for this object: salted with its identity.
    pub fn salted(self, value: u64) -> u64 {
        let mut hasher = DefaultHasher::new();
        (self.salt, value).hash(&mut hasher);
        hasher.finish()
    }
}

/// `namespace/name`, for logs and metrics.
pub fn key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}
