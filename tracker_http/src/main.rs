//! The `tracker_http` binary: see the library for everything it does.

fn main() -> std::process::ExitCode {
    tracker_common::runtime::cli::run_app::<tracker_http::Config>(
        tracker_http::APP_NAME,
        tracker_http::APP_VERSION,
        tracker_http::run,
    )
}
