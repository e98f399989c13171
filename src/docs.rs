//! The book's generated reference pages (`docs/src/reference/`), so they cannot drift from the code:
//! the API from the CustomResourceDefinitions' schemas ([`crate::crd::all`]), and the conditions'
//! reasons from the typed list ([`Reason::ALL`] with each reason's texts).
//!
//! The pages are committed; a unit test compares them with what these functions write and fails when
//! they differ. `MUA_UPDATE_DOCS=1 cargo test --lib docs` rewrites them.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use crate::controller::reason::Reason;

/// Where [`api_reference`] is committed, relative to the checkout.
pub const API_REFERENCE_PATH: &str = "docs/src/reference/api.md";
/// Where [`reasons_reference`] is committed, relative to the checkout.
pub const REASONS_REFERENCE_PATH: &str = "docs/src/reference/reasons.md";

const REGENERATE: &str = "`MUA_UPDATE_DOCS=1 cargo test --lib docs`";

/// The API reference: per kind its names, printer columns, every `spec` and `status` field (type,
/// whether required, default, allowed values, description) and the CEL rules the API server checks.
pub fn api_reference() -> String {
    let crds: Vec<CustomResourceDefinition> = crate::crd::all().into_iter().map(|(_, crd)| crd).collect();
    let mut out = String::new();
    out.push_str(&generated_note(
        "api_reference",
        "the CRDs' schemas (crates/mua-api/src/crd/)",
    ));
    out.push_str("# API reference\n\n");
    let group = crds.first().map(|c| c.spec.group.as_str()).unwrap_or_default();
    let _ = writeln!(
        out,
        "Every field of the {} kinds of group `{group}`, as the CustomResourceDefinitions that \
         `mua-operator crdgen` writes declare them (`kubectl explain` shows the same descriptions). \
         *Required* means required whenever the object holding the field is given. `a[]` is an item of the \
         list `a`; `m{{}}` a value of the map `m`.\n",
        crds.len()
    );
    let kinds: Vec<String> = crds
        .iter()
        .map(|c| format!("[{0}](#{1})", c.spec.names.kind, c.spec.names.kind.to_ascii_lowercase()))
        .collect();
    let _ = writeln!(out, "Kinds: {}.\n", kinds.join(" · "));
    for crd in &crds {
        render_kind(&mut out, crd);
    }
    out
}

fn render_kind(out: &mut String, crd: &CustomResourceDefinition) {
    let names = &crd.spec.names;
    let _ = writeln!(out, "## {}\n", names.kind);
    for version in &crd.spec.versions {
        let root = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
        if let Some(description) = root.and_then(|r| r.description.as_deref()) {
            let _ = writeln!(out, "{}\n", text(description));
        }
        let list = |items: Option<&Vec<String>>| match items {
            Some(items) if !items.is_empty() => items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", "),
            _ => "—".to_string(),
        };
        let subresources = version.subresources.as_ref().map(|s| {
            let mut names = Vec::new();
            if s.status.is_some() {
                names.push("status".to_string());
            }
            if s.scale.is_some() {
                names.push("scale".to_string());
            }
            names
        });
        out.push_str("| | |\n|---|---|\n");
        let _ = writeln!(
            out,
            "| API version | {} ({}) |",
            code(&format!("{}/{}", crd.spec.group, version.name)),
            crd.spec.scope.to_ascii_lowercase()
        );
        let _ = writeln!(
            out,
            "| resource | {} |",
            code(&format!("{}.{}", names.plural, crd.spec.group))
        );
        let _ = writeln!(out, "| short names | {} |", list(names.short_names.as_ref()));
        let _ = writeln!(out, "| categories | {} |", list(names.categories.as_ref()));
        let _ = writeln!(out, "| subresources | {} |\n", list(subresources.as_ref()));

        if let Some(columns) = version.additional_printer_columns.as_ref().filter(|c| !c.is_empty()) {
            out.push_str("Printer columns (`kubectl get`; those of priority above 0 only with `-o wide`):\n\n");
            out.push_str("| column | JSON path | type | shown |\n|---|---|---|---|\n");
            for c in columns {
                let shown = match c.priority.unwrap_or(0) {
                    0 => "always".to_string(),
                    _ => "`-o wide`".to_string(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {shown} |",
                    cell(&c.name),
                    code(&c.json_path),
                    c.type_
                );
            }
            out.push('\n');
        }

        let Some(root) = root else { continue };
        let mut rows = Vec::new();
        let mut rules = Vec::new();
        collect_rules("(the object)", root, &mut rules);
        for top in ["spec", "status"] {
            if let Some(schema) = root.properties.as_ref().and_then(|p| p.get(top)) {
                walk(top, schema, is_required(root, top), &mut rows, &mut rules);
            }
        }
        out.push_str("| field | type | required | default | values | description |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in &rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                code(&row.path),
                row.type_,
                if row.required { "yes" } else { "" },
                row.default,
                row.values,
                row.description
            );
        }
        out.push('\n');
        if !rules.is_empty() {
            out.push_str("Validation rules (CEL), checked by the API server at admission:\n\n");
            out.push_str("| field | rule | message |\n|---|---|---|\n");
            for (path, rule, message) in &rules {
                let _ = writeln!(out, "| {} | {} | {} |", code(path), code(rule), message);
            }
            out.push('\n');
        }
    }
}

/// One field of the reference.
struct Row {
    path: String,
    type_: String,
    required: bool,
    default: String,
    values: String,
    description: String,
}

fn is_required(parent: &JSONSchemaProps, name: &str) -> bool {
    parent.required.as_ref().is_some_and(|r| r.iter().any(|n| n == name))
}

fn walk(
    path: &str,
    schema: &JSONSchemaProps,
    required: bool,
    rows: &mut Vec<Row>,
    rules: &mut Vec<(String, String, String)>,
) {
    rows.push(Row {
        path: path.to_string(),
        type_: type_of(schema),
        required,
        default: schema
            .default
            .as_ref()
            .map(|d| code(&json_text(&d.0)))
            .unwrap_or_default(),
        values: schema
            .enum_
            .as_ref()
            .map(|values| {
                values
                    .iter()
                    .map(|v| code(&json_text(&v.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        description: schema.description.as_deref().map(text).unwrap_or_default(),
    });
    collect_rules(path, schema, rules);
    walk_children(path, schema, rows, rules);
}

fn walk_children(path: &str, schema: &JSONSchemaProps, rows: &mut Vec<Row>, rules: &mut Vec<(String, String, String)>) {
    if let Some(properties) = &schema.properties {
        for (name, child) in properties {
            walk(&format!("{path}.{name}"), child, is_required(schema, name), rows, rules);
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
        // The item itself is a row only when it says more than the list's type does.
        let item_path = format!("{path}[]");
        if item.description.is_some() || item.x_kubernetes_validations.is_some() || item.enum_.is_some() {
            walk(&item_path, item, false, rows, rules);
        } else {
            walk_children(&item_path, item, rows, rules);
        }
    }
    if let Some(JSONSchemaPropsOrBool::Schema(value)) = &schema.additional_properties {
        let value_path = format!("{path}{{}}");
        collect_rules(&value_path, value, rules);
        walk_children(&value_path, value, rows, rules);
    }
}

fn collect_rules(path: &str, schema: &JSONSchemaProps, rules: &mut Vec<(String, String, String)>) {
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        let message = match (&rule.message, &rule.message_expression) {
            (Some(m), _) => text(m),
            (None, Some(e)) => format!("(computed: {})", code(e)),
            (None, None) => String::new(),
        };
        rules.push((path.to_string(), rule.rule.clone(), message));
    }
}

/// The type column: JSON type, format and the schema's bounds.
fn type_of(schema: &JSONSchemaProps) -> String {
    let base = match (schema.type_.as_deref(), &schema.items, &schema.additional_properties) {
        (Some("array"), Some(JSONSchemaPropsOrArray::Schema(item)), _) => format!("array of {}", plain_type(item)),
        (Some("object"), _, Some(JSONSchemaPropsOrBool::Schema(value))) => format!("map of {}", plain_type(value)),
        _ => plain_type(schema),
    };
    let mut bounds = Vec::new();
    if let Some(format) = &schema.format {
        bounds.push(format.clone());
    }
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => bounds.push(format!("{min}–{max}")),
        (Some(min), None) => bounds.push(format!("≥ {min}")),
        (None, Some(max)) => bounds.push(format!("≤ {max}")),
        (None, None) => {}
    }
    let mut count = |min: Option<i64>, max: Option<i64>, what: &str| match (min, max) {
        (Some(min), Some(max)) => bounds.push(format!("{min}–{max} {what}")),
        (Some(min), None) => bounds.push(format!("≥ {min} {what}")),
        (None, Some(max)) => bounds.push(format!("≤ {max} {what}")),
        (None, None) => {}
    };
    count(schema.min_length, schema.max_length, "characters");
    count(schema.min_items, schema.max_items, "items");
    count(schema.min_properties, schema.max_properties, "entries");
    if let Some(pattern) = &schema.pattern {
        bounds.push(format!("pattern {}", code(pattern)));
    }
    if let Some(list_type) = &schema.x_kubernetes_list_type {
        let keys = schema
            .x_kubernetes_list_map_keys
            .as_ref()
            .map(|k| format!(" by {}", k.iter().map(|k| code(k)).collect::<Vec<_>>().join(", ")))
            .unwrap_or_default();
        bounds.push(format!("list type {}{keys}", code(list_type)));
    }
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        bounds.push("any fields kept".to_string());
    }
    if bounds.is_empty() {
        base
    } else {
        format!("{base} ({})", bounds.join("; "))
    }
}

fn plain_type(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "integer or string".to_string();
    }
    schema.type_.clone().unwrap_or_else(|| "any".to_string())
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The conditions-and-reasons page: every reason the operator writes, on which kinds and conditions,
/// what it means and who acts.
pub fn reasons_reference() -> String {
    let mut out = String::new();
    out.push_str(&generated_note(
        "reasons_reference",
        "`Reason` in src/controller/reason.rs",
    ));
    out.push_str("# Conditions and reasons\n\n");
    out.push_str(
        "Conditions follow kstatus: `Ready`; `Reconciling` while the operator works towards the spec (waiting \
         for a guard, for an approval, or retrying Azure); `Stalled` when only a person can move the object on. \
         Besides them a ResourceGuard has `Synced`; a VaultProtection `Linked`, `SoftDeleteSynced` and `Synced`; \
         a CriticalOperationRequest (\"request\" below) `Approved` and `Elevated`. Every condition carries \
         `observedGeneration` and one of the reasons below, the same word the logs, the metrics and the \
         Warning Events use. How to read them: [Troubleshooting](../guides/troubleshooting.md).\n\n",
    );
    out.push_str("| reason | on | meaning | who acts, and how |\n|---|---|---|---|\n");
    for reason in Reason::ALL {
        let _ = writeln!(
            out,
            "| <span id=\"{0}\"></span>`{0}` | {1} | {2} | {3} |",
            reason.as_str(),
            cell(reason.appears_on()),
            cell(reason.meaning()),
            cell(reason.who_acts())
        );
    }
    out
}

fn generated_note(function: &str, source: &str) -> String {
    format!(
        "<!-- Generated by `mua_operator::docs::{function}` from {source}; do not edit. \
         {REGENERATE} rewrites it. -->\n\n"
    )
}

/// Markdown inline code for `s`, whatever backticks it holds, safe in a table cell.
fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", s.replace('|', "\\|"))
}

/// Prose from a schema or a reason, as one table cell: on one line, `|` escaped, and `<` outside code
/// spans written as an entity (else Markdown could read `<namespace>` as an HTML tag).
fn text(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    cell(&one_line)
}

fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for c in s.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares a committed page with what its generator writes, or rewrites it under MUA_UPDATE_DOCS.
    fn check(path: &str, generated: &str) {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if std::env::var_os("MUA_UPDATE_DOCS").is_some() {
            std::fs::write(&file, generated).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            return;
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
                + 1;
            panic!(
                "{path} differs from what the code generates (first at line {line}): regenerate it with \
                 {REGENERATE} and commit it"
            );
        }
    }

    #[test]
    fn the_committed_api_reference_is_generated_from_the_crds() {
        check(API_REFERENCE_PATH, &api_reference());
    }

    #[test]
    fn the_committed_reasons_reference_is_generated_from_the_reason_list() {
        check(REASONS_REFERENCE_PATH, &reasons_reference());
    }

    #[test]
    fn the_api_reference_has_every_kind_and_field() {
        let page = api_reference();
        for (_, crd) in crate::crd::all() {
            assert!(page.contains(&format!("## {}\n", crd.spec.names.kind)));
        }
        for field in [
            "`spec.tenantId`",
            "`spec.excludedOperations`",
            "`spec.guard.tenantId`",
            "`status.conditions[].reason`",
            "`spec.action.modifyBackupPolicy.policy`",
            "`spec.guardId`",
        ] {
            assert!(page.contains(field), "{field} is missing");
        }
        assert!(
            page.contains("| `spec.deletionPolicy` |"),
            "defaults and values have their rows"
        );
        assert!(
            page.contains("must be a duration such as 30m"),
            "CEL messages are listed"
        );
    }

    #[test]
    fn the_reasons_reference_has_every_reason() {
        let page = reasons_reference();
        for reason in Reason::ALL {
            assert!(page.contains(&format!("`{reason}` |")), "{reason} is missing");
        }
    }

    #[test]
    fn cells_keep_pipes_and_angle_brackets() {
        assert_eq!(code("a || b"), "`a \\|\\| b`");
        assert_eq!(code("x `y` z"), "``x `y` z``");
        assert_eq!(
            text("for\n  <namespace> and `<kind>`"),
            "for &lt;namespace> and `<kind>`"
        );
    }
}
