"""shell_dialogues.py - generated conversations for the `shell` adapter: it
explains commands and their options (taken from the man pages of the corpus,
sections 1 and 8) and suggests one-liners for common tasks.

Held out: every tenth command (by a hash of its name) never appears in the
training dialogues, and the held-out dialogues use other question frames.
"""
import random
import re
import zlib

FRAMES = {
    "what": {"train": ["What does `{c}` do?", "What is {c}?", "What is the {c} command for?", "Explain {c}.",
                       "what does {c} do", "Tell me about the {c} command.", "What is `{c}` used for?", "{c}?"],
             "eval": ["Could you describe what {c} is used for?", "I keep seeing `{c}` in scripts. What is it?",
                      "Give me a one-line summary of {c}."]},
    "opt": {"train": ["What does `{c} {o}` do?", "What is the {o} option of {c}?", "What does {o} mean in {c}?",
                      "{c} {o}?", "Explain `{o}` in {c}.", "What is `{c} {o}` for?"],
            "eval": ["In {c}, what is {o} for?", "Could you explain the {o} flag of {c}?",
                     "What happens if I pass {o} to {c}?"]},
    "line": {"train": ["Explain `{l}`.", "What does `{l}` do?", "What does this command do: {l}", "explain {l}"],
             "eval": ["Break down `{l}` for me.", "Can you walk me through `{l}`?"]},
    "task": {"train": ["How do I {t}?", "How can I {t}?", "What's the command to {t}?", "Give me a one-liner to {t}.",
                       "how to {t}", "I want to {t}. How?", "Command to {t}?"],
             "eval": ["What would be the quickest way to {t} from the shell?", "Is there a one-liner that can {t}?",
                      "Show me how one would {t}."]},
}

SIZES = ["10M", "50M", "100M", "500M", "1G", "2G"]
DIRS = [".", "/var/log", "~/Downloads", "/home", "/tmp", "src", "/etc", "~/projects", "/srv/www", "docs"]
FILES = ["notes.txt", "access.log", "data.csv", "report.md", "main.c", "config.yaml", "syslog", "app.log", "list.txt"]
WORDS = ["error", "TODO", "timeout", "main", "password", "failed", "warning", "import", "http"]
EXTS = ["txt", "log", "py", "c", "md", "jpg", "json", "sh"]
USERS = ["pi", "alice", "www-data", "bob", "root"]
HOSTS = ["pi@raspberrypi.local", "alice@server", "backup@nas", "user@10.0.0.5"]
PORTS = ["22", "80", "443", "8080", "5432"]
ARCH = ["backup.tar.gz", "photos.tar.gz", "src.tar.gz", "logs.tar.gz"]

# (task phrase, command, explanation); slots: {size} {dir} {file} {word} {ext} {n} {user} {host} {port} {arch} {days}
TASKS = [
    ("find files larger than {size} in {dir}", "find {dir} -type f -size +{size}",
     "`-type f` keeps regular files and `-size +{size}` those larger than {size}."),
    ("find all .{ext} files under {dir}", "find {dir} -name '*.{ext}'",
     "`-name` matches the file name against the quoted pattern."),
    ("find files modified in the last {days} days in {dir}", "find {dir} -type f -mtime -{days}",
     "`-mtime -{days}` keeps files changed less than {days} days ago."),
    ("delete empty directories under {dir}", "find {dir} -type d -empty -delete",
     "`-type d -empty` selects empty directories and `-delete` removes them."),
    ("search for \"{word}\" in all files under {dir}", "grep -rn '{word}' {dir}",
     "`-r` searches directories recursively and `-n` prints line numbers."),
    ("search for {word} ignoring case in {file}", "grep -i '{word}' {file}",
     "`-i` ignores case distinctions."),
    ("count the lines that contain {word} in {file}", "grep -c '{word}' {file}",
     "`-c` prints the number of matching lines instead of the lines."),
    ("show lines of {file} that do not contain {word}", "grep -v '{word}' {file}",
     "`-v` inverts the match."),
    ("count the lines in {file}", "wc -l {file}", "`wc -l` prints the number of newlines."),
    ("show the last {n} lines of {file}", "tail -n {n} {file}", "`tail -n {n}` prints the last {n} lines."),
    ("follow {file} as it grows", "tail -f {file}", "`-f` keeps printing data as the file grows."),
    ("show the first {n} lines of {file}", "head -n {n} {file}", "`head -n {n}` prints the first {n} lines."),
    ("see which directories use the most space in {dir}", "du -sh {dir}/* | sort -h",
     "`du -sh` prints each entry's total size in human-readable units and `sort -h` orders them by size."),
    ("check free disk space", "df -h", "`df -h` shows each mounted file system's size, use and free space."),
    ("create a compressed archive {arch} of {dir}", "tar -czf {arch} {dir}",
     "`-c` creates an archive, `-z` compresses it with gzip and `-f` names the archive file."),
    ("extract {arch}", "tar -xzf {arch}", "`-x` extracts, `-z` decompresses with gzip and `-f` names the archive."),
    ("list the contents of {arch}", "tar -tzf {arch}", "`-t` lists the archive's members without extracting."),
    ("copy {dir} to {host} over ssh", "rsync -av {dir} {host}:",
     "`-a` keeps permissions and times and recurses, `-v` lists the files it copies."),
    ("log in to {host}", "ssh {host}", "`ssh` opens a shell on the remote machine."),
    ("copy {file} to {host}", "scp {file} {host}:", "`scp` copies files over ssh."),
    ("see which process listens on port {port}", "ss -ltnp | grep ':{port}'",
     "`ss -ltnp` lists listening TCP sockets with their processes; grep keeps port {port}."),
    ("kill the process named {word}", "pkill {word}", "`pkill` signals processes whose name matches."),
    ("list running processes sorted by memory", "ps aux --sort=-%mem | head",
     "`ps aux` lists every process and `--sort=-%mem` puts the largest memory users first."),
    ("list running processes sorted by CPU", "ps aux --sort=-%cpu | head",
     "`--sort=-%cpu` puts the busiest processes first."),
    ("make {file} executable", "chmod +x {file}", "`chmod +x` adds execute permission."),
    ("change the owner of {dir} to {user} recursively", "chown -R {user}: {dir}",
     "`-R` changes the owner of every file below {dir}."),
    ("replace {word} with {word2} in {file}", "sed -i 's/{word}/{word2}/g' {file}",
     "`-i` edits the file in place and `s/.../.../g` replaces every match on each line."),
    ("sort {file} and remove duplicate lines", "sort -u {file}", "`sort -u` sorts and keeps one of each line."),
    ("count how often each line occurs in {file}", "sort {file} | uniq -c | sort -rn",
     "`uniq -c` counts adjacent repeats after sorting; `sort -rn` puts the most frequent first."),
    ("print the second column of {file}", "awk '{{print $2}}' {file}",
     "awk splits each line on whitespace and prints field 2."),
    ("show the size of {file}", "ls -lh {file}", "`-l` gives the long listing and `-h` human-readable sizes."),
    ("list files sorted by modification time", "ls -lt", "`-t` sorts by modification time, newest first."),
    ("list hidden files too", "ls -a", "`-a` does not ignore entries starting with a dot."),
    ("see the memory usage", "free -h", "`free -h` shows used and available memory in human-readable units."),
    ("see how long the machine has been up", "uptime", "`uptime` prints the time, uptime, users and load averages."),
    ("show the IP addresses", "ip -brief address", "`ip -brief address` prints one line per interface."),
    ("download a file from a URL", "curl -LO https://example.com/file.tar.gz",
     "`-L` follows redirects and `-O` saves under the remote file name."),
    ("watch a command every {n} seconds", "watch -n {n} df -h", "`watch -n {n}` reruns the command every {n} seconds."),
    ("see the last boot messages from the kernel", "journalctl -k -b", "`-k` shows kernel messages and `-b` this boot only."),
    ("restart the nginx service", "sudo systemctl restart nginx", "`systemctl restart` stops and starts the unit."),
    ("see why a service failed", "systemctl status {word}.service",
     "`systemctl status` shows the unit's state and its latest log lines."),
    ("create the directory {dir}/new with its parents", "mkdir -p {dir}/new",
     "`-p` creates missing parent directories and is quiet if it exists."),
    ("compare two files line by line", "diff -u {file} {file}.orig", "`-u` prints a unified diff."),
    ("compute the SHA-256 checksum of {file}", "sha256sum {file}", "`sha256sum` prints the file's SHA-256 digest."),
]


def _h(s):
    return zlib.crc32(s.encode()) % 10


def parse_man(src, text):
    """Returns {"cmd", "desc", "syn", "opts": [(forms, desc)]} for a man page of
    section 1 or 8, or None."""
    m = re.search(r"^NAME\n\s+(.+?)\s+[-\u2010\u2013\u2014]+\s+(.+?)\n(?:\S|\n)", text, re.M | re.S)
    if not m:
        return None
    names = [n.strip() for n in m.group(1).split(",")]
    cmd = names[0]
    if not re.match(r"^[a-z0-9][a-z0-9._+-]{0,30}$", cmd):
        return None
    desc = re.sub(r"\s+", " ", m.group(2)).strip().rstrip(".")
    if len(desc) < 6 or len(desc) > 160:
        return None
    syn = None
    sm = re.search(r"^SYNOPSIS\n\s+(\S[^\n]*)", text, re.M)
    if sm and len(sm.group(1)) < 90 and sm.group(1).startswith(cmd):
        syn = re.sub(r"\s+", " ", sm.group(1)).strip()
    opts = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        om = re.match(r"^ {7}(--?[A-Za-z0-9?@][^ ]*(?:, --?[A-Za-z0-9][^ ]*)*)(.*)$", ln)
        if om and i + 1 < len(lines) and re.match(r"^ {14}\S", lines[i + 1]) and len(ln) < 60:
            head = (om.group(1) + om.group(2)).strip()
            body = []
            j = i + 1
            while j < len(lines) and re.match(r"^ {14}\S", lines[j]):
                body.append(lines[j].strip())
                j += 1
            d = re.sub(r"\s+", " ", " ".join(body))
            d = re.split(r"(?<=[a-z)])\. ", d)[0].rstrip(".")
            if 8 <= len(d) <= 220 and "\u2010" not in d:
                forms = [f.strip() for f in head.split(", ") if f.strip().startswith("-")]
                if forms:
                    opts.append((forms, d[0].upper() + d[1:] + "."))
            i = j
        else:
            i += 1
    return {"cmd": cmd, "desc": desc, "syn": syn, "opts": opts, "src": src}


def man_commands(docs):
    """Parsed man pages of sections 1 and 8 from corpus documents, one per command."""
    out, seen = [], set()
    for d in docs:
        if not (d["src"].startswith("man1/") or d["src"].startswith("man8/")):
            continue
        p = parse_man(d["src"], d["text"])
        if p and p["cmd"] not in seen:
            seen.add(p["cmd"])
            out.append(p)
    return out


def _short(forms):
    """The option as a person types it: the first form without its argument."""
    f = forms[0]
    return re.split(r"[= \[]", f)[0]


def _what(r, p, split):
    q = r.choice(FRAMES["what"][split]).replace("{c}", p["cmd"])
    a = "`%s`: %s." % (p["cmd"], p["desc"])
    if p["syn"] and r.random() < 0.6:
        a += " Usage: `%s`" % p["syn"]
    return q, a


def _opt(r, p, split):
    forms, d = r.choice(p["opts"])
    o = _short(forms)
    q = r.choice(FRAMES["opt"][split]).replace("{c}", p["cmd"]).replace("{o}", o)
    a = "In `%s`, %s: %s" % (p["cmd"], ", ".join("`%s`" % f for f in forms), d)
    return q, a


def _line(r, p, split):
    k = min(len(p["opts"]), r.randint(2, 3))
    picks = r.sample(p["opts"], k)
    parts = [_short(f) for f, _ in picks]
    line = p["cmd"] + " " + " ".join(parts)
    if r.random() < 0.5:
        line += " " + r.choice(FILES + DIRS)
    q = r.choice(FRAMES["line"][split]).replace("{l}", line)
    a = "`%s`: %s.\n" % (p["cmd"], p["desc"]) + "\n".join("- `%s`: %s" % (_short(f), d) for f, d in picks)
    return q, a


def _fill(r, s, slots):
    for k, v in slots.items():
        s = s.replace("{" + k + "}", v)
    return s


def _task(r, split):
    t, cmd, expl = r.choice(TASKS)
    w = r.choice(WORDS)
    slots = {"size": r.choice(SIZES), "dir": r.choice(DIRS), "file": r.choice(FILES), "word": w,
             "word2": r.choice([x for x in WORDS if x != w]), "ext": r.choice(EXTS), "n": str(r.choice([5, 10, 20, 50, 2])),
             "user": r.choice(USERS), "host": r.choice(HOSTS), "port": r.choice(PORTS), "arch": r.choice(ARCH),
             "days": str(r.choice([1, 2, 3, 7, 30]))}
    q = r.choice(FRAMES["task"][split]).replace("{t}", _fill(r, t, slots))
    a = "`%s`\n\n%s" % (_fill(r, cmd, slots).replace("{{", "{").replace("}}", "}"), _fill(r, expl, slots))
    return q, a


SYSTEMS = [None, None, None, "You are a helpful assistant.", "You are a Linux shell expert. Answer briefly.",
           "You explain shell commands."]


def conversation(r, cmds, split):
    u = r.random()
    if u < 0.3:
        q, a = _task(r, split)
    else:
        p = r.choice(cmds)
        if p["opts"] and u < 0.7:
            q, a = _opt(r, p, split)
        elif len(p["opts"]) >= 2 and u < 0.82:
            q, a = _line(r, p, split)
        else:
            q, a = _what(r, p, split)
    if r.random() < 0.12:
        q = q.lower()
    msgs = []
    s = r.choice(SYSTEMS)
    if s:
        msgs.append({"role": "system", "content": s})
    msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def split_commands(cmds):
    """(train commands, held-out commands): every tenth by a hash of the name is held out."""
    return [p for p in cmds if _h(p["cmd"]) != 0], [p for p in cmds if _h(p["cmd"]) == 0]


def train_set(docs, seed, n):
    tr, _ = split_commands(man_commands(docs))
    r = random.Random(seed)
    return [conversation(r, tr, "train") for _ in range(n)]


def eval_dialogues(docs, seed, n):
    _, ho = split_commands(man_commands(docs))
    r = random.Random(seed)
    return [conversation(r, ho, "eval") for _ in range(n)]
