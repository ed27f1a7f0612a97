#!/usr/bin/env python3
"""Cross-check `trailhose generate --digests` / `trailhose validate` against the AWS CLI's own
validator classes (`awscli.customizations.cloudtrail.validation`, the code behind
`aws cloudtrail validate-logs`).

The script generates an organization-trail corpus with a signed digest chain, then drives
`CloudTrailValidateLogs._call()` (listing, chain walk, `Sha256RSADigestValidator`, log hashing)
for every member account and source Region, with its AWS clients replaced by local fakes:

- S3: ListObjects/GetObject over the generated directory; a digest's `Metadata` is its `.sig`
  sidecar; a missing file raises botocore's `ClientError` `NoSuchKey`.
- CloudTrail: DescribeTrails names an organization trail in the bucket; ListPublicKeys returns
  the generated public key (base64 PKCS#1 DER, as in aws-cli's tests).
- Organizations: DescribeOrganization returns the corpus' organization id.

Checks, each against trailhose's own verdict (`trailhose validate --format json`):
1. the valid chain: the CLI finds every digest and every log file valid;
2. one byte changed in one log file: the CLI reports exactly that log file invalid;
3. a digest edited (a hash value changed, signature kept): the CLI reports exactly that digest
   invalid (signature verification failed);
4. a digest deleted: the CLI reports it missing.

Usage: pip install awscli; cargo build -p trailhose;
       python3 tests/awscli_crosscheck.py [--trailhose target/debug/trailhose]
Exit code 0 when every check agrees; prints `N passed, M failed`.
"""

import argparse
import base64
import contextlib
import gzip
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from awscli.customizations.cloudtrail import validation as v

BUCKET = "crosscheck-bucket"
TRAIL = "org-trail"
HOME = "us-east-1"
MGMT_ACCOUNT = "999999999999"
TRAIL_ARN = f"arn:aws:cloudtrail:{HOME}:{MGMT_ACCOUNT}:trail/{TRAIL}"


class FakePaginator:
    def __init__(self, root):
        self.root = root

    def paginate(self, Bucket, Marker, Prefix):
        keys = []
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                k = os.path.relpath(os.path.join(dirpath, f), self.root).replace(os.sep, "/")
                if k.startswith(Prefix) and k > Marker:
                    keys.append(k)
        keys.sort()
        return FakePages(keys)


class FakePages:
    def __init__(self, keys):
        self.keys = keys

    def search(self, expression):
        assert expression == "Contents[*].Key"
        return iter(self.keys)


class FakeS3:
    def __init__(self, root):
        self.root = root

    def get_paginator(self, name):
        assert name == "list_objects"
        return FakePaginator(self.root)

    def get_object(self, Bucket, Key):
        assert Bucket == BUCKET, Bucket
        path = os.path.join(self.root, *Key.split("/"))
        if not os.path.isfile(path):
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "not found"}}, "GetObject")
        meta = {}
        if os.path.isfile(path + ".sig"):
            with open(path + ".sig") as f:
                meta = json.load(f)
        with open(path, "rb") as f:
            body = f.read()
        return {"Body": io.BytesIO(body), "Metadata": meta}


class FakeS3Provider:
    def __init__(self, root):
        self.client = FakeS3(root)

    def get_client(self, bucket_name):
        return self.client


class FakeCloudTrail:
    def __init__(self, der):
        self.der = der

    def describe_trails(self, **_):
        return {
            "trailList": [
                {
                    "TrailARN": TRAIL_ARN,
                    "S3BucketName": BUCKET,
                    "IsOrganizationTrail": True,
                }
            ]
        }

    def list_public_keys(self, StartTime, EndTime):
        fp = __import__("hashlib").md5(self.der).hexdigest()
        return {
            "PublicKeyList": [
                {"Fingerprint": fp, "Value": base64.b64encode(self.der).decode()}
            ]
        }


class FakeOrganizations:
    def __init__(self, org_id):
        self.org_id = org_id

    def describe_organization(self):
        return {"Organization": {"Id": self.org_id}}


def cli_validate(root, der, org_id, account, region, start, end):
    """Runs aws-cli's validate-logs logic; returns its counters and messages."""
    cmd = v.CloudTrailValidateLogs(None)
    cmd.trail_arn = TRAIL_ARN
    cmd.is_verbose = False
    cmd.s3_bucket = None
    cmd.s3_prefix = None
    cmd.account_id = account
    cmd.start_time = start
    cmd.end_time = end
    cmd._source_region = region
    cmd.s3_client_provider = FakeS3Provider(root)
    cmd.cloudtrail_client = FakeCloudTrail(der)
    cmd.organization_client = FakeOrganizations(org_id)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        cmd._call()
    return {
        "valid_digests": cmd._valid_digests,
        "invalid_digests": cmd._invalid_digests,
        "valid_logs": cmd._valid_logs,
        "invalid_logs": cmd._invalid_logs,
        "errors": [l for l in err.getvalue().splitlines() if l.strip()],
    }


def cli_all(root, der, org_id, accounts, regions, start, end):
    total = {"valid_digests": 0, "invalid_digests": 0, "valid_logs": 0, "invalid_logs": 0, "errors": []}
    for a in accounts:
        for r in regions:
            res = cli_validate(root, der, org_id, a, r, start, end)
            for k in total:
                total[k] += res[k]
    return total


def trailhose_validate(binary, root, keys, end):
    p = subprocess.run(
        [binary, "validate", str(root), "--public-keys", str(keys), "--end-time", end, "--format", "json"],
        capture_output=True,
        text=True,
    )
    if p.returncode not in (0, 1):
        raise RuntimeError(f"trailhose validate failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout), p.returncode


def main():
    ap = argparse.ArgumentParser()
    repo = pathlib.Path(__file__).resolve().parent.parent
    default_bin = next(
        (str(p) for p in [repo / "target/debug/trailhose", repo / "target/release/trailhose"] if p.exists()),
        "trailhose",
    )
    ap.add_argument("--trailhose", default=default_bin)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="trailhose-awscli-"))
    passed, failed = 0, 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok    {name}")
        else:
            failed += 1
            print(f"FAIL  {name}: {detail}")

    try:
        corpus = tmp / "corpus"
        keys = tmp / "public-keys"
        subprocess.run(
            [
                args.trailhose, "generate", "--out", str(corpus), "--events", "4000",
                "--accounts", "2", "--regions", "2", "--events-per-file", "25", "--gzip-level", "1",
                "--digests", "--signing-key", str(tmp / "signing-key.pem"),
                "--public-key-dir", str(keys), "--digest-bucket", BUCKET, "--trail-name", TRAIL,
            ],
            check=True,
            capture_output=True,
        )
        der = next(keys.glob("*.der")).read_bytes()
        awslogs = corpus / "AWSLogs"
        org_id = next(p.name for p in awslogs.iterdir() if p.name.startswith("o-"))
        accounts = sorted(p.name for p in (awslogs / org_id).iterdir())
        regions = sorted(p.name for p in (awslogs / org_id / accounts[0] / "CloudTrail-Digest").iterdir())
        start = datetime(2026, 10, 31, tzinfo=timezone.utc)
        end = datetime(2026, 11, 3, tzinfo=timezone.utc)
        end_s = "2026-11-03T00:00:00Z"
        digests = sorted(
            str(p.relative_to(corpus)).replace(os.sep, "/")
            for p in corpus.rglob("*.json.gz")
            if "CloudTrail-Digest" in p.parts
        )
        logs = sorted(
            str(p.relative_to(corpus)).replace(os.sep, "/")
            for p in corpus.rglob("*.json.gz")
            if "CloudTrail" in p.parts
        )

        # 1. valid chain
        cli = cli_all(corpus, der, org_id, accounts, regions, start, end)
        th, code = trailhose_validate(args.trailhose, corpus, keys, end_s)
        check(
            "valid chain: aws-cli finds every digest and log file valid",
            cli["invalid_digests"] == 0 and cli["invalid_logs"] == 0
            and cli["valid_digests"] == len(digests) and cli["valid_logs"] == len(logs),
            f"{cli} vs {len(digests)} digests, {len(logs)} logs",
        )
        check(
            "valid chain: trailhose agrees",
            code == 0 and th["digests"]["valid"] == cli["valid_digests"] and th["log_files"]["valid"] == cli["valid_logs"],
            json.dumps({"digests": th["digests"], "log_files": th["log_files"]}),
        )

        # 2. one byte changed in a log file
        victim = logs[len(logs) // 2]
        path = corpus / victim
        original = path.read_bytes()
        raw = bytearray(gzip.decompress(original))
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(gzip.compress(bytes(raw)))
        cli = cli_all(corpus, der, org_id, accounts, regions, start, end)
        th, code = trailhose_validate(args.trailhose, corpus, keys, end_s)
        check(
            "log byte changed: aws-cli reports exactly that file",
            cli["invalid_logs"] == 1 and cli["invalid_digests"] == 0
            and any(victim in e and "hash value doesn't match" in e for e in cli["errors"]),
            str(cli),
        )
        check(
            "log byte changed: trailhose agrees",
            code == 1 and [(p["kind"], p["key"]) for p in th["problems"]] == [("log_modified", victim)],
            str(th["problems"]),
        )
        path.write_bytes(original)

        # 3. a digest edited, signature kept
        victim = digests[len(digests) // 2]
        path = corpus / victim
        original = path.read_bytes()
        doc = json.loads(gzip.decompress(original))
        if doc["logFiles"]:
            doc["logFiles"][0]["hashValue"] = "0" * 64
        else:
            doc["newestEventTime"] = "2026-11-01T00:00:00Z"
        path.write_bytes(gzip.compress(json.dumps(doc).encode()))
        cli = cli_all(corpus, der, org_id, accounts, regions, start, end)
        th, code = trailhose_validate(args.trailhose, corpus, keys, end_s)
        check(
            "digest edited: aws-cli reports exactly that digest",
            cli["invalid_digests"] == 1 and cli["invalid_logs"] == 0
            and any(victim in e and "signature verification failed" in e for e in cli["errors"]),
            str(cli),
        )
        check(
            "digest edited: trailhose agrees",
            code == 1 and [(p["kind"], p["key"]) for p in th["problems"]] == [("digest_bad_signature", victim)],
            str(th["problems"]),
        )
        path.write_bytes(original)

        # 4. a digest deleted in the middle of its chain
        chain = [d for d in digests if f"/{accounts[0]}/" in d and f"/{regions[0]}/" in d]
        victim = chain[len(chain) // 2]
        path = corpus / victim
        original = path.read_bytes()
        path.unlink()
        cli = cli_all(corpus, der, org_id, accounts, regions, start, end)
        th, code = trailhose_validate(args.trailhose, corpus, keys, end_s)
        check(
            "digest deleted: aws-cli reports it missing",
            cli["invalid_digests"] == 1 and any(victim in e and "not found" in e for e in cli["errors"]),
            str(cli),
        )
        check(
            "digest deleted: trailhose agrees",
            code == 1 and [(p["kind"], p["key"]) for p in th["problems"]] == [("digest_missing", victim)],
            str(th["problems"]),
        )
        path.write_bytes(original)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
