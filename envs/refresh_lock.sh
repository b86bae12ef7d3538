#!/usr/bin/env bash
# Re-resolve every dependency of pyproject.toml (with the test and bench extras) in a brand-new
# virtual environment and write the exact versions to envs/requirements.lock, which the README's
# install commands and CI use as pip constraints. Run it, run the tests, commit the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"${PYTHON:-python3.11}" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet -e ".[test]"
{
    echo "# Exact versions of every dependency, resolved $(date -u +%Y-%m-%d) by envs/refresh_lock.sh with"
    echo "# $("$scratch/venv/bin/python" --version) on $(uname -sm). Used as constraints: pip install -c envs/requirements.lock -e ."
    "$scratch/venv/bin/pip" freeze --exclude-editable
} > envs/requirements.lock.partial
mv envs/requirements.lock.partial envs/requirements.lock
echo "wrote envs/requirements.lock"
