#!/usr/bin/env bash
# install-mailstack.sh installs the real mail servers used by the interop
# tests in internal/mailstack: Dovecot (IMAP + LMTP), Postfix and s-nail.
#
# It is idempotent: packages already present are not touched. As root it runs
# apt-get (update once, then a non-interactive install); otherwise it prints
# the command to run and exits 1 when something is missing.
#
# The tests never use the system-wide services: they start private instances
# on free loopback ports. Service start-up during the package install is
# suppressed (policy-rc.d) and any system instance that was started anyway is
# stopped, so that ports 25/143/993/... stay free.
set -euo pipefail

packages=(dovecot-imapd dovecot-lmtpd postfix s-nail)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-mailstack: all present (${packages[*]})"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-mailstack: missing packages: ${missing[*]}" >&2
	echo "run as root:" >&2
	echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Postfix asks for a configuration type; the system instance is not used.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

# Keep the package scripts from starting services (exit 101 = action forbidden).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
cleanup() {
	if [ "$own_policy" -eq 1 ]; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Stop system-wide instances in case something started them anyway.
if [ -e /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
	postfix stop || true
fi
if [ -e /run/dovecot/master.pid ] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
	doveadm stop || true
fi

echo "install-mailstack: installed ${missing[*]}"
