"""The same job written the way it usually is: a Python handler with boto3 clients
made at import, terminating WorkSpaces named in SQS bodies, answering a partial
batch response. With a minimal Runtime API loop so it runs as a custom runtime,
like teardown does (`python3 boto3_handler.py`)."""
import json
import os
import urllib.request

import boto3

workspaces = boto3.client("workspaces")
mgn = boto3.client("mgn")
servicecatalog = boto3.client("servicecatalog")
sqs = boto3.client("sqs")


def handler(event, context):
    failures = []
    ids = []
    owners = {}
    for record in event.get("Records", []):
        try:
            request = json.loads(record["body"])
            for entry in request["input"]["TerminateWorkspaceRequests"]:
                ids.append(entry["WorkspaceId"])
                owners.setdefault(entry["WorkspaceId"], []).append(record["messageId"])
        except (KeyError, ValueError, TypeError):
            failures.append(record.get("messageId"))
    for start in range(0, len(ids), 25):
        chunk = ids[start:start + 25]
        try:
            answer = workspaces.terminate_workspaces(TerminateWorkspaceRequests=[{"WorkspaceId": i} for i in chunk])
            for failed in answer.get("FailedRequests", []):
                failures.extend(owners.get(failed["WorkspaceId"], []))
        except Exception:
            for i in chunk:
                failures.extend(owners.get(i, []))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(set(failures)) if m]}


def main():
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
    while True:
        with urllib.request.urlopen(api + "next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(response.read())
        body = json.dumps(handler(event, None)).encode()
        urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=body, method="POST")).read()


if __name__ == "__main__":
    main()
