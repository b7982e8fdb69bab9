#!/usr/bin/env bash
# `make bench`: ward-proxy against a direct path, stunnel and HAProxy, in one run on this
# machine, and the result written into docs/benchmarks.md (between the bench markers).
#
# Every contender gets the same topology on 127.0.0.1: load generator -> client-side proxy
# (plaintext in, mTLS out) -> server-side proxy (mTLS in, client certificate required and
# verified, plaintext out) -> nginx. TLS 1.3, P-256 certificates from ward-ca for all.
#   direct     no proxy
#   ward-tcp   ward-proxy pair, protocol: tcp
#   ward-http  ward-proxy pair, protocol: http (per-request policy, HTTP/2 between sidecars)
#   stunnel    stunnel4 pair (default threading)
#   haproxy    haproxy pair, mode tcp (default nbthread = CPUs)
#   haproxy-http  haproxy pair, mode http: h2 between the pair, a per-request method/path rule
#   caddy-http    Caddy pair (Go), the same L7 set-up as haproxy-http
# Figures are medians of 3 runs; ratios are to `direct` and to the best peer in this run.
# BENCH_BASELINE=path/to/ward-proxy adds that build's pairs as ward-tcp-base and ward-http-base,
# measured in the same interleaved rounds: a before/after comparison of a change (the report
# then goes to standard output only, not into docs/benchmarks.md).
# BENCH_X25519=1 adds ward pairs whose client side offers classical X25519 only
# (ward-tcp-x25519, ward-http-x25519): what a client without ML-KEM costs (report to stdout).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/ensure-tools.sh" openssl curl wrk nginx stunnel4 haproxy caddy
cargo build --release -q -p ward-ca -p ward-proxy -p ward-traffic
bin="$root/target/release"
out="${BENCH_OUT:-$root/docs/benchmarks.md}"
runs=3
secs=${BENCH_SECONDS:-5}
. "$root/scripts/lib.sh"
scratch ward-bench
chmod 755 "$work" # nginx workers run unprivileged and read www/ (keys stay 0600)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The most idle connections S5 can hold through a pair: the client-side proxy needs two
# descriptors per connection, under the hard limit (20000 on this machine kind).
many=$(( ($(ulimit -n) - 1000) / 2 / 1000 * 1000 ))
[ "$many" -gt 10000 ] && many=10000
start() { # name cmd...: start in the background, log to name.log, remember the pid
  local name=$1; shift
  "$@" >/dev/null 2> "$name.log" & pids+=($!)
  eval "pid_$name=$!"
}
TD=example.org
started_at=$(date -u +%Y-%m-%dT%H:%MZ)

# --- PKI (ward-ca) and the app (nginx) ------------------------------------------------------
"$bin/ward-ca" init --dir ca --trust-domain "$TD" >/dev/null 2>&1
# caddy-server is the server's identity with DNS:localhost added: Go (Caddy) verifies the
# upstream's host name and cannot match a URI SAN.
for w in client server caddy-server; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$w.key" \
    -out "$w.csr" -subj /CN=x >/dev/null 2>&1
  chmod 600 "$w.key"
  dns=(); [ "$w" = caddy-server ] && dns=(--dns localhost)
  "$bin/ward-ca" issue --dir ca --csr "$w.csr" --id "spiffe://$TD/ns/bench/sa/${w#caddy-}" \
    "${dns[@]}" --ttl 24h --out "$w.pem" 2>/dev/null
  cat "$w.pem" "$w.key" > "$w-combined.pem"; chmod 600 "$w-combined.pem"
done
mkdir -p www
head -c 1024 /dev/zero | tr '\0' 'x' > www/1k
truncate -s 1G www/1g
nginx_port=$(port)
cat > nginx.conf <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  server { listen 127.0.0.1:$nginx_port; root $work/www; } }
EOF
start nginx nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;'
declare -A entry # contender -> client-side port
declare -A procs # contender -> pids of its two proxies
entry[direct]=$nginx_port

# --- ward ---------------------------------------------------------------------------------
cat > policy-http.yaml <<EOF
rules:
  - name: bench
    from: ["spiffe://$TD/ns/bench/sa/client"]
    to: { listeners: [in], methods: [GET], paths: ["/*"] }
EOF
cat > policy-tcp.yaml <<EOF
rules:
  - name: bench
    from: ["spiffe://$TD/ns/bench/sa/client"]
    to: { listeners: [in] }
EOF
echo "rules: []" > none.yaml
variants=cur
[ -n "${BENCH_BASELINE:-}" ] && variants="cur base"
[ -n "${BENCH_X25519:-}" ] && variants="$variants x25519"
for v in $variants; do
for proto in tcp http; do
  in_port=$(port); out_port=$(port)
  pbin="$bin/ward-proxy"; sfx=""; kx=""
  [ "$v" = base ] && { pbin="$BENCH_BASELINE"; sfx="-base"; }
  [ "$v" = x25519 ] && { sfx="-x25519"; kx=", key_exchange: [X25519]"; }
  cat > "ward-server-$proto$sfx.yaml" <<EOF
trust_domain: $TD
identity: { files: { cert: server.pem, key: server.key, bundle: ca/bundle.pem } }
policy: policy-$proto.yaml
inbound: [ { name: in, protocol: $proto, listen: "127.0.0.1:$in_port", forward: "127.0.0.1:$nginx_port" } ]
admin: "127.0.0.1:$(port)"
limits: { max_connections: 100000, max_request_body_bytes: 1073741824 }
EOF
  cat > "ward-client-$proto$sfx.yaml" <<EOF
trust_domain: $TD
identity: { files: { cert: client.pem, key: client.key, bundle: ca/bundle.pem } }
policy: none.yaml
outbound: [ { name: out, protocol: $proto, listen: "127.0.0.1:$out_port", upstream: "127.0.0.1:$in_port", server_id: "spiffe://$TD/ns/bench/sa/server"$kx } ]
admin: "127.0.0.1:$(port)"
limits: { max_connections: 100000 }
EOF
  WARD_LOG=warn start "ward_server_$proto$v" "$pbin" run --config "ward-server-$proto$sfx.yaml"
  WARD_LOG=warn start "ward_client_$proto$v" "$pbin" run --config "ward-client-$proto$sfx.yaml"
  entry[ward-$proto$sfx]=$out_port
  eval "procs[ward-$proto$sfx]=\"\$pid_ward_client_$proto$v \$pid_ward_server_$proto$v\""
done
done

# --- stunnel --------------------------------------------------------------------------------
s_in=$(port); s_out=$(port)
cat > stunnel-server.conf <<EOF
foreground = yes
pid =
[server]
accept = 127.0.0.1:$s_in
connect = 127.0.0.1:$nginx_port
cert = server.pem
key = server.key
CAfile = ca/bundle.pem
requireCert = yes
verifyChain = yes
sslVersionMin = TLSv1.3
EOF
cat > stunnel-client.conf <<EOF
foreground = yes
pid =
[client]
client = yes
accept = 127.0.0.1:$s_out
connect = 127.0.0.1:$s_in
cert = client.pem
key = client.key
CAfile = ca/bundle.pem
verifyChain = yes
sslVersionMin = TLSv1.3
EOF
start stunnel_server stunnel4 stunnel-server.conf
start stunnel_client stunnel4 stunnel-client.conf
entry[stunnel]=$s_out
procs[stunnel]="$pid_stunnel_client $pid_stunnel_server"

# --- haproxy --------------------------------------------------------------------------------
h_in=$(port); h_out=$(port)
haproxy_common="global
  maxconn $((many + 500))
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h"
cat > haproxy-server.cfg <<EOF
$haproxy_common
frontend server_in
  bind 127.0.0.1:$h_in ssl crt server-combined.pem ca-file ca/bundle.pem verify required ssl-min-ver TLSv1.3
  default_backend app
backend app
  server nginx 127.0.0.1:$nginx_port
EOF
cat > haproxy-client.cfg <<EOF
$haproxy_common
frontend client_in
  bind 127.0.0.1:$h_out
  default_backend to_server
backend to_server
  server s 127.0.0.1:$h_in ssl crt client-combined.pem ca-file ca/bundle.pem verify required ssl-min-ver TLSv1.3
EOF
start haproxy_server haproxy -db -f haproxy-server.cfg
start haproxy_client haproxy -db -f haproxy-client.cfg
entry[haproxy]=$h_out
procs[haproxy]="$pid_haproxy_client $pid_haproxy_server"

# --- haproxy-http: the L7 peer of ward-http ------------------------------------------------
# mode http both sides, mTLS with HTTP/2 (ALPN h2) between the pair and connection reuse, a
# per-request method/path rule on the server side (as ward-http's policy), keep-alive to nginx.
# HAProxy 2.6 has no fetch for a URI SAN, so the rule cannot name the client's SPIFFE ID; the
# chain is verified as for the other contenders.
hh_in=$(port); hh_out=$(port)
haproxy_http_common="global
  maxconn $((many + 500))
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout http-request 10s"
cat > haproxy-http-server.cfg <<EOF
$haproxy_http_common
frontend server_in
  bind 127.0.0.1:$hh_in ssl crt server-combined.pem ca-file ca/bundle.pem verify required ssl-min-ver TLSv1.3 alpn h2,http/1.1
  http-request deny unless { method GET } { path_beg / }
  default_backend app
backend app
  server nginx 127.0.0.1:$nginx_port
EOF
cat > haproxy-http-client.cfg <<EOF
$haproxy_http_common
frontend client_in
  bind 127.0.0.1:$hh_out
  default_backend to_server
backend to_server
  http-reuse always
  server s 127.0.0.1:$hh_in ssl crt client-combined.pem ca-file ca/bundle.pem verify required ssl-min-ver TLSv1.3 alpn h2
EOF
start haproxy_http_server haproxy -db -f haproxy-http-server.cfg
start haproxy_http_client haproxy -db -f haproxy-http-client.cfg
entry[haproxy-http]=$hh_out
procs[haproxy-http]="$pid_haproxy_http_client $pid_haproxy_http_server"

# --- caddy-http: a second L7 peer (Go) -----------------------------------------------------
# reverse_proxy both sides, mTLS with HTTP/2 only between the pair, the same method/path rule
# on the server side, keep-alive to nginx. Go verifies the upstream's host name and cannot
# match a URI SAN, so Caddy's server certificate also carries DNS:localhost (caddy-server,
# issued with the others above); like HAProxy 2.6, neither side checks the peer's SPIFFE ID. (Envoy was considered:
# it has no Debian package and is not on the package registries here.)
ch_in=$(port); ch_out=$(port)
caddy_global="{
  admin off
  auto_https off
  log {
    level ERROR
  }
}"
cat > caddy-server.Caddyfile <<EOF
$caddy_global
https://:$ch_in {
  bind 127.0.0.1
  tls $work/caddy-server.pem $work/caddy-server.key {
    client_auth {
      mode require_and_verify
      trusted_ca_cert_file $work/ca/bundle.pem
    }
  }
  @allowed {
    method GET
    path /*
  }
  handle @allowed {
    reverse_proxy 127.0.0.1:$nginx_port
  }
  respond 403
}
EOF
cat > caddy-client.Caddyfile <<EOF
$caddy_global
http://:$ch_out {
  bind 127.0.0.1
  reverse_proxy https://localhost:$ch_in {
    # Caddy requires Host to match SNI on a listener that verifies client certificates.
    header_up Host {upstream_hostport}
    transport http {
      tls_client_auth $work/client.pem $work/client.key
      tls_trusted_ca_certs $work/ca/bundle.pem
      tls_server_name localhost
      versions 2
    }
  }
}
EOF
export XDG_DATA_HOME="$work/caddy-data" XDG_CONFIG_HOME="$work/caddy-config"
start caddy_http_server caddy run --config caddy-server.Caddyfile --adapter caddyfile
start caddy_http_client caddy run --config caddy-client.Caddyfile --adapter caddyfile
entry[caddy-http]=$ch_out
procs[caddy-http]="$pid_caddy_http_client $pid_caddy_http_server"

# BENCH_ONLY="direct ward-tcp" limits a run to some contenders (for experiments; a partial
# run's report is printed but docs/benchmarks.md is only rewritten by a full run).
default_contenders="direct ward-tcp ward-http stunnel haproxy haproxy-http caddy-http"
[ -n "${BENCH_BASELINE:-}" ] && default_contenders="direct ward-tcp ward-tcp-base ward-http ward-http-base stunnel haproxy haproxy-http caddy-http"
[ -n "${BENCH_X25519:-}" ] && default_contenders="$default_contenders ward-tcp-x25519 ward-http-x25519"
contenders=${BENCH_ONLY:-$default_contenders}
proxies=$(echo "$contenders" | tr ' ' '\n' | grep -v '^direct$' | tr '\n' ' ')
for c in $contenders; do
  p=${entry[$c]}
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/1k" || true)" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/1k")" = 200 ] || {
    echo "$c (port $p) never served /1k" >&2; tail -n 5 ./*.log ./nginx.err >&2; exit 1; }
done

# BENCH_PROFILE=FILE keeps the topology up for profiling instead of measuring: it writes each
# contender's entry port and proxy pids to FILE and waits until FILE is removed.
if [ -n "${BENCH_PROFILE:-}" ]; then
  for c in $contenders; do echo "$c port=${entry[$c]} pids=${procs[$c]:-}"; done > "$BENCH_PROFILE"
  while [ -e "$BENCH_PROFILE" ]; do sleep 1; done
  exit 0
fi

# --- measurements ---------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A idle1 idle2
for c in $proxies; do # idle: started, one request served, no load yet
  set -- ${procs[$c]}
  idle1[$c]=$(rss_kib "$1"); idle2[$c]=$(rss_kib "$2")
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ticks() { # pids -> utime+stime in clock ticks, summed
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
declare -A s2 s3 s4 s6 per1k per10k s1

wrk_rps() { # port [extra wrk args...]
  local p=$1; shift
  wrk -t2 -c32 -d"${secs}s" "$@" "http://127.0.0.1:$p/1k" | awk '/Requests\/sec/ {print $2}'
}
hz=$(getconf CLK_TCK)
# Runs are interleaved: each round measures every contender once, so a busy neighbour or a
# drifting clock speed hits all contenders alike instead of whichever happened to run then.
declare -A v2 v3 v4 v1 ticks reqs
for c in $contenders; do ticks[$c]=0; reqs[$c]=0; done
for _ in $(seq 1 $runs); do
  for c in $contenders; do # S2, with the CPU the proxies spend on it (S6)
    p=${entry[$c]}
    before=$( [ "$c" = direct ] && echo 0 || cpu_ticks ${procs[$c]} )
    r=$(wrk_rps "$p"); v2[$c]="${v2[$c]:-} $r"
    after=$( [ "$c" = direct ] && echo 0 || cpu_ticks ${procs[$c]} )
    ticks[$c]=$(( ${ticks[$c]} + after - before ))
    reqs[$c]=$(awk -v a="${reqs[$c]}" -v b="$r" -v s="$secs" 'BEGIN {print a + b * s}')
  done
  for c in $contenders; do
    v3[$c]="${v3[$c]:-} $(wrk_rps "${entry[$c]}" -H "Connection: close")"
  done
  for c in $contenders; do
    v4[$c]="${v4[$c]:-} $(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:${entry[$c]}/1g")"
  done
  for rate in 1000 5000; do # S1: open loop at fixed rates
    for c in $contenders; do
      v1[$c,$rate]="${v1[$c,$rate]:-}$("$bin/ward-load" --addr "127.0.0.1:${entry[$c]}" --path /1k \
        --rate "$rate" --duration "${secs}s" --connections 32 | tr ' ' '\n' |
        awk -F= '{v[$1]=$2} END {print v["p99_us"], v["p50_us"], v["p999_us"], v["errors"]}');"
    done
  done
done
for c in $contenders; do
  s2[$c]=$(echo ${v2[$c]} | tr ' ' '\n' | median)
  s3[$c]=$(echo ${v3[$c]} | tr ' ' '\n' | median)
  s4[$c]=$(echo ${v4[$c]} | tr ' ' '\n' | median)
  [ "$c" != direct ] && s6[$c]=$(awk -v t="${ticks[$c]}" -v hz="$hz" -v n="${reqs[$c]}" \
    'BEGIN {printf "%.2f", t / hz / n * 10000}')
  # S1: of the runs, the one with the median p99 is reported.
  for rate in 1000 5000; do
    s1[$c,$rate]=$(echo "${v1[$c,$rate]}" | tr ';' '\n' | grep . | sort -n | sed -n 2p)
  done
done

# S5: memory of each proxy idle, then with N idle connections held open through the pair.
hold() { # port n: open n connections, wait, print when ready; exits when stdin closes
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
time.sleep(3)
print("ready", flush=True)
time.sleep(2)
PY
}
max_rss() { local m=0 p r; for p in "$@"; do r=$(rss_kib "$p"); [ "$r" -gt "$m" ] && m=$r; done; echo $m; }
for c in $proxies; do
  set -- ${procs[$c]}
  base=$(max_rss "$@")
  for n in 1000 "$many"; do
    fifo="hold-$c-$n"; mkfifo "$fifo"
    hold "${entry[$c]}" "$n" > "$fifo" 2>/dev/null & holder=$!
    read -r _ < "$fifo" || true
    now=$(max_rss "$@")
    wait "$holder" 2>/dev/null || true
    rm -f "$fifo"
    v=$(awk -v a="$now" -v b="$base" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n}')
    if [ "$n" = 1000 ]; then per1k[$c]=$v; else per10k[$c]=$v; fi
  done
done

# --- report ---------------------------------------------------------------------------------
best_peer() { # assoc-name -> the best of stunnel/haproxy (higher is better)
  local -n t=$1
  awk -v a="${t[stunnel]:-0}" -v b="${t[haproxy]:-0}" 'BEGIN {print (a > b ? a : b)}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
table() { # title assoc-name unit format
  local -n t=$2
  local best; best=$(best_peer "$2")
  echo "| contender | $3 | vs direct | vs best peer |"
  echo "|---|---|---|---|"
  for c in $contenders; do
    printf "| %s | $4 | %s | %s |\n" "$c" "${t[$c]}" "$(ratio "${t[$c]}" "${t[direct]}")" \
      "$( [ "$c" = direct ] && echo - || ratio "${t[$c]}" "$best")"
  done
}
mb() { awk -v v="$1" 'BEGIN {printf "%.0f", v / 1048576}'; }
declare -A s4mb
for c in $contenders; do s4mb[$c]=$(mb "${s4[$c]}"); done
# HTTP mode beside the L7 peers: each figure of ward-http against haproxy-http's (and
# caddy-http's, when it ran) in this run.
l7_report() {
  local w=ward-http h=haproxy-http c=caddy-http rate with_caddy=""
  [[ " $contenders " == *" caddy-http "* ]] && with_caddy=1
  row() { # figure ward haproxy caddy better
    if [ -n "$with_caddy" ]; then
      echo "| $1 | $2 | $3 | $(ratio "$2" "$3") | $4 | $(ratio "$2" "$4") | $5 |"
    else
      echo "| $1 | $2 | $3 | $(ratio "$2" "$3") | $5 |"
    fi
  }
  r0() { printf %.0f "$1"; }
  echo "### HTTP mode against HAProxy"
  echo
  echo "ward-http beside the L7 peers from the tables above: each pair terminates and originates"
  echo "mTLS, speaks HTTP/2 between its proxies, decides every request by method and path on the"
  echo "server side and keeps connections to nginx alive."
  echo
  if [ -n "$with_caddy" ]; then
    echo "| figure | ward-http | haproxy-http | ward / haproxy | caddy-http | ward / caddy | better |"
    echo "|---|---|---|---|---|---|---|"
  else
    echo "| figure | ward-http | haproxy-http | ward / haproxy | better |"
    echo "|---|---|---|---|---|"
  fi
  row "S2 keep-alive req/s" "$(r0 "${s2[$w]}")" "$(r0 "${s2[$h]}")" "$(r0 "${s2[$c]:-0}")" higher
  row "S3 new connections/s" "$(r0 "${s3[$w]}")" "$(r0 "${s3[$h]}")" "$(r0 "${s3[$c]:-0}")" higher
  row "S4 bulk MiB/s" "${s4mb[$w]}" "${s4mb[$h]}" "${s4mb[$c]:-0}" higher
  row "S5 KiB per open connection (1,000)" "${per1k[$w]}" "${per1k[$h]}" "${per1k[$c]:-0}" lower
  row "S6 CPU s per 10k requests" "${s6[$w]}" "${s6[$h]}" "${s6[$c]:-0}" lower
  for rate in 1000 5000; do
    read -r d99 _ d999 _ <<<"${s1[direct,$rate]:-0 0 0 0}"
    read -r w99 _ w999 _ <<<"${s1[$w,$rate]}"
    read -r h99 _ h999 _ <<<"${s1[$h,$rate]}"
    read -r c99 _ c999 _ <<<"${s1[$c,$rate]:-0 0 0 0}"
    row "S1 added p99 µs at $rate req/s" "$((w99 - d99))" "$((h99 - d99))" "$((c99 - d99))" lower
    row "S1 added p99.9 µs at $rate req/s" "$((w999 - d999))" "$((h999 - d999))" "$((c999 - d999))" lower
  done
  echo
}
report="$work/report.md"
{
  echo "<!-- bench:begin (generated by make bench; edits here are overwritten) -->"
  echo "## Proxies side by side ($started_at, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores)"
  echo
  echo "Command: \`make bench\` ([scripts/bench.sh](../scripts/bench.sh)); $runs runs of ${secs} s per"
  echo "figure, interleaved (each round measures every contender once), median reported. Versions: ward $(git -C "$root" describe --always --dirty),"
  echo "$(stunnel4 -version 2>&1 | sed -n 's/^\(stunnel [0-9.]*\).*/\1/p' | head -1),"
  echo "HAProxy $(haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p'), Caddy $(caddy version | awk '{print $1}'), $(nginx -v 2>&1 | sed 's/.*: //'),"
  echo "$(wrk --version 2>&1 | head -1 | awk '{print "wrk", $2}'). Each proxy runs with its defaults"
  echo "(ward: one connection worker thread per core, each a single-threaded Tokio runtime; stunnel: a thread per"
  echo "connection; HAProxy: nbthread = cores; Caddy: GOMAXPROCS = cores). Load generator, proxies and nginx share the cores."
  echo
  echo "### S2: keep-alive requests per second (wrk -t2 -c32, 1 KiB responses)"
  echo; table "S2" s2 "req/s" "%.0f"; echo
  echo "### S3: new connections per second (\`Connection: close\`: every request is a new connection and, through a pair, a new mTLS handshake between the proxies)"
  echo; table "S3" s3 "conn/s" "%.0f"; echo
  echo "### S4: single-stream bulk throughput (1 GiB file, curl)"
  echo; table "S4" s4mb "MiB/s" "%s"; echo
  echo "### S5: memory (RSS) per proxy process"
  echo
  echo "| contender | client side idle KiB | server side idle KiB | KiB per open connection (1,000) | KiB per open connection ($many) |"
  echo "|---|---|---|---|---|"
  for c in $proxies; do
    echo "| $c | ${idle1[$c]} | ${idle2[$c]} | ${per1k[$c]} | ${per10k[$c]} |"
  done
  echo
  echo "Idle is right after start-up and one request. Per-connection figures are the growth of the larger of the two processes while that many"
  echo "idle connections are held open through the pair. ward-http opens no upstream connection"
  echo "for an idle client connection (requests share one HTTP/2 connection per worker). The larger count is"
  echo "$many, not 10,000, when the machine's hard limit on open files ($(ulimit -Hn)) is too low"
  echo "for a client-side proxy holding two descriptors per connection."
  echo
  echo "### S6: CPU seconds per 10,000 keep-alive requests (both proxies of the pair, during S2)"
  echo
  echo "| contender | CPU s / 10k requests |"
  echo "|---|---|"
  for c in $proxies; do echo "| $c | ${s6[$c]} |"; done
  echo
  echo "### S1: latency at a fixed request rate (open loop, 32 keep-alive connections, 1 KiB responses)"
  echo
  echo "Measured by \`ward-load\` (crates/ward-traffic): requests are due at fixed intervals and each"
  echo "latency counts from its due time, so queueing is not hidden (no coordinated omission)."
  echo "\"added\" is the contender's figure minus direct's in the same run."
  echo
  echo "| contender | rate | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | added p99.9 µs | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for rate in 1000 5000; do
    read -r d99 d50 d999 _ <<<"${s1[direct,$rate]}"
    for c in $contenders; do
      read -r p99 p50 p999 errs <<<"${s1[$c,$rate]}"
      echo "| $c | $rate | $p50 | $p99 | $p999 | $((p50 - d50)) | $((p99 - d99)) | $((p999 - d999)) | $errs |"
    done
  done
  echo
  if [ -n "${entry[ward-http]:-}" ] && [ -n "${entry[haproxy-http]:-}" ] &&
     [[ " $contenders " == *" ward-http "* && " $contenders " == *" haproxy-http "* ]]; then
    l7_report
  fi
  echo "<!-- bench:end -->"
} > "$report"

if [ -n "${BENCH_ONLY:-}${BENCH_BASELINE:-}${BENCH_X25519:-}" ]; then cat "$report"; echo "partial or baseline run: $out not rewritten" >&2; exit 0; fi
python3 - "$out" "$report" <<'PY'
import sys
out, report = sys.argv[1], open(sys.argv[2]).read()
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
begin, end = "<!-- bench:begin", "<!-- bench:end -->"
if begin in text and end in text:
    head = text[:text.index(begin)]
    tail = text[text.index(end) + len(end):]
    text = head + report.rstrip("\n") + tail
else:
    text = text.rstrip("\n") + "\n\n" + report
open(out, "w").write(text)
PY
cat "$report"
echo "written to $out" >&2
