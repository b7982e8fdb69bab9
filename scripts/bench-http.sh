#!/usr/bin/env bash
# `make bench-http`: HTTP mode against TCP mode and a direct path, in one run.
#
# Topology for each contender, all on 127.0.0.1: wrk (closed loop, keep-alive, 1 KiB
# responses) -> [ward-proxy outbound -> mTLS -> ward-proxy inbound] -> nginx.
#   direct     wrk -> nginx
#   ward-tcp   both listeners protocol: tcp (one mTLS connection per wrk connection)
#   ward-http  both listeners protocol: http (one HTTP/2 mTLS connection between the
#              sidecars for all wrk connections; per-request policy with a path rule)
# Each figure is the median of 3 runs of 5 s; ratios are to `direct` in the same run.
# Prints a Markdown table. Needs wrk and nginx (installed from Debian if missing).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/ensure-tools.sh" openssl wrk nginx
cargo build --release -q -p ward-ca -p ward-proxy
bin="$root/target/release"
work="$(mktemp -d -t ward-bench-http.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work" # nginx workers run as an unprivileged user and must read www/ (keys stay 0600)
cd "$work"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TD=example.org

"$bin/ward-ca" init --dir ca --trust-domain "$TD" >/dev/null 2>&1
for w in client server; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$w.key" \
    -out "$w.csr" -subj /CN=x >/dev/null 2>&1
  chmod 600 "$w.key"
  "$bin/ward-ca" issue --dir ca --csr "$w.csr" --id "spiffe://$TD/ns/bench/sa/$w" --ttl 2h --out "$w.pem" 2>/dev/null
done

mkdir -p www
head -c 1024 /dev/zero | tr '\0' 'x' > www/1k
nginx_port=$(port)
cat > nginx.conf <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' >/dev/null 2>&1 & pids+=($!)

cat > policy.yaml <<EOF
rules:
  - name: bench
    from: ["spiffe://$TD/ns/bench/sa/client"]
    to: { listeners: [in], methods: [GET], paths: ["/*"] }
EOF
sed 's/, methods: \[GET\], paths: \["\/\*"\]//' policy.yaml > policy-tcp.yaml
echo "rules: []" > none.yaml

pair() { # protocol -> sets $out_port, the client's outbound port
  local proto=$1 in_port pol=policy.yaml
  in_port=$(port); out_port=$(port)
  [ "$proto" = tcp ] && pol=policy-tcp.yaml
  cat > "server-$proto.yaml" <<EOF
trust_domain: $TD
identity: { files: { cert: server.pem, key: server.key, bundle: ca/bundle.pem } }
policy: $pol
inbound: [ { name: in, protocol: $proto, listen: "127.0.0.1:$in_port", forward: "127.0.0.1:$nginx_port" } ]
admin: "127.0.0.1:$(port)"
EOF
  cat > "client-$proto.yaml" <<EOF
trust_domain: $TD
identity: { files: { cert: client.pem, key: client.key, bundle: ca/bundle.pem } }
policy: none.yaml
outbound: [ { name: out, protocol: $proto, listen: "127.0.0.1:$out_port", upstream: "127.0.0.1:$in_port", server_id: "spiffe://$TD/ns/bench/sa/server" } ]
admin: "127.0.0.1:$(port)"
EOF
  WARD_LOG=warn "$bin/ward-proxy" run --config "server-$proto.yaml" >/dev/null 2> "server-$proto.log" & pids+=($!)
  WARD_LOG=warn "$bin/ward-proxy" run --config "client-$proto.yaml" >/dev/null 2> "client-$proto.log" & pids+=($!)
}
pair tcp; tcp_port=$out_port
pair http; http_port=$out_port
for p in $nginx_port $tcp_port $http_port; do
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/1k" || true)" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/1k")" = 200 ] || {
    echo "port $p never served /1k" >&2; tail -n 5 ./*.log ./nginx.err >&2; exit 1; }
done

measure() { # port -> "req/s p50_ms p99_ms" (median of 3 runs by req/s)
  for _ in 1 2 3; do
    wrk -t2 -c32 -d5s --latency "http://127.0.0.1:$1/1k" | awk '
      /Requests\/sec/ {rps=$2}
      /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
      END {print rps, p50, p99}'
  done | sort -n | sed -n 2p
}
ms() { # wrk latency like 1.23ms / 456.00us / 1.20s -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /s$/ && v !~ /ms$/) n*=1000; printf "%.2f", n }'
}
read -r d_rps d_50 d_99 <<<"$(measure "$nginx_port")"
read -r t_rps t_50 t_99 <<<"$(measure "$tcp_port")"
read -r h_rps h_50 h_99 <<<"$(measure "$http_port")"
echo "| contender | req/s | vs direct | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for row in "direct $d_rps $d_50 $d_99" "ward-tcp $t_rps $t_50 $t_99" "ward-http $h_rps $h_50 $h_99"; do
  set -- $row
  printf '| %s | %.0f | %.2f | %s | %s |\n' "$1" "$2" "$(awk -v a="$2" -v b="$d_rps" 'BEGIN{print a/b}')" "$(ms "$3")" "$(ms "$4")"
done
handshakes=$(curl -s "http://$(sed -n 's/^admin: "\(.*\)"/\1/p' server-http.yaml)/metrics" | awk '/^ward_connections_opened_total/ {s+=$2} END {print s+0}')
echo
echo "ward-http: $handshakes mTLS connection(s) between the sidecars for all of it."
