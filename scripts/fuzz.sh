#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for a bounded time.
#
# Usage: scripts/fuzz.sh [SECONDS]    (default 30 seconds per target)
#
# cargo-fuzz's instrumentation flags need nightly. With a nightly toolchain installed
# (`rustup toolchain list`) the targets run under `cargo +nightly fuzz` with
# AddressSanitizer. Without one they fall back to the stable toolchain with
# RUSTC_BOOTSTRAP=1 and `--sanitizer none` (coverage-guided, no ASan). Set
# SHOAL_FUZZ_STABLE=1 to force that fallback. A build that fails, in either mode, fails
# the script: a fuzz run that could not happen must not pass.
#
# Every step is bounded by `timeout`; libFuzzer stops itself after SECONDS.
set -euo pipefail

seconds="${1:-30}"
case "$seconds" in
    '' | *[!0-9]*)
        echo "usage: $0 [SECONDS]" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# fuzz/ is its own workspace: keep its artifacts in fuzz/target (git-ignored) whatever
# target directory the caller uses for the main workspace.
export CARGO_TARGET_DIR="$root/fuzz/target"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz not found, installing it"
    timeout 1800 cargo install cargo-fuzz --locked
fi
echo "fuzz.sh: $(cargo fuzz --version)"

if [[ "${SHOAL_FUZZ_STABLE:-0}" != 1 ]] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    mode=nightly
    fuzz=(cargo +nightly fuzz)
    flags=()
else
    mode=stable
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    flags=(--sanitizer none)
fi
echo "fuzz.sh: toolchain mode: $mode"

targets=()
while IFS= read -r target; do
    [[ -n "$target" ]] && targets+=("$target")
done < <("${fuzz[@]}" list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz.sh: no fuzz targets found in fuzz/" >&2
    exit 1
fi
echo "fuzz.sh: targets: ${targets[*]}"

if ! timeout 1800 "${fuzz[@]}" build "${flags[@]}"; then
    if [[ "$mode" == stable ]]; then
        echo "fuzz.sh: FAILED: the fuzz targets cannot be built with the stable toolchain" \
            "(RUSTC_BOOTSTRAP=1 --sanitizer none); install a nightly toolchain to fuzz" >&2
    else
        echo "fuzz.sh: build failed" >&2
    fi
    exit 1
fi

for target in "${targets[@]}"; do
    echo "fuzz.sh: running $target for ${seconds}s"
    # The margin covers libFuzzer's start-up and corpus loading; the build above
    # means `run` does not compile again.
    timeout "$((seconds + 300))" "${fuzz[@]}" run "${flags[@]}" "$target" -- \
        -max_len=1536 -max_total_time="$seconds" -print_final_stats=1
done
echo "fuzz.sh: all ${#targets[@]} target(s) ran ${seconds}s without a crash"
