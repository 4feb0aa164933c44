#!/bin/sh
# Installs this wpbackup release (the directory this script is in) under /opt/wpbackup and
# links /usr/local/bin/wpbackup to it. Run it again, or a newer release's, to upgrade: the
# install is replaced as a whole, the data (/var/lib/wpbackup*, /etc/wpbackup) is never
# touched, and running wpbackup services are restarted on the new code.
#   sh install.sh [--prefix /opt/wpbackup] [--bin-dir /usr/local/bin] [--no-restart]
set -eu

prefix=/opt/wpbackup
bindir=/usr/local/bin
restart=yes
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --bin-dir) bindir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --no-restart) restart=no; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
prefix=${prefix%/}
here=$(cd "$(dirname "$0")" && pwd -P)
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$here/package.json")
[ -x "$here/node_modules/.bin/node" ] && [ -f "$here/bin/wpbackup" ] || { echo "install.sh: $here is not an unpacked wpbackup release" >&2; exit 2; }

upgrade=no
if [ "$here" != "$(cd "$prefix" 2>/dev/null && pwd -P || echo none)" ]; then
  if [ -e "$prefix" ]; then
    # Replace only an earlier install (or an empty directory), never someone else's files.
    if [ -f "$prefix/bin/wpbackup" ] && [ -d "$prefix/src" ]; then upgrade=yes
    elif [ -d "$prefix" ] && [ -z "$(ls -A "$prefix")" ]; then rmdir "$prefix"
    else echo "install.sh: $prefix exists and is not a wpbackup install; remove it or choose --prefix" >&2; exit 2
    fi
  fi
  mkdir -p "$(dirname "$prefix")"
  new="$prefix.new.$$"
  old="$prefix.old.$$"
  trap 'rm -rf "$new"' EXIT
  rm -rf "$new"
  mkdir -m 0755 "$new"
  cp -a "$here/." "$new/"
  # Two renames: the old tree stays whole until the new one is in place.
  [ "$upgrade" = yes ] && mv "$prefix" "$old"
  mv "$new" "$prefix"
  trap - EXIT
  rm -rf "$old"
fi
chmod 0755 "$prefix"

# The command on PATH: our own link (or a checkout's, from scripts/bootstrap.sh) is replaced;
# a file someone else put there is left alone.
mkdir -p "$bindir"
link=$bindir/wpbackup
if [ -L "$link" ] || [ ! -e "$link" ]; then
  ln -sfn "$prefix/bin/wpbackup" "$link"
  on_path=$link
else
  echo "install.sh: $link exists and is not a link: left alone; call $prefix/bin/wpbackup" >&2
  on_path=$prefix/bin/wpbackup
fi
# Fills Node's compile cache (in the install, written as root only) so the first call starts fast.
"$prefix/bin/wpbackup" --version >/dev/null

for tool in zstd mariadb-dump; do
  if ! command -v "$tool" >/dev/null 2>&1 && { [ "$tool" != mariadb-dump ] || ! command -v mysqldump >/dev/null 2>&1; }; then
    echo "install.sh: $tool is missing; backups need it: apt-get install zstd mariadb-client" >&2
  fi
done

echo "wpbackup $version installed in $prefix ($on_path)"
if [ "$upgrade" = yes ] && [ "$restart" = yes ] && [ -d /run/systemd/system ]; then
  for unit in wpbackup-server wpbackup-agent; do
    if systemctl is-active --quiet "$unit"; then
      systemctl try-restart "$unit" && echo "restarted $unit on the new version"
    fi
  done
elif [ "$upgrade" = no ]; then
  echo "Next: wpbackup install-service server (control server) or wpbackup install-service agent (web server)"
fi
