//! The command line every shoal binary shares.
//!
//! ```text
//! tracker_udp              run on the built-in default config
//! tracker_udp -c FILE      run on FILE (TOML; missing keys take their defaults)
//! tracker_udp -p           print the complete default config, every key documented
//! tracker_udp -h | -V      help, version
//! ```
//!
//! A config file with an unknown key, a wrong type or an impossible value ends the
//! process with exit code 1 and a message naming the file, the key and the problem.
//! Environment variables under the tracker's prefix (`SHOAL_UDP__LOG_LEVEL=debug`, see
//! [`crate::config::env`]) set keys over the file or the defaults, before validation; a
//! bad one ends the process the same way, naming the variable.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{LoadedConfig, TrackerConfig, documented_config_toml, load_config};

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run, on the given config file or the defaults.
    Run(Option<PathBuf>),
    /// Print the documented default config.
    PrintConfig,
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Parses the arguments after the program name.
///
/// # Errors
/// A message saying which argument is wrong.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut command = None;
    while let Some(arg) = args.next() {
        let next = match arg.as_str() {
            "-c" | "--config-file" => match args.next() {
                Some(path) => Command::Run(Some(PathBuf::from(path))),
                None => return Err(format!("{arg} needs a file name")),
            },
            "-p" | "--print-config" => Command::PrintConfig,
            "-h" | "--help" => Command::Help,
            "-V" | "--version" => Command::Version,
            other => return Err(format!("unknown argument {other:?}")),
        };
        if command.is_some() {
            return Err("give at most one of -c, -p, -h, -V".to_string());
        }
        command = Some(next);
    }
    Ok(command.unwrap_or(Command::Run(None)))
}

/// Printed below the usage of every tracker.
const TRACKER_NOTES: &str =
    "Signals: SIGUSR1 re-reads the access list; SIGTERM or SIGINT stops cleanly.\n";

fn usage(name: &str, about: &str, notes: &str) -> String {
    format!(
        "{name}: {about}\n\n\
         Usage:\n  \
         {name}              run on the built-in default config\n  \
         {name} -c FILE      run on the config in FILE (TOML)\n  \
         {name} -p           print the default config, every key documented\n  \
         {name} -h           print this help\n  \
         {name} -V           print the version\n\n\
         {notes}"
    )
}

/// Runs a tracker binary: parses the command line, loads the config, starts logging and
/// calls `run`. Returns the process exit code.
pub fn run_app<C: TrackerConfig>(
    name: &str,
    version: &str,
    run: fn(C) -> anyhow::Result<()>,
) -> ExitCode {
    let notes = match C::ENV_PREFIX {
        Some(prefix) => format!(
            "Environment: {prefix}__ and a config key's path in upper case, sections joined\n\
             by __ ({prefix}__NETWORK__ADDRESS=[::]:6969), set that key over the file.\n\
             {TRACKER_NOTES}"
        ),
        None => TRACKER_NOTES.to_string(),
    };
    run_app_with_args(
        name,
        version,
        "shoal BitTorrent tracker",
        &notes,
        std::env::args().skip(1),
        run,
    )
}

/// [`run_app`] for programs that take the arguments apart first (a subcommand, an
/// extra flag): `args` are what is left for `-c` / `-p` / `-h` / `-V`; `about` is the
/// one-line description and `notes` the text below the usage that `-h` prints.
pub fn run_app_with_args<C: TrackerConfig>(
    name: &str,
    version: &str,
    about: &str,
    notes: &str,
    args: impl IntoIterator<Item = String>,
    run: impl FnOnce(C) -> anyhow::Result<()>,
) -> ExitCode {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(msg) => {
            eprintln!("{name}: {msg}\n\n{}", usage(name, about, notes));
            return ExitCode::from(2);
        }
    };
    let (loaded, source) = match command {
        Command::Help => {
            print!("{}", usage(name, about, notes));
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("{name} {version}");
            return ExitCode::SUCCESS;
        }
        Command::PrintConfig => {
            return match documented_config_toml::<C>() {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{name}: {err:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Run(file) => match load_config::<C, _, _>(file.as_deref(), std::env::vars_os()) {
            Ok(loaded) => {
                let source = describe_source(file.as_deref(), &loaded);
                (loaded, source)
            }
            Err(err) => {
                eprintln!("{name}: error: {err:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let LoadedConfig {
        mut config,
        env_variables,
        env_near_misses,
    } = loaded;
    if let Err(err) = config.validate() {
        eprintln!("{name}: error: {source}: {err:#}");
        return ExitCode::FAILURE;
    }
    // rustls logs what a client does wrong (an IP address as SNI, say) at warn level,
    // once per connection: a client could fill the log. Its errors still show.
    let level = config.log_level().to_filter();
    if let Err(err) = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("rustls", level.min(log::LevelFilter::Error))
        .with_utc_timestamps()
        .init()
    {
        eprintln!("{name}: start logging: {err}");
        return ExitCode::FAILURE;
    }
    if !env_variables.is_empty() {
        log::info!(
            "config keys set by the environment: {}",
            env_variables.join(", ")
        );
    }
    for variable in env_near_misses {
        log::warn!(
            "environment variable {variable} is not read: config variables have a double \
             underscore after the prefix{}",
            C::ENV_PREFIX.map_or(String::new(), |prefix| format!(" ({prefix}__...)"))
        );
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a config came from, for messages about it: "config file F" or "built-in
/// default config", and the variables that set keys.
fn describe_source<C>(file: Option<&std::path::Path>, loaded: &LoadedConfig<C>) -> String {
    let mut source = match file {
        Some(path) => format!("config file {}", path.display()),
        None => "built-in default config".to_string(),
    };
    if !loaded.env_variables.is_empty() {
        source.push_str(" with environment variables ");
        source.push_str(&loaded.env_variables.join(", "));
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), Ok(Command::Run(None)));
        assert_eq!(
            parse(&["-c", "udp.toml"]),
            Ok(Command::Run(Some(PathBuf::from("udp.toml"))))
        );
        assert_eq!(parse(&["--print-config"]), Ok(Command::PrintConfig));
        assert_eq!(parse(&["-p"]), Ok(Command::PrintConfig));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
        assert!(parse(&["-c"]).is_err());
        assert!(parse(&["-x"]).is_err());
        assert!(parse(&["-p", "-c", "f"]).is_err());
    }
}
