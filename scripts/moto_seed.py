#!/usr/bin/env python3
"""Creates what teardown's demo and end-to-end tests need inside a running moto server.

moto's WorkSpaces needs a directory first, and a Directory Service directory needs a
VPC with two subnets in two zones. Prints one JSON object with what it made.

  moto_seed.py --endpoint http://127.0.0.1:5000 queue teardown-dlq
  moto_seed.py --endpoint http://127.0.0.1:5000 workspaces 3 --tag env=sandbox
"""
import argparse
import json
import sys

import boto3

REGION = "us-east-1"


ACCOUNT = None


def client(endpoint, service):
    """A client of the default account, or of ACCOUNT through an assumed role (moto
    keeps each account's resources apart by the credentials' account)."""
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if ACCOUNT:
        sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, **keys)
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/teardown-spoke", RoleSessionName="seed")["Credentials"]
        keys = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **keys)


def directory(endpoint):
    """The registered WorkSpaces directory, made once per moto server."""
    workspaces = client(endpoint, "workspaces")
    existing = workspaces.describe_workspace_directories().get("Directories", [])
    if existing:
        return existing[0]["DirectoryId"]
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    ds = client(endpoint, "ds")
    directory_id = ds.create_directory(
        Name="corp.example.com",
        Password="Passw0rd-Demo!",
        Size="Small",
        VpcSettings={"VpcId": vpc, "SubnetIds": subnets},
    )["DirectoryId"]
    workspaces.register_workspace_directory(DirectoryId=directory_id)
    return directory_id


def make_workspaces(endpoint, count, tags, user_prefix):
    directory_id = directory(endpoint)
    workspaces = client(endpoint, "workspaces")
    made = []
    for start in range(0, count, 25):
        batch = [
            {
                "DirectoryId": directory_id,
                "UserName": f"{user_prefix}{i}",
                "BundleId": "wsb-demo0001",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
            for i in range(start, min(count, start + 25))
        ]
        answer = workspaces.create_workspaces(Workspaces=batch)
        if answer.get("FailedRequests"):
            sys.exit(f"moto refused to create WorkSpaces: {answer['FailedRequests']}")
        made.extend(w["WorkspaceId"] for w in answer["PendingRequests"])
    return {"directoryId": directory_id, "workspaceIds": made}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("queue")
    q.add_argument("name")
    w = sub.add_parser("workspaces")
    w.add_argument("count", type=int)
    w.add_argument("--tag", action="append", default=[], help="key=value")
    w.add_argument("--user-prefix", default="user")
    w.add_argument("--account", default=None, help="make them in this account (through an assumed role)")
    s = sub.add_parser("still-live", help="which of these WorkSpaces of ACCOUNT are not terminating or terminated")
    s.add_argument("ids", nargs="+")
    s.add_argument("--account", default=None)
    t = sub.add_parser("table", help="the state table, as the template makes it (key pk, on demand, TTL on expiresAt)")
    t.add_argument("name")
    sub.add_parser(
        "workspaces-plan",
        help='WorkSpaces from a JSON plan on stdin, {"<account>": [{"tags": {...}}, ...]}; prints {"<account>": [ids in plan order]}',
    )
    b = sub.add_parser("audit-bus", help="an EventBridge bus whose teardown events a rule delivers to a queue")
    b.add_argument("bus")
    b.add_argument("queue")
    args = parser.parse_args()
    global ACCOUNT
    ACCOUNT = getattr(args, "account", None)

    if args.what == "still-live":
        found = client(args.endpoint, "workspaces").describe_workspaces(WorkspaceIds=args.ids)["Workspaces"]
        live = [w["WorkspaceId"] for w in found if w["State"] not in ("TERMINATING", "TERMINATED")]
        print(json.dumps({"live": live}))
        return
    if args.what == "workspaces-plan":
        made = {}
        for account, plan in json.load(sys.stdin).items():
            ACCOUNT = None if account == "123456789012" else account
            ids = [None] * len(plan)
            by_tags = {}
            for i, spec in enumerate(plan):
                by_tags.setdefault(json.dumps(spec.get("tags", {}), sort_keys=True), []).append(i)
            for tags, places in by_tags.items():
                got = make_workspaces(args.endpoint, len(places), json.loads(tags), f"fire{places[0]}-")["workspaceIds"]
                for place, workspace_id in zip(places, got):
                    ids[place] = workspace_id
            made[account] = ids
        print(json.dumps(made))
        return
    if args.what == "queue":
        url = client(args.endpoint, "sqs").create_queue(QueueName=args.name)["QueueUrl"]
        print(json.dumps({"queueUrl": url}))
    elif args.what == "table":
        dynamodb = client(args.endpoint, "dynamodb")
        dynamodb.create_table(
            TableName=args.name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=args.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
        )
        print(json.dumps({"tableName": args.name}))
    elif args.what == "audit-bus":
        sqs = client(args.endpoint, "sqs")
        url = sqs.create_queue(QueueName=args.queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = client(args.endpoint, "events")
        events.create_event_bus(Name=args.bus)
        events.put_rule(Name="teardown-decisions", EventBusName=args.bus, EventPattern=json.dumps({"source": ["teardown"]}))
        events.put_targets(Rule="teardown-decisions", EventBusName=args.bus, Targets=[{"Id": "audit-queue", "Arn": arn}])
        print(json.dumps({"busName": args.bus, "queueUrl": url}))
    else:
        tags = dict(t.split("=", 1) for t in args.tag)
        print(json.dumps(make_workspaces(args.endpoint, args.count, tags, args.user_prefix)))


if __name__ == "__main__":
    main()
