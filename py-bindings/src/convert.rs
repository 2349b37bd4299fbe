//! Keyword arguments in, JSON-shaped data out: the translation between Python values
//! and the library's options (`DriverOptions`, the `Deserialize` options structs of
//! `backup_core::ops`) and results (`Serialize`). Option names and types come from the
//! clap arguments the library declares, so a keyword is exactly a CLI flag with `_` for
//! `-` ([`describe`]).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString};
use serde_json::{Map, Value};

use crate::errors::{config_error, Secrets};

/// Converts JSON into the matching Python objects (dict, list, str, int, float, bool,
/// None).
pub fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_bound_py_any(py)?,
            (_, Some(u)) => u.into_bound_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?,
        },
        Value::String(s) => s.into_bound_py_any(py)?,
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A `Serialize` result as Python data (exactly the CLI's `--json` document).
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| config_error(py, e.to_string()))?;
    json_to_py(py, &v)
}

/// Converts a Python value into JSON: None, bool, int, float, str, `os.PathLike` (as
/// its path), a `Manifest` (as its backup id), sequences and mappings of those.
pub fn py_to_json(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = v.py();
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        return Ok(match v.extract::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => Value::from(v.extract::<u64>()?),
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::from(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_string()));
    }
    if v.get_type().name()? == "Manifest" && v.hasattr("backup_id")? {
        return Ok(Value::String(v.getattr("backup_id")?.extract()?));
    }
    if v.hasattr("__fspath__")? {
        let p: std::path::PathBuf = v.extract()?;
        return Ok(Value::String(p.to_string_lossy().into_owned()));
    }
    if let Ok(m) = v.cast::<PyMapping>() {
        let mut out = Map::new();
        for item in m.items()?.iter() {
            let (k, v): (String, Bound<'_, PyAny>) = item.extract()?;
            out.insert(k, py_to_json(&v)?);
        }
        return Ok(Value::Object(out));
    }
    if let Ok(items) = v.try_iter() {
        return Ok(Value::Array(
            items.map(|i| py_to_json(&i?)).collect::<PyResult<_>>()?,
        ));
    }
    Err(config_error(
        py,
        format!("cannot pass a {} as an option value", v.get_type().name()?),
    ))
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
