//! The serde attributes that decide what a field is called in the input, so that error
//! pointers name the member the client sent. Attributes the derive cannot honour are errors.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr};

use crate::common::{each_nested_meta, key_name, skip_value};
use crate::ctxt::Ctxt;

#[derive(Default)]
pub struct ContainerSerde {
    rename_all: Option<RenameRule>,
    /// `#[serde(default)]`: every field may be missing.
    default: bool,
}

/// What serde makes of a field: its name in the input and whether it must be there.
pub struct FieldSerde {
    /// The name in the input (after `rename` / `rename_all`).
    pub wire: String,
    /// `default` on the field or the container: the field may be missing.
    pub default: bool,
    /// `skip` or `skip_deserializing`: never read from the input.
    pub skipped: bool,
    /// `alias = "..."`: other names the input may use.
    pub aliases: Vec<String>,
}

#[derive(Clone, Copy)]
enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

const RULES: &[(&str, RenameRule)] = &[
    ("lowercase", RenameRule::Lower),
    ("UPPERCASE", RenameRule::Upper),
    ("PascalCase", RenameRule::Pascal),
    ("camelCase", RenameRule::Camel),
    ("snake_case", RenameRule::Snake),
    ("SCREAMING_SNAKE_CASE", RenameRule::ScreamingSnake),
    ("kebab-case", RenameRule::Kebab),
    ("SCREAMING-KEBAB-CASE", RenameRule::ScreamingKebab),
];

impl RenameRule {
    /// serde_derive's `RenameRule::apply_to_field`.
    fn apply(self, field: &str) -> String {
        match self {
            RenameRule::Lower | RenameRule::Snake => field.to_owned(),
            RenameRule::Upper | RenameRule::ScreamingSnake => field.to_ascii_uppercase(),
            RenameRule::Pascal => {
                let mut out = String::new();
                let mut capitalize = true;
                for c in field.chars() {
                    if c == '_' {
                        capitalize = true;
                    } else if capitalize {
                        out.push(c.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            RenameRule::Camel => {
                let pascal = RenameRule::Pascal.apply(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            RenameRule::Kebab => field.replace('_', "-"),
            RenameRule::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// `rename = "x"` or `rename(deserialize = "x")`: the name used when deserialising.
fn deserialize_name(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let mut name = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("deserialize") {
            name = Some(inner.value()?.parse()?);
        } else {
            skip_value(&inner)?;
        }
        Ok(())
    })?;
    Ok(name)
}

pub fn container(cx: &Ctxt, attrs: &[Attribute]) -> ContainerSerde {
    let mut out = ContainerSerde::default();
    each_nested_meta(cx, attrs, "serde", |meta| {
        let key = key_name(&meta.path);
        match key.as_str() {
            "rename_all" => {
                if let Some(lit) = deserialize_name(&meta)? {
                    // An unknown rule is left for serde itself to report.
                    if let Some((_, rule)) = RULES.iter().find(|(n, _)| *n == lit.value()) {
                        out.rename_all = Some(*rule);
                    }
                }
                Ok(())
            }
            "default" => {
                out.default = true;
                skip_value(&meta)
            }
            "transparent" | "from" | "try_from" | "remote" => {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`SecureInput` cannot honour `#[serde({key})]`: the fields it \
                         validates would not be the fields the input has; validate the \
                         type that is deserialised instead"
                    ),
                );
                skip_value(&meta)
            }
            _ => skip_value(&meta),
        }
    });
    out
}

/// The field's name in the input, and what else serde's attributes say about reading it.
pub fn field(
    cx: &Ctxt,
    member: &syn::Ident,
    attrs: &[Attribute],
    container: &ContainerSerde,
) -> FieldSerde {
    let ident = member.to_string();
    let ident = ident.strip_prefix("r#").unwrap_or(&ident).to_owned();
    let mut renamed = None;
    let mut default = container.default;
    let mut skipped = false;
    let mut aliases = Vec::new();
    each_nested_meta(cx, attrs, "serde", |meta| {
        let key = key_name(&meta.path);
        match key.as_str() {
            "rename" => {
                if let Some(lit) = deserialize_name(&meta)? {
                    renamed = Some(lit.value());
                }
                Ok(())
            }
            "default" => {
                default = true;
                skip_value(&meta)
            }
            "skip" | "skip_deserializing" => {
                skipped = true;
                skip_value(&meta)
            }
            "alias" => {
                if meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    aliases.push(lit.value());
                    Ok(())
                } else {
                    skip_value(&meta)
                }
            }
            "flatten" => {
                cx.error_spanned_by(
                    &meta.path,
                    "`SecureInput` cannot honour `#[serde(flatten)]`: flattened members \
                     would be validated without knowing their place in the input, and \
                     flatten disables unknown-field rejection; use a nested field with \
                     `#[secure(nested)]` instead",
                );
                skip_value(&meta)
            }
            _ => skip_value(&meta),
        }
    });
    let wire = renamed.unwrap_or_else(|| match container.rename_all {
        Some(rule) => rule.apply(&ident),
        None => ident,
    });
    FieldSerde {
        wire,
        default,
        skipped,
        aliases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_rules_match_serde() {
        let f = "user_name_2";
        let expect = [
            (RenameRule::Lower, "user_name_2"),
            (RenameRule::Upper, "USER_NAME_2"),
            (RenameRule::Pascal, "UserName2"),
            (RenameRule::Camel, "userName2"),
            (RenameRule::Snake, "user_name_2"),
            (RenameRule::ScreamingSnake, "USER_NAME_2"),
            (RenameRule::Kebab, "user-name-2"),
            (RenameRule::ScreamingKebab, "USER-NAME-2"),
        ];
        for (rule, want) in expect {
            assert_eq!(rule.apply(f), want);
        }
    }
}
