//! Merging the settings layers as JSON-like trees, with every problem collected.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::DEFAULTS_YAML;

/// One problem with the settings, at a dotted path such as `server.listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub path: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for SettingsError {}

/// Keys earlier versions had, with what replaces them: named instead of "unknown key", so that
/// an upgrade that stops at them says what to do.
const REMOVED: &[(&str, &str)] = &[
    (
        "mqtt.embedded_username",
        "was removed: the shared device login is replaced by a credential per device \
         (`factorybrain device add NAME` or POST /api/v1/devices); delete this key",
    ),
    (
        "mqtt.embedded_password",
        "was removed: the shared device login is replaced by a credential per device \
         (`factorybrain device add NAME` or POST /api/v1/devices); delete this key",
    ),
];

/// What replaced a key earlier versions had, if `path` is one.
fn removed(path: &str) -> Option<&'static str> {
    REMOVED
        .iter()
        .find(|(key, _)| *key == path)
        .map(|(_, replacement)| *replacement)
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<SettingsError>);

impl std::fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "invalid settings ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

impl From<SettingsError> for SettingsErrors {
    fn from(e: SettingsError) -> Self {
        SettingsErrors(vec![e])
    }
}

/// The inputs to settings, lowest precedence first (the defaults are implied).
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub file: Option<PathBuf>,
    /// Environment variables; only those starting with `FB__` are read.
    pub env: Vec<(String, String)>,
    /// Command-line flags as (dotted path, value).
    pub flags: Vec<(String, Value)>,
}

pub(crate) const ENV_PREFIX: &str = "FB__";

impl Layers {
    /// Layers from the process environment plus an optional file and flags.
    pub fn from_process(file: Option<PathBuf>, flags: Vec<(String, Value)>) -> Self {
        Self {
            file,
            env: std::env::vars().collect(),
            flags,
        }
    }

    /// The defaults with every layer applied on top, and every problem found on the way.
    /// Unknown keys and unreadable layers are reported and left out, so that the rest can still
    /// be checked and every problem reported in one go.
    pub fn merged(&self) -> Result<(Value, Vec<SettingsError>), SettingsErrors> {
        let defaults = defaults()?;
        let mut tree = defaults.clone();
        let mut errors = Vec::new();

        if let Some(path) = &self.file {
            match read_yaml(path) {
                Ok(Value::Null) => {} // An empty file changes nothing.
                Ok(overlay) => merge(&mut tree, &defaults, overlay, "", &mut errors),
                Err(e) => errors.push(e),
            }
        }
        for (name, raw) in &self.env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            let dotted = path.join(".");
            match leaf(&defaults, &path) {
                Some(default) => {
                    let value = typed_like(default, raw);
                    set(&mut tree, &path, value);
                }
                None => errors.push(SettingsError::new(
                    &format!("{name} ({dotted})"),
                    removed(&dotted).unwrap_or("unknown setting in the environment"),
                )),
            }
        }
        for (dotted, value) in &self.flags {
            let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
            if leaf(&defaults, &path).is_some() {
                set(&mut tree, &path, value.clone());
            } else {
                errors.push(SettingsError::new(
                    dotted,
                    "unknown setting given as a flag",
                ));
            }
        }
        Ok((tree, errors))
    }
}

pub(crate) fn defaults() -> Result<Value, SettingsErrors> {
    serde_saphyr::from_str::<Value>(DEFAULTS_YAML).map_err(|e| {
        SettingsError::new("<defaults>", format!("built-in defaults do not parse: {e}")).into()
    })
}

fn read_yaml(path: &std::path::Path) -> Result<Value, SettingsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(&shown, format!("cannot read the settings file: {e}")))?;
    serde_saphyr::from_str::<Value>(&text)
        .map_err(|e| SettingsError::new(&shown, format!("not valid YAML: {e}")))
}

/// Applies `overlay` onto `tree`, checking every key against `defaults`.
fn merge(
    tree: &mut Value,
    defaults: &Value,
    overlay: Value,
    prefix: &str,
    errors: &mut Vec<SettingsError>,
) {
    let (Value::Object(target), Value::Object(known)) = (tree, defaults) else {
        return;
    };
    let Value::Object(entries) = overlay else {
        let here = if prefix.is_empty() { "<root>" } else { prefix };
        errors.push(SettingsError::new(
            here,
            format!("expected a mapping with the keys {}", keys(known)),
        ));
        return;
    };
    for (key, value) in entries {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(&key) {
            None => errors.push(SettingsError::new(
                &path,
                removed(&path).map_or_else(
                    || format!("unknown key; expected one of {}", keys(known)),
                    str::to_owned,
                ),
            )),
            Some(default @ Value::Object(_)) => {
                if let Some(slot) = target.get_mut(&key) {
                    merge(slot, default, value, &path, errors);
                }
            }
            Some(_) => {
                target.insert(key, value);
            }
        }
    }
}

fn keys(map: &Map<String, Value>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn leaf<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = tree;
    for key in path {
        node = node.as_object()?.get(key)?;
    }
    (!node.is_object()).then_some(node)
}

fn set(tree: &mut Value, path: &[String], value: Value) {
    let mut node = tree;
    for key in path {
        let Value::Object(map) = node else { return };
        node = map.entry(key.clone()).or_insert(Value::Null);
    }
    *node = value;
}

/// Environment values are text; read them as the type the default has, so that
/// `FB__SERVER__MAX_BODY_BYTES=4096` is a number but `FB__AUTH__ISSUER=123` stays a string.
fn typed_like(default: &Value, raw: &str) -> Value {
    match default {
        Value::String(_) | Value::Null => Value::String(raw.to_owned()),
        _ => serde_saphyr::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    }
}

fn leaves(tree: &Value, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match tree {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        other => out.push((prefix.clone(), other.clone())),
    }
}

/// Settings whose values must never be echoed in an error message.
const SECRET_PATHS: &[&str] = &[
    "storage.url",
    "auth.jwt_secret",
    "auth.jwt_previous_secret",
    "mqtt.password",
    "rate_limits.redis_url",
];

/// Deserializes `tree`. On failure, finds every bad leaf by trying each one alone on top of the
/// (valid) defaults, reports them all, and returns the settings with those leaves at their
/// defaults so that the remaining checks can still run.
pub(crate) fn deserialize_lenient<T: DeserializeOwned>(
    tree: &Value,
) -> Result<(Option<T>, Vec<SettingsError>), SettingsErrors> {
    let first_error = match serde_path_to_error::deserialize::<_, T>(tree.clone()) {
        Ok(value) => return Ok((Some(value), Vec::new())),
        Err(e) => error_at(&e.path().to_string(), &e.inner().to_string()),
    };
    let defaults = defaults()?;
    let mut errors = Vec::new();
    let mut repaired = tree.clone();
    let mut found = Vec::new();
    leaves(tree, &mut Vec::new(), &mut found);
    for (path, value) in found {
        let mut candidate = defaults.clone();
        set(&mut candidate, &path, value);
        if let Err(e) = serde_json::from_value::<T>(candidate) {
            errors.push(error_at(&path.join("."), &e.to_string()));
            if let Some(default) = leaf(&defaults, &path) {
                set(&mut repaired, &path, default.clone());
            }
        }
    }
    if errors.is_empty() {
        errors.push(first_error);
    }
    Ok((serde_json::from_value::<T>(repaired).ok(), errors))
}

fn error_at(path: &str, message: &str) -> SettingsError {
    if SECRET_PATHS.contains(&path) {
        SettingsError::new(path, "must be a string (the value is secret and not shown)")
    } else {
        SettingsError::new(path, message)
    }
}
