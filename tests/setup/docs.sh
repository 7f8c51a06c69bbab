#!/usr/bin/env bash
# make docs: the collection's docs site, rendered as users would read it.
#  1. docs/docsite/rst/ (the extra pages) is up to date with README.md
#     (tests/setup/readme_rst.py --check);
#  2. `antsibull-docs lint-collection-docs --plugin-docs` on the collection
#     copy: extra docs, links, and every plugin's and role's documentation
#     markup;
#  3. `antsibull-docs sphinx-init` + `antsibull-docs collection` write the
#     Sphinx project and the RST of every module, filter, role and extra page
#     into .build/docs/src, and sphinx-build renders .build/docs/html; any
#     warning fails but one: intersphinx is emptied, as the build must work
#     offline, so a reference to the Ansible docs or another collection
#     cannot resolve (its text still renders);
#  4. headless chromium opens the rendered bind_tree module page and saves
#     .build/docs/bind_tree_module.png, which must be a PNG of the requested
#     size that is not one flat colour.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
python tests/setup/readme_rst.py --check
log "docs/docsite/rst is up to date with README.md"

[ -d "$COLLECTION_COPY" ] || die "no $COLLECTION_COPY (run make collections)"
antsibull-docs lint-collection-docs --plugin-docs "$COLLECTION_COPY"
log "antsibull-docs lint-collection-docs: clean"

docs="$BUILD_DIR/docs"
rm -rf --one-file-system "$docs"
mkdir -p "$docs/src"
antsibull-docs sphinx-init --use-current --squash-hierarchy --project hpc.jobroot \
    --title 'hpc.jobroot' --html-short-title 'hpc.jobroot' --dest-dir "$docs/src" hpc.jobroot >/dev/null
printf '\n# make docs: offline, no inventories fetched (tests/setup/docs.sh)\nintersphinx_mapping = {}\n' >> "$docs/src/conf.py"
mkdir -p "$docs/src/rst"
chmod og-w "$docs/src/rst"
antsibull-docs --config-file "$docs/src/antsibull-docs.cfg" collection --cleanup everything \
    --use-current --squash-hierarchy --fail-on-error --dest-dir "$docs/src/rst" hpc.jobroot
# Every warning fails, except an undefined label outside this collection (a
# page of the Ansible docs or of another collection): offline, intersphinx
# cannot resolve those, and their link text still renders.
sphinx-build -q -b html -c "$docs/src" -w "$docs/sphinx-warnings.log" --keep-going "$docs/src/rst" "$docs/html"
if grep -v -E "WARNING: undefined label: '(ansible_collections\.[a-z0-9_]+\.[a-z0-9_]+\.|)[a-z0-9_]+' \[ref\.ref\]$" "$docs/sphinx-warnings.log" \
        | grep . >&2; then
    die "sphinx-build warned (above; all in $docs/sphinx-warnings.log)"
fi
if grep -E "undefined label: 'ansible_collections\.hpc\.jobroot\." "$docs/sphinx-warnings.log" >&2; then
    die "sphinx-build: a reference inside this collection does not resolve (above)"
fi
log "sphinx-build: $(grep -c 'WARNING: undefined label' "$docs/sphinx-warnings.log" || true) references outside this collection left as text (offline)"
page="$docs/html/bind_tree_module.html"
[ -s "$page" ] || die "sphinx-build wrote no $page"
grep -q 'hpc.jobroot.bind_tree module' "$page" || die "$page does not have the module's title"
log "docs rendered: $docs/html ($(find "$docs/html" -name '*.html' | wc -l) pages)"

shot="$docs/bind_tree_module.png"
width=1280 height=1800
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$width,$height" --screenshot="$shot" "file://$page" 2>"$docs/chromium.log" \
    || { cat "$docs/chromium.log" >&2; die "chromium failed to screenshot $page"; }
python - "$shot" "$width" "$height" <<'PY'
import sys
import matplotlib.image
shot, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(shot, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n', f'{shot} is not a PNG'
pixels = matplotlib.image.imread(shot)
assert pixels.shape[:2] == (height, width), f'{shot} is {pixels.shape}, expected {height}x{width}'
assert pixels[..., :3].std() > 0.05, f'{shot} is (nearly) one flat colour'
PY
log "screenshot of the rendered module page: $shot ($(stat -c %s "$shot") bytes)"
