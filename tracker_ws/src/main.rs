//! The `tracker_ws` binary: see the library for everything it does.

fn main() -> std::process::ExitCode {
    tracker_common::runtime::cli::run_app::<tracker_ws::Config>(
        tracker_ws::APP_NAME,
        tracker_ws::APP_VERSION,
        tracker_ws::run,
    )
}
