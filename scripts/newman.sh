#!/usr/bin/env bash
# Run the Postman collection with newman, twice in a row, against userhub's production server
# (`userhub serve`, 2 workers) on MariaDB/MySQL: database `userhub_newman` on 127.0.0.1:3306 as
# root without a password, dropped and created afresh at the start, and dropped at the end when
# both runs passed. The second run proves the collection passes again against the same database.
# Fails if either run fails.
#
# The server writes its mail into a folder (USERHUB_MAIL_URL=file:///...). After each whole run,
# in which the folder of the mailed link is skipped (no request can read a mail), the token of
# the newest change-of-address mail is read (scripts/mail_token.py) and that folder runs alone
# with it, as a reader copies the link out of the mail.
#
#   bash scripts/newman.sh        (or: make newman)
#   USERHUB_NEWMAN_DATABASE=userhub_newman_mine make newman    (another database)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
# USERHUB_NEWMAN_DATABASE picks another database, so two runs on one machine do not clash;
# never `test` or `userhub_test` (refused below).
DATABASE="${USERHUB_NEWMAN_DATABASE:-userhub_newman}"
case "$DATABASE" in
    test | userhub_test) echo "newman.sh: refusing to drop the database $DATABASE" >&2; exit 2 ;;
esac
[[ "$DATABASE" =~ ^[A-Za-z0-9_]{1,64}$ ]] || {
    echo "newman.sh: USERHUB_NEWMAN_DATABASE must be letters, digits and _" >&2; exit 2; }
ADMIN_USERNAME=newman_admin

# A clean environment: no developer's USERHUB_* settings leak into the server.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^USERHUB_' || true)

if [[ ! -x postman/node_modules/.bin/newman ]]; then
    echo "newman.sh: installing newman (npm ci --prefix postman)"
    npm ci --prefix postman --no-audit --no-fund --loglevel=error
fi

# database recreate|drop: the run's own database, made empty at the start; dropped at the end
# when both runs passed, kept to look into when one failed.
database() {
    "$BIN/python" - "$1" "$DATABASE" <<'PY'
import sys
import pymysql
action, name = sys.argv[1:]
assert name not in {"test", "userhub_test"}
connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
with connection.cursor() as cursor:
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    if action == "recreate":
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
connection.close()
PY
}

work=$(mktemp -d "${TMPDIR:-/tmp}/userhub-newman.XXXXXX")
server_pid=""
cleanup() {
    local status=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -s "$work/server.log" ]]; then
        echo "--- server log ($work/server.log) ---" >&2
        tail -n 50 "$work/server.log" >&2
    fi
    if [[ $status -eq 0 ]]; then
        database drop
    else
        echo "newman.sh: database $DATABASE kept, to look into" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r PORT ADMIN_PASSWORD SECRET_KEY < <("$BIN/python" - <<'PY'
import secrets, socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
print(port, secrets.token_urlsafe(18), secrets.token_hex(32))
PY
)

export USERHUB_ENV=production
export USERHUB_SECRET_KEY="$SECRET_KEY"
export USERHUB_ALLOWED_HOSTS=127.0.0.1     # the host BASE_URL names; any other gets 400
# The collection runs twice within a minute from one address: about 30 registrations and 28
# log-ins, at the default per-IP limits (30 a minute). The limits are tested by pytest, not here.
export USERHUB_RATELIMIT_REGISTER="300 per minute"
export USERHUB_RATELIMIT_LOGIN="300 per minute"
export USERHUB_RATELIMIT_MAIL="300 per minute"    # 3 requests for a link a run; 10 an hour by default
export USERHUB_MAIL_URL="file://$work/mail"       # one .eml file per mail
export USERHUB_COOKIE_SECURE=false   # plain http on 127.0.0.1, as Postman and newman use it
export USERHUB_DATABASE_URL="mysql+pymysql://root@127.0.0.1:3306/$DATABASE?charset=utf8mb4"
export USERHUB_INSTANCE_PATH="$work/instance"
export USERHUB_HOST=127.0.0.1
export USERHUB_PORT="$PORT"
export USERHUB_WORKERS=2
export USERHUB_LOG_LEVEL=WARNING
BASE_URL="http://127.0.0.1:$PORT"

echo "newman.sh: database $DATABASE (dropped and created), admin $ADMIN_USERNAME, $BASE_URL"
database recreate
"$BIN/flask" --app userhub db upgrade >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log" >&2; exit 1; }
printf '%s\n' "$ADMIN_PASSWORD" |
    "$BIN/flask" --app userhub create-admin --username "$ADMIN_USERNAME" --password-stdin

"$BIN/userhub" serve >"$work/server.log" 2>&1 &
server_pid=$!

"$BIN/python" - "$BASE_URL/api/v1/health" "$server_pid" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("newman.sh: the server exited during start-up")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("newman.sh: the server did not answer /api/v1/health within 30 s")
PY

run_newman() {
    npx --no-install --prefix postman newman run postman/userhub.postman_collection.json \
        -e postman/userhub.postman_environment.json \
        --env-var "baseUrl=$BASE_URL" \
        --timeout-request 15000 \
        --color on "$@"
}
MAILED_LINK_FOLDER="API /api/v1 — the mailed link (needs mailToken)"

failed=0
for run in 1 2; do
    echo "newman.sh: run $run of 2"
    rm -f "$work"/mail/*.eml    # so the newest mail is this run's
    run_newman --env-var "adminUsername=$ADMIN_USERNAME" --env-var "adminPassword=$ADMIN_PASSWORD" ||
        { echo "newman.sh: run $run FAILED" >&2; failed=1; continue; }
    echo "newman.sh: run $run, the mailed link (its token read from the newest mail)"
    if mail=$("$BIN/python" scripts/mail_token.py "$work/mail" /email/change/confirm); then
        IFS=$'\t' read -r token address <<<"$mail"
        run_newman --folder "$MAILED_LINK_FOLDER" \
            --env-var "mailToken=$token" --env-var "mailAddress=$address" ||
            { echo "newman.sh: run $run, the mailed link FAILED" >&2; failed=1; }
    else
        echo "newman.sh: run $run, no change-of-address mail in $work/mail" >&2
        failed=1
    fi
done
exit "$failed"
