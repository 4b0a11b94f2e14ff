#!/usr/bin/env bash
# Puts Node.js 24 LTS first on PATH, for machines that carry an older Node (CI here has Node 20).
#
#   . scripts/node24.sh            # in this shell: node, npm and node-gyp now use Node 24
#   scripts/node24.sh npm test     # one command under Node 24
#
# When the node on PATH is already 24 or newer nothing changes. Otherwise Node itself comes from the npm
# registry (the node-linux-<arch> package: the official binary with its headers) into .tools/, once;
# npm_config_nodedir points node-gyp at those headers, so native addons (better-sqlite3) build without a
# download. npm is the one on PATH (it runs on whichever node comes first).
NODE24_VERSION=24.22.3

node24_setup() {
  local root major arch dir
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge 24 ] 2>/dev/null; then return 0; fi
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
      echo "node24.sh: no node-linux package for $(uname -m); install Node.js 24 yourself" >&2
      return 1
      ;;
  esac
  dir="$root/.tools/node-$NODE24_VERSION"
  if [ ! -x "$dir/node_modules/node-linux-$arch/bin/node" ]; then
    echo "node24.sh: fetching node-linux-$arch@$NODE24_VERSION from the npm registry into .tools/" >&2
    mkdir -p "$dir" || return 1
    (cd "$dir" && npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund \
      --loglevel=error "node-linux-$arch@$NODE24_VERSION" >&2) || return 1
  fi
  export PATH="$dir/node_modules/node-linux-$arch/bin:$PATH"
  export npm_config_nodedir="$dir/node_modules/node-linux-$arch"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  node24_setup
else
  set -euo pipefail
  node24_setup
  if [ "$#" -gt 0 ]; then exec "$@"; fi
  node --version
fi
