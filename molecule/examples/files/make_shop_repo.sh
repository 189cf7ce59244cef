#!/bin/sh
# The example's app (files/shop, a WSGI app laid out like a Django project) as
# a bare git repository with one commit on branch main.
# Usage: make_shop_repo.sh SOURCE_DIR /srv/git/shop.git
set -eu
source_dir="$1"
repo="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$repo")"
git init -q --bare --initial-branch=main "$repo"
git init -q --initial-branch=main "$work"
cp -r "$source_dir"/. "$work"/
cd "$work"
git config user.email test@zerodown.invalid
git config user.name "zerodown test"
git add -A && git commit -q -m "shop"
git push -q "$repo" main
# The repository belongs to nobody the deploy runs as, like one on a git
# server; a local clone of another user's repository needs git's explicit
# trust (a URL of a real server would not).
chown -R nobody:nogroup "$repo"
chmod -R a+rX "$repo"
git config --system --add safe.directory "$repo"
