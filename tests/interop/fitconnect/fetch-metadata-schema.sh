#!/usr/bin/env bash
# Fetches FIT-Connect's official metadata schema 1.0.0 (JSON Schema 2020-12,
# $id https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json) from the package
# registry PyPI, where FITKO's Python SDK `fitconnect` ships it, and places it beside this script as
# metadata.schema.v1.0.0.json (not committed: it is third-party text, EUPL-1.2). The wheel and the
# schema are pinned by SHA-256. The tests that validate metadata against it report themselves
# ignored without it; CI runs this script.
set -euo pipefail
cd "$(dirname "$0")"
TARGET=metadata.schema.v1.0.0.json
WHEEL=fitconnect-0.4.2-py3-none-any.whl
WHEEL_SHA256=80515d4459e0dc3ad49171f892eabfe68a36a0ef26b5d59f6d5f92b6e7d29d81
SCHEMA_SHA256=d61ad55c5d084195dbd403f512b39c0ff40ca66471b3d5902cb4401982948916

if [ -f "$TARGET" ] && echo "$SCHEMA_SHA256  $TARGET" | sha256sum -c --quiet 2>/dev/null; then
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: "fitconnect==0.4.2" -d "$WORK"
echo "$WHEEL_SHA256  $WORK/$WHEEL" | sha256sum -c --quiet
python3 -c "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read('fitconnect/schema/metadata.schema.v1.0.0.json'))" "$WORK/$WHEEL" > "$WORK/$TARGET"
echo "$SCHEMA_SHA256  $WORK/$TARGET" | sha256sum -c --quiet
mv "$WORK/$TARGET" "$TARGET"
echo "FIT-Connect metadata schema 1.0.0 in tests/interop/fitconnect/$TARGET"
