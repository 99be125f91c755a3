#!/usr/bin/env python3
"""corpus.py - builds the base model's training text from documentation a
Debian machine has installed (nothing is fetched): the man pages of sections
1-8 (packages manpages, manpages-dev and the installed tools' own pages), the
Python 3 documentation sources (python3-doc), the Debian FAQ (debian-faq) and
the Debian Reference (debian-reference-en).

Writes OUT/corpus.jsonl.xz, one JSON object a line: {"src": "man1/ls",
"text": "..."}; documents are sorted by source name, so the same packages
give the same file. The split into training and held-out documents is made
later (train.py), by a hash of "src".

usage: python3 train/corpus.py OUT_DIR [--max-mb 60]
"""
import argparse, gzip, html.parser, json, lzma, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

MAN_ROOT = "/usr/share/man"
PYDOC = "/usr/share/doc/python3.11/html/_sources"
DEB_REF = "/usr/share/debian-reference/debian-reference.en.txt.gz"
DEB_FAQ = "/usr/share/doc/debian/FAQ"
# generated reference pages of one cloud SDK (16k near-identical pages) would
# drown everything else; they are skipped by name prefix
SKIP_PREFIX = ("gcloud", "bq_", "gsutil")
MAX_PAGE = 150000  # characters kept of one page (a few pages are whole books)


def render_man(path):
    """Returns the plain text of one man page (no justification, no
    hyphenation, 100 columns), or None when it does not render."""
    env = dict(os.environ, MANWIDTH="100", LANG="C.UTF-8", MAN_KEEP_FORMATTING="")
    try:
        p = subprocess.run(["man", "--nj", "--nh", "-l", "-E", "UTF-8", path], env=env,
                           capture_output=True, timeout=20)
        if p.returncode != 0 or not p.stdout:
            return None
        c = subprocess.run(["col", "-bx"], input=p.stdout, capture_output=True, timeout=20)
        text = c.stdout.decode("utf-8", "replace")
    except (subprocess.TimeoutExpired, OSError):
        return None
    lines = text.split("\n")
    # drop the header/footer lines (NAME(1) ... NAME(1) and the date line)
    if lines and re.match(r"^\S+\(\w+\)\s.*\S+\(\w+\)\s*$", lines[0]):
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and re.search(r"\S+\(\w+\)\s*$", lines[-1]):
        lines.pop()
    text = "\n".join(l.rstrip() for l in lines).strip("\n")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text if len(text) > 200 else None


class _Text(html.parser.HTMLParser):
    """HTML to plain text: block elements become line breaks, script/style dropped."""
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "pre", "tr", "dt", "dd", "table", "ul", "ol"}

    def __init__(self):
        super().__init__()
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_text(path):
    p = _Text()
    with open(path, encoding="utf-8", errors="replace") as f:
        p.feed(f.read())
    text = "".join(p.out)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)
    return text.strip()


def man_pages():
    out = []
    # commands first (sections 1 and 8), then formats, overviews, system
    # calls, devices, games and last the (large) library section 3, so that a
    # size cap drops library pages first
    for sec in "1857246" + "3":
        d = os.path.join(MAN_ROOT, "man" + sec)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.startswith(SKIP_PREFIX):
                continue
            out.append(("man%s/%s" % (sec, re.sub(r"\.gz$", "", name)), os.path.join(d, name)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--max-mb", type=float, default=60.0, help="stop adding man pages past this many MB of text")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    docs = []
    total = 0
    # Python documentation (reST sources as shipped by python3-doc)
    if os.path.isdir(PYDOC):
        for root, _, files in sorted(os.walk(PYDOC)):
            for f in sorted(files):
                if f.endswith(".txt") and "whatsnew" not in root and "changelog" not in f:
                    p = os.path.join(root, f)
                    with open(p, encoding="utf-8", errors="replace") as fh:
                        t = fh.read().strip()
                    if len(t) > 200:
                        docs.append({"src": "python/" + os.path.relpath(p, PYDOC), "text": t})
    else:
        print("corpus: %s missing (apt-get install python3-doc)" % PYDOC, file=sys.stderr)
    if os.path.exists(DEB_REF):
        with gzip.open(DEB_REF, "rt", encoding="utf-8", errors="replace") as fh:
            t = fh.read()
        # one document per chapter so the held-out split can take whole chapters
        for i, part in enumerate(re.split(r"\n(?=Chapter\s\d+\.)", t)):
            if len(part) > 200:
                docs.append({"src": "debian-reference/%02d" % i, "text": part.strip()})
    if os.path.isdir(DEB_FAQ):
        for f in sorted(os.listdir(DEB_FAQ)):
            if f.endswith(".html"):
                docs.append({"src": "debian-faq/" + f, "text": html_text(os.path.join(DEB_FAQ, f))})
    total = sum(len(d["text"]) for d in docs)
    print("corpus: %d documents from python3-doc and Debian docs, %.1f MB" % (len(docs), total / 1e6), file=sys.stderr)
    pages = man_pages()
    n_man = 0
    with ThreadPoolExecutor(a.jobs) as ex:
        for (src, path), text in zip(pages, ex.map(lambda sp: render_man(sp[1]), pages)):
            if text is None or total > a.max_mb * 1e6:
                continue
            text = text[:MAX_PAGE]
            docs.append({"src": src, "text": text})
            total += len(text)
            n_man += 1
    print("corpus: %d man pages of %d, total %d documents, %.1f MB" % (n_man, len(pages), len(docs), total / 1e6),
          file=sys.stderr)
    docs.sort(key=lambda d: d["src"])
    path = os.path.join(a.out, "corpus.jsonl.xz")
    with lzma.open(path, "wt", encoding="utf-8", preset=6) as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    print("corpus: wrote %s (%.1f MB compressed)" % (path, os.path.getsize(path) / 1e6), file=sys.stderr)


if __name__ == "__main__":
    main()
