//! Config keys set by environment variables, on top of the config file.
//!
//! A tracker with the prefix `SHOAL_UDP` reads `SHOAL_UDP__NETWORK__ADDRESS` as the key
//! `network.address`: the prefix, `__`, then the key's path with every segment in upper
//! case, joined by `__`. A value is read as a TOML value when it is one (`8`, `true`,
//! `["10.0.0.0/8"]`, `"quoted text"`) and as plain text otherwise (`[::]:6969`,
//! `debug`); a key whose default is text always takes the variable's text as it is, so
//! that a user name such as `1000` stays text.
//!
//! This module does not read the process environment: [`EnvOverrides::from_vars`] takes
//! the variables as (name, value) pairs, so that tests need not change the environment
//! of the whole test process. Variables of other prefixes are left alone; a variable
//! under the prefix that names no key, or whose value is not UTF-8, is an error naming
//! it.

use std::ffi::OsStr;

use serde::Serialize;

use super::ConfigDoc;

/// One config key set by one environment variable.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvOverride {
    /// The variable, as it was named.
    pub variable: String,
    /// The key's path, one element per nesting level (`["network", "address"]`).
    pub path: Vec<String>,
    /// The value to put there.
    pub value: toml::Value,
}

/// The config keys that environment variables set, sorted by variable name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvOverrides {
    overrides: Vec<EnvOverride>,
    near_misses: Vec<String>,
}

/// The separator between the prefix and each path segment of a variable name.
const SEPARATOR: &str = "__";

impl EnvOverrides {
    /// Picks the variables under `prefix` (`SHOAL_UDP` takes `SHOAL_UDP__...`) out of
    /// `vars` and turns each into a key of the config `C` and its value.
    ///
    /// # Errors
    /// A message naming the variable: it names no key of `C`, or its value is not UTF-8.
    pub fn from_vars<C, K, V>(
        prefix: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> anyhow::Result<Self>
    where
        C: ConfigDoc + Serialize + Default,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let full_prefix = format!("{prefix}{SEPARATOR}");
        let near_prefix = format!("{prefix}_");
        let defaults = toml::Table::try_from(C::default())
            .map_err(|err| anyhow::anyhow!("serialize the default config: {err}"))?;
        let mut picked: Vec<(String, V)> = Vec::new();
        let mut near_misses = Vec::new();
        for (name, value) in vars {
            // A name that is not UTF-8 cannot start with our (ASCII) prefix.
            let Some(name) = name.as_ref().to_str() else {
                continue;
            };
            if name.starts_with(&full_prefix) {
                picked.push((name.to_string(), value));
            } else if name.starts_with(&near_prefix) {
                near_misses.push(name.to_string());
            }
        }
        picked.sort_by(|a, b| a.0.cmp(&b.0));
        near_misses.sort();
        let mut overrides = Vec::with_capacity(picked.len());
        for (variable, value) in picked {
            let path = key_path::<C>(&variable, &full_prefix)?;
            let Some(text) = value.as_ref().to_str() else {
                anyhow::bail!("environment variable {variable}: the value is not valid UTF-8");
            };
            let default = default_at(&defaults, &path);
            if default.is_some_and(toml::Value::is_table) {
                anyhow::bail!(
                    "environment variable {variable}: `{}` is a section, not a key; set its \
                     keys one by one ({variable}{SEPARATOR}...)",
                    path.join(".")
                );
            }
            let value = parse_value(text, default);
            overrides.push(EnvOverride {
                variable,
                path,
                value,
            });
        }
        Ok(Self {
            overrides,
            near_misses,
        })
    }

    /// No variable sets a key.
    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty()
    }

    /// The variables that set keys, sorted.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().map(|o| o.variable.as_str())
    }

    /// Variables that start like the prefix with a single `_` (`SHOAL_UDP_LOG_LEVEL`):
    /// not read, and probably meant to be; worth a warning in the log.
    pub fn near_misses(&self) -> &[String] {
        &self.near_misses
    }

    /// Writes every value into `table` (a parsed config file, or an empty table for the
    /// defaults) at its key, making the sections that are missing.
    ///
    /// # Errors
    /// The table holds a plain value where a section on the way to a key should be.
    pub fn apply(&self, table: &mut toml::Table) -> anyhow::Result<()> {
        for o in &self.overrides {
            let Some((last, sections)) = o.path.split_last() else {
                anyhow::bail!("environment variable {}: names no key", o.variable);
            };
            let mut current = &mut *table;
            for (depth, section) in sections.iter().enumerate() {
                let entry = current
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(sub) = entry.as_table_mut() else {
                    anyhow::bail!(
                        "environment variable {}: `{}` is not a section in the config file",
                        o.variable,
                        o.path
                            .iter()
                            .take(depth + 1)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(".")
                    );
                };
                current = sub;
            }
            current.insert(last.clone(), o.value.clone());
        }
        Ok(())
    }

    /// The variable that set the key at `path` (dotted, as serde_path_to_error prints
    /// it), or a section above it.
    pub fn variable_for(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('.').collect();
        self.overrides
            .iter()
            .filter(|o| {
                o.path.len() <= segments.len() && o.path.iter().zip(&segments).all(|(a, b)| a == b)
            })
            .max_by_key(|o| o.path.len())
            .map(|o| o.variable.as_str())
    }
}

/// The key path a variable names: `SHOAL_UDP__NETWORK__ADDRESS` → `["network",
/// "address"]`, if the config has that key.
fn key_path<C: ConfigDoc>(variable: &str, full_prefix: &str) -> anyhow::Result<Vec<String>> {
    let rest = variable.get(full_prefix.len()..).unwrap_or("");
    let segments: Vec<&str> = rest.split(SEPARATOR).collect();
    let upper_case = segments.iter().all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    });
    let path: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    if !upper_case || C::field_doc(&refs).is_none() {
        anyhow::bail!(
            "environment variable {variable}: the config has no key `{}` (variables are \
             {full_prefix} and the key's path in upper case, sections joined by {SEPARATOR})",
            refs.join(".")
        );
    }
    Ok(path)
}

/// The default value at `path`, if the defaults have one (a section, or a plain value).
fn default_at<'a>(defaults: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut value = defaults.get(first)?;
    for segment in rest {
        value = value.as_table()?.get(segment)?;
    }
    Some(value)
}

/// A variable's text as a config value: TOML where it parses as TOML, plain text
/// otherwise, and always the text as it is for a key whose default is text (unless it
/// is a quoted TOML string).
fn parse_value(text: &str, default: Option<&toml::Value>) -> toml::Value {
    let parsed = text.parse::<toml::Value>().ok();
    match (parsed, default) {
        (Some(toml::Value::String(s)), _) => toml::Value::String(s),
        (Some(_), Some(toml::Value::String(_))) | (None, _) => {
            toml::Value::String(text.to_string())
        }
        (Some(value), _) => value,
    }
}

#[cfg(test)]
#[expect(
    unreachable_pub,
    reason = "config_section! always declares pub structs"
)]
mod tests {
    use super::*;
    use crate::config_section;

    config_section! {
        /// Inner section.
        pub struct Net {
            /// An address.
            pub address: std::net::SocketAddr,
            /// Some networks.
            pub networks: Vec<String>,
            /// A name.
            pub user: String,
            /// A count.
            pub count: u32,
        }
    }

    impl Default for Net {
        fn default() -> Self {
            Self {
                address: ([127, 0, 0, 1], 1).into(),
                networks: Vec::new(),
                user: String::new(),
                count: 3,
            }
        }
    }

    config_section! {
        /// Top.
        pub struct Top {
            /// A flag.
            pub flag: bool,
            /// The network.
            pub network: Net,
        }
    }

    impl Default for Top {
        fn default() -> Self {
            Self {
                flag: true,
                network: Net::default(),
            }
        }
    }

    fn overrides(vars: &[(&str, &str)]) -> anyhow::Result<EnvOverrides> {
        EnvOverrides::from_vars::<Top, _, _>("SHOAL_T", vars.iter().copied())
    }

    fn value_of(vars: &[(&str, &str)]) -> toml::Value {
        let o = overrides(vars).unwrap();
        assert_eq!(o.overrides.len(), 1);
        o.overrides[0].value.clone()
    }

    #[test]
    fn names_map_to_key_paths() {
        let o = overrides(&[
            ("SHOAL_T__NETWORK__COUNT", "5"),
            ("SHOAL_T__FLAG", "false"),
            ("PATH", "/bin"),
            ("SHOAL_OTHER__NETWORK__COUNT", "x"),
        ])
        .unwrap();
        assert_eq!(
            o.variables().collect::<Vec<_>>(),
            ["SHOAL_T__FLAG", "SHOAL_T__NETWORK__COUNT"]
        );
        assert_eq!(o.overrides[1].path, ["network", "count"]);
        assert_eq!(o.overrides[0].path, ["flag"]);
        assert_eq!(
            o.variable_for("network.count"),
            Some("SHOAL_T__NETWORK__COUNT")
        );
        assert_eq!(o.variable_for("network.address"), None);
        assert_eq!(o.variable_for("flag"), Some("SHOAL_T__FLAG"));
        assert!(o.near_misses().is_empty());
    }

    #[test]
    fn values_are_toml_or_text() {
        assert_eq!(
            value_of(&[("SHOAL_T__NETWORK__COUNT", "5")]),
            toml::Value::Integer(5)
        );
        assert_eq!(
            value_of(&[("SHOAL_T__FLAG", "true")]),
            toml::Value::Boolean(true)
        );
        assert_eq!(
            value_of(&[("SHOAL_T__NETWORK__ADDRESS", "[::]:6969")]),
            toml::Value::String("[::]:6969".into())
        );
        assert_eq!(
            value_of(&[(
                "SHOAL_T__NETWORK__NETWORKS",
                "[\"10.0.0.0/8\", \"::1/128\"]"
            )]),
            toml::Value::Array(vec!["10.0.0.0/8".into(), "::1/128".into()])
        );
        // A key whose default is text takes numbers and booleans as text...
        assert_eq!(
            value_of(&[("SHOAL_T__NETWORK__USER", "1000")]),
            toml::Value::String("1000".into())
        );
        // ... and a quoted TOML string without its quotes.
        assert_eq!(
            value_of(&[("SHOAL_T__NETWORK__USER", "\"nobody\"")]),
            toml::Value::String("nobody".into())
        );
        // Text that is not a TOML value stays text, whatever the key wants: the
        // deserializer then names the problem.
        assert_eq!(
            value_of(&[("SHOAL_T__NETWORK__COUNT", "many")]),
            toml::Value::String("many".into())
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_variable() {
        let err = overrides(&[("SHOAL_T__NETWORK", "{ count = 1 }")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable SHOAL_T__NETWORK: `network` is a section"),
            "{err}"
        );
        for name in [
            "SHOAL_T__NETWORK__ADRESS",
            "SHOAL_T__FLAG__X",
            "SHOAL_T__network__count",
            "SHOAL_T__",
            "SHOAL_T__NETWORK____COUNT",
        ] {
            let err = overrides(&[(name, "1")]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "environment variable {name}: the config has no key"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_the_variable() {
        use std::os::unix::ffi::OsStrExt;
        let vars = [(
            OsStr::new("SHOAL_T__NETWORK__USER"),
            OsStr::from_bytes(b"\xff"),
        )];
        let err = EnvOverrides::from_vars::<Top, _, _>("SHOAL_T", vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHOAL_T__NETWORK__USER") && err.contains("UTF-8"),
            "{err}"
        );
        // A name that is not UTF-8 is not ours.
        let vars = [(OsStr::from_bytes(b"SHOAL_T__\xff"), OsStr::new("1"))];
        assert!(
            EnvOverrides::from_vars::<Top, _, _>("SHOAL_T", vars)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_single_underscore_is_a_near_miss_not_an_override() {
        let o = overrides(&[("SHOAL_T_FLAG", "true"), ("SHOAL_TX__FLAG", "1")]).unwrap();
        assert!(o.is_empty());
        assert_eq!(o.near_misses(), ["SHOAL_T_FLAG"]);
    }

    #[test]
    fn apply_writes_into_the_table_making_sections() {
        let o = overrides(&[("SHOAL_T__NETWORK__COUNT", "5"), ("SHOAL_T__FLAG", "true")]).unwrap();
        let mut table: toml::Table = "flag = false\n".parse().unwrap();
        o.apply(&mut table).unwrap();
        assert_eq!(table.to_string(), "flag = true\n\n[network]\ncount = 5\n");
        let mut table: toml::Table = "network = 1\n".parse().unwrap();
        let err = o.apply(&mut table).unwrap_err().to_string();
        assert!(
            err.contains("SHOAL_T__NETWORK__COUNT") && err.contains("`network` is not a section"),
            "{err}"
        );
    }
}
