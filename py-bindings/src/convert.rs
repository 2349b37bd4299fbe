//! Keyword arguments in, JSON-shaped data out: the translation between Python values
//! and the library's options (`DriverOptions`, the `Deserialize` options structs of
//! `backup_core::ops`) and results (`Serialize`). Option names and types come from the
//! clap arguments the library declares, so a keyword is exactly a CLI flag with `_` for
//! `-` ([`describe`]).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

use crate::errors::{config_error, Secrets};

/// Converts JSON into the matching Python objects (dict, list, str, int, float, bool,
/// None), through Python's `json` module.
pub fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

/// A `Serialize` result as Python data (exactly the CLI's `--json` document).
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| config_error(py, e.to_string()))?;
    json_to_py(py, &v)
}

/// Converts a Python value into JSON: None, bool, int, float, str, `os.PathLike` (as
/// its path), a `Manifest` (as its backup id), sequences and mappings of those
/// (`dbseal._types._json`).
pub fn py_to_json(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = v.py();
    let text: String = py
        .import("dbseal._types")?
        .call_method1("_json", (v,))?
        .extract()?;
    serde_json::from_str(&text)
        .map_err(|e| config_error(py, format!("cannot pass this value as an option: {e}")))
}

/// How a keyword (a CLI flag) takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A switch: `bool`.
    Flag,
    /// One value.
    One,
    /// Repeatable: a sequence (a single value is accepted as a sequence of one).
    Many,
}

/// One keyword argument: a CLI flag seen from Python.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Keyword {
    /// The Python keyword (`exclude_table`).
    pub name: String,
    /// The CLI flag (`--exclude-table`).
    pub flag: String,
    /// `str`, `int`, `path` or `bool`.
    pub r#type: &'static str,
    /// Flag, one value or repeatable.
    pub shape: Shape,
    /// The default, as the CLI shows it.
    pub default: Option<String>,
    /// The flag's help.
    pub help: String,
}

/// The keyword arguments a clap command declares (its long flags), in order.
pub fn describe(cmd: &clap::Command) -> Vec<Keyword> {
    use std::any::TypeId;
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let parser = a.get_value_parser().type_id();
            let shape = match a.get_action() {
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse => Shape::Flag,
                clap::ArgAction::Append => Shape::Many,
                _ => Shape::One,
            };
            let r#type = if shape == Shape::Flag {
                "bool"
            } else if parser == TypeId::of::<std::path::PathBuf>() {
                "path"
            } else if [
                TypeId::of::<u8>(),
                TypeId::of::<u16>(),
                TypeId::of::<u32>(),
                TypeId::of::<u64>(),
                TypeId::of::<i32>(),
                TypeId::of::<i64>(),
                TypeId::of::<usize>(),
            ]
            .iter()
            .any(|t| parser == *t)
            {
                "int"
            } else {
                "str"
            };
            Some(Keyword {
                name: long.replace('-', "_"),
                flag: format!("--{long}"),
                r#type,
                shape,
                default: a
                    .get_default_values()
                    .first()
                    .map(|d| d.to_string_lossy().into_owned())
                    .filter(|_| shape != Shape::Flag),
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Translates keyword arguments into the JSON object of options the library parses:
/// keys are the flags' names (`dash`: with `-` as the CLI writes them, else with `_`),
/// a keyword named as the plural of a repeatable flag (`schemas`, `dbs`) is that flag,
/// a single value of a repeatable flag is a list of one, and numbers given to text
/// flags become text. Unknown keywords are left to the library's parser, which names
/// them. Values of secret-named keywords are added to `secrets`.
pub fn options(
    kwargs: Option<&Bound<'_, PyDict>>,
    keywords: &[Keyword],
    dash: bool,
    secrets: &mut Secrets,
) -> PyResult<Map<String, Value>> {
    let mut out = Map::new();
    let Some(kwargs) = kwargs else {
        return Ok(out);
    };
    for (k, v) in kwargs.iter() {
        let name: String = k.extract()?;
        let value = py_to_json(&v)?;
        if value.is_null() {
            continue;
        }
        let keyword = keywords.iter().find(|w| w.name == name).or_else(|| {
            let singular = name.strip_suffix('s')?;
            keywords
                .iter()
                .find(|w| w.name == singular && w.shape == Shape::Many)
        });
        let (name, value) = match keyword {
            Some(w) => (w.name.clone(), coerce(value, w)),
            None => (name, value),
        };
        if let Value::String(s) = &value {
            secrets.add_named(&name, s);
        }
        let key = if dash { name.replace('_', "-") } else { name };
        out.insert(key, value);
    }
    Ok(out)
}

fn coerce(value: Value, keyword: &Keyword) -> Value {
    let text = |v: Value| match v {
        Value::Number(n) if keyword.r#type != "int" => Value::String(n.to_string()),
        v => v,
    };
    match (keyword.shape, value) {
        (Shape::Many, Value::Array(items)) => Value::Array(items.into_iter().map(text).collect()),
        (Shape::Many, v) => Value::Array(vec![text(v)]),
        (_, v) => text(v),
    }
}

/// Deserializes an options struct of the library from a JSON object of options; an
/// unknown keyword or a wrong type is a `ConfigError` naming it (and no value).
pub fn parse<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    what: &str,
    map: Map<String, Value>,
) -> PyResult<T> {
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        config_error(
            py,
            format!(
                "{what}: {}",
                backup_core::secret::scrub_serde_error(&e.to_string())
                    .replace("unknown field", "unknown keyword")
            ),
        )
    })
}
