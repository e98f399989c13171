//! Rendering: kubectl-style tables, relative times, and objects as JSON or YAML.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;
use serde_json::{Value, json};

use crate::args::Output;
use crate::error::Failure;

/// A line of progress or a note for people: on stdout in table mode, on stderr when stdout carries JSON
/// or YAML, so `-o json | jq` keeps working.
pub fn note(format: Output, line: impl std::fmt::Display) {
    if format == Output::Table {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Columns separated by three spaces, as `kubectl get` prints them.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            rows: vec![headers.into_iter().map(Into::into).collect()],
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    let pad = widths[c] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration the way kubectl shows ages: `45s`, `5m30s`, `12m`, `3h20m`, `30h`, `4d5h`.
pub fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().unsigned_abs();
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    match () {
        () if secs < 120 => format!("{secs}s"),
        () if mins < 10 && !secs.is_multiple_of(60) => format!("{mins}m{}s", secs % 60),
        () if mins < 180 => format!("{mins}m"),
        () if hours < 8 && !mins.is_multiple_of(60) => format!("{hours}h{}m", mins % 60),
        () if hours < 48 => format!("{hours}h"),
        () if !hours.is_multiple_of(24) && days < 8 => format!("{days}d{}h", hours % 24),
        () => format!("{days}d"),
    }
}

/// How long ago `t` was, for AGE columns.
pub fn age(t: Option<&Time>, now: Timestamp) -> String {
    t.map_or_else(|| "-".to_string(), |t| human_duration(now.duration_since(t.0)))
}

/// `in 12m` for the future, `3m ago` for the past.
pub fn relative(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        None => "-".to_string(),
        Some(t) if t.0 >= now => format!("in {}", human_duration(t.0.duration_since(now))),
        Some(t) => format!("{} ago", human_duration(now.duration_since(t.0))),
    }
}

/// An absolute time to the second with its relative form: `2025-06-01T10:00:00Z (in 12m)`.
pub fn when(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        None => "-".to_string(),
        Some(time) => format!("{} ({})", timestamp(time), relative(Some(time), now)),
    }
}

pub fn timestamp(t: &Time) -> String {
    t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `-` for what is not set, as kubectl shows `<none>` columns more compactly.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "-".to_string(),
    }
}

/// One object as JSON or YAML, without `managedFields` (as kubectl hides them by default).
pub fn object<T: Serialize>(object: &T, format: Output) -> Result<String, Failure> {
    let mut value = serde_json::to_value(object)
        .map_err(|err| Failure::unexpected(format!("cannot serialize the object: {err}")))?;
    strip_managed_fields(&mut value);
    render(&value, format)
}

/// Several objects as a `v1` List, the shape `kubectl get -o json` prints.
pub fn list<T: Serialize>(objects: &[T], format: Output) -> Result<String, Failure> {
    let mut items = serde_json::to_value(objects)
        .map_err(|err| Failure::unexpected(format!("cannot serialize the objects: {err}")))?;
    if let Some(items) = items.as_array_mut() {
        items.iter_mut().for_each(strip_managed_fields);
    }
    let value = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    render(&value, format)
}

fn strip_managed_fields(value: &mut Value) {
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
}

fn render(value: &Value, format: Output) -> Result<String, Failure> {
    match format {
        Output::Json | Output::Table => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|err| Failure::unexpected(format!("cannot write JSON: {err}"))),
        Output::Yaml => {
            yaml_serde::to_string(value).map_err(|err| Failure::unexpected(format!("cannot write YAML: {err}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl_ages() {
        let s = SignedDuration::from_secs;
        assert_eq!(human_duration(s(45)), "45s");
        assert_eq!(human_duration(s(330)), "5m30s");
        assert_eq!(human_duration(s(720)), "12m");
        assert_eq!(human_duration(s(3 * 3600 + 20 * 60)), "3h20m");
        assert_eq!(human_duration(s(30 * 3600)), "30h");
        assert_eq!(human_duration(s(4 * 86_400 + 5 * 3600)), "4d5h");
        assert_eq!(human_duration(s(-45)), "45s");
    }

    #[test]
    fn relative_times_say_in_or_ago() {
        let now: Timestamp = "2025-06-01T10:00:00Z".parse().unwrap();
        let later = Time("2025-06-01T10:12:00Z".parse().unwrap());
        let earlier = Time("2025-06-01T09:57:00Z".parse().unwrap());
        assert_eq!(relative(Some(&later), now), "in 12m");
        assert_eq!(relative(Some(&earlier), now), "3m ago");
        assert_eq!(relative(None, now), "-");
    }

    #[test]
    fn tables_align_columns_with_three_spaces() {
        let mut table = Table::new(["NAME", "PHASE"]);
        table.row(["a-long-name", "Pending"]);
        table.row(["b", ""]);
        assert_eq!(table.render(), "NAME          PHASE\na-long-name   Pending\nb\n");
    }
}
