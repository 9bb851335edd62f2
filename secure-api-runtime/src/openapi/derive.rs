//! The schema model behind `#[derive(SecureInput)]` under the `openapi` feature: the derive
//! describes each field as a [`Node`] (its type's shape and its rules, as written), and this
//! module turns the description into JSON Schema (utoipa's model). Not a public API: the
//! derive's generated code is its only user, through `__private::openapi`.
//!
//! Every keyword is the rule's own meaning, in JSON Schema 2020-12 terms:
//!
//! | rule | keyword |
//! | --- | --- |
//! | `length` | `minLength`/`maxLength` (strings: characters, as the rule counts them), `minItems`/`maxItems` (sequences and sets), `minProperties`/`maxProperties` (maps) |
//! | `range` | `minimum`/`maximum` (inclusive) |
//! | `pattern` | `pattern`: the rule's regex, anchored as the rule anchors it, in ECMA-262 syntax (translated by the derive; a regex without an exact ECMA-262 form is described instead) |
//! | `email`, `url`, `uuid` | `format`: `email`, `uri`, `uuid` |
//! | `ip` | `anyOf` of `format: ipv4` and `format: ipv6` |
//! | `one_of` | `enum` |
//! | `deny` | `not: {enum: [...]}` |
//! | `Option<T>` | not `required`, and `null` allowed |
//! | unknown fields refused | `additionalProperties: false` |
//! | a nested `SecureInput` type | `$ref: #/components/schemas/<Name>` |
//!
//! What JSON Schema cannot say goes into the `description`, in fixed sentences: the
//! normalisers (the constraints apply to the normalised value), the look-alikes `deny` also
//! refuses, custom rules, the stricter parts of `email` and `url`, and patterns without an
//! ECMA-262 equivalent.
//!
//! utoipa's schema model has no field for `not`, nor for `minItems` outside an array schema:
//! those keywords are written through the schema's extension map, which serialises them in
//! place (utoipa drops them if the document is deserialised back into its model).

use std::collections::HashMap;
use std::marker::PhantomData;

use serde_json::{Value, json};
pub use utoipa;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOf, AnyOf, Array, Object as JsonObject, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::Ref};
use utoipa::{PartialSchema, ToSchema};

/// For the generated `ToSchema::name`.
pub use std::borrow::Cow;

/// The schemas a `ToSchema` type refers to, by name (utoipa's `ToSchema::schemas`).
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// Implemented by `#[derive(SecureInput)]` (with utoipa's `PartialSchema` and `ToSchema`):
/// the input's fields and rules.
pub trait InputSchema: ToSchema {
    /// The input as an object: its fields in declaration order.
    fn object() -> Object;
}

/// A `SecureInput` struct: its description (the type's doc comment) and its fields.
pub struct Object {
    description: &'static str,
    fields: Vec<Field>,
}

/// A field of an input.
pub struct Field {
    /// Its name in the input (serde's renames applied).
    pub(crate) name: &'static str,
    /// Whether the input must have it: not an `Option`, no `#[serde(default)]`.
    pub(crate) required: bool,
    /// Its doc comment.
    pub(crate) description: &'static str,
    /// serde's `alias` names.
    pub(crate) aliases: &'static [&'static str],
    pub(crate) node: Node,
}

impl Object {
    /// An input with no fields yet; `description` is the type's doc comment.
    pub fn new(description: &'static str) -> Object {
        Object {
            description,
            fields: Vec::new(),
        }
    }

    /// Adds a field.
    pub fn field(
        mut self,
        name: &'static str,
        required: bool,
        description: &'static str,
        aliases: &'static [&'static str],
        node: Node,
    ) -> Object {
        self.fields.push(Field {
            name,
            required,
            description,
            aliases,
            node,
        });
        self
    }

    pub(crate) fn fields(&self) -> &[Field] {
        &self.fields
    }
}

/// A number of a rule, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A whole number.
    Int(i128),
    /// A number with a fraction or exponent.
    Float(f64),
}

/// A value of `one_of(...)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lit {
    /// A string.
    Str(&'static str),
    /// A number.
    Num(Num),
}

/// The shape of a value, from its Rust type.
enum Kind {
    String,
    Char,
    Integer {
        format: Option<&'static str>,
        unsigned: bool,
    },
    Number {
        format: &'static str,
    },
    Boolean,
    /// A sequence or set; `len` for an array of fixed length.
    Array {
        items: Box<Node>,
        len: Option<usize>,
    },
    /// A map with string keys.
    Map {
        values: Box<Node>,
    },
    /// `Option<T>`.
    Nullable(Box<Node>),
    /// A `SecureInput` type with a derived schema: a `$ref`.
    Input {
        name: fn() -> Cow<'static, str>,
        object: fn() -> Object,
        type_name: fn() -> &'static str,
    },
    /// Another type with a utoipa schema, inlined.
    Utoipa {
        schema: fn() -> RefOr<Schema>,
        schemas: Option<fn(&mut Schemas)>,
    },
    /// A type without a known schema.
    Unknown {
        why: &'static str,
    },
}

/// A rule, as written.
enum Constraint {
    Length(Option<u64>, Option<u64>),
    Range(Option<Num>, Option<Num>),
    Pattern {
        ecma: Option<&'static str>,
        source: &'static str,
    },
    Email,
    Url {
        public: bool,
    },
    Ip,
    Uuid,
    OneOf(Vec<Lit>),
    Deny(&'static [&'static str]),
    Custom(&'static str),
}

/// A value's schema as the derive describes it: its shape and its rules.
pub struct Node {
    kind: Kind,
    constraints: Vec<Constraint>,
    /// The normalisers, in the order they run.
    normalised: &'static [&'static str],
}

const NOT_DESCRIBED: &str = "Its schema is not described: the type implements neither `SecureInput` (derived) nor utoipa's `ToSchema`.";
const UNVALIDATED: &str = "Accepted without validation (`skip`); its schema is not described.";

impl Node {
    fn new(kind: Kind) -> Node {
        Node {
            kind,
            constraints: Vec::new(),
            normalised: &[],
        }
    }

    /// A string (`String`, `&str`, `Box<str>`, `Cow<str>`, ...).
    pub fn string() -> Node {
        Node::new(Kind::String)
    }

    /// A `char`: a string of one character.
    pub fn char() -> Node {
        Node::new(Kind::Char)
    }

    /// An integer of `bits` bits (`isize`/`usize` as 64).
    pub fn integer(signed: bool, bits: u32) -> Node {
        let format = match (signed, bits) {
            (true, 8) => Some("int8"),
            (true, 16) => Some("int16"),
            (true, 32) => Some("int32"),
            (true, 64) => Some("int64"),
            (false, 8) => Some("uint8"),
            (false, 16) => Some("uint16"),
            (false, 32) => Some("uint32"),
            (false, 64) => Some("uint64"),
            _ => None,
        };
        Node::new(Kind::Integer {
            format,
            unsigned: !signed,
        })
    }

    /// A floating-point number of `bits` bits.
    pub fn number(bits: u32) -> Node {
        let format = if bits == 32 { "float" } else { "double" };
        Node::new(Kind::Number { format })
    }

    /// A `bool`.
    pub fn boolean() -> Node {
        Node::new(Kind::Boolean)
    }

    /// A sequence or set of `items`; `len` for an array `[T; N]`.
    pub fn array(items: Node, len: Option<usize>) -> Node {
        Node::new(Kind::Array {
            items: Box::new(items),
            len,
        })
    }

    /// A map whose values are `values`.
    pub fn map(values: Node) -> Node {
        Node::new(Kind::Map {
            values: Box::new(values),
        })
    }

    /// `Option<T>` of `inner` (which has the field's rules).
    pub fn nullable(inner: Node) -> Node {
        Node::new(Kind::Nullable(Box::new(inner)))
    }

    /// A value that `skip` accepts without validation.
    pub fn unvalidated() -> Node {
        Node::new(Kind::Unknown { why: UNVALIDATED })
    }

    /// A `SecureInput` type whose schema the derive made.
    pub fn input<T: InputSchema + ?Sized>() -> Node {
        Node::new(Kind::Input {
            name: T::name,
            object: T::object,
            type_name: std::any::type_name::<T>,
        })
    }

    /// `length(min, max)`.
    pub fn length(mut self, min: Option<u64>, max: Option<u64>) -> Node {
        self.constraints.push(Constraint::Length(min, max));
        self
    }

    /// `range(min, max)`.
    pub fn range(mut self, min: Option<Num>, max: Option<Num>) -> Node {
        self.constraints.push(Constraint::Range(min, max));
        self
    }

    /// `pattern = "source"`, with its ECMA-262 form when it has one.
    pub fn pattern(mut self, ecma: Option<&'static str>, source: &'static str) -> Node {
        self.constraints.push(Constraint::Pattern { ecma, source });
        self
    }

    /// `email`.
    pub fn email(mut self) -> Node {
        self.constraints.push(Constraint::Email);
        self
    }

    /// `url` or `url(public)`.
    pub fn url(mut self, public: bool) -> Node {
        self.constraints.push(Constraint::Url { public });
        self
    }

    /// `ip`.
    pub fn ip(mut self) -> Node {
        self.constraints.push(Constraint::Ip);
        self
    }

    /// `uuid`.
    pub fn uuid(mut self) -> Node {
        self.constraints.push(Constraint::Uuid);
        self
    }

    /// `one_of(...)`.
    pub fn one_of(mut self, values: &[Lit]) -> Node {
        self.constraints.push(Constraint::OneOf(values.to_vec()));
        self
    }

    /// `deny(...)`, with the entries as written.
    pub fn deny(mut self, entries: &'static [&'static str]) -> Node {
        self.constraints.push(Constraint::Deny(entries));
        self
    }

    /// `custom = path`, with the path as written.
    pub fn custom(mut self, path: &'static str) -> Node {
        self.constraints.push(Constraint::Custom(path));
        self
    }

    /// The normalisers (`trim`, `lowercase`, `uppercase`, `nfc`, `nfkc`), in the order they
    /// run.
    pub fn normalised(mut self, normalisers: &'static [&'static str]) -> Node {
        self.normalised = normalisers;
        self
    }

    /// The object of an input node (`Valid<T>` of a derived type), for parameters.
    pub(crate) fn input_object(&self) -> Option<Object> {
        match &self.kind {
            Kind::Input { object, .. } => Some(object()),
            _ => None,
        }
    }

    /// Whether the node accepts `null` (`Option<T>`).
    pub(crate) fn is_nullable(&self) -> bool {
        matches!(self.kind, Kind::Nullable(_))
    }
}

/// The autoderef specialisation that finds a field type's schema: the generated code calls
/// `(&&&SchemaProbe::<T>::new()).node()` with the four traits below in scope, and the first
/// that applies wins: a derived `SecureInput` type (a `$ref`), a utoipa `ToSchema` type (its
/// schema inlined, with those it refers to), a `PartialSchema` type (inlined), anything else
/// (described as not described).
pub struct SchemaProbe<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> SchemaProbe<T> {
    /// The probe of `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        SchemaProbe(PhantomData)
    }
}

impl<T: ?Sized> Clone for SchemaProbe<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for SchemaProbe<T> {}

/// Chosen for derived `SecureInput` types.
pub trait ProbeInput {
    /// The field's node.
    fn node(self) -> Node;
}

impl<T: InputSchema + ?Sized> ProbeInput for &&&SchemaProbe<T> {
    fn node(self) -> Node {
        Node::input::<T>()
    }
}

/// Chosen for utoipa `ToSchema` types.
pub trait ProbeToSchema {
    /// The field's node.
    fn node(self) -> Node;
}

impl<T: ToSchema + ?Sized> ProbeToSchema for &&SchemaProbe<T> {
    fn node(self) -> Node {
        Node::new(Kind::Utoipa {
            schema: T::schema,
            schemas: Some(T::schemas),
        })
    }
}

/// Chosen for utoipa `PartialSchema` types.
pub trait ProbePartialSchema {
    /// The field's node.
    fn node(self) -> Node;
}

impl<T: PartialSchema + ?Sized> ProbePartialSchema for &SchemaProbe<T> {
    fn node(self) -> Node {
        Node::new(Kind::Utoipa {
            schema: T::schema,
            schemas: None,
        })
    }
}

/// Chosen for every other type.
pub trait ProbeNone {
    /// The field's node.
    fn node(self) -> Node;
}

impl<T: ?Sized> ProbeNone for SchemaProbe<T> {
    fn node(self) -> Node {
        Node::new(Kind::Unknown { why: NOT_DESCRIBED })
    }
}

/// `PartialSchema::schema` of a derived input: its object schema (nested inputs as `$ref`s).
pub fn schema_of<T: InputSchema + ?Sized>() -> RefOr<Schema> {
    let mut collector = Collector::new();
    object_schema(&T::object(), &mut collector)
}

/// `ToSchema::schemas` of a derived input: every schema it refers to, directly or not
/// (itself only when it refers to itself), each once; names already in `out` are kept.
pub fn schemas_of<T: InputSchema + ?Sized>(out: &mut Schemas) {
    let mut collector = Collector::new();
    for (name, _) in out.iter() {
        collector.seen.insert(name.clone(), None);
    }
    collector
        .seen
        .insert(T::name().into_owned(), Some(std::any::type_name::<T>()));
    object_schema(&T::object(), &mut collector);
    collector.finish(out);
}

/// Turns nodes into schemas, and gathers the schemas they refer to: each derived input once
/// by name, then what utoipa types refer to.
pub(crate) struct Collector {
    /// Names given out, with the type each stands for (`None`: already in the output).
    seen: HashMap<String, Option<&'static str>>,
    /// Inputs referred to, still to describe.
    pending: Vec<(String, fn() -> Object)>,
    /// `ToSchema::schemas` of inlined utoipa types.
    utoipa: Vec<fn(&mut Schemas)>,
    /// Names that two different types claimed: (name, the type that has it, the type
    /// given its path instead).
    pub(crate) conflicts: Vec<(String, &'static str, &'static str)>,
}

impl Collector {
    pub(crate) fn new() -> Collector {
        Collector {
            seen: HashMap::new(),
            pending: Vec::new(),
            utoipa: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// A `$ref` to the input `name`, described later. A name that another type already has
    /// is replaced by the type's path (`my_app.api.Id`), so that each `$ref` leads to its
    /// own type's schema; the clash is reported in [`Collector::conflicts`].
    fn refer(
        &mut self,
        name: Cow<'static, str>,
        object: fn() -> Object,
        type_name: &'static str,
    ) -> Ref {
        let mut name = name.into_owned();
        if let Some(&Some(first)) = self.seen.get(&name)
            && first != type_name
        {
            let path = component_name(type_name);
            self.conflicts
                .push((std::mem::replace(&mut name, path), first, type_name));
        }
        if !self.seen.contains_key(&name) {
            self.seen.insert(name.clone(), Some(type_name));
            self.pending.push((name.clone(), object));
        }
        Ref::from_schema_name(name)
    }

    /// Describes every input referred to (and those they refer to) into `out`, then adds
    /// what the inlined utoipa types refer to.
    pub(crate) fn finish(&mut self, out: &mut Schemas) {
        while let Some((name, object)) = self.pending.pop() {
            let schema = object_schema(&object(), self);
            out.push((name, schema));
        }
        let mut theirs = Schemas::new();
        for schemas in std::mem::take(&mut self.utoipa) {
            schemas(&mut theirs);
        }
        for (name, schema) in theirs {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, schema));
            }
        }
    }
}

/// A type's path as a component name (`[A-Za-z0-9._-]+`): `a::b::C<D>` is `a.b.C_D_`.
fn component_name(type_name: &str) -> String {
    type_name
        .replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The object schema of an input: its properties (aliases too), the required ones, and no
/// others.
pub(crate) fn object_schema(object: &Object, c: &mut Collector) -> RefOr<Schema> {
    let mut schema = JsonObject::with_type(Type::Object);
    for field in &object.fields {
        let property = field_schema(field, c);
        for alias in field.aliases {
            let mut aliased = property.clone();
            let mut text = format!("Alias of `{}`.", field.name);
            if let Some(own) = description_of(&aliased).filter(|d| !d.is_empty()) {
                text = format!("{text}\n\n{own}");
            }
            set_description(&mut aliased, &text);
            schema.properties.insert((*alias).to_owned(), aliased);
        }
        schema.properties.insert(field.name.to_owned(), property);
        if field.required {
            schema.required.push(field.name.to_owned());
        }
    }
    schema.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    if !object.description.is_empty() {
        schema.description = Some(object.description.to_owned());
    }
    RefOr::T(Schema::Object(schema))
}

/// A field's schema, with its doc comment.
pub(crate) fn field_schema(field: &Field, c: &mut Collector) -> RefOr<Schema> {
    node_schema(&field.node, c, field.description)
}

/// The description of a schema (or a `$ref`).
fn description_of(schema: &RefOr<Schema>) -> Option<String> {
    match schema {
        RefOr::Ref(r) => Some(r.description.clone()),
        RefOr::T(Schema::Object(o)) => o.description.clone(),
        RefOr::T(Schema::Array(a)) => a.description.clone(),
        RefOr::T(Schema::AllOf(a)) => a.description.clone(),
        RefOr::T(Schema::AnyOf(a)) => a.description.clone(),
        RefOr::T(Schema::OneOf(o)) => o.description.clone(),
        RefOr::T(_) => None,
    }
}

/// Replaces the description of a schema (or a `$ref`).
fn set_description(schema: &mut RefOr<Schema>, text: &str) {
    match schema {
        RefOr::Ref(r) => r.description = text.to_owned(),
        RefOr::T(Schema::Object(o)) => o.description = Some(text.to_owned()),
        RefOr::T(Schema::Array(a)) => a.description = Some(text.to_owned()),
        RefOr::T(Schema::AllOf(a)) => a.description = Some(text.to_owned()),
        RefOr::T(Schema::AnyOf(a)) => a.description = Some(text.to_owned()),
        RefOr::T(Schema::OneOf(o)) => o.description = Some(text.to_owned()),
        RefOr::T(_) => {}
    }
}

/// The schema of a node; `doc` (a field's doc comment) comes first in its description.
pub(crate) fn node_schema(node: &Node, c: &mut Collector, doc: &str) -> RefOr<Schema> {
    if let Kind::Nullable(inner) = &node.kind {
        return nullable(node_schema(inner, c, doc));
    }
    let notes = node.notes();
    let description = [doc.trim()]
        .into_iter()
        .chain(notes.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let description = (!description.is_empty()).then_some(description);
    let ip = node.constraints.iter().any(|k| matches!(k, Constraint::Ip));
    let mut schema = match &node.kind {
        Kind::Array { items, len } => {
            let items = node_schema(items, c, "");
            let mut array = Array::new(items);
            let (mut min, mut max) = (len.map(|n| n as u64), len.map(|n| n as u64));
            for k in &node.constraints {
                if let Constraint::Length(lo, hi) = k {
                    min = tighter(min, *lo, u64::max);
                    max = tighter(max, *hi, u64::min);
                }
            }
            array.min_items = min.map(to_usize);
            array.max_items = max.map(to_usize);
            array.description = description.clone();
            RefOr::T(Schema::Array(array))
        }
        Kind::Input {
            name,
            object,
            type_name,
        } => {
            let mut reference = c.refer(name(), *object, type_name());
            if node.constraints.is_empty() {
                reference.description = description.clone().unwrap_or_default();
                RefOr::Ref(reference)
            } else {
                with_constraints(RefOr::Ref(reference), node, description.clone())
            }
        }
        Kind::Utoipa { schema, schemas } => {
            if let Some(schemas) = schemas {
                c.utoipa.push(*schemas);
            }
            if node.constraints.is_empty() && description.is_none() {
                schema()
            } else {
                with_constraints(schema(), node, description.clone())
            }
        }
        Kind::Unknown { .. } => {
            let mut object = untyped(node);
            object.description = description.clone();
            RefOr::T(Schema::Object(object))
        }
        Kind::Nullable(_) => unreachable!("handled above"),
        Kind::String
        | Kind::Char
        | Kind::Integer { .. }
        | Kind::Number { .. }
        | Kind::Boolean
        | Kind::Map { .. } => {
            let mut object = typed(node, c);
            object.description = description.clone();
            RefOr::T(Schema::Object(object))
        }
    };
    if ip {
        // `format` takes one value: an address of either family is `anyOf` the two.
        let mut either = AnyOf::new();
        for format in ["ipv4", "ipv6"] {
            let mut f = JsonObject::new();
            f.schema_type = SchemaType::AnyValue;
            f.format = Some(SchemaFormat::Custom(format.to_owned()));
            either.items.push(RefOr::T(Schema::Object(f)));
        }
        clear_description(&mut schema);
        let mut all = AllOf::new();
        all.items = vec![schema, RefOr::T(Schema::AnyOf(either))];
        all.description = description;
        schema = RefOr::T(Schema::AllOf(all));
    }
    schema
}

fn clear_description(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::Ref(r) => r.description.clear(),
        RefOr::T(Schema::Object(o)) => o.description = None,
        RefOr::T(Schema::Array(a)) => a.description = None,
        RefOr::T(Schema::AllOf(a)) => a.description = None,
        RefOr::T(Schema::AnyOf(a)) => a.description = None,
        RefOr::T(Schema::OneOf(o)) => o.description = None,
        RefOr::T(_) => {}
    }
}

/// `schema` and the node's constraints, as `allOf`.
fn with_constraints(
    schema: RefOr<Schema>,
    node: &Node,
    description: Option<String>,
) -> RefOr<Schema> {
    let mut all = AllOf::new();
    all.items.push(schema);
    let constraints = untyped(node);
    if constraints != JsonObject::with_type(SchemaType::AnyValue) {
        all.items.push(RefOr::T(Schema::Object(constraints)));
    }
    all.description = description;
    RefOr::T(Schema::AllOf(all))
}

/// The tighter of a bound so far and a rule's.
fn tighter(so_far: Option<u64>, rule: Option<u64>, pick: fn(u64, u64) -> u64) -> Option<u64> {
    match (so_far, rule) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn number(n: Num) -> utoipa::Number {
    match n {
        Num::Int(v) => match isize::try_from(v) {
            Ok(v) => utoipa::Number::Int(v),
            Err(_) => match usize::try_from(v) {
                Ok(v) => utoipa::Number::UInt(v),
                Err(_) => utoipa::Number::Float(v as f64),
            },
        },
        Num::Float(v) => utoipa::Number::Float(v),
    }
}

fn lit_value(lit: &Lit) -> Value {
    match lit {
        Lit::Str(s) => Value::from(*s),
        Lit::Num(Num::Int(v)) => match i64::try_from(*v) {
            Ok(v) => Value::from(v),
            Err(_) => match u64::try_from(*v) {
                Ok(v) => Value::from(v),
                Err(_) => Value::from(*v as f64),
            },
        },
        Lit::Num(Num::Float(v)) => Value::from(*v),
    }
}

fn extension(object: &mut JsonObject, key: &str, value: Value) {
    object
        .extensions
        .get_or_insert_with(Extensions::default)
        .insert(key.to_owned(), value);
}

/// Where `length` applies, for the keywords it becomes.
#[derive(Clone, Copy, PartialEq)]
enum Counted {
    Chars,
    Entries,
    /// The type is not known: every keyword (each applies only to its JSON type).
    Any,
}

/// The schema of a scalar or map node: its type and every constraint.
fn typed(node: &Node, c: &mut Collector) -> JsonObject {
    let (mut object, counted) = match &node.kind {
        Kind::String => (JsonObject::with_type(Type::String), Counted::Chars),
        Kind::Char => {
            let mut o = JsonObject::with_type(Type::String);
            o.min_length = Some(1);
            o.max_length = Some(1);
            (o, Counted::Chars)
        }
        Kind::Integer { format, unsigned } => {
            let mut o = JsonObject::with_type(Type::Integer);
            o.format = format.map(|f| SchemaFormat::Custom(f.to_owned()));
            if *unsigned {
                o.minimum = Some(utoipa::Number::Int(0));
            }
            (o, Counted::Chars)
        }
        Kind::Number { format } => {
            let mut o = JsonObject::with_type(Type::Number);
            o.format = Some(SchemaFormat::Custom((*format).to_owned()));
            (o, Counted::Chars)
        }
        Kind::Boolean => (JsonObject::with_type(Type::Boolean), Counted::Chars),
        Kind::Map { values } => {
            let mut o = JsonObject::with_type(Type::Object);
            let values = node_schema(values, c, "");
            o.additional_properties = Some(Box::new(AdditionalProperties::RefOr(values)));
            (o, Counted::Entries)
        }
        _ => (JsonObject::with_type(SchemaType::AnyValue), Counted::Any),
    };
    constrain(&mut object, node, counted);
    object
}

/// The node's constraints without a type (beside a `$ref`, or for an unknown type).
fn untyped(node: &Node) -> JsonObject {
    let mut object = JsonObject::with_type(SchemaType::AnyValue);
    constrain(&mut object, node, Counted::Any);
    object
}

fn constrain(object: &mut JsonObject, node: &Node, counted: Counted) {
    for k in &node.constraints {
        match k {
            Constraint::Length(min, max) => {
                let (min, max) = (min.map(to_usize), max.map(to_usize));
                if counted != Counted::Entries {
                    object.min_length = min.or(object.min_length);
                    object.max_length = max.or(object.max_length);
                }
                if counted != Counted::Chars {
                    object.min_properties = min;
                    object.max_properties = max;
                }
                if counted == Counted::Any {
                    if let Some(min) = min {
                        extension(object, "minItems", json!(min));
                    }
                    if let Some(max) = max {
                        extension(object, "maxItems", json!(max));
                    }
                }
            }
            Constraint::Range(min, max) => {
                if let Some(min) = min {
                    object.minimum = Some(number(*min));
                }
                if let Some(max) = max {
                    object.maximum = Some(number(*max));
                }
            }
            Constraint::Pattern { ecma, .. } => {
                if let Some(ecma) = ecma {
                    object.pattern = Some((*ecma).to_owned());
                }
            }
            Constraint::Email => object.format = Some(SchemaFormat::Custom("email".to_owned())),
            Constraint::Url { .. } => object.format = Some(SchemaFormat::Custom("uri".to_owned())),
            Constraint::Uuid => object.format = Some(SchemaFormat::Custom("uuid".to_owned())),
            Constraint::Ip | Constraint::Custom(_) => {}
            Constraint::OneOf(values) => {
                object.enum_values = Some(values.iter().map(lit_value).collect());
            }
            Constraint::Deny(entries) => {
                extension(object, "not", json!({ "enum": entries }));
            }
        }
    }
}

/// `schema` or `null`.
fn nullable(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut o)) if matches!(o.schema_type, SchemaType::Type(_)) => {
            let SchemaType::Type(t) = o.schema_type else {
                unreachable!("matched above")
            };
            o.schema_type = SchemaType::from_iter([t, Type::Null]);
            // `enum` is checked on its own: `null` must be one of its values too.
            if let Some(values) = &mut o.enum_values {
                values.push(Value::Null);
            }
            RefOr::T(Schema::Object(o))
        }
        RefOr::T(Schema::Array(mut a)) => {
            a.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
            RefOr::T(Schema::Array(a))
        }
        other => {
            let mut null = JsonObject::with_type(Type::Null);
            null.description = None;
            let mut any = AnyOf::new();
            any.items = vec![other, RefOr::T(Schema::Object(null))];
            RefOr::T(Schema::AnyOf(any))
        }
    }
}

const NORMALISER_WORDS: &[(&str, &str)] = &[
    ("trim", "surrounding whitespace trimmed"),
    ("lowercase", "lowercased"),
    ("uppercase", "uppercased"),
    ("nfc", "Unicode NFC"),
    ("nfkc", "Unicode NFKC (compatibility forms folded)"),
];

impl Node {
    /// The sentences for what the node's JSON Schema keywords cannot say, in rule order
    /// (normalisers first: they run first).
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.normalised.is_empty() {
            let words: Vec<&str> = self
                .normalised
                .iter()
                .map(|n| {
                    NORMALISER_WORDS
                        .iter()
                        .find(|(k, _)| k == n)
                        .map_or(*n, |(_, w)| *w)
                })
                .collect();
            notes.push(format!(
                "Normalised before it is checked: {}. The constraints apply to the normalised value.",
                words.join(", ")
            ));
        }
        if let Kind::Unknown { why } = &self.kind {
            notes.push((*why).to_owned());
        }
        for k in &self.constraints {
            match k {
                Constraint::Pattern { ecma: None, source } => notes.push(format!(
                    "Must match the regular expression `{source}` as a whole (Rust `regex` syntax; it has no exact ECMA-262 form, so `pattern` is not given)."
                )),
                Constraint::Email => notes.push(
                    "An e-mail address `local@domain` of at most 254 bytes (local part at most 64): no quoted local parts, comments, IP-literal or single-label domains."
                        .to_owned(),
                ),
                Constraint::Url { public } => {
                    let mut text = "An absolute `http` or `https` URL without user information, at most 2048 bytes".to_owned();
                    if *public {
                        text.push_str(", whose host is a public internet host: loopback, private, link-local, shared, multicast, reserved and cloud-metadata addresses (in every numeric form) and local names are refused");
                    }
                    text.push('.');
                    notes.push(text);
                }
                Constraint::Deny(_) => notes.push(
                    "The `not` list is not all: values that look like one of its entries (compared case-insensitively by their Unicode confusable skeletons, invisible characters ignored) are refused too."
                        .to_owned(),
                ),
                Constraint::Custom(path) => notes.push(format!(
                    "Also checked by the custom rule `{path}`."
                )),
                _ => {}
            }
        }
        notes
    }
}
