#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from the inputs the
unit tests (tests/unit) and the regression tests (tests/regress/sql) already
use: their string literals, sorted to the targets they fit. Run it again after
those tests change; files the fuzzers found (named finding-*) are kept.

    python3 tests/fuzz/seed_corpus.py
"""
import hashlib
import itertools
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
MAX_FILES = 150     # per target
MAX_BYTES = 4096    # per file

RAW = re.compile(r'R"([^(\s]{0,16})\((.*?)\)\1"', re.S)
PLAIN = re.compile(r'(?<![R\w])"((?:[^"\\\n]|\\.)*)"')
SQL = re.compile(r"(?<![\w$])'((?:[^']|'')*)'", re.S)


def unescape_cpp(s):
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "0": 0, '"': 34, "'": 39, "\\": 92, "?": 63}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            d = s[i + 1]
            if d == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", s[i + 2:])
                if m:
                    out.append(int(m.group(0), 16))
                    i += 2 + len(m.group(0))
                    continue
            if d in simple:
                out.append(simple[d])
                i += 2
                continue
            out += d.encode()
            i += 2
            continue
        out += c.encode()
        i += 1
    return bytes(out)


def cpp_literals(path):
    text = open(path, encoding="utf-8").read()
    found = [m.group(2).encode() for m in RAW.finditer(text)]
    stripped = RAW.sub('""', text)
    found += [unescape_cpp(m.group(1)) for m in PLAIN.finditer(stripped)]
    return found


def sql_literals(path):
    text = open(path, encoding="utf-8").read()
    return [m.group(1).replace("''", "'").encode() for m in SQL.finditer(text)]


def unit(name):
    return cpp_literals(os.path.join(ROOT, "tests", "unit", name))


def regress():
    d = os.path.join(ROOT, "tests", "regress", "sql")
    out = []
    for name in sorted(os.listdir(d)):
        out += sql_literals(os.path.join(d, name))
    return out


def write(target, inputs):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("finding-"):
            os.remove(os.path.join(d, name))
    seen = set()
    for data in inputs:
        if not data or len(data) > MAX_BYTES or data in seen:
            continue
        seen.add(data)
        if len(seen) > MAX_FILES:
            break
        with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
            f.write(data)
    print(f"{target}: {min(len(seen), MAX_FILES)} seeds")


def main():
    all_unit = {n: unit(n) for n in sorted(os.listdir(os.path.join(ROOT, "tests", "unit"))) if n.endswith(".cpp")}
    every = list(itertools.chain.from_iterable(all_unit.values())) + regress()
    graphs = [s for s in every if b"node_type" in s]
    write("fuzz_graph_parse", graphs)
    write("fuzz_materialize", graphs + [s for s in regress() if s.upper().startswith(b"SELECT")][:20])
    write("fuzz_explain", graphs[:100] + [s for s in every if s.upper().startswith((b"SELECT", b"DF.", b"INSERT"))][:50])

    json_like = [s for s in all_unit["test_truthiness.cpp"] + all_unit["test_substitute.cpp"]]
    write("fuzz_truthiness", json_like)

    texts = [s for s in all_unit["test_substitute.cpp"] if b"$" in s or b"{" in s and b'"' not in s]
    results = [s for s in all_unit["test_substitute.cpp"] if s.startswith((b"{", b"[", b'"'))]
    seeds = []
    names = [b"$a", b"$a.*", b"$a.id", b"$b?", b"$c.name?", b"{v}", b"{w}", b"{sys_instance_id}"]
    for i, text in enumerate(texts):
        text = text.replace(b"$q", b"$a").replace(b"$r", b"$b")
        seeds.append(b"\0".join([text, results[i % len(results)] if results else b"",
                                 results[(i + 1) % len(results)] if results else b"", b"", b"x'y", b"7"]))
    for i, name in enumerate(names):
        seeds.append(b"\0".join([b"SELECT " + name, results[i % len(results)] if results else b""]))
    write("fuzz_substitute", seeds)

    crons = [s for s in all_unit["test_cron.cpp"] if 4 <= len(s.split()) <= 6 and len(s) < 80]
    seeds = []
    for i, expr in enumerate(crons):
        seeds.append(expr + b"\0" + bytes([i % 6]) + b"\0" + (1767225600 + i * 86399 * 37).to_bytes(8, "little"))
    seeds += [z for z in all_unit["test_cron.cpp"] if b"/" in z and b" " not in z][:10]
    write("fuzz_cron", seeds)

    outcomes = [s for s in all_unit["test_daemon_executor.cpp"] if b"outcome" in s]
    outcomes += [s for s in regress() if b"outcome" in s]
    write("fuzz_run_step_outcome", outcomes)

    wakeups = []
    for n in ("test_daemon_orchestrator.cpp", "test_daemon_lifecycle.cpp"):
        wakeups += [s for s in all_unit[n] if re.match(rb"^[a-z]*:", s)]
    wakeups += [b"start:0123abcd", b"signal:deadbeef\0cancel:00000000\0start:0123abcd", b"start:0123ABCD",
                b"cancel:0123abc", b":", b"signal:deadbeef:x", b"starts:0123abcd,89abcdef",
                b"start:0123abcd\0rescan\0starts:00000001,00000002\0starts:0000000g",
                b"starts:0123abcd,\0starts:,\0starts:"]
    write("fuzz_wakeup", wakeups)


if __name__ == "__main__":
    main()
