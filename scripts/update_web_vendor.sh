#!/usr/bin/env bash
# Re-vendor MediaPipe Tasks Vision for Web into kft/webapp/static/vendor/mediapipe (see VENDOR.md there).
# Usage: bash scripts/update_web_vendor.sh [VERSION]   (default: the version VENDOR.md names)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=kft/webapp/static/vendor/mediapipe
version="${1:-$(grep -o '\*\*[0-9.]*\*\*' "$dest/VENDOR.md" | tr -d '*')}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@mediapipe/tasks-vision@$version" >/dev/null && tar xzf ./*.tgz)
# .mjs -> .js: static hosts serve .js as JavaScript (a module script needs that); see VENDOR.md.
cp "$work/package/vision_bundle.mjs" "$dest/vision_bundle.js"
cp "$work/package/wasm/vision_wasm_internal.js" "$work/package/wasm/vision_wasm_internal.wasm" "$dest/"
sed -i "s/\*\*[0-9.]*\*\*/**$version**/" "$dest/VENDOR.md"
echo "vendored @mediapipe/tasks-vision $version into $dest ($(du -sh "$dest" | cut -f1))"
