#!/usr/bin/env bash
# Runs buf, the protobuf linter, at the version pinned below, with the given arguments.
#
# buf comes from the npm package @bufbuild/buf (the package ships the binary), installed
# into the git-ignored .tools/ folder at the repository root, and only when that folder does
# not already hold this exact version. Usage: scripts/buf.sh lint proto
set -euo pipefail

BUF_VERSION=1.75.0

tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"
buf="$tools/node_modules/.bin/buf"

if [[ $("$buf" --version 2>/dev/null || true) != "$BUF_VERSION" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "buf: npm is needed to install buf $BUF_VERSION (Debian: apt-get install -y npm)" >&2
        exit 1
    fi
    echo "buf: installing @bufbuild/buf@$BUF_VERSION into .tools/" >&2
    npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
        "@bufbuild/buf@$BUF_VERSION" >&2
fi

exec "$buf" "$@"
