# shellcheck shell=bash
# Installs and starts the services wpbackup's tests and demo need (MariaDB, PostgreSQL, MinIO, Mailpit)
# on a Debian 12 machine without systemd, as root, with no interaction.
#
# Source it; it only defines functions and defaults, and never changes the caller's shell
# options. Every wpb_* function returns non-zero after printing a clear message, so callers can
# use `set -e` or `|| exit 1`. Set any of the variables below before sourcing to override them.
#
# Credentials are random on the first run and kept in $WPB_TEST_HOME/services.json (0600), so
# later runs reuse them and, when everything is already up, change nothing.

: "${WPB_TEST_HOME:=${WPBACKUP_TEST_HOME:-/var/tmp/wpbackup-test}}"
: "${WPB_CACHE:=${WPBACKUP_CACHE:-$HOME/.cache/wpbackup}}"
: "${WPB_MYSQL_PORT:=3306}"
: "${WPB_MYSQL_SOCKET:=/run/mysqld/mysqld.sock}"
: "${WPB_MYSQL_USER:=wpbackup_test}"
: "${WPB_PG_ROLE:=wpbackup_test}"
: "${WPB_S3_PORT:=9100}"
: "${WPB_S3_CONSOLE_PORT:=9101}"
: "${WPB_S3_REGION:=us-east-1}"
: "${WPB_WORDPRESS_CORE:=/usr/share/wordpress}"
: "${WPB_MAILPIT_SMTP_PORT:=9125}"
: "${WPB_MAILPIT_HTTP_PORT:=9126}"
: "${WPB_MAILPIT_VERSION:=v1.33.1}"

# The theme is only a Recommends of wordpress, and recommends are not installed (see below).
WPB_PACKAGES=(mariadb-server mariadb-client postgresql php-cli php-mysql wordpress wordpress-theme-twentytwentythree
  zstd rsync chromium wget util-linux curl jq)
# install-service tests: systemd-analyze verify (systemd: installed, not run as init) and useradd.
WPB_PACKAGES+=(systemd passwd)

wpb_say() { printf '[services] %s\n' "$*"; }

wpb_fail() {
  printf '[services] ERROR: %s\n' "$*" >&2
  return 1
}

wpb_log() { printf '%s/logs/%s\n' "$WPB_TEST_HOME" "$1"; }

# The MariaDB server runs as mysql and writes its error log here, so the tree must be traversable;
# the secrets inside are 0600 files.
wpb_ensure_dirs() {
  install -d -m 0755 "$WPB_TEST_HOME" "$WPB_TEST_HOME/logs" "$WPB_TEST_HOME/s3" || wpb_fail "cannot create $WPB_TEST_HOME"
}

wpb_require_root() {
  [ "$(id -u)" = 0 ] || wpb_fail "must run as root (it installs packages and starts system services)"
}

# --- packages ---------------------------------------------------------------------------------

wpb_missing_packages() {
  local installed p
  # dpkg-query fails when any name is unknown to it, which just means "missing".
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null | awk '$NF == "installed" { print $1 }' || true)
  for p in "$@"; do
    grep -qx -- "$p" <<<"$installed" || printf '%s\n' "$p"
  done
}

wpb_ensure_packages() {
  local missing log
  [ $# -gt 0 ] || set -- "${WPB_PACKAGES[@]}"
  mapfile -t missing < <(wpb_missing_packages "$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  log=$(wpb_log apt.log)
  wpb_say "installing ${missing[*]} (log: $log)"
  # Recommends would add ~100 packages (fonts, l10n, mail); wordpress itself still depends on
  # apache2, whose postinst may start it on port 80.
  { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1 ||
    wpb_fail "apt-get install ${missing[*]} failed; see $log"
}

# --- credentials --------------------------------------------------------------------------------

wpb_random() { head -c 48 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c "1-${1:-24}"; }

# Replaces $1 with stdin only when the content differs, so an unchanged run leaves mtimes alone.
wpb_write_private() {
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX") || return 1
  if ! { cat >"$tmp" && chmod 0600 "$tmp"; }; then
    rm -f "$tmp"
    return 1
  fi
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv -f "$tmp" "$file"; fi
}

# Reads the secrets of an earlier run, one per line: mysql password, S3 key, S3 secret, pg password.
wpb_read_descriptor() {
  # shellcheck disable=SC2016 # PHP code, expanded by PHP
  php -r '$j = json_decode((string) @file_get_contents($argv[1]), true);
    if (!is_array($j)) exit(1);
    echo $j["mysql"]["password"] ?? "", "\n", $j["minio"]["accessKey"] ?? "", "\n",
      $j["minio"]["secretKey"] ?? "", "\n", rawurldecode(parse_url($j["postgres"]["url"] ?? "", PHP_URL_PASS) ?? ""), "\n";' \
    "$WPB_TEST_HOME/services.json" 2>/dev/null
}

wpb_load_credentials() {
  local saved=()
  [ -s "$WPB_TEST_HOME/services.json" ] && mapfile -t saved < <(wpb_read_descriptor)
  WPB_MYSQL_PASSWORD=${saved[0]:-}
  WPB_S3_ACCESS_KEY=${saved[1]:-}
  WPB_S3_SECRET_KEY=${saved[2]:-}
  WPB_PG_PASSWORD=${saved[3]:-}
  if [ -z "$WPB_MYSQL_PASSWORD" ] || [ -z "$WPB_S3_ACCESS_KEY" ] || [ -z "$WPB_S3_SECRET_KEY" ] || [ -z "$WPB_PG_PASSWORD" ]; then
    wpb_say "generating new credentials"
    WPB_MYSQL_PASSWORD=$(wpb_random 24)
    WPB_S3_ACCESS_KEY=wpb$(wpb_random 17)
    WPB_S3_SECRET_KEY=$(wpb_random 32)
    WPB_PG_PASSWORD=$(wpb_random 24)
  fi
  wpb_write_mysql_cnf
}

# A client defaults file for the admin account, so shell callers never put the password in argv.
wpb_write_mysql_cnf() {
  WPB_MYSQL_CNF=$WPB_TEST_HOME/mysql-admin.cnf
  wpb_write_private "$WPB_MYSQL_CNF" <<EOF
[client]
user=$WPB_MYSQL_USER
password="$WPB_MYSQL_PASSWORD"
host=127.0.0.1
port=$WPB_MYSQL_PORT
EOF
}

# Polls "$@" once a second for up to $1 seconds.
wpb_wait() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds; i++)); do
    "$@" && return 0
    sleep 1
  done
  "$@"
}

# --- MariaDB ------------------------------------------------------------------------------------

# Exits 0 whenever the server answers, even with "access denied".
wpb_mariadb_alive() { mariadb-admin --protocol=socket -S "$WPB_MYSQL_SOCKET" -uroot ping >/dev/null 2>&1; }

wpb_mariadb_admin_ok() {
  mariadb --defaults-extra-file="$WPB_MYSQL_CNF" --protocol=tcp -N -e 'SELECT 1' >/dev/null 2>&1 &&
    mariadb --defaults-extra-file="$WPB_MYSQL_CNF" --protocol=socket -S "$WPB_MYSQL_SOCKET" -N -e 'SELECT 1' >/dev/null 2>&1
}

# mysqld_safe is started directly because Debian's init script logs to syslog, which a
# container lacks; setsid keeps the server alive when the caller's process group is killed.
# The redirections are on the whole subshell: a shell left holding the caller's stdout would
# keep a pipe reading it (`npm test | tee log`, a CI runner) open after the tests end.
wpb_start_mariadb() {
  local err log
  err=$(wpb_log mariadb.err)
  log=$(wpb_log mariadb.log)
  install -d -o mysql -g root -m 0755 "$(dirname "$WPB_MYSQL_SOCKET")" || return 1
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$log" 2>&1 || wpb_fail "mariadb-install-db failed; see $log" || return 1
  fi
  touch "$err" && chown mysql "$err" || return 1
  wpb_say "starting MariaDB (log: $err)"
  (cd / && exec setsid nohup mysqld_safe --skip-syslog --log-error="$err" &) </dev/null >>"$log" 2>&1
  wpb_wait 60 wpb_mariadb_alive || wpb_fail "MariaDB did not answer within 60 s; see $err" || return 1
}

wpb_create_mariadb_admin() {
  local host
  wpb_say "creating MariaDB account $WPB_MYSQL_USER"
  for host in localhost %; do
    printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$WPB_MYSQL_USER" "$host" "$WPB_MYSQL_PASSWORD"
    printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$WPB_MYSQL_USER" "$host" "$WPB_MYSQL_PASSWORD"
    printf "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s' WITH GRANT OPTION;\n" "$WPB_MYSQL_USER" "$host"
  done | mariadb --protocol=socket -S "$WPB_MYSQL_SOCKET" -uroot --batch ||
    wpb_fail "could not create the MariaDB admin account (is root@localhost still unix_socket auth?)"
}

wpb_ensure_mariadb() {
  wpb_mariadb_alive || wpb_start_mariadb || return 1
  wpb_mariadb_admin_ok && return 0
  wpb_create_mariadb_admin || return 1
  wpb_mariadb_admin_ok ||
    wpb_fail "MariaDB account $WPB_MYSQL_USER cannot log in on 127.0.0.1:$WPB_MYSQL_PORT and $WPB_MYSQL_SOCKET (skip-networking or another bind-address in /etc/mysql?)"
}

# --- PostgreSQL ---------------------------------------------------------------------------------

# Sets WPB_PG_VERSION, WPB_PG_PORT and WPB_PG_STATUS from the first cluster, creating one if none.
wpb_pg_cluster() {
  local line version
  line=$(pg_lsclusters -h 2>/dev/null | head -n 1)
  if [ -z "$line" ]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || wpb_fail "PostgreSQL server binaries are missing under /usr/lib/postgresql" || return 1
    wpb_say "creating PostgreSQL $version cluster 'main'"
    pg_createcluster "$version" main >>"$(wpb_log postgres.log)" 2>&1 || wpb_fail "pg_createcluster failed" || return 1
    line=$(pg_lsclusters -h | head -n 1)
  fi
  read -r WPB_PG_VERSION WPB_PG_CLUSTER WPB_PG_PORT WPB_PG_STATUS _ <<<"$line"
}

wpb_pg_login_ok() {
  PGPASSWORD=$WPB_PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$WPB_PG_PORT" -U "$WPB_PG_ROLE" \
    -d "$WPB_PG_ROLE" -Atqc 'SELECT 1' >/dev/null 2>&1
}

# The role as the tests need it: it logs in, and may end the backends (autovacuum workers among them) still on a
# test database it drops WITH (FORCE).
wpb_pg_role_ready() {
  [ "$(PGPASSWORD=$WPB_PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$WPB_PG_PORT" -U "$WPB_PG_ROLE" \
    -d "$WPB_PG_ROLE" -Atqc "SELECT pg_has_role('pg_signal_backend', 'MEMBER')" 2>/dev/null)" = t ]
}

wpb_start_postgres() {
  wpb_say "starting PostgreSQL $WPB_PG_VERSION/$WPB_PG_CLUSTER"
  (cd / && setsid pg_ctlcluster "$WPB_PG_VERSION" "$WPB_PG_CLUSTER" start </dev/null >>"$(wpb_log postgres.log)" 2>&1) ||
    wpb_fail "PostgreSQL did not start; see $(wpb_log postgres.log) and /var/log/postgresql/" || return 1
}

wpb_create_pg_role() {
  wpb_say "creating PostgreSQL role and database $WPB_PG_ROLE"
  (cd / && runuser -u postgres -- psql -p "$WPB_PG_PORT" -v ON_ERROR_STOP=1 -q) >/dev/null <<SQL ||
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$WPB_PG_ROLE') THEN CREATE ROLE $WPB_PG_ROLE; END IF;
END \$\$;
ALTER ROLE $WPB_PG_ROLE LOGIN CREATEDB PASSWORD '$WPB_PG_PASSWORD';
GRANT pg_signal_backend TO $WPB_PG_ROLE;
SELECT 'CREATE DATABASE $WPB_PG_ROLE OWNER $WPB_PG_ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$WPB_PG_ROLE')
\gexec
SQL
    wpb_fail "could not create the PostgreSQL role $WPB_PG_ROLE"
}

wpb_ensure_postgres() {
  wpb_pg_cluster || return 1
  [ "$WPB_PG_STATUS" = online ] || wpb_start_postgres || return 1
  wpb_pg_role_ready && return 0
  wpb_create_pg_role || return 1
  wpb_pg_login_ok || wpb_fail "PostgreSQL role $WPB_PG_ROLE cannot log in on 127.0.0.1:$WPB_PG_PORT (check pg_hba.conf)"
}

# --- S3 (MinIO, or versitygw as a fallback) -----------------------------------------------------

wpb_go() {
  command -v go 2>/dev/null && return 0
  [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go
}

wpb_go_install() {
  local go log
  go=$(wpb_go) || return 1
  log=$(wpb_log go-build.log)
  wpb_say "building $1 with $go install (takes minutes; log: $log)"
  install -d -m 0755 "$WPB_CACHE/bin" && GOBIN=$WPB_CACHE/bin "$go" install "$1" >>"$log" 2>&1
}

# Last resort when there is no Go toolchain: MinIO's official static build.
wpb_download_minio() {
  local arch
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) return 1 ;; esac
  wpb_say "no usable Go toolchain: downloading MinIO from dl.min.io"
  install -d -m 0755 "$WPB_CACHE/bin" &&
    wget -q -O "$WPB_CACHE/bin/minio.part" "https://dl.min.io/server/minio/release/linux-$arch/minio" &&
    chmod 0755 "$WPB_CACHE/bin/minio.part" && mv -f "$WPB_CACHE/bin/minio.part" "$WPB_CACHE/bin/minio"
}

# Sets WPB_S3_KIND and WPB_S3_BIN, preferring anything already cached over a build.
wpb_s3_binary() {
  local bin=$WPB_CACHE/bin
  if [ ! -x "$bin/minio" ] && [ ! -x "$bin/versitygw" ]; then
    wpb_go_install github.com/minio/minio@latest ||
      wpb_go_install github.com/versity/versitygw/cmd/versitygw@latest ||
      { [ -z "$(wpb_go)" ] && wpb_download_minio; }
  fi
  if [ -x "$bin/minio" ]; then
    WPB_S3_KIND=minio
  elif [ -x "$bin/versitygw" ]; then
    WPB_S3_KIND=versitygw
  else
    wpb_fail "no S3 server: building MinIO and versitygw failed; see $(wpb_log go-build.log)" || return 1
  fi
  WPB_S3_BIN=$bin/$WPB_S3_KIND
}

# True when process $1 has exactly $2 among its arguments.
wpb_has_arg() { tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | grep -qxF -- "$2"; }

# Our server's pid, recognised by its data dir whatever port it listens on.
wpb_s3_pid() {
  local pid
  pid=$(cat "$WPB_TEST_HOME/s3/server.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && wpb_has_arg "$pid" "$WPB_TEST_HOME/s3/data" && echo "$pid"
}

wpb_s3_up() {
  local pid
  pid=$(wpb_s3_pid) && wpb_has_arg "$pid" "127.0.0.1:$WPB_S3_PORT" &&
    [ "$(cat "$WPB_TEST_HOME/s3/fingerprint" 2>/dev/null)" = "$(wpb_s3_fingerprint)" ] && wpb_s3_answers
}

# Identifies the server kind and root credentials its data dir was created with.
wpb_s3_fingerprint() {
  printf '%s\n' "$WPB_S3_KIND" "$WPB_S3_ACCESS_KEY" "$WPB_S3_SECRET_KEY" | sha256sum | cut -d' ' -f1
}

# Any HTTP answer will do (wget exits 8 on 403); versitygw has no MinIO health route.
wpb_s3_answers() {
  local rc=0
  wget -q -O /dev/null --tries=1 --timeout=2 "http://127.0.0.1:$WPB_S3_PORT/minio/health/live" 2>/dev/null || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 8 ]
}

wpb_stop_s3() {
  local pid i
  pid=$(wpb_s3_pid) || return 0
  wpb_say "stopping the S3 server (credentials or port changed)"
  kill "$pid" 2>/dev/null
  for ((i = 0; i < 15; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 1
  done
  kill -9 "$pid" 2>/dev/null
  sleep 1
}

# Credentials go in through the environment only; the pid is written by the process that
# becomes the server (exec), so it is right whether or not setsid had to fork.
# shellcheck disable=SC2016 # the sh -c scripts expand their own $$, $0 and $@
wpb_launch_s3() {
  local data=$WPB_TEST_HOME/s3/data pidfile=$WPB_TEST_HOME/s3/server.pid log
  log=$(wpb_log s3.log)
  install -d -m 0700 "$data" || return 1
  wpb_say "starting $WPB_S3_KIND on 127.0.0.1:$WPB_S3_PORT (log: $log)"
  if [ "$WPB_S3_KIND" = minio ]; then
    (cd / && MINIO_ROOT_USER=$WPB_S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$WPB_S3_SECRET_KEY MINIO_BROWSER=off \
      MINIO_UPDATE=off MINIO_SITE_REGION=$WPB_S3_REGION exec setsid nohup sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
      "$WPB_S3_BIN" server --quiet --address "127.0.0.1:$WPB_S3_PORT" \
      --console-address "127.0.0.1:$WPB_S3_CONSOLE_PORT" "$data" &) </dev/null >>"$log" 2>&1
  else
    (cd / && ROOT_ACCESS_KEY=$WPB_S3_ACCESS_KEY ROOT_SECRET_KEY=$WPB_S3_SECRET_KEY exec \
      setsid nohup sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
      "$WPB_S3_BIN" --port "127.0.0.1:$WPB_S3_PORT" --region "$WPB_S3_REGION" posix "$data" &) </dev/null >>"$log" 2>&1
  fi
}

wpb_ensure_s3() {
  local fingerprint stamp=$WPB_TEST_HOME/s3/fingerprint
  wpb_s3_binary || return 1
  wpb_s3_up && return 0
  fingerprint=$(wpb_s3_fingerprint)
  wpb_stop_s3
  if wpb_s3_answers; then
    wpb_fail "port $WPB_S3_PORT is taken by another process; set WPB_S3_PORT"
    return 1
  fi
  # Objects and IAM state written under other root credentials (or by the other server kind)
  # would not be usable, and it is all disposable test data.
  [ "$(cat "$stamp" 2>/dev/null || echo "$fingerprint")" = "$fingerprint" ] || rm -rf "$WPB_TEST_HOME/s3/data"
  wpb_launch_s3 || return 1
  printf '%s\n' "$fingerprint" >"$stamp"
  wpb_wait 30 wpb_s3_answers || wpb_fail "$WPB_S3_KIND did not answer on 127.0.0.1:$WPB_S3_PORT within 30 s; see $(wpb_log s3.log)"
}

# The name the descriptor and the demo script use; the server may be versitygw.
wpb_ensure_minio() { wpb_ensure_s3; }

# --- Mailpit (SMTP server for the alert tests) -------------------------------------------------

# Built once into the cache's bin dir, like MinIO; a pinned version, so a cached build is the one wanted.
wpb_mailpit_binary() {
  WPB_MAILPIT_BIN=$WPB_CACHE/bin/mailpit
  [ -x "$WPB_MAILPIT_BIN" ] && return 0
  wpb_go_install "github.com/axllent/mailpit@$WPB_MAILPIT_VERSION" && [ -x "$WPB_MAILPIT_BIN" ] ||
    wpb_fail "could not build Mailpit; see $(wpb_log go-build.log)"
}

# Our Mailpit's pid, recognised by its database file whatever ports it listens on.
wpb_mailpit_pid() {
  local pid
  pid=$(cat "$WPB_TEST_HOME/mailpit/server.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && wpb_has_arg "$pid" "$WPB_TEST_HOME/mailpit/mailpit.db" && echo "$pid"
}

wpb_mailpit_answers() { wget -q -O /dev/null --tries=1 --timeout=2 "http://127.0.0.1:$WPB_MAILPIT_HTTP_PORT/readyz" 2>/dev/null; }

wpb_mailpit_up() {
  local pid
  pid=$(wpb_mailpit_pid) && wpb_has_arg "$pid" "127.0.0.1:$WPB_MAILPIT_SMTP_PORT" &&
    wpb_has_arg "$pid" "127.0.0.1:$WPB_MAILPIT_HTTP_PORT" && wpb_mailpit_answers
}

# Any SMTP user and password is accepted (also over plain SMTP), so tests can send with a password.
# shellcheck disable=SC2016 # the sh -c script expands its own $$, $0 and $@
wpb_ensure_mailpit() {
  local pid log
  wpb_mailpit_binary || return 1
  wpb_mailpit_up && return 0
  if pid=$(wpb_mailpit_pid); then
    wpb_say "restarting Mailpit (ports changed)"
    kill "$pid" 2>/dev/null
    wpb_wait 10 sh -c '! kill -0 "$0" 2>/dev/null' "$pid" || kill -9 "$pid" 2>/dev/null
  fi
  wpb_mailpit_answers && { wpb_fail "port $WPB_MAILPIT_HTTP_PORT is taken by another process; set WPB_MAILPIT_HTTP_PORT"; return 1; }
  log=$(wpb_log mailpit.log)
  install -d -m 0700 "$WPB_TEST_HOME/mailpit" || return 1
  wpb_say "starting Mailpit: SMTP on 127.0.0.1:$WPB_MAILPIT_SMTP_PORT, API on 127.0.0.1:$WPB_MAILPIT_HTTP_PORT (log: $log)"
  (cd / && exec setsid nohup sh -c 'echo $$ >"$0"; exec "$@"' "$WPB_TEST_HOME/mailpit/server.pid" \
    "$WPB_MAILPIT_BIN" --database "$WPB_TEST_HOME/mailpit/mailpit.db" --smtp "127.0.0.1:$WPB_MAILPIT_SMTP_PORT" \
    --listen "127.0.0.1:$WPB_MAILPIT_HTTP_PORT" --smtp-auth-accept-any --smtp-auth-allow-insecure --max 5000 \
    --disable-version-check --quiet &) </dev/null >>"$log" 2>&1
  wpb_wait 30 wpb_mailpit_answers || wpb_fail "Mailpit did not answer on 127.0.0.1:$WPB_MAILPIT_HTTP_PORT within 30 s; see $log"
}

# --- descriptor ---------------------------------------------------------------------------------

# The shape is fixed by test/helpers/services.ts. Every value is generated here from a safe
# alphabet or is a fixed path, so no JSON escaping is needed.
wpb_write_descriptor() {
  local chromium
  chromium=$(command -v chromium) || wpb_fail "chromium is not installed" || return 1
  [ -f "$WPB_WORDPRESS_CORE/wp-includes/version.php" ] || wpb_fail "WordPress core missing at $WPB_WORDPRESS_CORE" || return 1
  wpb_write_private "$WPB_TEST_HOME/services.json" <<EOF
{
  "mysql": {
    "host": "127.0.0.1",
    "port": $WPB_MYSQL_PORT,
    "socket": "$WPB_MYSQL_SOCKET",
    "user": "$WPB_MYSQL_USER",
    "password": "$WPB_MYSQL_PASSWORD"
  },
  "minio": {
    "endpoint": "http://127.0.0.1:$WPB_S3_PORT",
    "accessKey": "$WPB_S3_ACCESS_KEY",
    "secretKey": "$WPB_S3_SECRET_KEY",
    "region": "$WPB_S3_REGION"
  },
  "postgres": {
    "url": "postgres://$WPB_PG_ROLE:$WPB_PG_PASSWORD@127.0.0.1:$WPB_PG_PORT/$WPB_PG_ROLE"
  },
  "mailpit": {
    "smtpHost": "127.0.0.1",
    "smtpPort": $WPB_MAILPIT_SMTP_PORT,
    "api": "http://127.0.0.1:$WPB_MAILPIT_HTTP_PORT"
  },
  "chromium": "$chromium",
  "wordpressCore": "$WPB_WORDPRESS_CORE"
}
EOF
}

# The first steps every caller needs: root, directories, packages, credentials.
wpb_prepare() {
  wpb_require_root && wpb_ensure_dirs && wpb_ensure_packages && wpb_load_credentials
}

wpb_ensure_all() {
  wpb_prepare || return 1
  wpb_ensure_mariadb || return 1
  wpb_say "MariaDB ready on 127.0.0.1:$WPB_MYSQL_PORT and $WPB_MYSQL_SOCKET"
  wpb_ensure_postgres || return 1
  wpb_say "PostgreSQL ready on 127.0.0.1:$WPB_PG_PORT"
  wpb_ensure_s3 || return 1
  wpb_say "$WPB_S3_KIND ready on http://127.0.0.1:$WPB_S3_PORT"
  wpb_ensure_mailpit || return 1
  wpb_say "Mailpit ready: SMTP 127.0.0.1:$WPB_MAILPIT_SMTP_PORT, API http://127.0.0.1:$WPB_MAILPIT_HTTP_PORT"
  wpb_write_descriptor
}
