//! Internally tagged enums (`{"job": "refund", "amount": 4900, ...}`) without serde's
//! buffering: the stored account's and the directory's answer read as they stream in, the
//! catalog's through a `serde_json::Map`.
//!
//! serde's `#[serde(tag = "...")]` reads the whole object into its private `Content` tree
//! before it knows the variant, then decodes the variant from that tree: every variant's
//! decoder is instantiated a second time, for `Content`, for each decoder the enum meets.
//! Measured on the worker's wasm (BENCHMARKS.md, "Stop 27"), that second copy was the largest
//! single piece of serde code. [`crate::internally_tagged!`] gives an enum the same JSON shape
//! without it: the enum derives serde's externally tagged code as inherent functions
//! (`#[serde(remote = "Self")]`), and [`TagFirst`] and [`TagFirstSer`] adapt that code to the
//! internally tagged shape.
//!
//! Invariant: **the tag is the object's first key.** Every writer of these shapes puts it
//! there (serde's derive did, [`TagFirstSer`] does, and `JSON.parse` keeps key order), so
//! every stored state reads back; an object whose tag comes later is refused with an error
//! that says so.
//!
//! Shapes other programs write (the catalog, which an operator may write in any key order) use
//! `internally_tagged!(T, "type", any_order)`: the object is first read into a
//! `serde_json::Map` (the catalog is read from a `serde_json::Value` anyway), then the variant
//! from it ([`TagAnywhere`]). Same errors as serde's derive, pinned in `tagged_tests.rs`.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, IntoDeserializer, MapAccess,
    VariantAccess, Visitor,
};
use serde::ser::{self, Impossible, SerializeStruct, SerializeStructVariant, Serializer};
use serde_json::{Map, Value};

/// Implements `Serialize` and `Deserialize` for an enum that derives them with
/// `#[serde(remote = "Self")]` (externally tagged, as inherent functions), in the internally
/// tagged shape: written with `$tag` as the first key; read with the tag first, or, with
/// `any_order`, wherever it is.
#[macro_export]
macro_rules! internally_tagged {
    ($ty:ident, $tag:literal) => {
        $crate::internally_tagged!(@serialize $ty, $tag);
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$ty>::deserialize($crate::tagged::TagFirst::new($tag, d))
            }
        }
    };
    ($ty:ident, $tag:literal, any_order) => {
        $crate::internally_tagged!(@serialize $ty, $tag);
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let object = $crate::tagged::read_object(
                    d,
                    concat!("internally tagged enum ", stringify!($ty)),
                )?;
                <$ty>::deserialize($crate::tagged::TagAnywhere::new($tag, object))
                    .map_err(serde::de::Error::custom)
            }
        }
    };
    (@serialize $ty:ident, $tag:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$ty>::serialize(self, $crate::tagged::TagFirstSer::new($tag, s))
            }
        }
    };
}

/// A decoder that gives an externally tagged enum's derived code the variant named by the
/// first key `tag` of an object, and the object's other keys as the variant's fields.
pub struct TagFirst<D> {
    tag: &'static str,
    inner: D,
}

impl<D> TagFirst<D> {
    pub fn new(tag: &'static str, inner: D) -> Self {
        TagFirst { tag, inner }
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TagFirst<D> {
    type Error = D::Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(FirstKey {
            tag: self.tag,
            visitor,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, D::Error> {
        Err(only_as_enum())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// What both decoders answer when asked for anything but the enum (the derived code never
/// asks).
fn only_as_enum<E: de::Error>() -> E {
    de::Error::custom("an internally tagged enum reads only as an enum")
}

/// What both decoders answer for a tuple variant: it has no keys to sit beside the tag.
fn refused_tuple_variant<E: de::Error>() -> E {
    de::Error::custom("tuple variants cannot be internally tagged")
}

/// Reads the tag (which must be the first key), then hands the rest of the object on.
struct FirstKey<V> {
    tag: &'static str,
    visitor: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for FirstKey<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object whose first key is `{}`", self.tag)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        match map.next_key::<String>()? {
            Some(key) if key == self.tag => {}
            _ => {
                return Err(de::Error::custom(format_args!(
                    "expected `{}` as the object's first key",
                    self.tag
                )))
            }
        }
        let variant: String = map.next_value()?;
        self.visitor.visit_enum(Variant { variant, map })
    }
}

/// The variant's name, and the object's remaining keys as its content.
struct Variant<A> {
    variant: String,
    map: A,
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Variant<A> {
    type Error = A::Error;
    type Variant = Rest<A>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Rest<A>), A::Error> {
        let name: StringDeserializer<A::Error> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, Rest(self.map)))
    }
}

struct Rest<A>(A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Rest<A> {
    type Error = A::Error;

    /// Other keys beside the tag are ignored, as serde's internally tagged unit variants do.
    fn unit_variant(mut self) -> Result<(), A::Error> {
        while self.0.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, A::Error> {
        Err(refused_tuple_variant())
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }
}

/// Reads an object into a `serde_json::Map`; `expecting` names what was expected (serde's
/// words: "internally tagged enum T").
pub fn read_object<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<Map<String, Value>, D::Error> {
    d.deserialize_map(Object(expecting))
}

struct Object(&'static str);

impl<'de> Visitor<'de> for Object {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(object)
    }
}

/// A decoder that gives an externally tagged enum's derived code the variant named by the
/// object's `tag` key, wherever it was, and the object's other keys as the variant's fields.
pub struct TagAnywhere {
    tag: &'static str,
    object: Map<String, Value>,
}

impl TagAnywhere {
    pub fn new(tag: &'static str, object: Map<String, Value>) -> Self {
        TagAnywhere { tag, object }
    }
}

impl<'de> Deserializer<'de> for TagAnywhere {
    type Error = serde_json::Error;

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let tag = self
            .object
            .remove(self.tag)
            .ok_or_else(|| de::Error::missing_field(self.tag))?;
        visitor.visit_enum(Tagged {
            tag,
            rest: self.object,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, serde_json::Error> {
        Err(only_as_enum())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// The tag's value (read as the variant's name, so a tag that is not a string fails as it did
/// with serde's derive) and the object's other keys.
struct Tagged {
    tag: Value,
    rest: Map<String, Value>,
}

impl<'de> EnumAccess<'de> for Tagged {
    type Error = serde_json::Error;
    type Variant = Others;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Others), serde_json::Error> {
        Ok((seed.deserialize(self.tag)?, Others(self.rest)))
    }
}

/// The object's keys other than the tag: the variant's content. Not [`Rest`] over a map
/// iterator: decoding through serde_json's own `Value` decoder reuses the instantiations the
/// catalog's structs already have, where a new `MapAccess` type would add its own.
struct Others(Map<String, Value>);

impl<'de> VariantAccess<'de> for Others {
    type Error = serde_json::Error;

    /// Other keys beside the tag are ignored, as serde's internally tagged unit variants do
    /// (`deny_unknown_fields` included).
    fn unit_variant(self) -> Result<(), serde_json::Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, serde_json::Error> {
        seed.deserialize(Value::Object(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        Err(refused_tuple_variant())
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        Value::Object(self.0).deserialize_map(visitor)
    }
}

/// An encoder that writes an externally tagged enum's derived code in the internally tagged
/// shape: an object whose first key is `tag`, naming the variant, then the variant's fields.
/// Unit and struct variants only (newtype and tuple variants are refused).
pub struct TagFirstSer<S> {
    tag: &'static str,
    inner: S,
}

impl<S> TagFirstSer<S> {
    pub fn new(tag: &'static str, inner: S) -> Self {
        TagFirstSer { tag, inner }
    }
}

fn only_variants<E: ser::Error>() -> E {
    ser::Error::custom("an internally tagged enum writes only unit and struct variants")
}

/// The fields of a struct variant, after the tag.
pub struct Fields<T>(T);

impl<T: SerializeStruct> SerializeStructVariant for Fields<T> {
    type Ok = T::Ok;
    type Error = T::Error;

    fn serialize_field<V: ?Sized + serde::Serialize>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), T::Error> {
        self.0.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), T::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<T::Ok, T::Error> {
        self.0.end()
    }
}

impl<S: Serializer> Serializer for TagFirstSer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Fields<S::SerializeStruct>;

    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        let mut object = self.inner.serialize_struct(name, 1)?;
        object.serialize_field(self.tag, variant)?;
        object.end()
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields<S::SerializeStruct>, S::Error> {
        let mut object = self.inner.serialize_struct(name, len + 1)?;
        object.serialize_field(self.tag, variant)?;
        Ok(Fields(object))
    }

    fn serialize_newtype_variant<T: ?Sized + serde::Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(only_variants())
    }

    fn serialize_bool(self, _v: bool) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_i8(self, _v: i8) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_i16(self, _v: i16) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_i32(self, _v: i32) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_i64(self, _v: i64) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_u8(self, _v: u8) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_u16(self, _v: u16) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_u32(self, _v: u32) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_u64(self, _v: u64) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_f32(self, _v: f32) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_f64(self, _v: f64) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_char(self, _v: char) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_str(self, _v: &str) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_some<T: ?Sized + serde::Serialize>(self, _v: &T) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_newtype_struct<T: ?Sized + serde::Serialize>(
        self,
        _name: &'static str,
        _v: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(only_variants())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(only_variants())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(only_variants())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(only_variants())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(only_variants())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Err(only_variants())
    }
}
