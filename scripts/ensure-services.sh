#!/usr/bin/env bash
# Make sure what the test suite needs outside Python is there: headless Chromium (the /docs browser test;
# installed with apt-get where missing and we are root) and PostgreSQL (both halves of the suite run on it).
# Tries to start a local cluster that is installed but stopped; otherwise fails loudly — neither the
# PostgreSQL tests nor the browser test are ever skipped.
set -u
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the /docs browser test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 \
      || echo "WARNING: could not install chromium; tests/api/test_docs_browser.py will fail" >&2
  else
    echo "WARNING: chromium is missing (apt-get install -y chromium); tests/api/test_docs_browser.py will fail" >&2
  fi
fi
url="${TSCOUT_TEST_PG_ADMIN_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
probe() { .venv/bin/python - "$url" <<'PY'
import sys
from sqlalchemy import create_engine, text
try:
    with create_engine(sys.argv[1]).connect() as c:
        c.execute(text("select 1"))
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    sys.exit(1)
PY
}
if probe 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "PostgreSQL not answering; trying to start the local cluster" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >&2 || true
  for _ in $(seq 1 30); do probe 2>/dev/null && exit 0; sleep 1; done
fi
echo "ERROR: PostgreSQL is unreachable at ${url}." >&2
echo "The test suite runs on SQLite AND PostgreSQL; start PostgreSQL or set TSCOUT_TEST_PG_ADMIN_URL." >&2
probe || true
exit 1
