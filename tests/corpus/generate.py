#!/usr/bin/env python3
"""Writes the bad-input corpus: one payload per file, each something teardown must
refuse with a clear error and a dead-letter record, never a panic. Rerun it to
regenerate; files found by the fuzzer are added by hand as `fuzz-*.json`.

Each file is fed to the function twice by tests/corpus.rs: as the body of an SQS
record, and (when it is JSON) as the whole invocation payload."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
cases = {}


def add(name, payload):
    """payload: a str is written as is (it may not be JSON); anything else as JSON."""
    assert name not in cases, name
    cases[name] = payload if isinstance(payload, str) else json.dumps(payload)


WS = "TerminateWorkspaces"
MGN = "TerminateTargetInstances"
SC = "TerminateProvisionedProduct"
S1 = "s-0123456789abcdefA"


def ws(*ids):
    return {"operation": WS, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": i} for i in ids]}}


# Malformed JSON.
for i, text in enumerate([
    "", " ", "{", "}", "[", "nul", "tru", '{"operation":}', '{"operation": "TerminateWorkspaces",}',
    "{'operation': 'TerminateWorkspaces'}", '{"operation": NaN}', '{"a": 1} // comment',
    '\ufeff{"operation": "TerminateWorkspaces"}', '{"operation": "TerminateWorkspaces"', '{"operation" "x"}',
    '{"operation": "\\ud800"}', "\x00", "\"unterminated", "{}{}",
]):
    add(f"malformed-{i:02}", text)

# Not a request at all.
for i, value in enumerate([None, True, 0, -1, 1.5e308, "TerminateWorkspaces", [], [ws("ws-abcd1234")], {}]):
    add(f"not-a-request-{i:02}", value)

# Wrong types, at every level.
for i, op in enumerate([1, ["TerminateWorkspaces"], {"name": WS}, True, None]):
    add(f"type-operation-{i}", {"operation": op, "input": ws("ws-abcd1234")["input"]})
for i, inp in enumerate(["ws-abcd1234", 1, [], None, True]):
    add(f"type-input-{i}", {"operation": WS, "input": inp})
for i, dry in enumerate(["true", 1, None, [True], {}]):
    add(f"type-dryrun-{i}", {**ws("ws-abcd1234"), "dryRun": dry})
for i, lst in enumerate([{"WorkspaceId": "ws-abcd1234"}, "ws-abcd1234", None, 3]):
    add(f"type-requests-{i}", {"operation": WS, "input": {"TerminateWorkspaceRequests": lst}})
for i, wid in enumerate([12345678, True, {"id": "ws-abcd1234"}, ["ws-abcd1234"], None]):
    add(f"type-workspaceid-{i}", {"operation": WS, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": wid}]}})
for i, ids in enumerate([S1, None, [1], [[S1]], {"id": S1}]):
    add(f"type-sourceserverids-{i}", {"operation": MGN, "input": {"sourceServerIDs": ids}})
for i, tags in enumerate([["k"], "k=v", 1, {"k": 1}, {"k": None}, {"k": {"v": 1}}]):
    add(f"type-tags-{i}", {"operation": MGN, "input": {"sourceServerIDs": [S1], "tags": tags}})
for i, (k, v) in enumerate([("accountID", 123456789012), ("ProvisionedProductId", 7), ("IgnoreErrors", "yes"),
                            ("AcceptLanguage", 1), ("TerminateToken", None), ("RetainPhysicalResources", "false")]):
    base = {"ProvisionedProductId": "pp-1"} if k != "ProvisionedProductId" else {}
    target = MGN if k == "accountID" else SC
    inp = {"sourceServerIDs": [S1], k: v} if target == MGN else {**base, k: v}
    add(f"type-member-{i}", {"operation": target, "input": inp})

# Nulls.
add("null-operation", {"operation": None})
add("null-everything", {"operation": None, "input": None, "dryRun": None})
add("null-item", {"operation": WS, "input": {"TerminateWorkspaceRequests": [None]}})
add("null-select", {"operation": WS, "select": None})

# Empty and huge lists.
add("empty-requests-list", {"operation": WS, "input": {"TerminateWorkspaceRequests": []}})
add("empty-source-servers", {"operation": MGN, "input": {"sourceServerIDs": []}})
add("huge-101-workspaces", ws(*[f"ws-{i:08}" for i in range(101)]))
add("huge-10000-workspaces", ws(*[f"ws-{i:08}" for i in range(10000)]))
add("huge-1000-source-servers", {"operation": MGN, "input": {"sourceServerIDs": [f"s-{i:017}" for i in range(1000)]}})
add("huge-51-tags", {"operation": MGN, "input": {"sourceServerIDs": [S1], "tags": {f"k{i}": "v" for i in range(51)}}})
add("huge-selection-ids", {"operation": WS, "select": {"ids": [f"ws-{i:08}" for i in range(5000)], "expired": "x"}})

# One-mebibyte bodies.
MIB = 1024 * 1024
add("mib-workspace-id", ws("ws-" + "a" * MIB))
add("mib-operation", {"operation": "T" * MIB, "input": {}})
add("mib-unknown-member", {"operation": WS, "input": {"TerminateWorkspaceRequests": []}, "x" * MIB: 1})
add("mib-tag-value", {"operation": MGN, "input": {"sourceServerIDs": [S1], "tags": {"k": "v" * MIB}}})
add("mib-padding-string", "\"" + "p" * MIB + "\"")

# Deep nesting.
add("deep-arrays-1000", "[" * 1000 + "]" * 1000)
add("deep-objects-1000", '{"a":' * 1000 + "1" + "}" * 1000)
add("deep-input-100", {"operation": WS, "input": json.loads('{"a":' * 100 + "1" + "}" * 100)})
add("deep-requests-nesting", {"requests": [{"requests": [{"requests": [ws("ws-abcd1234")]}]}]})

# Unicode and control characters in ids.
for i, wid in enumerate(["ws-abcdé123", "ws-abc\x00def1", "ws-abc\u202edef1", "ws-abcd🔥123", "ws-ａｂｃｄ１２３４",
                         "ws-abcd\u200b1234", "ws-abcd\n1234", "ws-abcd 1234", "WS-abcd1234", " ws-abcd1234"]):
    add(f"unicode-workspace-id-{i}", ws(wid))
add("unicode-source-server", {"operation": MGN, "input": {"sourceServerIDs": ["s-0123456789abcdefÅ"]}})
add("unicode-operation", {"operation": "TerminateWorkspaceѕ", "input": ws("ws-abcd1234")["input"]})
add("control-in-tag-key", {"operation": MGN, "input": {"sourceServerIDs": [S1], "tags": {"": "v"}}})

# Duplicate keys: whichever copy a parser keeps, the request is wrong.
add("duplicate-operation", '{"operation": "TerminateWorkspaces", "operation": "DeleteEverything", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]}}')
add("duplicate-input", '{"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]}, "input": {"TerminateWorkspaceRequests": []}}')
add("duplicate-id-member", '{"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234", "WorkspaceId": "ws-ABCD"}]}}')

# Extra fields.
add("extra-top", {**ws("ws-abcd1234"), "force": True})
add("extra-input", {"operation": WS, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}], "DryRun": True}})
add("extra-item", {"operation": WS, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234", "Force": True}]}})
add("typo-workspaceid", {"operation": WS, "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-abcd1234"}]}})
add("typo-sourceserverids", {"operation": MGN, "input": {"SourceServerIDs": [S1]}})
add("extra-select", {"operation": WS, "select": {"tags": {"env": "x"}, "everything": True}})
add("requests-with-sibling", {"requests": [ws("ws-abcd1234")], "dryRun": True})

# Mixed-up operations and inputs.
add("mixup-ws-with-mgn-input", {"operation": WS, "input": {"sourceServerIDs": [S1]}})
add("mixup-mgn-with-sc-input", {"operation": MGN, "input": {"ProvisionedProductId": "pp-1"}})
add("mixup-sc-with-ws-input", {"operation": SC, "input": ws("ws-abcd1234")["input"]})
add("mixup-sc-id-and-name", {"operation": SC, "input": {"ProvisionedProductId": "pp-1", "ProvisionedProductName": "n"}})
add("mixup-input-and-select", {"operation": WS, "input": ws("ws-abcd1234")["input"], "select": {"ids": ["ws-abcd1234"]}})
add("mixup-empty-select", {"operation": SC, "select": {"IgnoreErrors": True}})
add("mixup-aws-cli-shape", {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]})

# Truncated or broken SNS and EventBridge wrappers.
sns = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
       "Message": json.dumps(ws("ws-abcd1234")), "Timestamp": "2026-11-24T10:00:00.000Z", "SignatureVersion": "1",
       "Signature": "x", "SigningCertURL": "https://x", "UnsubscribeURL": "https://x"}
add("sns-missing-message", {k: v for k, v in sns.items() if k != "Message"})
add("sns-message-not-json", {**sns, "Message": "terminate ws-abcd1234 please"})
add("sns-message-truncated", {**sns, "Message": json.dumps(ws("ws-abcd1234"))[:30]})
add("sns-message-number", {**sns, "Message": 5})
add("sns-message-bad-request", {**sns, "Message": json.dumps({"operation": WS})})
add("sns-truncated-text", json.dumps(sns)[:120])
eb = {"version": "0", "id": "e", "detail-type": "Teardown Request", "source": "teardown.requests",
      "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "us-east-1", "resources": [],
      "detail": ws("ws-ABCD")}
add("eventbridge-bad-detail", eb)
add("eventbridge-missing-detail", {k: v for k, v in eb.items() if k != "detail"})
add("eventbridge-detail-type-number", {**eb, "detail-type": 1})
add("eventbridge-detail-null", {**eb, "detail": None})
add("eventbridge-truncated-text", json.dumps(eb)[:100])
add("eventbridge-empty-requests", {**eb, "detail": {"requests": []}})

# SQS events with broken records (fed as whole payloads).
record = {"messageId": "r-1", "receiptHandle": "h", "body": json.dumps(ws("ws-abcd1234")), "attributes": {},
          "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
add("sqs-record-without-body", {"Records": [{k: v for k, v in record.items() if k != "body"}]})
add("sqs-record-without-message-id", {"Records": [{**{k: v for k, v in record.items() if k != "messageId"}, "body": "{"}]})
add("sqs-record-body-number", {"Records": [{**record, "body": 42}]})
add("sqs-record-body-bad-request", {"Records": [{**record, "body": json.dumps({"operation": WS, "input": {}})}]})
add("sqs-records-not-list", {"Records": {"0": record}})
add("sqs-record-other-source", {"Records": [{**record, "eventSource": "aws:s3"}]})
add("sqs-record-null", {"Records": [None]})
add("sqs-record-attributes-wrong", {"Records": [{**record, "attributes": "none", "body": "{"}]})

for name in os.listdir(HERE):
    if name.endswith(".json") and not name.startswith("fuzz-"):
        os.remove(os.path.join(HERE, name))
for name, text in cases.items():
    with open(os.path.join(HERE, f"{name}.json"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
print(f"{len(cases)} cases")
