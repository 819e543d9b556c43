"""Who may make teardown terminate, read off the template as CloudFormation will see it
(after the SAM transform): docs/reference.md, "Who may send what". Run by scripts/test with the lint venv.

- Nothing but the stack's own request rule may invoke the function by resource policy:
  lambda:InvokeFunction on it is the right to terminate.
- Both queues refuse sqs:SendMessage to everyone the parameters do not admit.
- Reaching another account is held to the organization when one is given.
- Tag writes (notices) name only teardown's own tag keys, never the protection tag:
  in the function's role and in the spoke role.
"""

import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
template, errors = decode(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
assert not errors, errors
# The transform wants an S3 location for the code; where the code is does not matter here.
template["Resources"]["TeardownFunction"]["Properties"]["CodeUri"] = "s3://bucket/key"
resources = transform(template, {}, None)["Resources"]
problems = []

rules = {name for name, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
for name, r in resources.items():
    if r["Type"] != "AWS::Lambda::Permission":
        continue
    p = r["Properties"]
    source = p.get("SourceArn", {})
    own_rule = isinstance(source, dict) and source.get("Fn::GetAtt", [None])[0] in rules
    if p.get("Principal") != "events.amazonaws.com" or not own_rule:
        problems.append(f"{name} lets {p.get('Principal')} invoke the function from {source}")

policies = [r for r in resources.values() if r["Type"] == "AWS::SQS::QueuePolicy"]
queues = sorted(str(q) for p in policies for q in p["Properties"]["Queues"])
if queues != sorted(str({"Ref": q}) for q in ("DeadLetterQueue", "RequestQueue")):
    problems.append(f"the queue policies cover {queues}, not the request and dead-letter queues")
for policy in policies:
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    denies = [s for s in statements if isinstance(s, dict) and s.get("Effect") == "Deny"]
    if not any(s.get("Principal") == "*" and s.get("Action") == "sqs:SendMessage" for s in denies):
        problems.append("a queue policy has no explicit deny of sqs:SendMessage for every other principal")

role = resources["TeardownFunctionRole"]["Properties"]
assume = [
    s
    for p in role.get("Policies", [])
    for s in p["PolicyDocument"]["Statement"]
    if isinstance(s, dict) and s.get("Action") == "sts:AssumeRole"
]
if not assume or any("aws:ResourceOrgID" not in str(s.get("Condition")) for s in assume):
    problems.append("sts:AssumeRole is not held to the organization (aws:ResourceOrgID)")

TAG_WRITES = {"workspaces:CreateTags", "mgn:TagResource"}
OWN_KEYS = {"teardown:expires-at", "teardown:first-seen"}


def tag_writes(statements, where):
    """Every statement that may write tags on a target holds the keys to teardown's own."""
    for s in statements:
        actions = s.get("Action") if isinstance(s, dict) else None
        actions = set(actions if isinstance(actions, list) else [actions])
        if not actions & TAG_WRITES or ":job/" in str(s.get("Resource")):
            continue
        keys = (s.get("Condition") or {}).get("ForAllValues:StringEquals", {}).get("aws:TagKeys")
        if not keys or not set(keys) <= OWN_KEYS:
            problems.append(f"{where}: {sorted(actions & TAG_WRITES)} is not held to aws:TagKeys {sorted(OWN_KEYS)}")


tag_writes([s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]], "the function's role")
spoke, spoke_errors = decode(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spoke.yaml"))
assert not spoke_errors, spoke_errors
tag_writes(
    [s for p in spoke["Resources"]["SpokeRole"]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]],
    "the spoke role",
)

for problem in problems:
    print(f"template: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
