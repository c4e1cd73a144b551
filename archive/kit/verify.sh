#!/bin/sh
# Checks a Takan archive package with openssl, sha256sum and ffprobe only (see VERIFY.md).
# Run it in the unpacked package:  sh verify.sh        (TSA_CA=tsa-ca.pem sh verify.sh
# also checks the trusted timestamp's signature against the TSA's CA certificate).
# Prints one line per check; exits 0 if everything holds, 1 at the first difference.
set -u
LC_ALL=C
export LC_ALL
cd "$(dirname "$0")" || exit 2
E=evidence
M="$E/manifest.json"
TMP=$(mktemp -d) || exit 2
trap 'rm -rf "$TMP"' EXIT INT TERM

fail() { echo "FAILED: $*"; exit 1; }
ok() { echo "ok: $*"; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed"; }
need openssl
need sha256sum
[ -f "$M" ] || fail "$M is missing"

# a member of the (canonical, one-line) manifest: field NAME of the top level
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$TMP/$2"; }

# 1. every file of the package against SHA256SUMS
sha256sum -c --quiet SHA256SUMS >"$TMP/sums" 2>&1 || { cat "$TMP/sums"; fail "SHA256SUMS: a file differs (above)"; }
ok "every file matches SHA256SUMS"

# 2. the signatures over the exact bytes of manifest.json
sed 's/.*"signatures":\[//; s/\].*//' "$M" | tr -d '{' | tr '}' '\n' >"$TMP/sigs"
ed_kid=$(grep '"alg":"Ed25519"' "$TMP/sigs" | sed -n 's/.*"key_id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$ed_kid" ] || ed_kid=$(sed -n 's/.*"signature":{"alg":"Ed25519","file":"manifest.json.sig","key_id":"\([0-9a-f]*\)".*/\1/p' "$M")
[ -n "$ed_kid" ] || fail "$M names no Ed25519 key"
openssl pkeyutl -verify -pubin -inkey "keys/$ed_kid.pem" -rawin -in "$M" -sigfile "$E/manifest.json.sig" >/dev/null 2>&1 \
  || fail "$E/manifest.json.sig: the Ed25519 signature does not verify with keys/$ed_kid.pem"
ok "Ed25519 signature (key $ed_kid)"
sm2_kid=$(grep '"alg":"SM2"' "$TMP/sigs" | sed -n 's/.*"key_id":"\([0-9a-f]*\)".*/\1/p')
if [ -n "$sm2_kid" ]; then
  openssl pkeyutl -verify -pubin -inkey "keys/$sm2_kid.pem" -rawin -digest sm3 -in "$M" -sigfile "$E/manifest.sm2.sig" >/dev/null 2>&1 \
    || fail "$E/manifest.sm2.sig: the SM2 signature does not verify with keys/$sm2_kid.pem"
  ok "SM2 signature (key $sm2_kid)"
fi

# 3. every object the manifest lists: size, SHA-256, SM3
sed 's/.*"objects":\[{//; s/}\].*//' "$M" | sed 's/},{/\
/g' >"$TMP/objects"
sm3=yes
echo | openssl dgst -sm3 >/dev/null 2>&1 || sm3=no
count=0
while IFS= read -r entry; do
  key=$(printf '%s' "$entry" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
  sha=$(printf '%s' "$entry" | sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p')
  size=$(printf '%s' "$entry" | sed -n 's/.*"size":\([0-9]*\).*/\1/p')
  [ -f "$E/$key" ] || fail "$E/$key: listed in the manifest but missing"
  got=$(wc -c <"$E/$key" | tr -d ' ')
  [ "$got" = "$size" ] || fail "$E/$key: size is $got, the manifest says $size"
  echo "$sha  $E/$key" | sha256sum -c --quiet - >/dev/null 2>&1 || fail "$E/$key: SHA-256 differs from the manifest"
  want=$(printf '%s' "$entry" | sed -n 's/.*"sm3":"\([0-9a-f]*\)".*/\1/p')
  if [ "$sm3" = yes ] && [ -n "$want" ]; then
    have=$(openssl dgst -sm3 -r "$E/$key" | cut -d' ' -f1)
    [ "$have" = "$want" ] || fail "$E/$key: SM3 differs from the manifest"
  fi
  count=$((count + 1))
done <"$TMP/objects"
ok "$count objects match the manifest (size, SHA-256$( [ "$sm3" = yes ] && echo ', SM3'))"

# 4. the hash chain of the event log, chunk after chunk, up to the manifest's head
chunks=$(sed -n 's/.*"log":{[^}]*"chunks":\[\([^]]*\)\].*/\1/p' "$M" | tr -d '"' | tr ',' ' ')
[ -n "$chunks" ] || chunks=events.jsonl
prev=0000000000000000000000000000000000000000000000000000000000000000
seq=0
for chunk in $chunks; do
  line_no=0
  while IFS= read -r line; do
    line_no=$((line_no + 1))
    seq=$((seq + 1))
    where="$E/$chunk line $line_no"
    hash=$(printf '%s' "$line" | sed -n 's/.*,"hash":"\([0-9a-f]\{64\}\)","prev":".*/\1/p')
    [ -n "$hash" ] || fail "$where: no hash"
    body=$(printf '%s' "$line" | sed 's/,"hash":"[0-9a-f]\{64\}","prev":"/,"prev":"/')
    computed=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
    [ "$computed" = "$hash" ] || fail "$where: its hash does not match its content (edited)"
    case "$line" in
      *"\"prev\":\"$prev\",\"seq\":$seq,"*) ;;
      *) fail "$where: does not follow event $((seq - 1)) (prev or seq differ: removed, inserted or moved)" ;;
    esac
    prev=$hash
  done <"$E/$chunk"
done
head=$(sed -n 's/.*"log":{[^}]*"head":"\([0-9a-f]*\)".*/\1/p' "$M")
want_count=$(sed -n 's/.*"log":{[^}]*"count":\([0-9]*\).*/\1/p' "$M")
[ "$prev" = "$head" ] && [ "$seq" = "$want_count" ] || fail "the log ends at event $seq ($prev); the manifest says $want_count ($head)"
ok "event log: $seq events, hash chain intact, head matches the manifest"

# 5. the trusted timestamp over this manifest
if [ -f "$E/manifest.tsr" ]; then
  want=$(openssl dgst -sha256 -r "$M" | cut -d' ' -f1)
  imprint=$(openssl ts -reply -in "$E/manifest.tsr" -text 2>/dev/null | sed -n '/Message data:/,/Serial number/p' | grep '^ *[0-9a-f]\{4\} - ' | \
    sed 's/^ *[0-9a-f]* - //; s/   .*//' | tr -d ' -' | tr -d '\n')
  [ "$imprint" = "$want" ] || fail "$E/manifest.tsr: the timestamp is over another manifest ($imprint), not this one ($want)"
  if [ -n "${TSA_CA:-}" ]; then
    openssl ts -verify -data "$M" -in "$E/manifest.tsr" -CAfile "$TSA_CA" >/dev/null 2>&1 || fail "$E/manifest.tsr: openssl ts -verify failed with $TSA_CA"
    ok "trusted timestamp over this manifest, signed by a TSA under $TSA_CA"
  else
    ok "trusted timestamp over this manifest (set TSA_CA=<the TSA's CA certificate> to check its signature)"
  fi
else
  echo "note: no trusted timestamp in this package (the TSA had not answered when it was made)"
fi

# 6. every media segment opens
if command -v ffprobe >/dev/null 2>&1; then
  n=0
  for f in $(grep -o '"key":"media/[^"]*"' "$TMP/objects" | sed 's/"key":"//; s/"$//'); do
    ffprobe -v error -show_entries format=duration -of csv=p=0 "$E/$f" >/dev/null 2>&1 || fail "$E/$f: ffprobe cannot read it"
    n=$((n + 1))
  done
  ok "$n media segments open with ffprobe"
else
  echo "note: ffprobe is not installed; media segments were not opened"
fi
echo "OK: the package verifies"
