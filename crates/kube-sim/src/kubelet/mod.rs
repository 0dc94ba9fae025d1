//! The node agent: runs each pod as a sandbox plus one container per spec container, keeps the
//! pod's status in the store in step with the engine (via the engine's event stream), and tears
//! pods down with their grace period.

pub mod files;
pub mod observe;
pub mod spec;
pub mod status;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ServiceAccountTokens;
use crate::docker::{self, sandbox, Engine, CONTAINER_LABEL, INSTANCE_LABEL, POD_LABEL};
use crate::store::{Key, Kind, Store};
use spec::{VolumeSource, Volumes};
use status::{ContainerView, Observed, PodView};

/// One spec container and what the engine made of it.
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    image: String,
    docker_id: Option<String>,
    /// Set while there is no container (image missing, config error).
    waiting: Option<(String, String)>,
    tty: bool,
}

#[derive(Debug, Default)]
struct RuntimeState {
    sandbox: Option<String>,
    pod_ip: Option<String>,
    slots: Vec<Slot>,
    owned_volumes: Vec<String>,
}

/// The engine-side state of one pod.
struct PodRuntime {
    uid: String,
    cancel: CancellationToken,
    state: Mutex<RuntimeState>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl PodRuntime {
    fn state(&self) -> MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A container kube-sim can stream to.
#[derive(Debug, Clone)]
pub struct Target {
    pub docker_id: String,
    pub tty: bool,
}

pub struct Kubelet {
    pub engine: Arc<Engine>,
    store: Store,
    pods: Mutex<HashMap<Key, Arc<PodRuntime>>>,
    tracker: TaskTracker,
    pub node_name: String,
    pub host_ip: String,
    /// PVC volumes whose removal waits for pods to let go of them.
    pending_volumes: Mutex<Vec<String>>,
    /// Service-account tokens, for the projected `kube-api-access-*` volumes.
    accounts: Arc<ServiceAccountTokens>,
    /// Where pods' file volumes are written (a directory per pod uid).
    state_dir: PathBuf,
    /// The API server as pods reach it (KUBERNETES_SERVICE_HOST/PORT), if they can.
    api_address: Option<SocketAddr>,
}

/// What `Kubelet::new` needs besides the engine and the store.
pub struct KubeletSetup {
    pub tracker: TaskTracker,
    pub accounts: Arc<ServiceAccountTokens>,
    pub state_dir: PathBuf,
    pub api_address: Option<SocketAddr>,
}

fn short(uid: &str) -> &str {
    uid.get(..8).unwrap_or(uid)
}

impl Kubelet {
    pub fn new(engine: Arc<Engine>, store: Store, setup: KubeletSetup) -> Self {
        Self {
            engine,
            store,
            pods: Mutex::new(HashMap::new()),
            tracker: setup.tracker,
            node_name: "kube-sim".to_owned(),
            host_ip: "172.17.0.1".to_owned(),
            pending_volumes: Mutex::new(Vec::new()),
            accounts: setup.accounts,
            state_dir: setup.state_dir,
            api_address: setup.api_address,
        }
    }

    /// The directory of a pod's file volumes.
    fn files_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join(uid)
    }

    /// Writes a file volume, waiting (ContainerCreating with the reason) until what it
    /// projects exists. Err when the pod is deleted meanwhile or the files cannot be written.
    async fn write_files(
        &self,
        key: &Key,
        pod: &Value,
        rt: &PodRuntime,
        volume: &Value,
    ) -> Result<VolumeSource, String> {
        let name = volume["name"].as_str().unwrap_or_default();
        let files = loop {
            match files::files_of(volume, pod, &self.store, &self.accounts) {
                Ok(f) => break f,
                Err(why) => {
                    let message = format!("MountVolume.SetUp failed for volume \"{name}\": {why}");
                    self.set_waiting(rt, None, "ContainerCreating", &message);
                    self.refresh(key).await;
                    if !Self::pause(rt, Duration::from_secs(1)).await {
                        return Err("deleted".to_owned());
                    }
                }
            }
        };
        let dir = self.files_dir(&rt.uid).join(name);
        files::write(&dir, &files, spec::fs_group(pod))
            .map_err(|e| format!("writing volume {name} to {}: {e}", dir.display()))?;
        Ok(VolumeSource::Files(dir.to_string_lossy().into_owned()))
    }

    /// The variables the kubelet gives every container for the `kubernetes` service.
    fn service_env(&self) -> Vec<String> {
        let Some(address) = self.api_address else {
            return Vec::new();
        };
        let (host, port) = (address.ip(), address.port());
        vec![
            format!("KUBERNETES_SERVICE_HOST={host}"),
            format!("KUBERNETES_SERVICE_PORT={port}"),
            format!("KUBERNETES_SERVICE_PORT_HTTPS={port}"),
            format!("KUBERNETES_PORT=tcp://{host}:{port}"),
            format!("KUBERNETES_PORT_443_TCP=tcp://{host}:{port}"),
            "KUBERNETES_PORT_443_TCP_PROTO=tcp".to_owned(),
            format!("KUBERNETES_PORT_443_TCP_PORT={port}"),
            format!("KUBERNETES_PORT_443_TCP_ADDR={host}"),
        ]
    }

    fn pods(&self) -> MutexGuard<'_, HashMap<Key, Arc<PodRuntime>>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn runtime(&self, key: &Key) -> Option<Arc<PodRuntime>> {
        self.pods().get(key).cloned()
    }

    /// The Docker volume backing PVC `claim` in `namespace`.
    pub fn pvc_volume(&self, namespace: &str, claim: &str) -> String {
        format!("kube-sim-{}-{namespace}-{claim}", self.engine.instance)
    }

    /// Starts running a freshly created pod.
    pub fn start(self: &Arc<Self>, key: Key, pod: Value) {
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let slots = containers
            .iter()
            .map(|c| Slot {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                image: c["image"].as_str().unwrap_or_default().to_owned(),
                docker_id: None,
                waiting: None,
                tty: c["tty"].as_bool().unwrap_or(false),
            })
            .collect();
        let runtime = Arc::new(PodRuntime {
            uid,
            cancel: CancellationToken::new(),
            state: Mutex::new(RuntimeState {
                slots,
                ..Default::default()
            }),
            task: Mutex::new(None),
        });
        self.pods().insert(key.clone(), runtime.clone());
        let this = self.clone();
        let rt = runtime.clone();
        let handle = self.tracker.spawn(async move {
            if let Err(message) = this.run(&key, &pod, &rt).await {
                tracing::info!(pod = %key.name, namespace = %key.namespace, %message, "pod did not start");
            }
            this.refresh(&key).await;
        });
        *runtime.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    fn set_waiting(&self, rt: &PodRuntime, index: Option<usize>, reason: &str, message: &str) {
        let mut state = rt.state();
        for (i, slot) in state.slots.iter_mut().enumerate() {
            if index.is_none_or(|n| n == i) && slot.docker_id.is_none() {
                slot.waiting = Some((reason.to_owned(), message.to_owned()));
            }
        }
    }

    /// Sleeps unless the pod is being deleted; false when it is.
    async fn pause(rt: &PodRuntime, duration: Duration) -> bool {
        tokio::select! {
            () = rt.cancel.cancelled() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }

    async fn run(&self, key: &Key, pod: &Value, rt: &PodRuntime) -> Result<(), String> {
        let ns = key.namespace.as_str();
        let uid = short(&rt.uid).to_owned();
        let instance = self.engine.instance.clone();
        let pod_label = format!("{ns}/{}", key.name);

        // Volumes: emptyDirs are made for the pod; claims must exist first.
        let mut volumes = Volumes::new();
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            if files::is_file_volume(v) {
                let source = match self.write_files(key, pod, rt, v).await {
                    Ok(s) => s,
                    Err(message) => {
                        self.set_waiting(rt, None, "CreateContainerConfigError", &message);
                        return Err(message);
                    }
                };
                volumes.insert(name, source);
                continue;
            }
            let source = spec::volume_source(
                v,
                |n| format!("kube-sim-{instance}-{uid}-{n}"),
                |claim| self.pvc_volume(ns, claim),
            );
            let source = match source {
                Ok(s) => s,
                Err(message) => {
                    self.set_waiting(rt, None, "CreateContainerConfigError", &message);
                    return Err(message);
                }
            };
            if v.get("emptyDir").is_some() {
                if let VolumeSource::Named(docker_name) = &source {
                    let request = bollard::models::VolumeCreateRequest {
                        name: Some(docker_name.clone()),
                        labels: Some(self.engine.labels(&[(POD_LABEL, &pod_label)])),
                        ..Default::default()
                    };
                    self.engine
                        .docker
                        .create_volume(request)
                        .await
                        .map_err(|e| docker::message_of(&e))?;
                    rt.state().owned_volumes.push(docker_name.clone());
                }
            }
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                while self
                    .store
                    .get(&Key::new(Kind::PersistentVolumeClaim, ns, claim))
                    .is_none()
                {
                    let message = format!("persistentvolumeclaim \"{claim}\" not found");
                    self.set_waiting(rt, None, "ContainerCreating", &message);
                    self.refresh(key).await;
                    if !Self::pause(rt, Duration::from_secs(1)).await {
                        return Err("deleted".to_owned());
                    }
                }
            }
            volumes.insert(name, source);
        }

        // The sandbox holds the network namespace.
        let hostname = pod["spec"]["hostname"].as_str().unwrap_or(&key.name);
        let hostname: String = hostname.chars().take(63).collect();
        let sandbox_name = format!("k8s_POD_{}_{ns}_{uid}_{instance}", key.name);
        let sandbox_id = sandbox::start(&self.engine, &sandbox_name, &pod_label, &hostname)
            .await
            .map_err(|e| e.to_string())?;
        let pod_ip = self
            .engine
            .docker
            .inspect_container(&sandbox_id, None)
            .await
            .ok()
            .and_then(|i| i.network_settings)
            .and_then(|n| n.networks)
            .and_then(|n| {
                n.values()
                    .find_map(|e| e.ip_address.clone().filter(|ip| !ip.is_empty()))
            });
        {
            let mut state = rt.state();
            state.sandbox = Some(sandbox_id.clone());
            state.pod_ip = pod_ip;
        }
        self.refresh(key).await;

        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (index, c) in containers.iter().enumerate() {
            if rt.cancel.is_cancelled() {
                return Err("deleted".to_owned());
            }
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let image_user = self.wait_for_image(key, rt, index, image).await?;
            if let Some(message) = spec::non_root_violation(pod, c, &image_user) {
                self.set_waiting(rt, Some(index), "CreateContainerConfigError", &message);
                continue;
            }
            let mut body: ContainerCreateBody = match spec::container_body(pod, c, &volumes) {
                Ok(b) => b,
                Err(message) => {
                    self.set_waiting(rt, Some(index), "CreateContainerConfigError", &message);
                    continue;
                }
            };
            let mut env = self.service_env();
            env.extend(body.env.take().unwrap_or_default());
            body.env = Some(env);
            body.labels = Some(
                self.engine
                    .labels(&[(POD_LABEL, &pod_label), (CONTAINER_LABEL, name)]),
            );
            let host = body.host_config.get_or_insert_with(HostConfig::default);
            host.network_mode = Some(format!("container:{sandbox_id}"));
            let options = CreateContainerOptions {
                name: Some(format!("k8s_{name}_{}_{ns}_{uid}_{instance}", key.name)),
                ..Default::default()
            };
            let created = match self
                .engine
                .docker
                .create_container(Some(options), body)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    self.set_waiting(
                        rt,
                        Some(index),
                        "CreateContainerError",
                        &docker::message_of(&e),
                    );
                    continue;
                }
            };
            {
                let mut state = rt.state();
                if let Some(slot) = state.slots.get_mut(index) {
                    slot.docker_id = Some(created.id.clone());
                    slot.waiting = None;
                }
            }
            if let Err(e) = self
                .engine
                .docker
                .start_container(&created.id, None::<StartContainerOptions>)
                .await
            {
                tracing::info!(container = name, error = %docker::message_of(&e), "container did not start");
            }
            self.refresh(key).await;
        }
        Ok(())
    }

    /// Waits until `image` is present locally, reporting ErrImagePull / ImagePullBackOff
    /// meanwhile (kube-sim never pulls); returns the image's configured user.
    async fn wait_for_image(
        &self,
        key: &Key,
        rt: &PodRuntime,
        index: usize,
        image: &str,
    ) -> Result<String, String> {
        let mut backoff = Duration::from_secs(5);
        loop {
            match self.engine.docker.inspect_image(image).await {
                Ok(info) => {
                    return Ok(info.config.and_then(|c| c.user).unwrap_or_default());
                }
                Err(e) if docker::is_not_found(&e) => {}
                Err(e) => return Err(docker::message_of(&e)),
            }
            let message = format!(
                "Failed to pull image \"{image}\": image not present locally and kube-sim never pulls from a registry"
            );
            self.set_waiting(rt, Some(index), "ErrImagePull", &message);
            self.refresh(key).await;
            if !Self::pause(rt, Duration::from_secs(1)).await {
                return Err("deleted".to_owned());
            }
            self.set_waiting(
                rt,
                Some(index),
                "ImagePullBackOff",
                &format!("Back-off pulling image \"{image}\""),
            );
            self.refresh(key).await;
            if !Self::pause(rt, backoff).await {
                return Err("deleted".to_owned());
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Recomputes a pod's status from the engine and stores it if it changed.
    pub async fn refresh(&self, key: &Key) {
        let Some(rt) = self.runtime(key) else { return };
        let (slots, pod_ip) = {
            let state = rt.state();
            (state.slots.clone(), state.pod_ip.clone())
        };
        let mut views = Vec::with_capacity(slots.len());
        for slot in &slots {
            let mut view = ContainerView {
                name: slot.name.clone(),
                image: slot.image.clone(),
                image_id: String::new(),
                container_id: slot.docker_id.clone(),
                restarts: 0,
                observed: match &slot.waiting {
                    Some((reason, message)) => Observed::Waiting {
                        reason: reason.clone(),
                        message: message.clone(),
                    },
                    None => Observed::Creating,
                },
            };
            if let Some(id) = &slot.docker_id {
                if let Ok(inspect) = self.engine.docker.inspect_container(id, None).await {
                    let (observed, restarts) = observe::observe(&inspect);
                    view.observed = observed;
                    view.restarts = restarts;
                    view.image_id = inspect
                        .image
                        .map(|i| format!("docker-pullable://{i}"))
                        .unwrap_or_default();
                }
            }
            views.push(view);
        }
        self.store.update(key, |pod| {
            if pod["metadata"]["uid"].as_str() != Some(rt.uid.as_str()) {
                return;
            }
            let created = pod["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let policy = pod["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("Always")
                .to_owned();
            pod["status"] = status::pod_status(&PodView {
                containers: &views,
                restart_policy: &policy,
                created: &created,
                host_ip: &self.host_ip,
                pod_ip: pod_ip.as_deref(),
            });
        });
    }

    /// The container to exec into or attach to (`name` may be omitted for one-container pods).
    pub fn target(&self, key: &Key, name: &str) -> Option<Target> {
        let rt = self.runtime(key)?;
        let state = rt.state();
        let slot = state.slots.iter().find(|s| s.name == name)?;
        Some(Target {
            docker_id: slot.docker_id.clone()?,
            tty: slot.tty,
        })
    }

    /// The pod's sandbox container.
    pub fn sandbox(&self, key: &Key) -> Option<String> {
        self.runtime(key)?.state().sandbox.clone()
    }

    /// Tears a pod down: stops its containers with `grace` seconds (0 = kill), removes them and
    /// its own volumes, then (if `remove_object`) removes the pod from the store.
    pub fn delete(self: &Arc<Self>, key: Key, grace: i64, remove_object: bool) {
        let runtime = self.pods().remove(&key);
        let this = self.clone();
        self.tracker.spawn(async move {
            if let Some(rt) = runtime {
                this.teardown(rt, grace).await;
            }
            if remove_object {
                this.store.remove(&key);
            }
        });
    }

    async fn teardown(&self, rt: Arc<PodRuntime>, grace: i64) {
        rt.cancel.cancel();
        let task = rt.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let (sandbox, ids, volumes) = {
            let state = rt.state();
            let ids: Vec<String> = state
                .slots
                .iter()
                .filter_map(|s| s.docker_id.clone())
                .collect();
            (state.sandbox.clone(), ids, state.owned_volumes.clone())
        };
        if grace > 0 {
            let t = i32::try_from(grace).unwrap_or(i32::MAX);
            let stops = ids.iter().map(|id| {
                let options = StopContainerOptions {
                    t: Some(t),
                    signal: None,
                };
                self.engine.docker.stop_container(id, Some(options))
            });
            futures_util::future::join_all(stops).await;
        }
        futures_util::future::join_all(ids.iter().map(|id| self.engine.remove_container(id))).await;
        if let Some(sandbox) = sandbox {
            self.engine.remove_container(&sandbox).await;
        }
        for v in volumes {
            if let Err(e) = self.engine.remove_volume(&v).await {
                tracing::warn!(volume = v, error = %e, "removing emptyDir volume");
            }
        }
        let files = self.files_dir(&rt.uid);
        if files.exists() {
            if let Err(e) = std::fs::remove_dir_all(&files) {
                tracing::warn!(dir = %files.display(), error = %e, "removing file volumes");
            }
        }
        self.retry_pending_volumes().await;
    }

    /// Creates the Docker volume of a PVC.
    pub async fn create_pvc_volume(&self, namespace: &str, claim: &str) -> Result<(), String> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(self.pvc_volume(namespace, claim)),
            labels: Some(
                self.engine
                    .labels(&[("kube-sim.pvc", &format!("{namespace}/{claim}"))]),
            ),
            ..Default::default()
        };
        self.engine
            .docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| docker::message_of(&e))
    }

    /// Removes a PVC's volume now, or once no container uses it.
    pub async fn remove_pvc_volume(&self, namespace: &str, claim: &str) {
        let name = self.pvc_volume(namespace, claim);
        if self.engine.remove_volume(&name).await.is_err() {
            self.pending_volumes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name);
        }
    }

    async fn retry_pending_volumes(&self) {
        let pending: Vec<String> = std::mem::take(
            &mut *self
                .pending_volumes
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for name in pending {
            if self.engine.remove_volume(&name).await.is_err() {
                self.pending_volumes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(name);
            }
        }
    }

    /// Follows the engine's container events and refreshes the pods they concern.
    pub async fn follow_engine(self: Arc<Self>, cancel: CancellationToken) {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "label".to_owned(),
                vec![format!("{INSTANCE_LABEL}={}", self.engine.instance)],
            ),
        ]);
        while !cancel.is_cancelled() {
            let options = EventsOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            };
            let mut events = self.engine.docker.events(Some(options));
            loop {
                let event = tokio::select! {
                    () = cancel.cancelled() => return,
                    e = events.next() => e,
                };
                let Some(Ok(event)) = event else { break };
                let action = event.action.as_deref().unwrap_or("");
                if !matches!(action, "start" | "die" | "restart" | "oom" | "stop") {
                    continue;
                }
                let pod = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut a| a.remove(POD_LABEL));
                if let Some((ns, name)) = pod.as_deref().and_then(|p| p.split_once('/')) {
                    self.refresh(&Key::new(Kind::Pod, ns, name)).await;
                }
            }
            if !Kubelet::pause_plain(&cancel, Duration::from_millis(500)).await {
                return;
            }
        }
    }

    async fn pause_plain(cancel: &CancellationToken, d: Duration) -> bool {
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}
