#!/usr/bin/env python3
"""Checks every internal link and anchor of a book built by mdBook (docs/build.sh runs it).

Usage: linkcheck.py BOOK_DIR

Every relative `href` or `src` in the book's HTML must resolve to a file or directory, and every
`#fragment` to an `id` (or `<a name>`) of the page it points at. Links to the project's own files
(`../../src/operations.rs` from a chapter in docs/src/<part>/) leave the book: they resolve on disk the
same way from docs/book/<part>/ as from docs/src/<part>/ (and on a Git host's file view), so they are
checked against the checkout; a fragment on such a link is only checked when it points at an HTML page.
Links with a scheme (https:, mailto:, ...) are not followed. 404.html is skipped: it is served from the
site's root (`<base href="/">`), not from where it lies. Exit status 1, with every broken link listed,
when anything does not resolve.
"""

import html.parser
import os
import sys
import urllib.parse

SKIPPED_PAGES = {"404.html"}


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []  # (line, attribute value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for name in ("href", "src"):
            value = attrs.get(name)
            if value is not None and tag in ("a", "link", "script", "img", "iframe", "source"):
                self.links.append((self.getpos()[0], value))

    handle_startendtag = handle_starttag


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    book = os.path.realpath(sys.argv[1])
    # The checkout: the book lies in docs/book.
    checkout = os.path.dirname(os.path.dirname(book))
    cache = {}
    broken = []
    pages = links = 0
    for root, _, files in os.walk(book):
        for name in sorted(files):
            if not name.endswith(".html") or name in SKIPPED_PAGES and root == book:
                continue
            page_path = os.path.join(root, name)
            page = parse(page_path, cache)
            pages += 1
            for line, href in page.links:
                link = urllib.parse.urlsplit(href)
                if link.scheme or link.netloc:
                    continue
                links += 1
                where = f"{os.path.relpath(page_path, book)}:{line}: {href}"
                target = page_path
                if link.path:
                    target = os.path.normpath(
                        os.path.join(os.path.dirname(page_path), urllib.parse.unquote(link.path))
                    )
                    if not (target == checkout or target.startswith(checkout + os.sep)):
                        broken.append(f"{where} (leaves the checkout)")
                        continue
                    if not os.path.exists(target):
                        broken.append(f"{where} (no such file: {os.path.relpath(target, checkout)})")
                        continue
                    if os.path.isdir(target):
                        if link.fragment:
                            broken.append(f"{where} (a fragment on a directory)")
                        continue
                fragment = urllib.parse.unquote(link.fragment)
                if not fragment or not target.endswith(".html"):
                    continue
                if fragment not in parse(target, cache).ids:
                    broken.append(f"{where} (no id {fragment!r} in {os.path.relpath(target, book)})")
    for b in broken:
        print(f"broken link: {b}", file=sys.stderr)
    print(f"linkcheck: {pages} pages, {links} internal links, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
