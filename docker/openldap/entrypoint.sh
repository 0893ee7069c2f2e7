#!/usr/bin/env bash
# entrypoint.sh — the tcs OpenLDAP container: a thin wrapper around
# scripts/slapd.sh, so the container runs the very configuration that
# `make ldap-up`, the tests and the demo run (schema/*.ldif).
#
#   entrypoint.sh                 first start: slapd.sh init + load
#                                 /docker-entrypoint-initdb.d/*.ldif; then
#                                 run slapd in the foreground
#   entrypoint.sh healthcheck     exit 0 when slapd answers a root DSE search
#   entrypoint.sh CMD ARGS...     run another command (ldapsearch, bash, ...)
#
# Environment:
#   TCS_SUFFIX      suffix (dc=example,dc=org); fixed at first start
#   TCS_ROOTDN      admin DN (cn=admin,<suffix>); fixed at first start
#   TCS_ROOTPW      admin password (secret: development only), stored hashed;
#                   applied at every start when set. TCS_ROOTPW_FILE reads it
#                   from a file.
#   TCS_AGENTS      agent names ("tcs-japan-1 tcs-texas-1"): at first start
#                   each gets its account cn=<name>,ou=agents (slapd.sh
#                   add-agent) with the password of TCS_AGENT_PASSWORD_FILE
#                   (or TCS_AGENT_PASSWORD; development only when shared)
#   TCS_LOGLEVEL    slapd log levels written to stderr, e.g. "stats" or
#                   "stats sync" (none); applied at every start
#   TCS_LDAP_URLS   what slapd listens on (ldap:///, i.e. port 389)
#   TCS_DATA_DIR    configuration and data (/var/lib/tcs-ldap, the volume)
#   TCS_INITDB_DIR  LDIF loaded once at first start (/docker-entrypoint-initdb.d)
#   TCS_REPLICA     "" (a single server), "consumer" (a read replica of
#                   TCS_PROVIDER_URL) or "mirror" (one provider of a MirrorMode
#                   pair: TCS_SERVER_ID 1 or 2, its peer at TCS_PEER_URL; server
#                   1 gets the base entries and the init LDIF); fixed at first
#                   start (README "Replicated directory")
#   TCS_MIRROR_ACTIVE  mirror only: TRUE at the provider the frontend sends
#                   clients to (lease expiry on), FALSE at the other; applied
#                   at every start
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The image keeps the repository layout under /opt/tcs: docker/openldap/
# next to scripts/ and schema/, so this also runs from a checkout.
slapd_sh=${TCS_SLAPD_SH:-$here/../../scripts/slapd.sh}
data_dir=${TCS_DATA_DIR:-/var/lib/tcs-ldap}
initdb_dir=${TCS_INITDB_DIR:-/docker-entrypoint-initdb.d}
listen=${TCS_LDAP_URLS:-ldap:///}

log() { echo "tcs-openldap: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- healthcheck ---------------------------------------------------------

# local_url turns the first listener into a URL that reaches it from inside
# the container: ldap:/// -> ldap://127.0.0.1/, ldap://:1389/ ->
# ldap://127.0.0.1:1389/.
local_url() {
  local first=${listen%% *} scheme rest hostport
  scheme=${first%%://*}
  rest=${first#*://}
  case "$scheme" in
    ldapi) echo "$first"; return;;
    ldap|ldaps) ;;
    *) die "TCS_LDAP_URLS: unsupported URL $first";;
  esac
  hostport=${rest%%/*}
  case "$hostport" in
    ""|0.0.0.0|"[::]") hostport=127.0.0.1;;
    :*|0.0.0.0:*) hostport=127.0.0.1:${hostport##*:};;
    "[::]:"*) hostport=127.0.0.1:${hostport##*:};;
  esac
  echo "$scheme://$hostport/"
}

healthcheck() {
  LDAPTLS_REQCERT=never ldapsearch -x -LLL -o nettimeout=5 -H "$(local_url)" -s base -b "" namingContexts >/dev/null
}

# --- configuration ---------------------------------------------------------

slap_tool() {
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || die "$1 not found"
}

mdb_config() { echo "$data_dir/slapd.d/cn=config/olcDatabase={1}mdb.ldif"; }

# config_value ATTR prints the value of ATTR in the mdb database's config
# entry (plain or base64, as slapd stored it, long lines folded).
config_value() {
  local line
  line=$(awk -v want="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    found && /^ / { printf "%s", substr($0, 2); next }
    found { exit }
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == want) { found = 1; printf "%s", $0 } }
  ' "$(mdb_config)")
  case "$line" in
    "") ;;
    *::*) printf '%s' "${line#*::}" | tr -d ' ' | base64 -d;;
    *) printf '%s' "${line#*: }";;
  esac
}

read_rootpw() {
  if [ -n "${TCS_ROOTPW_FILE:-}" ]; then
    [ -r "$TCS_ROOTPW_FILE" ] || die "TCS_ROOTPW_FILE=$TCS_ROOTPW_FILE is not readable"
    [ -z "${TCS_ROOTPW:-}" ] || die "set TCS_ROOTPW or TCS_ROOTPW_FILE, not both"
    TCS_ROOTPW=$(head -n1 "$TCS_ROOTPW_FILE")
    [ -n "$TCS_ROOTPW" ] || die "TCS_ROOTPW_FILE=$TCS_ROOTPW_FILE is empty"
    export TCS_ROOTPW
  fi
}

warn_default_password() {
  [ -e "$data_dir/default-rootpw" ] || return 0
  log "##################################################################"
  log "WARNING: the admin password is the default \"secret\"."
  log "Anyone who reaches this server can rewrite every SmartSet."
  log "Development only: set TCS_ROOTPW or TCS_ROOTPW_FILE."
  log "##################################################################"
}

# first_start makes the configuration and loads the init LDIF. It is all or
# nothing: when it fails, what it made is removed so the next start retries.
first_start() {
  local f
  for f in slapd.d data run config.ldif base.ldif tcs-schema.ldif default-rootpw; do
    [ ! -e "$data_dir/$f" ] \
      || die "$data_dir holds $f but no slapd configuration: use an empty volume (or remove $data_dir/$f)"
  done
  log "first start: making the configuration in $data_dir"
  trap 'undo_first_start' EXIT
  # As PID 1 in a container, bash ignores signals it has no trap for.
  trap 'exit 143' TERM INT
  # olcLogLevel goes to syslog, which a container lacks; TCS_LOGLEVEL is
  # applied at every start as slapd's stderr level instead. slapd.sh stores
  # the admin password hashed.
  TCS_LOGLEVEL=none replica_init
  mark_default_password "${TCS_ROOTPW:-secret}"
  case "${TCS_REPLICA:-}:${TCS_SERVER_ID:-}" in
    consumer:*|mirror:2) ;; # their entries replicate in
    *) load_initdb;;
  esac
  trap - EXIT TERM INT
  log "first start done"
}

# replica_init makes the configuration TCS_REPLICA asks for.
replica_init() {
  case "${TCS_REPLICA:-}" in
    "") "$slapd_sh" init "$data_dir";;
    consumer) "$slapd_sh" init-consumer "$data_dir" "${TCS_PROVIDER_URL:?TCS_REPLICA=consumer needs TCS_PROVIDER_URL}";;
    mirror)
      local base=""
      [ "${TCS_SERVER_ID:?TCS_REPLICA=mirror needs TCS_SERVER_ID}" = 1 ] && base=base
      "$slapd_sh" init-mirror "$data_dir" "$TCS_SERVER_ID" "${TCS_PEER_URL:?TCS_REPLICA=mirror needs TCS_PEER_URL}" $base;;
    *) die "TCS_REPLICA=$TCS_REPLICA: want consumer or mirror (or nothing)";;
  esac
}

undo_first_start() {
  log "first start failed: removing the partial configuration so the next start retries"
  stop_loader
  rm -rf "$data_dir/slapd.d" "$data_dir/data" "$data_dir/run" \
    "$data_dir/config.ldif" "$data_dir/base.ldif" "$data_dir/tcs-schema.ldif" "$data_dir/default-rootpw"
}

# load_initdb adds $initdb_dir/*.ldif (in name order) through a slapd that
# listens only on a private ldapi socket, then stops that slapd.
loader_pid=""
loader_dir=""
load_initdb() {
  local files=()
  if [ -d "$initdb_dir" ]; then
    shopt -s nullglob
    files=("$initdb_dir"/*.ldif)
    shopt -u nullglob
  fi
  [ "${#files[@]}" -gt 0 ] || [ -n "${TCS_AGENTS:-}" ] || return 0
  local url pwfile f i
  loader_dir=$(mktemp -d)
  url="ldapi://$(printf '%s' "$loader_dir/ldapi" | sed -e 's|%|%25|g' -e 's|/|%2F|g' -e 's|,|%2C|g' -e 's| |%20|g')"
  pwfile="$loader_dir/pw"
  (umask 077 && printf '%s' "${TCS_ROOTPW:-secret}" >"$pwfile")
  TCS_DEBUG=0 "$slapd_sh" run "$data_dir" "$url" >"$data_dir/run/initdb-slapd.log" 2>&1 &
  loader_pid=$!
  for i in $(seq 1 300); do
    ldapsearch -x -LLL -H "$url" -s base -b "" namingContexts >/dev/null 2>&1 && break
    kill -0 "$loader_pid" 2>/dev/null \
      || die "slapd exited while loading $initdb_dir: $(tail -5 "$data_dir/run/initdb-slapd.log")"
    [ "$i" -lt 300 ] || die "slapd did not answer on $url within 30 s"
    sleep 0.1
  done
  for f in "${files[@]}"; do
    log "loading $f"
    ldapadd -x -H "$url" -D "$(config_value olcRootDN)" -y "$pwfile" -f "$f" >/dev/null \
      || die "loading $initdb_dir failed at $f"
  done
  add_agents "$url" "$pwfile"
  stop_loader
}

# add_agents URL ADMINPWFILE makes the account of every TCS_AGENTS name.
add_agents() {
  [ -n "${TCS_AGENTS:-}" ] || return 0
  local apw="$loader_dir/agent-pw" name
  if [ -n "${TCS_AGENT_PASSWORD_FILE:-}" ]; then
    [ -r "$TCS_AGENT_PASSWORD_FILE" ] || die "TCS_AGENT_PASSWORD_FILE=$TCS_AGENT_PASSWORD_FILE is not readable"
    cp "$TCS_AGENT_PASSWORD_FILE" "$apw"
  else
    [ -n "${TCS_AGENT_PASSWORD:-}" ] || die "TCS_AGENTS needs TCS_AGENT_PASSWORD_FILE or TCS_AGENT_PASSWORD"
    (umask 077 && printf '%s' "$TCS_AGENT_PASSWORD" >"$apw")
  fi
  for name in $TCS_AGENTS; do
    TCS_LDAP_URL=$1 TCS_ROOTPW_FILE=$2 TCS_SUFFIX=$(config_value olcSuffix) TCS_ROOTDN=$(config_value olcRootDN) \
      "$slapd_sh" add-agent "$name" "$apw" >&2 || die "cannot add the account of $name"
  done
}

stop_loader() {
  if [ -n "$loader_pid" ]; then
    kill "$loader_pid" 2>/dev/null || true
    wait "$loader_pid" 2>/dev/null || true
    loader_pid=""
  fi
  if [ -n "$loader_dir" ]; then
    rm -rf "$loader_dir"
    loader_dir=""
  fi
}

# same_dn compares two DNs the way a person would: case-insensitively and
# ignoring spaces around ',' and '='.
same_dn() { [ "$(norm_dn "$1")" = "$(norm_dn "$2")" ]; }
norm_dn() { printf '%s' "${1,,}" | sed -e 's/ *\([,=]\) */\1/g'; }

# later_start checks and applies what the environment asks of an existing
# configuration.
later_start() {
  local have
  have=$(config_value olcSuffix)
  if [ -n "${TCS_SUFFIX:-}" ] && ! same_dn "$TCS_SUFFIX" "$have"; then
    die "$data_dir holds a directory for suffix $have; TCS_SUFFIX=$TCS_SUFFIX cannot change it (unset TCS_SUFFIX or use an empty volume)"
  fi
  have=$(config_value olcRootDN)
  if [ -n "${TCS_ROOTDN:-}" ] && ! same_dn "$TCS_ROOTDN" "$have"; then
    die "$data_dir has admin $have; TCS_ROOTDN=$TCS_ROOTDN cannot change it (unset TCS_ROOTDN or use an empty volume)"
  fi
  if [ -n "${TCS_ROOTPW:-}" ]; then
    # Only a hash is stored, so the password cannot be compared: store it
    # (hashed) again.
    set_rootpw
  fi
}

# set_rootpw stores the hash of TCS_ROOTPW as the admin password (slapd not
# running).
set_rootpw() {
  local tmp hash
  tmp=$(umask 077 && mktemp)
  printf '%s' "$TCS_ROOTPW" >"$tmp"
  hash=$("$(slap_tool slappasswd)" -h '{SSHA}' -T "$tmp" 2>/dev/null) || { rm -f "$tmp"; die "slappasswd failed"; }
  rm -f "$tmp"
  printf 'dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcRootPW\nolcRootPW: %s\n-\n' "$hash" \
    | "$(slap_tool slapmodify)" -F "$data_dir/slapd.d" -n0 >"$data_dir/run/slapmodify.log" 2>&1 \
    || die "setting the admin password failed: $(cat "$data_dir/run/slapmodify.log")"
  mark_default_password "$TCS_ROOTPW"
}

# mark_default_password remembers whether the admin password is the
# development default (the stored hash cannot tell).
mark_default_password() {
  if [ "$1" = secret ]; then : >"$data_dir/default-rootpw"; else rm -f "$data_dir/default-rootpw"; fi
}

# check_ports warns when a non-root slapd is asked for a port below the
# kernel's unprivileged port start (Docker and Podman set it to 0 inside a
# container's own network namespace; a host network or Kubernetes may not).
check_ports() {
  [ "$(id -u)" -ne 0 ] || return 0
  local first_free url port
  first_free=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null) || return 0
  for url in $listen; do
    case "$url" in
      ldapi:*) continue;;
      ldaps://*) port=636;;
      *) port=389;;
    esac
    local hostport=${url#*://}
    hostport=${hostport%%/*}
    case "$hostport" in *:*) port=${hostport##*:};; esac
    if [ "$port" -lt "$first_free" ]; then
      log "warning: uid $(id -u) may not bind port $port here (net.ipv4.ip_unprivileged_port_start=$first_free);" \
        "set TCS_LDAP_URLS=ldap://:1389/ or run the container with --sysctl net.ipv4.ip_unprivileged_port_start=0"
    fi
  done
}

main() {
  [ -x "$slapd_sh" ] || die "$slapd_sh not found (TCS_SLAPD_SH)"
  # The configuration holds the admin password: keep it to ourselves.
  umask 077
  read_rootpw
  mkdir -p "$data_dir" 2>/dev/null || true
  [ -w "$data_dir" ] || die "$data_dir is not writable by uid $(id -u): chown the volume or run with --user"
  # A stale pid file from a killed container would not stop slapd, but
  # remove it so it never names an unrelated process.
  rm -f "$data_dir/run/slapd.pid"
  if [ -e "$data_dir/slapd.d/cn=config.ldif" ]; then
    later_start
  else
    first_start
  fi
  if [ "${TCS_REPLICA:-}" = mirror ] && [ -n "${TCS_MIRROR_ACTIVE:-}" ]; then
    "$slapd_sh" mirror-activate "$data_dir" "$TCS_MIRROR_ACTIVE"
  fi
  warn_default_password
  check_ports
  local level=${TCS_LOGLEVEL:-none}
  export TCS_DEBUG=${level// /,}
  log "slapd for $(config_value olcSuffix) (admin $(config_value olcRootDN)) listening on $listen"
  exec "$slapd_sh" run "$data_dir" "$listen"
}

case "${1:-}" in
  "") main;;
  healthcheck) healthcheck;;
  *) exec "$@";;
esac
