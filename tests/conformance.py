#!/usr/bin/env python3
"""Checks `trailhose cat` against real CloudTrail files: for every file given (plain or gzip
JSON of the form {"Records":[...]}) the output lines must be exactly the records of the file,
in order, each line byte-identical to the record's bytes in the source (for compact sources)
and JSON-equal to it.

usage: tests/conformance.py TRAILHOSE_BINARY FILE...
Files that are not CloudTrail files must be rejected with exit 1 and a message naming them."""
import gzip, json, subprocess, sys

def load(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw

def records_bytes(text):
    """Exact byte slices of the Records elements, found with a JSON-aware scan."""
    dec = json.JSONDecoder()
    s = text.decode("utf-8")
    doc = json.loads(s)
    recs = doc["Records"]
    start = s.index("[", s.index('"Records"'))
    i = start + 1
    out = []
    for _ in recs:
        while s[i] in " \t\r\n,":
            i += 1
        _, end = dec.raw_decode(s, i)
        out.append(s[i:end].encode("utf-8"))
        i = end
    return recs, out

def main():
    binary, files = sys.argv[1], sys.argv[2:]
    ok = bad = rejected = 0
    for f in files:
        raw = load(f)
        try:
            recs, slices = records_bytes(raw)
        except Exception:
            p = subprocess.run([binary, "cat", f], capture_output=True)
            if p.returncode == 1 and f in p.stderr.decode():
                rejected += 1
            else:
                print(f"FAIL (not rejected properly): {f}: rc={p.returncode} {p.stderr[:200]!r}")
                bad += 1
            continue
        p = subprocess.run([binary, "cat", f], capture_output=True)
        lines = p.stdout.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        problems = []
        if p.returncode != 0:
            problems.append(f"rc={p.returncode} {p.stderr[:200]!r}")
        if len(lines) != len(recs):
            problems.append(f"{len(lines)} lines for {len(recs)} records")
        for n, (line, rec, sl) in enumerate(zip(lines, recs, slices)):
            if json.loads(line) != rec:
                problems.append(f"record {n} not JSON-equal")
                break
            if b"\n" not in sl and line != sl:
                problems.append(f"record {n} not byte-identical")
                break
        if problems:
            bad += 1
            print(f"FAIL {f}: {'; '.join(problems)}")
        else:
            ok += 1
    print(f"{ok} files exact, {rejected} non-CloudTrail files rejected with a message, {bad} failures")
    sys.exit(1 if bad else 0)

main()
