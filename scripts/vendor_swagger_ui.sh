#!/usr/bin/env bash
# Re-vendor Swagger UI for the offline /docs page: scripts/vendor_swagger_ui.sh 5.35.0
# The files are committed (userhub must serve /docs with no internet); this script is how they
# got there, from npm's swagger-ui-dist, unmodified.
set -euo pipefail
version="${1:?usage: $0 VERSION (e.g. 5.35.0)}"
target="$(dirname "$0")/../src/userhub/static/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf ./*.tgz)
rm -rf "$target" && mkdir -p "$target"
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
    favicon-16x16.png favicon-32x32.png LICENSE NOTICE; do
    cp "$work/package/$file" "$target/"
done
echo "$version" >"$target/VERSION"
echo "vendored swagger-ui-dist $version into $target"
