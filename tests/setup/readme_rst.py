"""Turn sections of README.md into the docs site's extra pages.

    python tests/setup/readme_rst.py          write docs/docsite/rst/*.rst
    python tests/setup/readme_rst.py --check  exit 1 when they are stale

antsibull-docs takes extra docs only as reStructuredText under
docs/docsite/rst/ (listed in docs/docsite/extra-docs.yml), so the README's
user-facing sections are converted with pandoc (Debian package, see
tests/setup/system-packages.txt) rather than written twice.  PAGES maps each
page to its README heading ('' is the text before the first '## ').  Links
to files of this repository cannot work in the rendered site, so they become
the file's path as a literal.  make docs runs --check; the pages are
committed so that the built artifact carries them.
"""

import difflib
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, 'docs', 'docsite', 'rst')
# page file name -> (page title, README section heading)
PAGES = {
    'overview': ('Overview', ''),
    'job-lifecycle': ('How a job gets its root', 'How a job gets its root'),
    'prior-art': ('What it does better than what came before', 'What it does better than what came before'),
    'pieces': ('The pieces', 'The pieces'),
    'jobroot-command': ('The jobroot command on a node', 'The jobroot command on a node'),
    'safety': ('Safety rules the code keeps', 'Safety rules the code keeps'),
    'benchmarks': ('Benchmarks', 'Benchmarks'),
}
GENERATED = '.. Generated from README.md by tests/setup/readme_rst.py; edit README.md instead.\n\n'


def sections(text):
    """Split README text into {heading: body}; '' holds the text before the first '## '."""
    found = {'': []}
    current = ''
    fenced = False
    for line in text.splitlines():
        if line.startswith('```'):
            fenced = not fenced
        if not fenced and line.startswith('## '):
            current = line[3:].strip()
            found[current] = []
        elif not fenced and line.startswith('# ') and current == '':
            continue  # the document title
        else:
            found[current].append(line)
    return {k: '\n'.join(v).strip() + '\n' for k, v in found.items()}


def local_links(markdown):
    """Replace [text](relative/path) by the text followed by the path as a literal."""
    def repl(match):
        text, target = match.group(1), match.group(2)
        if re.match(r'[a-z]+:', target) or target.startswith('#'):
            return match.group(0)
        if text.strip('`') == target:
            return '`%s`' % target
        return '%s `%s`' % (text, target)
    return re.sub(r'\[([^\]]+)\]\(([^)\s]+)\)', repl, markdown)


def render(title, body):
    rst = subprocess.run(
        ['pandoc', '--from', 'gfm', '--to', 'rst', '--columns', '100'],
        input=local_links(body), capture_output=True, text=True, check=True).stdout
    return GENERATED + '%s\n%s\n\n%s' % (title, '=' * len(title), rst)


def main(check):
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as f:
        parts = sections(f.read())
    stale = []
    for name, (title, heading) in PAGES.items():
        if heading not in parts:
            sys.exit('README.md has no section %r (tests/setup/readme_rst.py PAGES)' % heading)
        want = render(title, parts[heading])
        path = os.path.join(OUT_DIR, name + '.rst')
        have = open(path, encoding='utf-8').read() if os.path.exists(path) else ''
        if have == want:
            continue
        if check:
            sys.stderr.writelines(difflib.unified_diff(
                have.splitlines(True), want.splitlines(True), path, 'from README.md'))
            stale.append(path)
        else:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(want)
    if stale:
        sys.exit('stale, regenerate with python tests/setup/readme_rst.py: %s' % ' '.join(stale))


if __name__ == '__main__':
    main('--check' in sys.argv[1:])
