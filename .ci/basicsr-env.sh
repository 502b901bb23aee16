#!/usr/bin/env bash
# The BasicSR client environment of tests/test_basicsr.py: a venv of its own with BasicSR 1.4.2 and the
# torch/torchvision pair it imports beside (adl's own venv keeps adl's torch pin), plus adl's runtime
# dependencies; adl itself comes from the checkout through PYTHONPATH. Built once and reused while its
# stamp matches; prints the venv's python on the last line. $ADL_BASICSR_VENV overrides the place.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${ADL_BASICSR_VENV:-$HOME/.cache/adl-basicsr-venv}
# torchvision 0.29.1 is the newest this machine's pip takes, and needs torch 2.14.1; BasicSR 1.4.2 is the
# current release (2022). lmdb: BasicSR's LMDB backend and adl's --format lmdb.
want="torch==2.14.1 torchvision==0.29.1 basicsr==1.4.2 lmdb>=1.4"
deps=$(python3 - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
# adl's runtime dependencies but torch, which the line above pins for BasicSR's sake
print(" ".join(d for d in project["dependencies"] if not d.startswith("torch")))
PY
)
stamp="$want | $deps pytest"
# One builder at a time: two test runs that find the stamp stale would otherwise remove each other's files.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -f $venv/.adl-stamp && $(cat "$venv/.adl-stamp") == "$stamp" ]]; then
  echo "basicsr-env: reusing $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi
echo "basicsr-env: building $venv (torch 2.14.1 + torchvision 0.29.1 + BasicSR 1.4.2)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" torch==2.14.1 torchvision==0.29.1 cython setuptools wheel >&2
# BasicSR's setup.py asks for torch in an isolated build environment: reuse the one just installed
# instead of a second multi-GB download.
"${pip[@]}" --no-build-isolation basicsr==1.4.2 "lmdb>=1.4" >&2
# shellcheck disable=SC2086
"${pip[@]}" $deps pytest >&2
echo "$stamp" >"$venv/.adl-stamp"   # last: a half-built venv is never reused
echo "$venv/bin/python"
