#!/usr/bin/env bash
# slapd.sh — the one way tcs makes, starts and stops an OpenLDAP server.
# Used by `make ldap-up`/`make ldap-down`, the Go test helper
# (internal/ldaptest), the demo and docker/openldap, so all of them run the
# same configuration (schema/*.ldif).
#
#   slapd.sh install              apt-get slapd + ldap-utils when missing
#   slapd.sh init DIR             render the config into DIR, load base entries
#   slapd.sh start DIR PORT       start slapd in the background on 127.0.0.1:PORT
#   slapd.sh run DIR URLS...      run slapd in the foreground (containers, tests)
#   slapd.sh stop DIR             stop the slapd started by `start`
#   slapd.sh up DIR PORT          install + init (once) + start
#   slapd.sh down DIR             stop + remove DIR
#   slapd.sh init-consumer DIR PROVIDER-URL [RID]
#                                 init a read-only consumer of PROVIDER-URL
#                                 (syncprov, no dds, olcUpdateRef; no base
#                                 entries: they replicate)
#   slapd.sh init-mirror DIR SERVER-ID PEER-URL [base]
#                                 init one provider of a MirrorMode pair
#                                 (olcServerID, syncrepl from PEER-URL,
#                                 olcMirrorMode); "base" loads the base entries
#                                 (on one of the two only: it starts active,
#                                 with lease expiry on)
#   slapd.sh mirror-activate DIR [TRUE|FALSE]
#                                 lease expiry (dds) on/off at a stopped
#                                 MirrorMode provider (on at the active only)
#   slapd.sh add-agent NAME [PWFILE|-]     create cn=NAME,ou=agents (or set
#                                 its password); the password is read from
#                                 PWFILE or stdin, only its hash is sent
#   slapd.sh add-operator NAME [PWFILE|-]  the same under ou=operators
#
# Environment: TCS_SUFFIX (dc=example,dc=org), TCS_ROOTDN (cn=admin,<suffix>),
# TCS_ROOTPW (secret — development only; stored hashed), TCS_OVERLAYS
# ("syncprov dds accesslog"), TCS_LOGLEVEL (none), TCS_THREADS (16: slapd's
# worker threads, olcThreads), TCS_SLAPD_BIN (slapd on PATH or
# /usr/sbin/slapd), TCS_TLS_CERT and TCS_TLS_KEY (PEM files: enable ldaps://
# and StartTLS), TCS_TLS_CA (PEM: with TCS_TLS_CERT, ask clients for a
# certificate and map its subject "cn=NAME,ou=agents,..." to the agent account
# for SASL EXTERNAL), TCS_SCHEMA=none (leave the tcs schema out: tests of a
# server without it). add-agent/add-operator: TCS_LDAP_URL
# (ldap://127.0.0.1:${TCS_LDAP_PORT:-3890}) and the admin password from
# TCS_ROOTPW_FILE, else TCS_ROOTPW, else secret.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
schema_dir="$here/../schema"
suffix=${TCS_SUFFIX:-dc=example,dc=org}
rootdn=${TCS_ROOTDN:-cn=admin,$suffix}
rootpw=${TCS_ROOTPW:-secret}
overlays=${TCS_OVERLAYS:-syncprov dds accesslog}
loglevel=${TCS_LOGLEVEL:-none}
threads=${TCS_THREADS:-16}
moduledir=${TCS_MODULEDIR:-/usr/lib/ldap}
sysschema=${TCS_SYSSCHEMA:-/etc/ldap/schema}

die() { echo "slapd.sh: $*" >&2; exit 1; }
[[ $threads =~ ^[0-9]+$ ]] && [ "$threads" -ge 2 ] && [ "$threads" -le 1024 ] || die "TCS_THREADS=$threads: want a whole number of worker threads from 2 to 1024"

find_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for d in /usr/sbin /usr/local/sbin /usr/local/libexec; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return; }
  done
  return 1
}

slapd_bin() { [ -n "${TCS_SLAPD_BIN:-}" ] && { echo "$TCS_SLAPD_BIN"; return; }; find_bin slapd; }

cmd_install() {
  if slapd_bin >/dev/null && find_bin ldapsearch >/dev/null && find_bin slapadd >/dev/null \
     && [ -f "$moduledir/syncprov.so" ] && [ -f "$moduledir/dds.so" ]; then
    return 0
  fi
  command -v apt-get >/dev/null || die "slapd and ldap-utils are missing and apt-get is not available: install OpenLDAP 2.5 (slapd, ldap-utils) by hand"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "slapd.sh: installing slapd and ldap-utils with apt-get" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >&2 \
    || die "apt-get install slapd ldap-utils failed"
  # Debian's package starts its own slapd on port 389; tcs never uses it.
  if command -v service >/dev/null 2>&1; then $sudo service slapd stop >/dev/null 2>&1 || true; fi
  slapd_bin >/dev/null || die "slapd still not found after apt-get install"
}

# esc quotes a value for the replacement side of a sed s||| command.
esc() { printf '%s' "$1" | sed -e 's/[|&\\]/\\&/g'; }

# hash_password prints the {SSHA} hash of the password on stdin (trailing
# newlines dropped, as tcs-agent drops them from bind_password_file); the
# password never appears on a command line.
hash_password() {
  local pw tmp slappasswd
  slappasswd=$(find_bin slappasswd) || die "slappasswd not found (run: slapd.sh install)"
  pw=$(cat)
  [ -n "$pw" ] || die "the password is empty"
  tmp=$(umask 077 && mktemp)
  printf '%s' "$pw" >"$tmp"
  "$slappasswd" -h '{SSHA}' -T "$tmp" 2>/dev/null || { rm -f "$tmp"; die "slappasswd failed"; }
  rm -f "$tmp"
}

rootpw_hash=""

render() { # render FILE DIR
  local first_rdn=${suffix%%,*}
  local dc=${first_rdn#*=}
  sed -e "s|@SUFFIX@|$(esc "$suffix")|g" -e "s|@SUFFIXDC@|$(esc "$dc")|g" -e "s|@ROOTDN@|$(esc "$rootdn")|g" \
      -e "s|@ROOTPW@|$(esc "$rootpw_hash")|g" -e "s|@DBDIR@|$(esc "$2/data")|g" -e "s|@RUNDIR@|$(esc "$2/run")|g" \
      -e "s|@MODULEDIR@|$(esc "$moduledir")|g" -e "s|@SCHEMADIR@|$(esc "$sysschema")|g" \
      -e "s|@TCSSCHEMA@|$(esc "$2/tcs-schema.ldif")|g" -e "s|@LOGLEVEL@|$(esc "$loglevel")|g" \
      -e "s|@THREADS@|$(esc "$threads")|g" "$1"
}

# without_tcs_schema FILE: drop the tcs schema from a rendered config, with
# the indexes and access rules that name its attributes (whole LDIF values,
# continuation lines included).
without_tcs_schema() {
  awk '
    function flush() { if (block != "" && !(block ~ /^(olcDbIndex|olcAccess):/ && block ~ /(tcs|geoLocation|owner)/)) printf "%s", block; block = "" }
    /^ / { block = block $0 "\n"; next }
    { flush(); if ($0 ~ /tcs-schema\.ldif/) next; block = $0 "\n" }
    END { flush() }' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

cmd_init() {
  local dir=${1:?usage: slapd.sh init DIR}
  case "${suffix%%=*}" in dc|DC) ;; *) die "TCS_SUFFIX=$suffix: the suffix must start with dc= (e.g. dc=example,dc=org)";; esac
  [ -e "$dir/slapd.d/cn=config.ldif" ] && die "$dir already holds a slapd configuration (slapd.sh down $dir first)"
  umask 077 # the rendered files hold the admin password
  mkdir -p "$dir/slapd.d" "$dir/data" "$dir/data/accesslog" "$dir/run"
  dir=$(cd "$dir" && pwd)
  cp "$schema_dir/tcs.ldif" "$dir/tcs-schema.ldif"
  rootpw_hash=$(printf '%s' "$rootpw" | hash_password)
  {
    render "$schema_dir/slapd.ldif" "$dir"
    for o in $overlays; do
      [ -f "$schema_dir/overlay-$o.ldif" ] || die "TCS_OVERLAYS: unknown overlay $o (have: syncprov dds accesslog)"
      echo
      render "$schema_dir/overlay-$o.ldif" "$dir"
    done
  } >"$dir/config.ldif"
  if [ "${TCS_SCHEMA:-}" = none ]; then without_tcs_schema "$dir/config.ldif"; fi
  if [ -n "${TCS_TLS_CERT:-}" ] || [ -n "${TCS_TLS_KEY:-}" ]; then
    [ -r "${TCS_TLS_CERT:-}" ] && [ -r "${TCS_TLS_KEY:-}" ] || die "TCS_TLS_CERT and TCS_TLS_KEY must both name readable PEM files"
    sed -i -e "/^olcIdleTimeout:/a olcTLSCertificateFile: $(esc "$TCS_TLS_CERT")\\nolcTLSCertificateKeyFile: $(esc "$TCS_TLS_KEY")" "$dir/config.ldif"
    if [ -n "${TCS_TLS_CA:-}" ]; then
      # Client certificates: asked for (not required, so password binds over
      # TLS still work) and verified against TCS_TLS_CA. For SASL EXTERNAL a
      # subject starting CN=NAME,OU=agents (or OU=operators) is the account
      # cn=NAME,ou=agents,<suffix> (or ou=operators).
      [ -r "$TCS_TLS_CA" ] || die "TCS_TLS_CA must name a readable PEM file"
      local authz="olcAuthzRegexp: {0}\"^cn=([^,]+),ou=(agents|operators)(,.*)?\$\" \"cn=\$1,ou=\$2,$suffix\""
      sed -i -e "/^olcIdleTimeout:/a olcTLSCACertificateFile: $(esc "$TCS_TLS_CA")\\nolcTLSVerifyClient: try\\n$(esc "$authz")" "$dir/config.ldif"
    fi
  fi
  local slapadd
  slapadd=$(find_bin slapadd) || die "slapadd not found (run: slapd.sh install)"
  "$slapadd" -n0 -F "$dir/slapd.d" -l "$dir/config.ldif" >"$dir/run/slapadd.log" 2>&1 \
    || die "loading the configuration failed: $(cat "$dir/run/slapadd.log")"
  [ -z "${skip_base:-}" ] || return 0
  render "$schema_dir/base.ldif" "$dir" >"$dir/base.ldif"
  "$slapadd" -n1 -F "$dir/slapd.d" -l "$dir/base.ldif" >>"$dir/run/slapadd.log" 2>&1 \
    || die "loading the base entries failed: $(cat "$dir/run/slapadd.log")"
}

wait_up() { # wait_up URL PIDFILE-or-empty
  local url=$1 i
  for i in $(seq 1 100); do
    if ldapsearch -x -LLL -H "$url" -s base -b "" namingContexts >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

cmd_start() {
  local dir=${1:?usage: slapd.sh start DIR PORT} port=${2:?usage: slapd.sh start DIR PORT}
  dir=$(cd "$dir" && pwd)
  local url="ldap://127.0.0.1:$port"
  if [ -f "$dir/run/slapd.pid" ] && kill -0 "$(cat "$dir/run/slapd.pid")" 2>/dev/null; then
    echo "slapd.sh: slapd already running (pid $(cat "$dir/run/slapd.pid")) at $url" >&2; return 0
  fi
  if ldapsearch -x -LLL -H "$url" -s base -b "" >/dev/null 2>&1; then
    die "port $port already has an LDAP server that is not ours; set TCS_LDAP_PORT to a free port"
  fi
  local bin; bin=$(slapd_bin) || die "slapd not found (run: slapd.sh install)"
  "$bin" -h "$url/" -F "$dir/slapd.d" 2>"$dir/run/slapd.log" \
    || die "slapd failed to start: $(tail -5 "$dir/run/slapd.log")"
  wait_up "$url" || die "slapd did not answer at $url within 10 s: $(tail -5 "$dir/run/slapd.log")"
}

cmd_run() {
  local dir=${1:?usage: slapd.sh run DIR URLS...}; shift
  local bin; bin=$(slapd_bin) || die "slapd not found (run: slapd.sh install)"
  exec "$bin" -d "${TCS_DEBUG:-0}" -h "$*" -F "$dir/slapd.d"
}

cmd_stop() {
  local dir=${1:?usage: slapd.sh stop DIR}
  local pidf="$dir/run/slapd.pid"
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -9 "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidf"
}

cmd_up() {
  local dir=${1:?usage: slapd.sh up DIR PORT} port=${2:?usage: slapd.sh up DIR PORT}
  cmd_install
  [ -e "$dir/slapd.d/cn=config.ldif" ] || cmd_init "$dir"
  cmd_start "$dir" "$port"
  echo "slapd is up at ldap://127.0.0.1:$port  base $suffix  admin $rootdn / $rootpw  (data in $dir)"
}

cmd_down() {
  local dir=${1:?usage: slapd.sh down DIR}
  cmd_stop "$dir"
  rm -rf "$dir"
}

# replica_modify DIR LDIF SED-ARGS...: apply a changetype:modify LDIF of
# schema/ (rendered, then the extra substitutions) to DIR's configuration.
replica_modify() {
  local dir=$1 ldif=$2; shift 2
  dir=$(cd "$dir" && pwd)
  # syncrepl binds with the admin password itself (@REPLPW@), not its hash.
  render "$schema_dir/$ldif" "$dir" | sed -e "s|@REPLPW@|$(esc "$rootpw")|g" "$@" >"$dir/$ldif"
  local slapmodify
  slapmodify=$(find_bin slapmodify) || die "slapmodify not found (run: slapd.sh install)"
  "$slapmodify" -n0 -F "$dir/slapd.d" -l "$dir/$ldif" >>"$dir/run/slapadd.log" 2>&1 \
    || die "applying $ldif failed: $(cat "$dir/run/slapadd.log")"
}

cmd_init_consumer() {
  local dir=${1:?usage: slapd.sh init-consumer DIR PROVIDER-URL [RID]} provider=${2:?usage: slapd.sh init-consumer DIR PROVIDER-URL [RID]} rid=${3:-101}
  overlays=syncprov skip_base=1 cmd_init "$dir"
  replica_modify "$dir" replica-consumer.ldif -e "s|@PROVIDER@|$(esc "$provider")|g" -e "s|@RID@|$(esc "$rid")|g"
}

cmd_init_mirror() {
  local usage="usage: slapd.sh init-mirror DIR SERVER-ID PEER-URL [base]"
  local dir=${1:?$usage} sid=${2:?$usage} peer=${3:?$usage} base=${4:-} dds=FALSE
  case "$sid" in [1-9]|[1-9][0-9]|[1-9][0-9][0-9]) ;; *) die "init-mirror: SERVER-ID $sid must be 1-999";; esac
  if [ "$base" = base ]; then cmd_init "$dir"; dds=TRUE; else skip_base=1 cmd_init "$dir"; fi
  dir=$(cd "$dir" && pwd)
  printf 'dn:\ndescription: tcs-server-id %s\n' "$sid" >"$dir/rootdse.ldif"
  replica_modify "$dir" replica-mirror.ldif -e "s|@PEER@|$(esc "$peer")|g" -e "s|@SERVERID@|$(esc "$sid")|g" \
    -e "s|@RID@|$(printf '%03d' "$sid")|g" -e "s|@ROOTDSE@|$(esc "$dir/rootdse.ldif")|g" -e "s|@DDSSTATE@|$dds|g"
}

# mirror-activate DIR [STATE]: turn lease expiry (dds) on (TRUE, the
# default) or off (FALSE) in the configuration of a stopped MirrorMode
# provider (slapd 2.5 starts the expiry task only when it starts with dds
# on, so a running server cannot be switched): stop, activate, start.
cmd_mirror_activate() {
  local dir=${1:?usage: slapd.sh mirror-activate DIR [TRUE|FALSE]} state=${2:-TRUE}
  case "$state" in TRUE|FALSE) ;; *) die "mirror-activate: state $state is neither TRUE nor FALSE";; esac
  if [ -f "$dir/run/slapd.pid" ] && kill -0 "$(cat "$dir/run/slapd.pid")" 2>/dev/null; then
    die "mirror-activate: slapd of $dir is running (pid $(cat "$dir/run/slapd.pid")): stop it first"
  fi
  printf 'dn: olcOverlay={1}dds,olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcDDSstate\nolcDDSstate: %s\n' "$state" >"$dir/dds-state.ldif"
  local slapmodify
  slapmodify=$(find_bin slapmodify) || die "slapmodify not found (run: slapd.sh install)"
  "$slapmodify" -n0 -F "$dir/slapd.d" -l "$dir/dds-state.ldif" >>"$dir/run/slapadd.log" 2>&1 \
    || die "mirror-activate $dir: $(tail -3 "$dir/run/slapadd.log")"
  [ "$state" = TRUE ] || return 0
  # Leases replicated from the peer carry no expiry (schema/replica-mirror.ldif
  # keeps entryTtl and entryExpireTimestamp out of replication: dds aborts on
  # a replicated add that has them), and dds expires only entries that have
  # one: give each such lease the default TTL from now, as dds gives a lease
  # added here. A live agent refreshes it; a dead one's goes.
  local slapcat ttl expire
  slapcat=$(find_bin slapcat) || die "slapcat not found (run: slapd.sh install)"
  ttl=$(sed -n 's/^olcDDSdefaultTtl: *//p' "$dir"/slapd.d/cn=config/olcDatabase=*/olcOverlay=*dds.ldif | head -1)
  ttl=${ttl:-10}
  expire=$(date -u -d "@$(( $(date +%s) + ttl ))" +%Y%m%d%H%M%SZ)
  "$slapcat" -n1 -F "$dir/slapd.d" -o ldif_wrap=no -a '(&(objectClass=dynamicObject)(!(entryExpireTimestamp=*)))' 2>>"$dir/run/slapadd.log" \
    | sed -n 's/^dn: //p' \
    | while IFS= read -r dn; do
        printf 'dn: %s\nchangetype: modify\nreplace: entryTtl\nentryTtl: %s\n-\nreplace: entryExpireTimestamp\nentryExpireTimestamp: %s\n-\n\n' "$dn" "$ttl" "$expire"
      done >"$dir/dds-expiry.ldif"
  [ -s "$dir/dds-expiry.ldif" ] || return 0
  "$slapmodify" -n1 -F "$dir/slapd.d" -l "$dir/dds-expiry.ldif" >>"$dir/run/slapadd.log" 2>&1 \
    || die "mirror-activate $dir: cannot give the replicated leases an expiry: $(tail -3 "$dir/run/slapadd.log")"
}

# cmd_account OU NAME [PWFILE|-] adds cn=NAME,ou=OU,<suffix> with a hashed
# userPassword, or replaces the password of an existing one. It prints the
# DN and nothing secret.
cmd_account() {
  local ou=$1 name=${2:-} src=${3:--}
  [ -n "$name" ] || die "usage: slapd.sh add-${ou%s} NAME [PASSWORD_FILE|-]  (password from the file or stdin)"
  [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "account name $name: use 1-64 letters, digits, '.', '_' or '-' (the agent's [service] name)"
  local hash
  if [ "$src" = - ]; then
    hash=$(hash_password)
  else
    [ -r "$src" ] || die "password file $src is not readable"
    hash=$(hash_password <"$src")
  fi
  local url=${TCS_LDAP_URL:-ldap://127.0.0.1:${TCS_LDAP_PORT:-3890}}
  local dn="cn=$name,ou=$ou,$suffix" adminpw tmp rc=0 out
  tmp=$(umask 077 && mktemp)
  if [ -n "${TCS_ROOTPW_FILE:-}" ]; then
    [ -r "$TCS_ROOTPW_FILE" ] || { rm -f "$tmp"; die "TCS_ROOTPW_FILE=$TCS_ROOTPW_FILE is not readable"; }
    adminpw=$(cat "$TCS_ROOTPW_FILE")
  else
    adminpw=$rootpw
  fi
  printf '%s' "$adminpw" >"$tmp"
  local kind="SmartSet agent" ; [ "$ou" = operators ] && kind="tcs operator (read-only)"
  out=$(printf 'dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: %s\ndescription: %s\nuserPassword: %s\n' \
          "$dn" "$name" "$kind" "$hash" \
        | ldapadd -x -H "$url" -D "$rootdn" -y "$tmp" 2>&1) || rc=$?
  if [ "$rc" -eq 68 ]; then # already there: set the new password
    rc=0
    out=$(printf 'dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n-\n' "$dn" "$hash" \
          | ldapmodify -x -H "$url" -D "$rootdn" -y "$tmp" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] && echo "password of $dn replaced"
  elif [ "$rc" -eq 0 ]; then
    echo "added $dn"
  fi
  rm -f "$tmp"
  [ "$rc" -eq 0 ] || die "cannot add $dn at $url as $rootdn: ${out//$hash/<hash>}"
}

sub=${1:-}; shift || true
case "$sub" in
  install) cmd_install "$@";;
  init) cmd_init "$@";;
  start) cmd_start "$@";;
  run) cmd_run "$@";;
  stop) cmd_stop "$@";;
  up) cmd_up "$@";;
  down) cmd_down "$@";;
  add-agent) cmd_account agents "$@";;
  add-operator) cmd_account operators "$@";;
  init-consumer) cmd_init_consumer "$@";;
  init-mirror) cmd_init_mirror "$@";;
  mirror-activate) cmd_mirror_activate "$@";;
  *) sed -n '2,100p' "$0" | sed -n '/^#/!q;p' >&2; exit 2;;
esac
