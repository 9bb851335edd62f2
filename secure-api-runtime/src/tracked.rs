//! Deserialisation that knows where it is, and which names in that place came from the
//! client.
//!
//! A JSON Pointer in an error response may only hold what is safe to echo: member names
//! that the request *type* defines (struct fields) and array indexes. The keys of a map
//! (`HashMap<String, T>`), the members of a flattened or untagged part and enum payloads are
//! chosen by the client, so a pointer stops at the map or enum that holds them:
//! `{"labels": {"<img src=x onerror=alert(1)>": 5}}` with a bad value is reported at
//! `/labels`, never below it.
//!
//! [`Tracked`] wraps any `serde::Deserializer` (serde_json's, serde_urlencoded's, actix's
//! path parameters') and its visitors. It tells struct fields from map keys by how serde
//! asks for them: a struct is deserialised with `deserialize_struct`, which lists its field
//! names, and only a key that is one of those names is a field. It records:
//!
//! - where the first (deepest) error happened, as a safe pointer;
//! - the objects that held keys the type does not know (unknown fields, reported at the
//!   object, never by name).
//!
//! It costs a few stack frames per value and allocates only when something fails.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use crate::validation::push_escaped;

/// Where a value is, as a linked list on the stack from the value up to the root.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chain<'a> {
    /// The whole input.
    Root,
    /// A member of a struct, by the name its type gives it.
    Field(&'a Chain<'a>, &'static str),
    /// An element of a sequence.
    Index(&'a Chain<'a>, usize),
    /// Below a name the client chose (a map key, an enum payload): never rendered.
    Opaque(&'a Chain<'a>),
}

/// A rendered location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// The JSON Pointer of the deepest location that is safe to show.
    pub pointer: String,
    /// Whether the real location is below `pointer`, inside something the client named.
    pub truncated: bool,
}

impl Chain<'_> {
    fn pointer(&self) -> Pointer {
        let mut up = Vec::new();
        let mut at = self;
        loop {
            up.push(at);
            match at {
                Chain::Root => break,
                Chain::Field(parent, _) | Chain::Index(parent, _) | Chain::Opaque(parent) => {
                    at = parent;
                }
            }
        }
        let mut pointer = String::new();
        let mut truncated = false;
        for link in up.iter().rev() {
            match link {
                Chain::Root => {}
                Chain::Field(_, name) => {
                    pointer.push('/');
                    push_escaped(&mut pointer, name);
                }
                Chain::Index(_, index) => {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                }
                Chain::Opaque(_) => {
                    truncated = true;
                    break;
                }
            }
        }
        Pointer { pointer, truncated }
    }
}

/// What one deserialisation found.
#[derive(Debug, Default)]
pub(crate) struct Track {
    error: RefCell<Option<Pointer>>,
    unknown: RefCell<Vec<String>>,
}

impl Track {
    /// Records `chain` as the place of the error, unless a deeper place was recorded first.
    fn trigger<E>(&self, chain: &Chain<'_>, err: E) -> E {
        let mut error = self.error.borrow_mut();
        if error.is_none() {
            *error = Some(chain.pointer());
        }
        err
    }

    /// Records that the object at `chain` holds a key its type does not define.
    fn unknown_field(&self, chain: &Chain<'_>) {
        let pointer = chain.pointer().pointer;
        let mut unknown = self.unknown.borrow_mut();
        if !unknown.contains(&pointer) {
            unknown.push(pointer);
        }
    }

    /// Where the error happened (the root when nothing was recorded).
    pub(crate) fn error_pointer(&self) -> Pointer {
        self.error.borrow().clone().unwrap_or(Pointer {
            pointer: String::new(),
            truncated: false,
        })
    }

    /// The pointers of objects holding unknown keys, in the order found, each once.
    pub(crate) fn take_unknown(&self) -> Vec<String> {
        std::mem::take(&mut self.unknown.borrow_mut())
    }
}

/// A deserializer that tracks locations into `track`.
pub(crate) struct Tracked<'a, 'b, D> {
    de: D,
    chain: &'a Chain<'a>,
    track: &'b Track,
}

impl<'b, D> Tracked<'static, 'b, D> {
    /// Wraps the deserializer of a whole input.
    pub(crate) fn root(de: D, track: &'b Track) -> Self {
        Tracked {
            de,
            chain: &Chain::Root,
            track,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let (chain, track) = (self.chain, self.track);
            self.de
                .$method($($arg,)* Wrap { visitor, chain, track, fields: None })
                .map_err(|e| track.trigger(chain, e))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tracked<'_, '_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let (chain, track) = (self.chain, self.track);
        let wrap = Wrap {
            visitor,
            chain,
            track,
            fields: Some(fields),
        };
        self.de
            .deserialize_struct(name, fields, wrap)
            .map_err(|e| track.trigger(chain, e))
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor whose nested values are tracked. `fields` is set when the value is a struct.
struct Wrap<'a, 'b, V> {
    visitor: V,
    chain: &'a Chain<'a>,
    track: &'b Track,
    fields: Option<&'static [&'static str]>,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let (chain, track) = (self.chain, self.track);
        self.visitor.visit_some(Tracked { de, chain, track })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let (chain, track) = (self.chain, self.track);
        self.visitor
            .visit_newtype_struct(Tracked { de, chain, track })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.fields.is_some() {
            // A struct's fields by position (`["alice", 30]`): serde's derive takes them,
            // but an object's fields come by name, as the type's schema says. Read by
            // position, the input would pass whatever checks the names (a gateway's schema,
            // the unknown-field rule) and land in fields it did not name.
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        self.visitor.visit_seq(Seq {
            seq,
            chain: self.chain,
            track: self.track,
            index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Map {
            map,
            chain: self.chain,
            track: self.track,
            fields: self.fields,
            field: None,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(Enum {
            data,
            chain: self.chain,
            track: self.track,
        })
    }
}

/// A seed whose value is tracked at `chain`.
struct Seed<'a, 'b, S> {
    seed: S,
    chain: &'a Chain<'a>,
    track: &'b Track,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Tracked {
            de,
            chain: self.chain,
            track: self.track,
        })
    }
}

struct Seq<'a, 'b, A> {
    seq: A,
    chain: &'a Chain<'a>,
    track: &'b Track,
    index: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, '_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let (parent, track) = (self.chain, self.track);
        let chain = Chain::Index(parent, self.index);
        let element = self
            .seq
            .next_element_seed(Seed {
                seed,
                chain: &chain,
                track,
            })
            .map_err(|e| track.trigger(parent, e))?;
        self.index += 1;
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// A map, or a struct when `fields` is set. Only a struct's known field names name a value.
struct Map<'a, 'b, A> {
    map: A,
    chain: &'a Chain<'a>,
    track: &'b Track,
    fields: Option<&'static [&'static str]>,
    /// The field whose value comes next, when the last key named one.
    field: Option<&'static str>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let (parent, track) = (self.chain, self.track);
        self.field = None;
        let Some(fields) = self.fields else {
            // A map: its keys are the client's.
            let opaque = Chain::Opaque(parent);
            return self
                .map
                .next_key_seed(Seed {
                    seed,
                    chain: &opaque,
                    track,
                })
                .map_err(|e| track.trigger(parent, e));
        };
        // A struct: read the key as a string, look it up among the type's fields, then let
        // the struct's own field visitor see the same string.
        let Some(key) = self
            .map
            .next_key_seed(KeyString)
            .map_err(|e| track.trigger(parent, e))?
        else {
            return Ok(None);
        };
        self.field = fields.iter().copied().find(|f| *f == key);
        if self.field.is_none() {
            track.unknown_field(parent);
        }
        let value = match key {
            Cow::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::<A::Error>::new(key)),
            Cow::Owned(key) => seed.deserialize(StringDeserializer::<A::Error>::new(key)),
        };
        value.map(Some).map_err(|e| track.trigger(parent, e))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let (parent, track) = (self.chain, self.track);
        let chain = match self.field.take() {
            Some(name) => Chain::Field(parent, name),
            None => Chain::Opaque(parent),
        };
        self.map
            .next_value_seed(Seed {
                seed,
                chain: &chain,
                track,
            })
            .map_err(|e| track.trigger(parent, e))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Reads a map key as a string, borrowed from the input when it can be.
struct KeyString;

impl<'de> DeserializeSeed<'de> for KeyString {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Cow<'de, str>, D::Error> {
        // Asked for as an identifier, as serde's derived field visitors ask: some formats
        // (actix's path parameters) answer nothing else for a key.
        de.deserialize_identifier(KeyString)
    }
}

impl<'de> Visitor<'de> for KeyString {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// An enum: the variant name is checked by the type, but everything below it is reported
/// at the enum's own place.
struct Enum<'a, 'b, A> {
    data: A,
    chain: &'a Chain<'a>,
    track: &'b Track,
}

impl<'a, 'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'a, 'b, A> {
    type Error = A::Error;
    type Variant = Variant<'a, 'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let (chain, track) = (self.chain, self.track);
        self.data
            .variant_seed(seed)
            .map(|(value, variant)| {
                (
                    value,
                    Variant {
                        variant,
                        chain,
                        track,
                    },
                )
            })
            .map_err(|e| track.trigger(chain, e))
    }
}

struct Variant<'a, 'b, A> {
    variant: A,
    chain: &'a Chain<'a>,
    track: &'b Track,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, '_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        let (chain, track) = (self.chain, self.track);
        self.variant
            .unit_variant()
            .map_err(|e| track.trigger(chain, e))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let (chain, track) = (self.chain, self.track);
        let opaque = Chain::Opaque(chain);
        self.variant
            .newtype_variant_seed(Seed {
                seed,
                chain: &opaque,
                track,
            })
            .map_err(|e| track.trigger(chain, e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let (chain, track) = (self.chain, self.track);
        let opaque = Chain::Opaque(chain);
        let wrap = Wrap {
            visitor,
            chain: &opaque,
            track,
            fields: None,
        };
        self.variant
            .tuple_variant(len, wrap)
            .map_err(|e| track.trigger(chain, e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let (chain, track) = (self.chain, self.track);
        let opaque = Chain::Opaque(chain);
        let wrap = Wrap {
            visitor,
            chain: &opaque,
            track,
            fields: Some(fields),
        };
        self.variant
            .struct_variant(fields, wrap)
            .map_err(|e| track.trigger(chain, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Circle { r: u8 },
        Square(u8),
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(rename = "a/b")]
        slash: Option<u8>,
        list: Option<Vec<Inner>>,
        map: Option<HashMap<String, Inner>>,
        shape: Option<Shape>,
    }

    fn run(json: &str) -> (Result<Outer, serde_json::Error>, Track) {
        let track = Track::default();
        let mut de = serde_json::Deserializer::from_str(json);
        let result = Outer::deserialize(Tracked::root(&mut de, &track));
        (result, track)
    }

    fn error_at(json: &str) -> Pointer {
        let (result, track) = run(json);
        assert!(result.is_err(), "{json}");
        track.error_pointer()
    }

    #[test]
    fn fields_and_indexes_are_rendered() {
        assert_eq!(error_at(r#"{"a/b": "x"}"#).pointer, "/a~1b");
        let at = error_at(r#"{"list": [{"n": 1}, {"n": 300}]}"#);
        assert_eq!(at.pointer, "/list/1/n");
        assert!(!at.truncated);
    }

    #[test]
    fn map_keys_and_enum_payloads_are_never_rendered() {
        let at = error_at(r#"{"map": {"<img src=x onerror=alert(1)>": {"n": "x"}}}"#);
        assert_eq!(at.pointer, "/map");
        assert!(at.truncated);
        assert_eq!(
            error_at(r#"{"shape": {"Circle": {"r": -1}}}"#).pointer,
            "/shape"
        );
        assert_eq!(error_at(r#"{"shape": {"Square": "x"}}"#).pointer, "/shape");
        // An unknown variant is the client's name too.
        assert_eq!(error_at(r#"{"shape": {"<b>": 1}}"#).pointer, "/shape");
    }

    #[test]
    fn unknown_keys_are_reported_at_their_object_and_only_for_structs() {
        let (result, track) =
            run(r#"{"zzz": 1, "list": [{"n": 1, "<script>": 2}], "map": {"k": {"n": 1, "q": 3}}}"#);
        assert!(result.is_ok());
        // Inside a map value the struct's own pointer would hold the client's key, so the
        // report stops at the map.
        assert_eq!(track.take_unknown(), ["", "/list/0", "/map"]);
    }

    #[test]
    fn structs_are_objects_never_sequences() {
        // serde's derive would fill `Inner` from `[7]` and `Outer` from `[null, ...]`.
        let at = error_at(r#"{"list": [[7]]}"#);
        assert_eq!(at.pointer, "/list/0");
        let (result, _) = run(r#"[null, null, null, null]"#);
        let err = result.unwrap_err();
        assert!(
            err.to_string().starts_with("invalid type: sequence"),
            "{err}"
        );
        assert_eq!(error_at("[null, null, null, null]").pointer, "");
        // Struct variants are structs too.
        assert_eq!(error_at(r#"{"shape": {"Circle": [1]}}"#).pointer, "/shape");
        // Sequences themselves are still read.
        let (result, _) = run(r#"{"list": [{"n": 1}, {"n": 2}]}"#);
        assert_eq!(result.unwrap().list.unwrap().len(), 2);
    }

    #[test]
    fn escaped_keys_still_match_their_fields() {
        let (result, track) = run(r#"{"li\u0073t": [{"n": 7}]}"#);
        assert_eq!(result.unwrap().list.unwrap()[0].n, 7);
        assert!(track.take_unknown().is_empty());
    }
}
