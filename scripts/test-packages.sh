#!/bin/sh
# Debian packages some tests need (make test runs this first). As root on Debian it installs what is
# missing; otherwise it says in one line what is missing, and those tests skip with their own line.
#   postgresql-15, postgresql-15-partman   the suite's second server, pg_partman comparison
#   openssh-server sudo acl                the multi-host tests' hosts (tests/tools/testhosts.py)
#   python3-psycopg python3-boto3          what playbooks/prepare.yml installs on a Debian host
#   chromium fonts-noto-cjk                the reports' browser tests (tests/tools/browser.py), with
#                                          glyphs for the Japanese reports' screenshots
#   pgbackrest                             physical backups and point-in-time recovery (issue 19)
#   podman runc netavark aardvark-dns      a Docker-API engine for the container tests (issue 20,
#   iptables                               tests/tools/dockerengine.py): runc because crun refuses a
#                                          hybrid cgroup layout; iptables, which netavark needs
#                                          without declaring it
PACKAGES="postgresql-15 postgresql-15-partman openssh-server sudo acl python3-psycopg python3-boto3 chromium fonts-noto-cjk pgbackrest podman runc netavark aardvark-dns iptables"
missing=""
for package in $PACKAGES; do
  dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "not installed (tests that need them will skip; run make test as root on Debian to install):$missing"
  exit 0
fi
echo "installing Debian packages for the tests:$missing"
# shellcheck disable=SC2086
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null 2>&1; then
  echo "could not install:$missing (tests that need them will skip)"
fi
# openssh-server's install may start the machine's own sshd where an init system runs: the tests'
# hosts run their own sshd in their namespaces and need nothing from it.
exit 0
