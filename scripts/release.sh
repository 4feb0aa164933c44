#!/usr/bin/env bash
# Builds the release artifact an operator copies to a server: dist/wpbackup-<version>-linux-<arch>.tar.zst
# holds the pinned Node 24 binary, wpbackup's sources (run by Node's type stripping, as in a
# checkout), the production dependencies only and install.sh. Nothing is downloaded: it is made
# from this checkout and its installed node_modules. Usage: bash scripts/release.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s%N)

node=node_modules/.bin/node
[ -x "$node" ] || { echo "release: the pinned Node 24 is missing: run 'bash scripts/bootstrap.sh' first" >&2; exit 2; }
out=$(realpath -m "${1:-dist}")
version=$("$node" -p 'require("./package.json").version')
arch=$("$node" -p 'process.arch')
name="wpbackup-$version-linux-$arch"
stage=$(mktemp -d "${TMPDIR:-/tmp}/wpbackup-release.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/node_modules/node/bin" "$root/node_modules/.bin" "$out"

# The program: launchers, sources (no tests, benches or scripts) and a package.json without dev
# dependencies or scripts (toolVersion() reads its version; "type": "module" matters).
cp -a bin "$root/bin"
cp -a src "$root/src"
"$node" -e '
  const pkg = require("./package.json");
  delete pkg.devDependencies; delete pkg.scripts;
  process.stdout.write(JSON.stringify(pkg, null, 2) + "\n");' >"$root/package.json"
install -m 0755 scripts/release-install.sh "$root/install.sh"

# Production packages, from the lock file: every top-level package not marked dev (nested
# ones come with their parent). An optional one that is not installed here is skipped.
"$node" -e '
  const lock = require("./package-lock.json");
  for (const [path, p] of Object.entries(lock.packages)) {
    if (path && !p.dev && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path)) console.log(path + (p.optional ? " optional" : ""));
  }' | while read -r path optional; do
  if [ ! -e "$path" ]; then
    [ -n "$optional" ] && continue
    echo "release: $path is in the lock file but not installed: run 'npm ci'" >&2
    exit 1
  fi
  mkdir -p "$root/$(dirname "$path")"
  cp -a "$(realpath "$path")" "$root/$path"
done
# Types, source maps and docs are not run; licences stay.
find "$root/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' ! -iname 'license*' \) -delete

# The pinned Node 24 itself (a devDependency in the checkout), where bin/wpbackup looks for it.
cp "$(realpath node_modules/node/bin/node)" "$root/node_modules/node/bin/node"
ln -s ../node/bin/node "$root/node_modules/.bin/node"
"$root/node_modules/.bin/node" --version >/dev/null

# zstd, which every machine running wpbackup has anyway: 44 MB in a third of gzip -6's CPU time (51 MB).
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -cf - "$name" | zstd -q -T0 -6 -o "$out/$name.tar.zst.tmp" -f
mv "$out/$name.tar.zst.tmp" "$out/$name.tar.zst"
ms=$((($(date +%s%N) - started) / 1000000))
echo "release: $out/$name.tar.zst ($(du -m "$out/$name.tar.zst" | cut -f1) MB, $(du -sm "$root" | cut -f1) MB unpacked) in ${ms} ms"
