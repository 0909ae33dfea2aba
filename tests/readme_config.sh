#!/bin/sh
# The README's configuration section is exactly `strata help config --markdown`.
set -eu
readme=${top_srcdir:-.}/README.md
want=$(./src/strata help config --markdown)
got=$(sed -n '/^<!-- BEGIN CONFIG/,/^<!-- END CONFIG/p' "$readme" | sed '1d;$d')
if [ "$want" != "$got" ]; then
	echo "README.md configuration section is stale; regenerate it with:" >&2
	echo "  scripts/update-readme-config" >&2
	exit 1
fi
echo "README configuration section matches strata help config"
