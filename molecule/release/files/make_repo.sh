#!/bin/sh
# Create a bare git repository with two commits for the release scenario:
# v1 and v2 (tags), branch main at v2. Usage: make_repo.sh /srv/src/app.git
set -eu
repo="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$repo")"
git init -q --bare --initial-branch=main "$repo"
git init -q --initial-branch=main "$work"
cd "$work"
git config user.email test@zerodown.invalid
git config user.name "zerodown test"
mkdir -p storage/logs config
echo "git version 1" > app.txt
echo "placeholder from the repository" > storage/logs/.keep
echo "[app]" > config/settings.ini
git add -A && git commit -q -m "version 1" && git tag v1
echo "git version 2" > app.txt
git add -A && git commit -q -m "version 2" && git tag v2
git push -q "$repo" main --tags
# The repository belongs to nobody the deploy runs as, like one on a git
# server; a local clone of another user's repository needs git's explicit
# trust (a URL of a real server would not).
chown -R nobody:nogroup "$repo"
chmod -R a+rX "$repo"
git config --system --add safe.directory "$repo"
