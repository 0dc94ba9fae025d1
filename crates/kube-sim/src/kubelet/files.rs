//! Volumes made of files: `configMap`, `secret` and `projected` (service-account token,
//! ConfigMaps, Secrets, downward API `metadata.*`). Their files are written to a directory of
//! the pod on the host and bind-mounted read-only, with the modes Kubernetes gives them
//! (`defaultMode`, per-item `mode`; with `fsGroup` the files belong to that group and gain
//! group read, as the kubelet's volume ownership does).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use base64::Engine as _;
use serde_json::Value;

use crate::auth::ServiceAccountTokens;
use crate::store::{Key, Kind, Store};

/// One file of a volume: path relative to the volume, content, mode.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Whether kube-sim writes this volume's files itself.
pub fn is_file_volume(volume: &Value) -> bool {
    ["configMap", "secret", "projected"]
        .iter()
        .any(|k| volume.get(*k).is_some())
}

/// The files of a file volume of `pod`; Err is why the pod cannot start yet (a missing
/// ConfigMap, Secret or key: the pod waits in ContainerCreating, as with FailedMount).
pub fn files_of(
    volume: &Value,
    pod: &Value,
    store: &Store,
    accounts: &ServiceAccountTokens,
) -> Result<Vec<File>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut files = Vec::new();
    if let Some(source) = volume.get("configMap") {
        let mode = mode_of(&source["defaultMode"], 0o644);
        add_object(&mut files, store, Kind::ConfigMap, ns, source, "name", mode)?;
    } else if let Some(source) = volume.get("secret") {
        let mode = mode_of(&source["defaultMode"], 0o644);
        add_object(
            &mut files,
            store,
            Kind::Secret,
            ns,
            source,
            "secretName",
            mode,
        )?;
    } else if let Some(projected) = volume.get("projected") {
        let mode = mode_of(&projected["defaultMode"], 0o644);
        for source in projected["sources"].as_array().into_iter().flatten() {
            if let Some(token) = source.get("serviceAccountToken") {
                let account = pod["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or("default");
                let value = accounts
                    .token(ns, account)
                    .ok_or_else(|| format!("serviceaccount \"{account}\" has no token"))?;
                files.push(File {
                    path: token["path"].as_str().unwrap_or("token").to_owned(),
                    content: value.into_bytes(),
                    mode,
                });
            } else if let Some(cm) = source.get("configMap") {
                add_object(&mut files, store, Kind::ConfigMap, ns, cm, "name", mode)?;
            } else if let Some(secret) = source.get("secret") {
                add_object(&mut files, store, Kind::Secret, ns, secret, "name", mode)?;
            } else if let Some(api) = source.get("downwardAPI") {
                for item in api["items"].as_array().into_iter().flatten() {
                    let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
                    let value = match field {
                        "metadata.namespace" => pod["metadata"]["namespace"].clone(),
                        "metadata.name" => pod["metadata"]["name"].clone(),
                        "metadata.uid" => pod["metadata"]["uid"].clone(),
                        _ => return Err(format!("downward API field {field} is not supported")),
                    };
                    files.push(File {
                        path: item["path"].as_str().unwrap_or_default().to_owned(),
                        content: value.as_str().unwrap_or_default().as_bytes().to_vec(),
                        mode: mode_of(&item["mode"], mode),
                    });
                }
            } else {
                return Err("projected volume: unsupported source".to_owned());
            }
        }
    }
    for f in &files {
        if !is_relative_inside(&f.path) {
            return Err(format!(
                "invalid path \"{}\": must be relative and may not contain '..'",
                f.path
            ));
        }
    }
    Ok(files)
}

fn mode_of(value: &Value, default: u32) -> u32 {
    value
        .as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o777)
}

fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The files of a ConfigMap or Secret (all keys, or `items`), decoded.
fn add_object(
    files: &mut Vec<File>,
    store: &Store,
    kind: Kind,
    ns: &str,
    source: &Value,
    name_field: &str,
    default_mode: u32,
) -> Result<(), String> {
    let name = source[name_field].as_str().unwrap_or_default();
    let optional = source["optional"].as_bool().unwrap_or(false);
    let Some(object) = store.get(&Key::new(kind, ns, name)) else {
        if optional {
            return Ok(());
        }
        return Err(format!(
            "{} \"{name}\" not found",
            kind.kind().to_lowercase()
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let (text, binary) = match kind {
        Kind::Secret => ("", "data"),
        _ => ("data", "binaryData"),
    };
    for (k, v) in object[text].as_object().into_iter().flatten() {
        entries.push((
            k.clone(),
            v.as_str().unwrap_or_default().as_bytes().to_vec(),
        ));
    }
    for (k, v) in object[binary].as_object().into_iter().flatten() {
        let bytes = b64
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| format!("{} \"{name}\" key {k}: {e}", kind.kind()))?;
        entries.push((k.clone(), bytes));
    }
    match source["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let Some((_, content)) = entries.iter().find(|(k, _)| k == key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "{} references non-existent {} key: {key}",
                        kind.kind().to_lowercase(),
                        if kind == Kind::Secret {
                            "secret"
                        } else {
                            "config"
                        },
                    ));
                };
                files.push(File {
                    path: item["path"].as_str().unwrap_or(key).to_owned(),
                    content: content.clone(),
                    mode: mode_of(&item["mode"], default_mode),
                });
            }
        }
        None => files.extend(entries.into_iter().map(|(path, content)| File {
            path,
            content,
            mode: default_mode,
        })),
    }
    Ok(())
}

/// Writes `files` under `dir` (made afresh). With `fs_group`, files and directories belong to
/// that group and files gain group read (the volume is read-only: no write bits are added).
pub fn write(dir: &Path, files: &[File], fs_group: Option<u32>) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.content)?;
        let mode = match fs_group {
            Some(_) => f.mode | 0o440,
            None => f.mode,
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        if let Some(gid) = fs_group {
            std::os::unix::fs::chown(&path, Some(0), Some(gid))?;
        }
    }
    if let Some(gid) = fs_group {
        std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with(kind: Kind, object: Value) -> Store {
        let store = Store::new(10);
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        store.create(Key::new(kind, "ns", &name), object);
        store
    }

    fn pod() -> Value {
        json!({"metadata": {"namespace": "ns", "name": "p", "uid": "u"}, "spec": {"serviceAccountName": "sa"}})
    }

    #[test]
    fn config_map_items_and_modes() {
        let store = store_with(
            Kind::ConfigMap,
            json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
        );
        let accounts = ServiceAccountTokens::default();
        let v = json!({"name": "v", "configMap": {"name": "c", "items": [{"key": "b", "path": "dir/b.txt"}]}});
        let files = files_of(&v, &pod(), &store, &accounts).unwrap();
        assert_eq!(
            files,
            [File {
                path: "dir/b.txt".into(),
                content: b"2".to_vec(),
                mode: 0o644
            }]
        );
        let v =
            json!({"name": "v", "configMap": {"name": "c", "items": [{"key": "z", "path": "z"}]}});
        assert!(files_of(&v, &pod(), &store, &accounts)
            .unwrap_err()
            .contains("non-existent config key: z"));
        let v = json!({"name": "v", "configMap": {"name": "missing"}});
        assert_eq!(
            files_of(&v, &pod(), &store, &accounts).unwrap_err(),
            "configmap \"missing\" not found"
        );
        let v = json!({"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "../a"}]}});
        assert!(files_of(&v, &pod(), &store, &accounts).is_err());
    }

    #[test]
    fn secrets_are_decoded_with_their_default_mode() {
        let store = store_with(
            Kind::Secret,
            json!({"metadata": {"name": "s"}, "data": {"key": "aGk="}}),
        );
        let v = json!({"name": "v", "secret": {"secretName": "s", "defaultMode": 256}});
        let files = files_of(&v, &pod(), &store, &ServiceAccountTokens::default()).unwrap();
        assert_eq!(
            (files[0].content.as_slice(), files[0].mode),
            (&b"hi"[..], 0o400)
        );
    }

    #[test]
    fn projected_service_account_volume() {
        let store = store_with(
            Kind::ConfigMap,
            json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}}),
        );
        let accounts = ServiceAccountTokens::default();
        let token = accounts.issue("ns", "sa");
        let v = json!({"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}});
        let files = files_of(&v, &pod(), &store, &accounts).unwrap();
        let got: Vec<(&str, &[u8])> = files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("token", token.as_bytes()),
                ("ca.crt", &b"PEM"[..]),
                ("namespace", &b"ns"[..])
            ]
        );
    }
}
