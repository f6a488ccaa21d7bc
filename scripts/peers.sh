#!/usr/bin/env bash
# Installs the peer tools our benchmarks and comparison commands measure against into a
# virtual environment of their own (.tools/peers), never into the product: ClickHouse in
# process (chdb), ChannelAttribution and lifetimes, at pinned versions. Idempotent: a second
# run with the same pins does nothing. Prints the environment's python on its last line.
#
# 对比工具（chdb、ChannelAttribution、lifetimes）安装在独立的虚拟环境中，仅用于测试与基准，
# 不是产品依赖。
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.tools/peers
PINS=(chdb==4.4.0 channelattribution==2.2.5 lifetimes==0.11.3 numpy pandas pyarrow)
STAMP="$VENV/.pins"

if [[ -f $STAMP && $(cat "$STAMP") == "${PINS[*]}" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
echo "peers: installing ${PINS[*]} into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
"$VENV/bin/pip" install --quiet "${PINS[@]}" >&2
echo "${PINS[*]}" >"$STAMP"
echo "$VENV/bin/python"
