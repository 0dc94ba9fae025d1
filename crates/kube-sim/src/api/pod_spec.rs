//! Pod validation (the 422 causes the apiserver would give for the fields kube-sim reads) and
//! the defaults the apiserver fills in. Pure functions, no I/O.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::names;

/// (field, message) for every problem of the pod's spec.
pub fn validate(pod: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push(("spec.containers".to_owned(), "Required value".to_owned()));
    }
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let mut seen_volumes = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        if let Some(why) = names::dns1123_label(v) {
            causes.push((
                format!("spec.volumes[{i}].name"),
                format!("Invalid value: \"{v}\": {why}"),
            ));
        }
        if !seen_volumes.insert(*v) {
            causes.push((
                format!("spec.volumes[{i}].name"),
                format!("Duplicate value: \"{v}\""),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("spec.containers[{i}]");
        match c["name"].as_str() {
            None | Some("") => causes.push((format!("{at}.name"), "Required value".to_owned())),
            Some(name) => {
                if let Some(why) = names::dns1123_label(name) {
                    causes.push((
                        format!("{at}.name"),
                        format!("Invalid value: \"{name}\": {why}"),
                    ));
                }
                if !seen.insert(name.to_owned()) {
                    causes.push((format!("{at}.name"), format!("Duplicate value: \"{name}\"")));
                }
            }
        }
        if c["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
            causes.push((format!("{at}.image"), "Required value".to_owned()));
        }
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = m["name"].as_str().unwrap_or("");
            if !volumes.contains(&name) {
                causes.push((
                    format!("{at}.volumeMounts[{j}].name"),
                    format!("Not found: \"{name}\""),
                ));
            }
            if !m["mountPath"].as_str().is_some_and(|p| p.starts_with('/')) {
                causes.push((
                    format!("{at}.volumeMounts[{j}].mountPath"),
                    "Required value".to_owned(),
                ));
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str() {
        if !["Always", "OnFailure", "Never"].contains(&policy) {
            causes.push((
                "spec.restartPolicy".to_owned(),
                format!("Unsupported value: \"{policy}\": supported values: \"Always\", \"OnFailure\", \"Never\""),
            ));
        }
    }
    if let Some(h) = spec["hostname"].as_str() {
        if let Some(why) = names::dns1123_label(h) {
            causes.push((
                "spec.hostname".to_owned(),
                format!("Invalid value: \"{h}\": {why}"),
            ));
        }
    }
    causes.extend(super::meta::label_causes(pod));
    causes
}

fn set_default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(key.to_owned()).or_insert(value);
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        "IfNotPresent"
    } else {
        match last.split_once(':') {
            None => "Always",
            Some((_, "latest")) => "Always",
            Some(_) => "IfNotPresent",
        }
    }
}

/// Fills in the defaults a real apiserver sets on a new pod.
pub fn apply_defaults(pod: &mut Value, node_name: &str) {
    let spec = &mut pod["spec"];
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "serviceAccountName", json!("default"));
    set_default(spec, "serviceAccount", json!("default"));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    spec["nodeName"] = json!(node_name);
    if let Some(containers) = spec["containers"].as_array_mut() {
        for c in containers {
            let policy = pull_policy(c["image"].as_str().unwrap_or(""));
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        let pod = json!({"spec": {"containers": [
            {"name": "Bad_Name", "image": "x"},
            {"name": "b", "image": "", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]},
            {"name": "b", "image": "y"}]}});
        let fields: Vec<String> = validate(&pod).into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&"spec.containers[0].name".to_owned()));
        assert!(fields.contains(&"spec.containers[1].image".to_owned()));
        assert!(fields.contains(&"spec.containers[1].volumeMounts[0].name".to_owned()));
        assert!(fields.contains(&"spec.containers[2].name".to_owned()));
        assert!(validate(&json!({"spec": {}}))[0].0 == "spec.containers");
        assert!(
            validate(&json!({"spec": {"containers": [{"name": "a", "image": "i"}]}})).is_empty()
        );
    }

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/busybox"), "Always");
    }

    #[test]
    fn defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "i:1"}], "restartPolicy": "Never"}});
        apply_defaults(&mut pod, "node");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["nodeName"], "node");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["status"]["phase"], "Pending");
    }
}
