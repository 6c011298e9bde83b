#!/usr/bin/env bash
# Build the wheels the image installs (relay and its runtime dependencies, no dev extras)
# into build/wheels on the host, for CPython 3.11 on glibc Linux (the image's Python), so that
# the image build needs no package index. Usage: docker/wheels.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
out=build/wheels
arch="$(uname -m)"
# setuptools builds in build/lib: clear it so no module removed from the tree ships.
rm -rf "$out" build/lib build/bdist.*
pip=("$python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" wheel --no-deps -w "$out" .
platforms=()
for tag in manylinux2014 manylinux_2_28 manylinux_2_31 manylinux_2_34 manylinux_2_36; do
  platforms+=(--platform "${tag}_${arch}")
done
"${pip[@]}" download --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none "${platforms[@]}" --platform any -d "$out" "$out"/relay-*.whl \
  async-timeout
# (async-timeout: redis needs it on Python < 3.11.3, as Debian bookworm's 3.11.2 is; pip
# evaluates that marker with this host's Python, so it is named here.)
rm -rf build/lib build/bdist.*
ls "$out"
