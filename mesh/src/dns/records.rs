//! The table the twin DNS answers from: names and their addresses, shared by every clone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use hickory_proto::rr::Name;

/// The names the twin DNS answers, with their addresses.
///
/// A cheap handle: clones share the same table, so a test can keep one and change the answers
/// of a running [`DnsServer`](super::DnsServer). Names are case-insensitive and a trailing dot
/// is optional: `Server.default.svc.cluster.local.` and `server.default.svc.cluster.local` are
/// the same name. Names are matched exactly: no search domains, no wildcards, so `server` and
/// `server.default.svc.cluster.local` are two entries.
#[derive(Clone, Debug, Default)]
pub struct Records {
    names: Arc<RwLock<HashMap<String, Vec<IpAddr>>>>,
}

impl Records {
    /// An empty table: every name is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the A/AAAA answers for `name` (e.g. "server" or
    /// "server.default.svc.cluster.local"); names are case-insensitive, a trailing dot is
    /// optional. An empty list makes the name exist with no addresses (NODATA).
    pub fn set(&self, name: &str, addrs: Vec<IpAddr>) {
        let key = key_of_str(name);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, addrs);
    }

    /// Forgets `name`: it is unknown again (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let key = key_of_str(name);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// The addresses of `name`, `None` if it is unknown.
    pub fn get(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.get_key(&key_of_str(name))
    }

    /// The addresses of a name from a query, `None` if it is unknown.
    pub(super) fn get_name(&self, name: &Name) -> Option<Vec<IpAddr>> {
        self.get_key(&key_of_name(name))
    }

    fn get_key(&self, key: &str) -> Option<Vec<IpAddr>> {
        // A writer that panicked cannot have left a half-written entry: the map is only ever
        // changed by single inserts and removes, so a poisoned lock is still consistent.
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

/// The key of a name given as text: parsed as a DNS name where possible (so that escapes mean
/// what they mean in a query), else the lowercased text; without its trailing dot.
fn key_of_str(name: &str) -> String {
    match Name::from_ascii(name) {
        Ok(name) => key_of_name(&name),
        Err(_) => {
            let name = name.to_ascii_lowercase();
            match name.strip_suffix('.') {
                Some(stripped) => stripped.to_owned(),
                None => name,
            }
        }
    }
}

/// The key of a name from a query: lowercase ASCII, without the trailing dot.
fn key_of_name(name: &Name) -> String {
    let mut key = name.to_lowercase().to_ascii();
    if key.ends_with('.') {
        key.pop();
    }
    key
}
