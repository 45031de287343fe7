#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one after the other, on the
# stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz passes).
# Smoke mode for CI: `scripts/fuzz.sh 20`. Exits non-zero on the first crash; the crashing
# input is left in fuzz/artifacts/<target>/. See docs/fuzzing.md.
set -euo pipefail

seconds="${1:-600}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [seconds per target]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# ASan unless told otherwise (FUZZ_SANITIZER=none for a faster, uninstrumented run).
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(token_verify introspect_token revoke_token get_key_set issue_token)
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
done

nice -n 19 cargo fuzz build -O --sanitizer "$sanitizer"
for target in "${targets[@]}"; do
  echo "=== $target: ${seconds}s" >&2
  # New inputs go to a scratch folder, so that a smoke run leaves the committed corpus alone;
  # FUZZ_GROW_CORPUS=1 writes them into corpus/<target> (then `cargo fuzz cmin`, see the doc).
  scratch="$(mktemp -d)"
  if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then dirs=("corpus/$target"); else dirs=("$scratch" "corpus/$target"); fi
  nice -n 19 cargo fuzz run -O --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
  rm -rf "$scratch"
done
echo "fuzz: every target ran ${seconds}s without a finding" >&2
