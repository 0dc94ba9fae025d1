//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field selectors
//! (`metadata.name=x`, `status.phase!=Running`, ...), as used by list and watch.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn check_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key \"{key}\""))
    }
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(check_key(key.trim())?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(check_key(k.trim())?, v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(check_key(k.trim())?, v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(check_key(k.trim())?, v.trim().to_owned())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                let values = set_values(rest).ok_or_else(|| format!("unable to parse {part}"))?;
                Requirement::NotIn(check_key(k.trim())?, values)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                let values = set_values(rest).ok_or_else(|| format!("unable to parse {part}"))?;
                Requirement::In(check_key(k.trim())?, values)
            } else {
                Requirement::Exists(check_key(part)?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => !labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed field selector over the fields the apiserver supports for a kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `supported` lists the field paths allowed for this kind.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let mut node = object;
            for step in field.split('.') {
                node = &node[step];
            }
            let actual = node.as_str().unwrap_or("");
            (actual == value) == *equal
        })
    }
}

/// The labels of an object as a map.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_sets() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(LabelSelector::parse("app=web").unwrap().matches(&l));
        assert!(LabelSelector::parse("app==web,tier=front")
            .unwrap()
            .matches(&l));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&l));
        assert!(LabelSelector::parse("app in (web, db)")
            .unwrap()
            .matches(&l));
        assert!(!LabelSelector::parse("app notin (web)").unwrap().matches(&l));
        assert!(LabelSelector::parse("tier,!missing").unwrap().matches(&l));
        assert!(!LabelSelector::parse("missing").unwrap().matches(&l));
        assert!(LabelSelector::parse("").unwrap().matches(&l));
        assert!(LabelSelector::parse("x in (a,b),app=web").unwrap().0.len() == 2);
    }

    #[test]
    fn bad_label_selectors_fail() {
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p1", "namespace": "default"},
                         "status": {"phase": "Running"}});
        let fields = ["metadata.name", "metadata.namespace", "status.phase"];
        assert!(FieldSelector::parse("metadata.name=p1", &fields)
            .unwrap()
            .matches(&pod));
        assert!(!FieldSelector::parse("metadata.name=p2", &fields)
            .unwrap()
            .matches(&pod));
        assert!(FieldSelector::parse("status.phase!=Pending", &fields)
            .unwrap()
            .matches(&pod));
        assert!(FieldSelector::parse("spec.foo=x", &fields).is_err());
    }
}
