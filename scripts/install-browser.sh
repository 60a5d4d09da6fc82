#!/usr/bin/env bash
# Installs what the web UI's build and browser tests need, only when missing:
# Debian's chromium (the e2e tests drive it through Playwright's executable_path; no
# browser download), Node.js and npm, the Python playwright client, and web/'s npm
# packages from its lock file. Safe to run again: each step checks first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The Python that runs pytest: $PYTHON if given, else $VENV's (./dev exports it),
# else the repo's .venv, else python3.
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -n "${VENV:-}" && -x "$VENV/bin/python" ]]; then
    py="$VENV/bin/python"
elif [[ -x "$root/.venv/bin/python" ]]; then
    py="$root/.venv/bin/python"
else
    py="python3"
fi

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if ((${#need_apt[@]})); then
    echo "install-browser: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Python playwright drives the browser from pytest; its wheel carries its own Node
# driver, and we never run `playwright install` (Debian's chromium is used instead).
if ! "$py" -c 'import playwright' >/dev/null 2>&1; then
    echo "install-browser: pip install playwright ($py)"
    "$py" -m pip install -q 'playwright>=1.50,<2'
fi

# Vite 8 and Vitest 4 need Node.js 20.19 or newer (this machine kind ships 20.x;
# Debian 12's own nodejs is 18, which builds nothing here).
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
    echo "install-browser: Node.js $(node --version) is too old for web/ (needs 20.19+)" >&2
    exit 1
fi

# npm ci only when node_modules is missing or older than the lock file.
cd "$root/web"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "install-browser: npm ci in web/"
    npm ci --no-audit --no-fund
fi

echo "install-browser: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version), playwright $("$py" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
