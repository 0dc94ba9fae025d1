//! `null` means "default", for every section, as it does for ContainerSSH.
//!
//! ContainerSSH decodes its file with Go's YAML and JSON decoders, which turn `null` (and a key
//! written with no value, `host:`) into the field's zero value; its defaults are then applied to
//! every zero field. Files that ContainerSSH saves itself are full of such keys
//! (`host: null`, `network: null`, `healthcheck: null`). serde instead refuses `null` for any
//! field that is not an `Option`.
//!
//! [`NullAsDefault`] wraps the parser's deserializer and fixes that once for every type:
//!
//! - a struct field whose value is `null` is skipped, as if it had not been written, so the
//!   struct's own default applies (every raw struct is `#[serde(default)]`);
//! - a `null` where a struct, a map or a list is expected (a list item, a map value) is read as an
//!   empty one.
//!
//! Map entries with a `null` value stay: in a map the key itself is the data (Docker's `volumes`
//! and `exposedports` are sets written as maps). Explicit empty strings are values, not nulls:
//! `cert: ""` is "set to nothing" and is left to validation.
//!
//! Skipping needs to know that a value is `null` before its key is handed to the struct, which a
//! streaming deserializer cannot tell. So the text is first read into a [`Shape`] (keys and which
//! values are null), and the wrapper walks that shape alongside the real parse. Before it skips an
//! entry it checks the key text against the shape; if they disagree (which would mean the two
//! reads saw the document differently) it stops skipping in that map rather than guess.
//!
//! Other modules need nothing to benefit: [`crate::load`] applies the wrapper to the whole
//! document, including the Docker and Kubernetes sections.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, IntoDeserializer, MapAccess,
    SeqAccess, Visitor,
};

/// The outline of a document: where the maps, lists and nulls are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// `null`, `~` or a key with no value.
    Null,
    /// A mapping: its keys as written, in order, with their values' shapes.
    Map(Vec<(String, Shape)>),
    /// A list.
    Seq(Vec<Shape>),
    /// Any other scalar.
    Scalar,
}

impl Shape {
    /// The shape of YAML text; `None` when it does not parse (the real parse reports why).
    pub(crate) fn of_yaml(text: &str) -> Option<Self> {
        serde_saphyr::from_str::<Option<Shape>>(text).ok().flatten()
    }

    /// The shape of JSON text; `None` when it does not parse.
    pub(crate) fn of_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    fn entry(&self, index: usize) -> Option<&(String, Shape)> {
        match self {
            Shape::Map(entries) => entries.get(index),
            _ => None,
        }
    }

    fn item(&self, index: usize) -> Option<&Shape> {
        match self {
            Shape::Seq(items) => items.get(index),
            _ => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

macro_rules! scalar_shape {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Shape, E> {
            Ok(Shape::Scalar)
        })*
    };
}

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    scalar_shape!(
        visit_bool: bool,
        visit_i64: i64,
        visit_i128: i128,
        visit_u64: u64,
        visit_u128: u128,
        visit_f64: f64,
        visit_str: &str,
        visit_bytes: &[u8],
    );

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shape::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut entries = Vec::new();
        while let Some(KeyText(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Shape::Map(entries))
    }
}

/// A map key read as text, whatever scalar it is.
struct KeyText(String);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// A deserializer that reads `null` as "default" (see the module documentation).
pub(crate) struct NullAsDefault<'s, D> {
    inner: D,
    shape: Option<&'s Shape>,
}

impl<'s, D> NullAsDefault<'s, D> {
    /// Wraps `inner`, whose document has the outline `shape` (`None`: unknown, skip nothing).
    pub(crate) fn new(inner: D, shape: Option<&'s Shape>) -> Self {
        Self { inner, shape }
    }
}

/// Forwards scalar requests unchanged: `null` there is the parser's business.
macro_rules! forward_plain {
    ($($method:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method(visitor)
        })*
    };
}

impl<'de, 's, D: Deserializer<'de>> Deserializer<'de> for NullAsDefault<'s, D> {
    type Error = D::Error;

    forward_plain!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_any(Wrap::new(visitor, self.shape, &[]))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_option(Wrap::new(visitor, self.shape, &[]))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_newtype_struct(name, Wrap::new(visitor, self.shape, &[]))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let shape = self.shape;
        self.inner.deserialize_option(OrEmpty {
            visitor,
            shape,
            then: Then::Seq,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_tuple(len, Wrap::new(visitor, self.shape, &[]))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_tuple_struct(name, len, Wrap::new(visitor, self.shape, &[]))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let shape = self.shape;
        self.inner.deserialize_option(OrEmpty {
            visitor,
            shape,
            then: Then::Map,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // Parser-specific magic types (serde-saphyr's `Spanned`) keep their own path.
        if name.starts_with("__") {
            return self.inner.deserialize_struct(name, fields, visitor);
        }
        let shape = self.shape;
        self.inner.deserialize_option(OrEmpty {
            visitor,
            shape,
            then: Then::Struct(fields),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// What a struct, map or list request becomes once the value is known not to be null.
#[derive(Clone, Copy)]
enum Then {
    /// A struct with these field names.
    Struct(&'static [&'static str]),
    Map,
    Seq,
}

/// Reads `null` as an empty struct, map or list; otherwise carries on with the request.
struct OrEmpty<'s, V> {
    visitor: V,
    shape: Option<&'s Shape>,
    then: Then,
}

impl<'de, 's, V: Visitor<'de>> Visitor<'de> for OrEmpty<'s, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        match self.then {
            Then::Seq => self.visitor.visit_seq(Empty(std::marker::PhantomData)),
            Then::Struct(_) | Then::Map => self.visitor.visit_map(Empty(std::marker::PhantomData)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        match self.then {
            // `deserialize_any` rather than `deserialize_struct`: a type may accept a scalar as
            // well as a mapping (`auth.password: true` in the 0.4 layout), and for a mapping
            // both requests end in the same `visit_map`.
            Then::Struct(fields) => {
                deserializer.deserialize_any(Wrap::new(self.visitor, self.shape, fields))
            }
            Then::Map => deserializer.deserialize_map(Wrap::new(self.visitor, self.shape, &[])),
            Then::Seq => deserializer.deserialize_seq(Wrap::new(self.visitor, self.shape, &[])),
        }
    }
}

/// No entries: a `null` read as an empty map or list.
struct Empty<E>(std::marker::PhantomData<E>);

impl<'de, E: de::Error> MapAccess<'de> for Empty<E> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, E> {
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<T::Value, E> {
        Err(E::custom("a value was asked of an empty map"))
    }
}

impl<'de, E: de::Error> SeqAccess<'de> for Empty<E> {
    type Error = E;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<Option<T::Value>, E> {
        Ok(None)
    }
}

/// A visitor whose nested values are wrapped again; `fields` are a struct's field names (empty
/// for anything else).
struct Wrap<'s, V> {
    visitor: V,
    shape: Option<&'s Shape>,
    fields: &'static [&'static str],
}

impl<'s, V> Wrap<'s, V> {
    fn new(visitor: V, shape: Option<&'s Shape>, fields: &'static [&'static str]) -> Self {
        Self {
            visitor,
            shape,
            fields,
        }
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        })*
    };
}

impl<'de, 's, V: Visitor<'de>> Visitor<'de> for Wrap<'s, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit!(
        visit_bool: bool,
        visit_i8: i8,
        visit_i16: i16,
        visit_i32: i32,
        visit_i64: i64,
        visit_i128: i128,
        visit_u8: u8,
        visit_u16: u16,
        visit_u32: u32,
        visit_u64: u64,
        visit_u128: u128,
        visit_f32: f32,
        visit_f64: f64,
        visit_char: char,
        visit_str: &str,
        visit_string: String,
        visit_bytes: &[u8],
        visit_byte_buf: Vec<u8>,
    );

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.visitor.visit_borrowed_str(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.visitor.visit_borrowed_bytes(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.visitor
            .visit_some(NullAsDefault::new(deserializer, self.shape))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor
            .visit_newtype_struct(NullAsDefault::new(deserializer, self.shape))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Items {
            seq,
            shape: self.shape,
            index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Entries {
            map,
            shape: self.shape,
            fields: self.fields,
            index: 0,
            value_shape: None,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(data)
    }
}

/// Whether `key` names one of `fields`. Case is ignored because Docker's keys have a second,
/// capitalised spelling (`Image`) that serde lists only as an alias.
fn is_field(fields: &[&str], key: &str) -> bool {
    fields.iter().any(|field| field.eq_ignore_ascii_case(key))
}

/// A seed whose deserializer is wrapped.
struct Seed<'s, T> {
    seed: T,
    shape: Option<&'s Shape>,
}

impl<'de, 's, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'s, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.seed
            .deserialize(NullAsDefault::new(deserializer, self.shape))
    }
}

struct Items<'s, A> {
    seq: A,
    shape: Option<&'s Shape>,
    index: usize,
}

impl<'de, 's, A: SeqAccess<'de>> SeqAccess<'de> for Items<'s, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let shape = self.shape.and_then(|s| s.item(self.index));
        self.index += 1;
        self.seq.next_element_seed(Seed { seed, shape })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

struct Entries<'s, A> {
    map: A,
    shape: Option<&'s Shape>,
    /// The struct's field names: an entry naming one of them with a null value is skipped.
    /// Other keys go on to the struct, so a typo is still refused even when its value is null.
    fields: &'static [&'static str],
    index: usize,
    value_shape: Option<&'s Shape>,
}

impl<'de, 's, A: MapAccess<'de>> MapAccess<'de> for Entries<'s, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let entry = self.shape.and_then(|s| s.entry(self.index));
            self.index += 1;
            match entry {
                Some((written, Shape::Null)) if is_field(self.fields, written) => {
                    let Some(KeyText(key)) = self.map.next_key()? else {
                        return Ok(None);
                    };
                    if key == *written {
                        self.map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    // The outline and the parse disagree: stop skipping in this map.
                    self.shape = None;
                    self.value_shape = None;
                    return seed.deserialize(key.into_deserializer()).map(Some);
                }
                _ => {
                    self.value_shape = entry.map(|(_, shape)| shape);
                    return self.map.next_key_seed(seed);
                }
            }
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let shape = self.value_shape.take();
        self.map.next_value_seed(Seed { seed, shape })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        host: String,
        list: Vec<String>,
        count: u32,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self {
                host: "default-host".into(),
                list: vec!["a".into()],
                count: 7,
            }
        }
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Outer {
        inner: Inner,
        items: Vec<Inner>,
        set: BTreeMap<String, Option<String>>,
        maybe: Option<Inner>,
    }

    fn yaml(text: &str) -> Result<Outer, serde_saphyr::Error> {
        let shape = Shape::of_yaml(text);
        serde_saphyr::with_deserializer_from_str(text, |d| {
            Outer::deserialize(NullAsDefault::new(d, shape.as_ref()))
        })
    }

    fn json(text: &str) -> Result<Outer, serde_json::Error> {
        let shape = Shape::of_json(text);
        let mut d = serde_json::Deserializer::from_str(text);
        Outer::deserialize(NullAsDefault::new(&mut d, shape.as_ref()))
    }

    #[test]
    fn null_fields_take_their_default() {
        let parsed = yaml("inner:\n  host:\n  list: ~\n  count: null\n").unwrap();
        assert_eq!(parsed.inner, Inner::default());
        let parsed = yaml("inner:\nitems: null\nmaybe: null\n").unwrap();
        assert_eq!(parsed, Outer::default());
        let parsed = json(r#"{"inner": {"host": null, "count": 3}, "maybe": null}"#).unwrap();
        assert_eq!(parsed.inner.host, "default-host");
        assert_eq!(parsed.inner.count, 3);
        assert_eq!(parsed.maybe, None);
    }

    #[test]
    fn null_items_are_empty_structs_and_map_keys_stay() {
        let parsed = yaml("items: [null, {host: x}]\nset: {/data: null, /tmp: ~}\n").unwrap();
        assert_eq!(parsed.items[0], Inner::default());
        assert_eq!(parsed.items[1].host, "x");
        assert_eq!(parsed.set.len(), 2);
        let parsed = json(r#"{"items": [null], "set": {"/data": null}}"#).unwrap();
        assert_eq!(parsed.items, [Inner::default()]);
        assert_eq!(parsed.set.len(), 1);
    }

    #[test]
    fn empty_strings_and_typos_are_not_nulls() {
        assert_eq!(yaml("inner: {host: \"\"}\n").unwrap().inner.host, "");
        let error = yaml("inner:\n  hots: null\n").unwrap_err().to_string();
        assert!(error.contains("hots"), "{error}");
        let error = json(r#"{"inner": {"hots": null}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("hots"), "{error}");
        assert!(yaml("inner: {count: x}\n").is_err());
    }

    #[test]
    fn anchors_and_merges_keep_their_meaning() {
        let parsed = yaml("base: &b\n  host: h\n  count: null\ninner:\n  <<: *b\n  list: null\n");
        // `base` is not a field: the typo check still fires.
        assert!(parsed.is_err());
        let parsed = yaml("items:\n  - &b {host: h, count: null}\n  - *b\n").unwrap();
        assert_eq!(parsed.items[1].host, "h");
        assert_eq!(parsed.items[1].count, 7);
    }
}
