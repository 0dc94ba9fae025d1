//! The object store: every pod, PVC, namespace and lease as JSON, one global resourceVersion
//! counter bumped on every write, and a bounded history of changes that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

/// The kinds kube-sim stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    PersistentVolumeClaim,
    Namespace,
    /// `coordination.k8s.io/v1` Lease.
    Lease,
    ConfigMap,
    Secret,
    ServiceAccount,
    /// Stored only: no cluster IP, node port or load balancer is allocated.
    Service,
    /// `apps/v1` Deployment, run by [`crate::controller`].
    Deployment,
    /// `rbac.authorization.k8s.io/v1` Role, enforced for service-account tokens.
    Role,
    /// `rbac.authorization.k8s.io/v1` RoleBinding.
    RoleBinding,
    /// `networking.k8s.io/v1` NetworkPolicy, stored only (not enforced).
    NetworkPolicy,
    /// `policy/v1` PodDisruptionBudget, stored only (kube-sim has no eviction API).
    PodDisruptionBudget,
}

impl Kind {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::Namespace => "Namespace",
            Self::Lease => "Lease",
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::ServiceAccount => "ServiceAccount",
            Self::Service => "Service",
            Self::Deployment => "Deployment",
            Self::Role => "Role",
            Self::RoleBinding => "RoleBinding",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
        }
    }

    /// Every namespaced kind, in the order a namespace's deletion removes them (controllers'
    /// objects before what they make, so nothing is recreated).
    pub const NAMESPACED: [Kind; 12] = [
        Self::Deployment,
        Self::Pod,
        Self::PersistentVolumeClaim,
        Self::Lease,
        Self::ConfigMap,
        Self::Secret,
        Self::ServiceAccount,
        Self::Service,
        Self::Role,
        Self::RoleBinding,
        Self::NetworkPolicy,
        Self::PodDisruptionBudget,
    ];

    /// The API group; empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Self::Pod
            | Self::PersistentVolumeClaim
            | Self::Namespace
            | Self::ConfigMap
            | Self::Secret
            | Self::ServiceAccount
            | Self::Service => "",
            Self::Lease => "coordination.k8s.io",
            Self::Deployment => "apps",
            Self::Role | Self::RoleBinding => "rbac.authorization.k8s.io",
            Self::NetworkPolicy => "networking.k8s.io",
            Self::PodDisruptionBudget => "policy",
        }
    }

    /// The `apiVersion` objects of this kind carry.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Pod
            | Self::PersistentVolumeClaim
            | Self::Namespace
            | Self::ConfigMap
            | Self::Secret
            | Self::ServiceAccount
            | Self::Service => "v1",
            Self::Lease => "coordination.k8s.io/v1",
            Self::Deployment => "apps/v1",
            Self::Role | Self::RoleBinding => "rbac.authorization.k8s.io/v1",
            Self::NetworkPolicy => "networking.k8s.io/v1",
            Self::PodDisruptionBudget => "policy/v1",
        }
    }

    /// The resource name in URLs and errors (plural, lower case).
    pub fn resource(self) -> &'static str {
        match self {
            Self::Pod => "pods",
            Self::PersistentVolumeClaim => "persistentvolumeclaims",
            Self::Namespace => "namespaces",
            Self::Lease => "leases",
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::ServiceAccount => "serviceaccounts",
            Self::Service => "services",
            Self::Deployment => "deployments",
            Self::Role => "roles",
            Self::RoleBinding => "rolebindings",
            Self::NetworkPolicy => "networkpolicies",
            Self::PodDisruptionBudget => "poddisruptionbudgets",
        }
    }
}

/// Where an object lives: namespace is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One write, as watches see it: the object before and after.
#[derive(Debug)]
pub struct Event {
    pub key: Key,
    pub rv: u64,
    pub kind: EventType,
    pub old: Option<Value>,
    pub new: Value,
}

/// What [`Store::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Modified,
    /// The new object equals the stored one: nothing written, the resourceVersion unchanged.
    Unchanged,
}

/// Live changes, as they are written.
pub type Subscription = broadcast::Receiver<Arc<Event>>;

/// Why a watch cannot start.
#[derive(Debug, PartialEq)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    /// A watch may start from any RV >= floor; older ones are gone from history.
    floor: u64,
    capacity: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Shared handle to the store; every method takes the lock briefly and never across `.await`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// A store that keeps the last `capacity` changes for watches.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1,
                history: VecDeque::new(),
                floor: 1,
                capacity: capacity.max(1),
                tx,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects of `kind`, in one namespace or (None) all, sorted by namespace and name; with
    /// the resourceVersion the list reflects.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// Stores a new object; None if the key is taken.
    pub fn create(&self, key: Key, mut object: Value) -> Option<Value> {
        let mut inner = self.lock();
        if inner.objects.contains_key(&key) {
            return None;
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut object, rv);
        inner.objects.insert(key.clone(), object.clone());
        inner.record(Event {
            key,
            rv,
            kind: EventType::Added,
            old: None,
            new: object.clone(),
        });
        Some(object)
    }

    /// Changes an object in place; writes (and bumps the RV) only when `change` changed it.
    /// None if the object does not exist.
    pub fn update(&self, key: &Key, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let mut inner = self.lock();
        let old = inner.objects.get(key)?.clone();
        let mut new = old.clone();
        change(&mut new);
        if new == old {
            return Some(old);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut new, rv);
        inner.objects.insert(key.clone(), new.clone());
        inner.record(Event {
            key: key.clone(),
            rv,
            kind: EventType::Modified,
            old: Some(old),
            new: new.clone(),
        });
        Some(new)
    }

    /// Creates or replaces one object in a single step: `decide` sees the stored object (None
    /// when absent) and returns the object to store, or an error that leaves the store as it
    /// was. This is where checks such as "the client's resourceVersion is the stored one" go,
    /// so no other write can slip in between check and write. `decide` runs under the store's
    /// lock and must not call the store.
    pub fn write<E>(
        &self,
        key: &Key,
        decide: impl FnOnce(Option<&Value>) -> Result<Value, E>,
    ) -> Result<(Value, Written), E> {
        let mut inner = self.lock();
        let old = inner.objects.get(key).cloned();
        let mut new = decide(old.as_ref())?;
        if let Some(old) = &old {
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".to_owned(),
                    old["metadata"]["resourceVersion"].clone(),
                );
            }
            if new == *old {
                return Ok((new, Written::Unchanged));
            }
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut new, rv);
        inner.objects.insert(key.clone(), new.clone());
        let (kind, written) = match old {
            None => (EventType::Added, Written::Created),
            Some(_) => (EventType::Modified, Written::Modified),
        };
        inner.record(Event {
            key: key.clone(),
            rv,
            kind,
            old,
            new: new.clone(),
        });
        Ok((new, written))
    }

    /// Removes an object; returns its last state (with the deletion's RV).
    pub fn remove(&self, key: &Key) -> Option<Value> {
        self.remove_if(key, |_| Ok::<(), std::convert::Infallible>(()))
            .unwrap_or_else(|never| match never {})
    }

    /// Removes an object if `check` (run under the lock, on the stored object) allows it.
    /// Ok(None) if there is no such object.
    pub fn remove_if<E>(
        &self,
        key: &Key,
        check: impl FnOnce(&Value) -> Result<(), E>,
    ) -> Result<Option<Value>, E> {
        let mut inner = self.lock();
        let Some(stored) = inner.objects.get(key) else {
            return Ok(None);
        };
        check(stored)?;
        let Some(old) = inner.objects.remove(key) else {
            return Ok(None);
        };
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = old.clone();
        set_rv(&mut last, rv);
        inner.record(Event {
            key: key.clone(),
            rv,
            kind: EventType::Deleted,
            old: Some(old),
            new: last.clone(),
        });
        Ok(Some(last))
    }

    /// Starts a watch after `since`: the changes already in history, and a receiver for the
    /// ones to come (subscribed under the same lock, so nothing is missed or repeated).
    pub fn watch_from(&self, since: u64) -> Result<(Vec<Arc<Event>>, Subscription), Expired> {
        let inner = self.lock();
        if since < inner.floor {
            return Err(Expired {
                requested: since,
                oldest: inner.floor,
            });
        }
        let past = inner
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((past, inner.tx.subscribe()))
    }

    /// A snapshot of current objects of `kind` and a receiver for later changes.
    pub fn snapshot_and_subscribe(
        &self,
        kind: Kind,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv, inner.tx.subscribe())
    }
}

impl Inner {
    fn record(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        while self.history.len() > self.capacity {
            if let Some(gone) = self.history.pop_front() {
                self.floor = gone.rv;
            }
        }
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn writes_bump_the_resource_version() {
        let store = Store::new(10);
        let key = Key::new(Kind::Pod, "default", "a");
        let created = store.create(key.clone(), pod("a")).unwrap();
        assert_eq!(created["metadata"]["resourceVersion"], "2");
        assert!(store.create(key.clone(), pod("a")).is_none());
        let same = store.update(&key, |_| {}).unwrap();
        assert_eq!(same["metadata"]["resourceVersion"], "2");
        let changed = store.update(&key, |p| p["spec"] = json!({})).unwrap();
        assert_eq!(changed["metadata"]["resourceVersion"], "3");
        let gone = store.remove(&key).unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
        assert_eq!(store.rv(), 4);
    }

    #[test]
    fn write_checks_and_writes_in_one_step() {
        let store = Store::new(10);
        let key = Key::new(Kind::Lease, "default", "l");
        let (created, how) = store
            .write(&key, |old| {
                assert!(old.is_none());
                Ok::<_, ()>(pod("l"))
            })
            .unwrap();
        assert_eq!(
            (how, created["metadata"]["resourceVersion"].as_str()),
            (Written::Created, Some("2"))
        );
        // Same content (whatever resourceVersion the caller left in it): no write.
        let (same, how) = store
            .write(&key, |old| {
                let mut o = old.cloned().unwrap();
                o["metadata"]["resourceVersion"] = json!("999");
                Ok::<_, ()>(o)
            })
            .unwrap();
        assert_eq!(
            (how, same["metadata"]["resourceVersion"].as_str()),
            (Written::Unchanged, Some("2"))
        );
        assert_eq!(store.write(&key, |_| Err("refused")), Err("refused"));
        assert_eq!(store.rv(), 2);
        let (changed, how) = store
            .write(&key, |old| {
                let mut o = old.cloned().unwrap();
                o["spec"] = json!({"holderIdentity": "a"});
                Ok::<_, ()>(o)
            })
            .unwrap();
        assert_eq!(
            (how, changed["metadata"]["resourceVersion"].as_str()),
            (Written::Modified, Some("3"))
        );
        let (past, _rx) = store.watch_from(1).unwrap();
        let kinds: Vec<_> = past.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::Added, EventType::Modified]);
        assert_eq!(
            past[1].old.as_ref().unwrap()["metadata"]["resourceVersion"],
            "2"
        );
    }

    #[test]
    fn remove_if_leaves_the_object_when_refused() {
        let store = Store::new(10);
        let key = Key::new(Kind::Lease, "default", "l");
        store.create(key.clone(), pod("l"));
        assert_eq!(store.remove_if(&key, |_| Err("no")), Err("no"));
        assert!(store.get(&key).is_some());
        let last = store.remove_if(&key, |_| Ok::<_, ()>(())).unwrap().unwrap();
        assert_eq!(last["metadata"]["resourceVersion"], "3");
        assert_eq!(store.remove_if(&key, |_| Ok::<_, ()>(())), Ok(None));
    }

    #[test]
    fn watch_replays_history_and_expires_old_versions() {
        let store = Store::new(2);
        for name in ["a", "b", "c"] {
            store.create(Key::new(Kind::Pod, "default", name), pod(name));
        }
        // History holds RVs 3 and 4; RV 2 was evicted, so a watch from 2 still sees 3 and 4.
        let (past, _rx) = store.watch_from(2).unwrap();
        assert_eq!(past.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(
            store.watch_from(1).unwrap_err(),
            Expired {
                requested: 1,
                oldest: 2
            }
        );
        assert!(store.watch_from(4).unwrap().0.is_empty());
    }
}
