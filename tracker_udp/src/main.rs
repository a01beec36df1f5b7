//! The `tracker_udp` binary: see the library for everything it does.

fn main() -> std::process::ExitCode {
    tracker_common::runtime::cli::run_app::<tracker_udp::Config>(
        tracker_udp::APP_NAME,
        tracker_udp::APP_VERSION,
        tracker_udp::run,
    )
}
