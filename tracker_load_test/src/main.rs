//! `tracker_load_test`: see the library documentation.

use std::path::PathBuf;
use std::process::ExitCode;

use tracker_common::runtime::cli::run_app_with_args;

const NAME: &str = "tracker_load_test";
const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "tracker_load_test: load generator for the shoal trackers

Usage:
  tracker_load_test udp [-c FILE] [--json FILE]   load a UDP tracker
  tracker_load_test udp -p                        print the default config
  tracker_load_test http [-c FILE] [--json FILE]  load an HTTP tracker
  tracker_load_test http -p                       print the default config
  tracker_load_test ws [-c FILE] [--json FILE]    load a WebSocket (WebTorrent) tracker
  tracker_load_test ws -p                         print the default config
  tracker_load_test udp-info-hashes [-c FILE]     print the workload's info hashes, hex
                                                  (an allow list for the server under test)
  tracker_load_test udp-ceiling [-c FILE]         minimal UDP responder (the ceiling)
  tracker_load_test udp-ceiling -p                print its default config
  tracker_load_test udp-burst ADDRESS COUNT [SOURCES]
                                                  send COUNT announces at once, count
                                                  the answers and the drops
  tracker_load_test -h | -V                       help, version

Traffic goes to loopback addresses only; a run stops by itself after its duration.
";

/// Takes `--json FILE` out of the arguments.
fn take_json(args: &mut Vec<String>) -> Result<Option<PathBuf>, String> {
    let Some(pos) = args.iter().position(|a| a == "--json") else {
        return Ok(None);
    };
    if pos + 1 >= args.len() {
        return Err("--json needs a file name".to_string());
    }
    let path = args.remove(pos + 1);
    args.remove(pos);
    Ok(Some(PathBuf::from(path)))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let command = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    match command.as_str() {
        "udp" => {
            let json = match take_json(&mut args) {
                Ok(json) => json,
                Err(msg) => {
                    eprintln!("{NAME}: {msg}");
                    return ExitCode::from(2);
                }
            };
            run_app_with_args(
                "tracker_load_test udp",
                VERSION,
                "load test for a UDP tracker",
                "Traffic goes to loopback addresses only. --json FILE writes the summary.\n",
                args,
                move |config| tracker_load_test::udp::run_cli(config, json),
            )
        }
        "http" => {
            let json = match take_json(&mut args) {
                Ok(json) => json,
                Err(msg) => {
                    eprintln!("{NAME}: {msg}");
                    return ExitCode::from(2);
                }
            };
            run_app_with_args(
                "tracker_load_test http",
                VERSION,
                "load test for an HTTP tracker",
                "Traffic goes to loopback addresses only. --json FILE writes the summary.\n",
                args,
                move |config| tracker_load_test::http::run_cli(config, json),
            )
        }
        "ws" => {
            let json = match take_json(&mut args) {
                Ok(json) => json,
                Err(msg) => {
                    eprintln!("{NAME}: {msg}");
                    return ExitCode::from(2);
                }
            };
            run_app_with_args(
                "tracker_load_test ws",
                VERSION,
                "load test for a WebSocket (WebTorrent) tracker",
                "Traffic goes to loopback addresses only. --json FILE writes the summary.\n",
                args,
                move |config| tracker_load_test::ws::run_cli(config, json),
            )
        }
        "udp-info-hashes" => run_app_with_args(
            "tracker_load_test udp-info-hashes",
            VERSION,
            "print the info hashes of a udp load test's workload, 40 hex digits a line",
            "",
            args,
            tracker_load_test::udp::print_info_hashes,
        ),
        "udp-ceiling" => run_app_with_args(
            "tracker_load_test udp-ceiling",
            VERSION,
            "minimal stateless UDP tracker responder, the ceiling for load tests",
            "SIGTERM or SIGINT stops it.\n",
            args,
            tracker_load_test::udp::run_ceiling,
        ),
        "udp-burst" => match tracker_load_test::udp::run_burst_cli(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{NAME}: {err:#}");
                ExitCode::FAILURE
            }
        },
        "-h" | "--help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("{NAME} {VERSION}");
            ExitCode::SUCCESS
        }
        other => {
            if !other.is_empty() {
                eprintln!("{NAME}: unknown command {other:?}\n");
            }
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
