//! Which volumes a user's container mounts: their home (when `homes.enable`) and the class's
//! extra mounts, with the names every backend gives them (a Docker volume or a PVC of that
//! name). Pure; the backends create and mount them.

use sshpod_config::{HomesConfig, MountScope};

use crate::labels;

/// A volume a container of the user mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The volume's name on the engine.
    pub volume: String,
    /// Where it is mounted.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `home` or the extra mount's name.
    pub kind: String,
    /// Per user (labelled with the login) or shared.
    pub per_user: bool,
    /// Requested size of a PVC (a Kubernetes quantity).
    pub size: String,
    /// Storage class of a PVC; empty for the cluster's default.
    pub storage_class_name: String,
}

/// The volumes a container of `user` mounts: their home (when homes are on) and the extra
/// mounts. Fails for a login that cannot be part of the home's path.
pub fn plan(homes: &HomesConfig, user: &str) -> Result<Vec<Planned>, String> {
    let mut planned = Vec::new();
    if homes.enable {
        let target = homes
            .home_for(user)
            .ok_or_else(|| "your login name cannot name a home directory".to_owned())?;
        planned.push(Planned {
            volume: labels::volume_name("sshpod-home-", user),
            target,
            read_only: false,
            kind: HOME_KIND.to_owned(),
            per_user: true,
            size: homes.size.clone(),
            storage_class_name: homes.storage_class_name.clone(),
        });
    }
    for mount in &homes.extra_mounts {
        let per_user = mount.scope == MountScope::PerUser;
        planned.push(Planned {
            volume: if per_user {
                labels::volume_name(&format!("sshpod-{}-", mount.name), user)
            } else {
                format!("sshpod-mount-{}", mount.name)
            },
            target: mount.path.clone(),
            read_only: mount.is_read_only(),
            kind: mount.name.clone(),
            per_user,
            size: mount.size.clone(),
            storage_class_name: mount.storage_class_name.clone(),
        });
    }
    Ok(planned)
}

/// The kind of a user's home volume (the value of the `sshpod.home` label).
pub const HOME_KIND: &str = "home";
