#!/usr/bin/env bash
# Sets up the webhook receiver the tests use to check our signatures with another language's
# Standard Webhooks library: a virtual environment of its own (.tools/webhook-receiver) with
# the pinned Python `standardwebhooks`, for tests/receiver/receiver.py. Test tooling only,
# never a product dependency. Idempotent: a second run with the same pin does nothing. Prints
# the environment's python on its last line.
#
# 为测试准备 webhook 接收端：在独立的虚拟环境（.tools/webhook-receiver）中安装固定版本的
# Python `standardwebhooks`，用另一种语言的标准库验证我们的签名。仅用于测试，不是产品依赖。
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENV_DIR=.tools/webhook-receiver
PIN=standardwebhooks==1.3.0
MARKER="$ENV_DIR/.installed"

# The marker is written last, so its presence means a complete environment.
installed() { [[ -x $ENV_DIR/bin/python && -f $MARKER && $(<"$MARKER") == "$PIN" ]]; }

if ! installed; then
    # Test runners may start several tests that need the receiver at once: one installs,
    # the others wait for it and then find the environment ready.
    mkdir -p .tools
    exec 9>"$ENV_DIR.lock"
    flock 9
    if ! installed; then
        echo "webhook-receiver: installing $PIN into $ENV_DIR" >&2
        rm -rf "$ENV_DIR"
        python3 -m venv "$ENV_DIR"
        "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN" >&2
        printf '%s\n' "$PIN" >"$MARKER"
    fi
fi
echo "$ENV_DIR/bin/python"
