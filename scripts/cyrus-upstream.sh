#!/usr/bin/env bash
# Install (once) and start a private Cyrus IMAP 3.6 upstream: JMAP mail and
# submission, CalDAV and CardDAV over HTTP, LMTP for delivering test mail. Facts behind each
# setting: ../shared/notes/cyrus-upstream.md.
#
#   scripts/cyrus-upstream.sh start DIR [HTTP_PORT]   (default 8580; IMAP on HTTP_PORT+1,
#                                                     SMTP submission relay on HTTP_PORT+2)
#   scripts/cyrus-upstream.sh stop DIR
#   scripts/cyrus-upstream.sh adduser DIR HTTP_PORT NAME [NAME...]   (NAME@example.com, password NAME)
#
# Users (password = the name before @): alice@example.com, bob@example.com.
# DIR/upstream-jwt.pem: the key that signs in as any user (http_jwt; EAS_UPSTREAM_JWT_KEY).
# LMTP socket: DIR/socket/lmtp. Cyrus' syslog lines go to DIR/cyrus.log.
# Submitted mail: DIR/sent/N.eml with its envelope in N.json (scripts/smtp-relay.py);
# recipients @example.com also get it delivered over LMTP.
set -euo pipefail

cmd=${1:?usage: cyrus-upstream.sh start|stop|adduser DIR [HTTP_PORT] [NAME]}
dir=$(mkdir -p "${2:?state directory}" && cd "$2" && pwd)
port=${3:-8580}
imap_port=$((port + 1))
smtp_port=$((port + 2))
bin=/usr/lib/cyrus/bin

if [[ $cmd == stop ]]; then
    if [[ -f $dir/master.pid ]]; then
        pid=$(cat "$dir/master.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        # A master that outlives 5 s would spin once its directory is removed: make sure it ends.
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/master.pid"
    fi
    if [[ -f $dir/smtp-relay.pid ]]; then
        kill "$(cat "$dir/smtp-relay.pid")" 2>/dev/null || true
        rm -f "$dir/smtp-relay.pid"
    fi
    exit 0
fi

if [[ $cmd == adduser ]]; then
    : "${4:?user name}"
    for name in "${@:4}"; do
        echo "$name" | saslpasswd2 -p -c -f "$dir/sasldb2" -u example.com "$name"
    done
    chown cyrus:mail "$dir/sasldb2" 2>/dev/null || true
    # The first IMAP login creates the INBOX and the special-use folders. One user at a time:
    # Cyrus 3.6 creating accounts at once gives mailboxes of different users the same JMAP id
    # (11 of 40 accounts, logged in 8 at a time; then Email/query of one's Inbox is invalid).
    python3 - "$imap_port" "${@:4}" <<'PY'
import imaplib, sys

for name in sys.argv[2:]:
    with imaplib.IMAP4("127.0.0.1", int(sys.argv[1])) as imap:
        imap.login(f"{name}@example.com", name)
PY
    exit 0
fi

if [[ ! -x $bin/master ]]; then
    # Keep apt from starting the packaged daemons with /etc/imapd.conf.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cyrus-imapd cyrus-caldav sasl2-bin >/dev/null
fi

mkdir -p "$dir"/{conf,conf/socket,spool,socket,lock,search}  # conf/socket: where imapd and lmtpd bind their idled client sockets
conf=$dir/imapd.conf
cat >"$conf" <<CONF
configdirectory: $dir/conf
partition-default: $dir/spool
mboxname_lockpath: $dir/lock
lmtpsocket: $dir/socket/lmtp
idlesocket: $dir/socket/idle
notifysocket: $dir/socket/notify
servername: localhost
virtdomains: userid
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $dir/sasldb2
sasl_mech_list: PLAIN LOGIN
httpmodules: jmap caldav carddav
conversations: yes
conversations_db: twoskip
autocreate_quota: 0
autocreate_post: yes
autocreate_inbox_folders: Drafts | Sent | Trash | Junk | Archive
xlist-drafts: Drafts
xlist-sent: Sent
xlist-trash: Trash
xlist-junk: Junk
xlist-archive: Archive
calendar_user_address_set: example.com
# Text search (JMAP Email/query text filters: the gateway's Search and Find): Xapian,
# indexed by a rolling squatter as mail arrives (sync_log channel "squatter").
search_engine: xapian
search_index_headers: yes
defaultsearchtier: t1
t1searchpartition-default: $dir/search
sync_log: yes
sync_log_channels: squatter
smtp_backend: host
smtp_host: 127.0.0.1:$smtp_port
# Change events (RFC 5423 names, JSON) go through notifyd to DIR/notify-events, which POSTs
# them to the gateway named in DIR/events-target ("URL SECRET"; no file: nothing is sent):
# the gateway's EAS_UPSTREAM_EVENTS_SECRET endpoint, /push/upstream-events.
event_notifier: external
event_groups: message mailbox flags
notify_external: $dir/notify-events
# OAuth sign-in (the gateway's EAS_UPSTREAM_JWT_KEY): Cyrus takes a JSON Web Token
# {"sub": user, "iat": now} signed with the private key DIR/upstream-jwt.pem, whose public
# half is in DIR/jwt/, as any user's login; a token is good for 10 minutes.
http_jwt_key_dir: $dir/jwt
http_jwt_max_age: 600
CONF

if [[ ! -f $dir/upstream-jwt.pem ]]; then
    mkdir -p "$dir/jwt"
    (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/upstream-jwt.pem" 2>/dev/null)
    openssl pkey -in "$dir/upstream-jwt.pem" -pubout -out "$dir/jwt/gateway.pem"
fi

cat >"$dir/notify-events" <<NOTIFY
#!/bin/sh
# Called by notifyd for every event, the event's JSON on stdin (see imapd.conf).
[ -r "$dir/events-target" ] || exit 0
read -r url secret < "$dir/events-target"
exec curl -s -o /dev/null -m 2 -H "Authorization: Bearer \$secret" -H "Content-Type: application/json" \
    --data-binary @- "\$url"
NOTIFY
chmod 755 "$dir/notify-events"

cat >"$dir/cyrus.conf" <<CONF
START {
  recover cmd="$bin/ctl_cyrusdb -C $conf -r"
}
SERVICES {
  http cmd="$bin/httpd -C $conf" listen="127.0.0.1:$port" prefork=1
  imap cmd="$bin/imapd -C $conf" listen="127.0.0.1:$imap_port" prefork=0
  lmtpunix cmd="$bin/lmtpd -C $conf -a" listen="$dir/socket/lmtp" prefork=0
  notify cmd="$bin/notifyd -C $conf" listen="$dir/socket/notify" proto="udp" prefork=1
}
EVENTS {
  checkpoint cmd="$bin/ctl_cyrusdb -C $conf -c" period=30
}
DAEMON {
  squatter cmd="$bin/squatter -C $conf -R -d"
  # IMAP IDLE (the gateway's EAS_IMAP_IDLE wake-ups): without idled an idling imapd
  # looks for new mail only every imapidlepoll (60 s); with it, at once.
  idled cmd="$bin/idled -C $conf"
}
CONF

for user in alice bob; do
    echo "$user" | saslpasswd2 -p -c -f "$dir/sasldb2" -u example.com "$user"
done
chown -R cyrus:mail "$dir" 2>/dev/null || true

# Containers have no syslog: keep Cyrus' log lines in DIR/cyrus.log.
if [[ ! -S /dev/log ]]; then
    nohup python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
with open(sys.argv[1], "ab", buffering=0) as log:
    while True:
        log.write(s.recv(65536) + b"\n")
' "$dir/cyrus.log" >/dev/null 2>&1 &
    for _ in $(seq 20); do [[ -S /dev/log ]] && break; sleep 0.05; done
fi

# Cyrus offers JMAP submission only while its smtp_host answers.
if ! [[ -f $dir/smtp-relay.pid ]] || ! kill -0 "$(cat "$dir/smtp-relay.pid")" 2>/dev/null; then
    nohup python3 "$(dirname "$0")/smtp-relay.py" --listen "127.0.0.1:$smtp_port" \
        --lmtp "$dir/socket/lmtp" --keep "$dir/sent" >>"$dir/smtp-relay.log" 2>&1 &
    echo $! >"$dir/smtp-relay.pid"
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break
        kill -0 "$(cat "$dir/smtp-relay.pid")" 2>/dev/null || break
        sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null; then
        echo "cyrus-upstream: the SMTP relay did not start on 127.0.0.1:$smtp_port (see $dir/smtp-relay.log)" >&2
        exit 1
    fi
fi

if [[ -f $dir/master.pid ]] && kill -0 "$(cat "$dir/master.pid")" 2>/dev/null; then
    exit 0
fi
"$bin/master" -C "$conf" -M "$dir/cyrus.conf" -p "$dir/master.pid" -d
# The first IMAP login creates a user's INBOX and special-use folders
# (autocreate_*); Cyrus' httpd does not, and answers 500 until it exists.
for _ in $(seq 600); do  # up to 60 s: a fresh instance on a busy machine is slow to create its mailboxes
    if python3 - "$imap_port" <<'PY' 2>/dev/null; then
import imaplib, sys
for user in ("alice", "bob"):
    with imaplib.IMAP4("127.0.0.1", int(sys.argv[1])) as imap:
        imap.login(f"{user}@example.com", user)
PY
        curl -fsS -o /dev/null -u alice@example.com:alice "http://127.0.0.1:$port/jmap/" && exit 0
    fi
    sleep 0.1
done
echo "cyrus-upstream: httpd did not answer on 127.0.0.1:$port; stopping this instance" >&2
kill "$(cat "$dir/master.pid")" 2>/dev/null  # else nobody stops it: the caller saw a failure
exit 1
