//! Docker's own API objects inside `docker.execution` (`container`, `host`, `network`,
//! `platform`): every field Docker's API has, checked and brought to the API's spelling.
//!
//! ContainerSSH decodes these four sections straight into the Docker SDK's types, so any field
//! of Docker's API works there, in YAML as the Go field name lower-cased (`oomscoreadj`,
//! `resources.memoryreservation`) and in JSON as the API name in any case (`OomScoreAdj`). It
//! ignores keys the types do not have, because Docker removes fields over time. sshpod accepts
//! the same, and [`normalise`] turns what was written into the API's spelling so the Docker
//! backend can hand it to the engine unchanged. It is stricter in two ways a user benefits
//! from: a key a small edit away from a real field (`oomscoreadjj`) is refused with a
//! suggestion instead of being dropped, and values of the wrong type are refused here, with
//! their line, instead of by the engine at the first login. Keys far from every field, and
//! fields Docker has retired (`kernelmemory`, `macaddress`), are dropped with a warning.

mod schema;

use std::collections::HashMap;

use serde_json::{Map, Value};

pub(crate) use self::schema::{
    Kind, Object, ALL, CONTAINER_CONFIG, HOST_CONFIG, NETWORKING_CONFIG, PLATFORM, RESOURCES,
};
use crate::check::{join, Checker};
use crate::duration;
use crate::error::did_you_mean;

/// Checks `value` against `object` and returns its fields under their API names. `null`
/// values are left out (Go leaves the field at its zero value); so are unknown and retired
/// keys. Problems are reported at `key`.
pub(crate) fn normalise(
    check: &mut Checker<'_>,
    key: &str,
    object: &'static Object,
    value: Value,
) -> Map<String, Value> {
    match value {
        Value::Null => Map::new(),
        Value::Object(written) => fields(check, key, object, written),
        _ => {
            check.shape_error(key, format!("must be a map of {} fields", object.name));
            Map::new()
        }
    }
}

fn fields(
    check: &mut Checker<'_>,
    key: &str,
    object: &'static Object,
    written: Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut seen: HashMap<&'static str, String> = HashMap::new();
    for (name, value) in written {
        let at = join(key, &name);
        if value.is_null() {
            continue;
        }
        if let Some(field) = object.field(&name) {
            if let Some(first) = seen.insert(field.name, name.clone()) {
                check.shape_error_at_key(
                    &at,
                    format!("is given twice (as `{first}` and as `{name}`)"),
                );
            } else if let Some(value) = of_kind(check, &at, &field.kind, value) {
                out.insert(field.name.to_owned(), value);
            }
        } else if let Some(retired) = object.retired(&name) {
            if !is_zero(&value) {
                check.warn(
                    &at,
                    format_args!("`{at}` is ignored: Docker's API no longer has `{retired}`"),
                );
            }
        } else {
            unknown(check, &at, &name, object);
        }
    }
    out
}

/// A key that is no field: a likely typo is an error, anything else is dropped with a warning.
fn unknown(check: &mut Checker<'_>, at: &str, name: &str, object: &Object) {
    let names: Vec<&str> = object.fields().map(|field| field.name).collect();
    match did_you_mean(name, &names) {
        Some(close) => check.shape_error_at_key(
            at,
            format!(
                "unknown key `{name}` in Docker's {}; did you mean `{}`?",
                object.name,
                spelled_like(name, close)
            ),
        ),
        None => check.warn(
            at,
            format_args!(
                "`{at}` is ignored: Docker's {} has no such field (ContainerSSH ignores it too)",
                object.name
            ),
        ),
    }
}

/// `field` in the style of `written`: lower-case when `written` is (YAML files), else as the API
/// spells it.
fn spelled_like(written: &str, field: &str) -> String {
    if written.chars().any(|c| c.is_ascii_uppercase()) {
        field.to_owned()
    } else {
        field.to_ascii_lowercase()
    }
}

fn of_kind(check: &mut Checker<'_>, at: &str, kind: &'static Kind, value: Value) -> Option<Value> {
    let wrong = |check: &mut Checker<'_>, what: &str| {
        check.shape_error(at, format!("must be {what}"));
        None
    };
    match kind {
        Kind::Any => Some(value),
        Kind::Str => match value {
            Value::String(_) => Some(value),
            Value::Number(_) | Value::Bool(_) => Some(Value::String(value.to_string())),
            _ => wrong(check, "a string"),
        },
        Kind::Int => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(value),
            _ => wrong(check, "a whole number"),
        },
        Kind::Bool => match value {
            Value::Bool(_) => Some(value),
            _ => wrong(check, "true or false"),
        },
        Kind::Duration => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(value),
            Value::String(text) => match duration::parse(text) {
                Ok(parsed) => match i64::try_from(parsed.as_nanos()) {
                    Ok(nanos) => Some(Value::from(nanos)),
                    Err(_) => wrong(check, "a shorter duration"),
                },
                Err(message) => {
                    check.shape_error(at, message);
                    None
                }
            },
            _ => wrong(check, "a duration such as `30s`, or nanoseconds"),
        },
        Kind::StrSlice => match value {
            Value::String(_) => Some(Value::Array(vec![value])),
            Value::Array(_) => of_kind(check, at, &Kind::List(&Kind::Str), value),
            _ => wrong(check, "a list of strings"),
        },
        Kind::Enum(choices) => match &value {
            Value::String(given) => match choices.iter().find(|c| c.eq_ignore_ascii_case(given)) {
                Some(choice) => Some(Value::String((*choice).to_owned())),
                None => {
                    let named: Vec<&str> =
                        choices.iter().copied().filter(|c| !c.is_empty()).collect();
                    check.shape_error(at, crate::error::unknown_message("value", given, &named));
                    None
                }
            },
            _ => wrong(check, "a string"),
        },
        Kind::List(item) => match value {
            Value::Array(items) => Some(Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, item_value)| {
                        of_kind(check, &format!("{at}[{index}]"), item, item_value)
                    })
                    .collect(),
            )),
            _ => wrong(check, "a list"),
        },
        Kind::Map(item) => match value {
            Value::Object(entries) => Some(Value::Object(
                entries
                    .into_iter()
                    .filter_map(|(name, entry)| {
                        let entry = match (entry, item) {
                            // `exposedports: {"22/tcp": }` in YAML, or a network without
                            // settings: the empty object Docker wants.
                            (Value::Null, Kind::Any | Kind::Object(_)) => Value::Object(Map::new()),
                            (Value::Null, _) => return None,
                            (entry, _) => entry,
                        };
                        of_kind(check, &join(at, &name), item, entry).map(|v| (name, v))
                    })
                    .collect(),
            )),
            _ => wrong(check, "a map"),
        },
        Kind::Object(object) => match value {
            Value::Object(written) => Some(Value::Object(fields(check, at, object, written))),
            _ => wrong(check, &format!("a map of {} fields", object.name)),
        },
    }
}

/// Go's zero value: what a saved ContainerSSH file holds for a field nobody set.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}
