#!/usr/bin/env bash
# Install what the end-to-end browser test (tests/browser/, pytest marker `browser`) needs:
#   * Debian's chromium and chromium-driver (the test launches /usr/bin/chromium itself; no browser
#     download: `playwright install` is never run),
#   * the Python `playwright` package (its wheel bundles the node driver that speaks CDP),
#   * gradio (the `serve` extra), pinned so it cannot move torch / torchvision / numpy.
# Idempotent: does nothing that is already there. Usage: bash .ci/browser.sh [PYTHON]
set -euo pipefail

PY="${1:-${PYTHON:-python}}"

if [ ! -x /usr/bin/chromium ]; then
    echo "browser.sh: installing Debian chromium + chromium-driver"
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version

pins=()
for pkg in torch torchvision numpy; do
    v="$("$PY" -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || true)"
    if [ -n "$v" ]; then pins+=("$pkg==$v"); fi
done

need=()
"$PY" -c "import playwright.sync_api" 2>/dev/null || need+=("playwright>=1.40")
"$PY" -c "import gradio" 2>/dev/null || need+=("gradio>=6")
if [ "${#need[@]}" -gt 0 ]; then
    echo "browser.sh: pip install ${need[*]} (pinned: ${pins[*]:-none})"
    "$PY" -m pip install -q "${need[@]}" "${pins[@]}"
fi
"$PY" -c "import gradio, playwright; print('gradio', gradio.__version__)"
