"""boto3's Firehose client against the shard server: HTTP endpoint destinations (a
local endpoint that takes records, and one that fails, whose records end up backed up
under the error prefix), and every Firehose action the server answers with valid and
invalid input.

Usage: python firehose_api.py ENDPOINT_URL S3_DIR ACTION...
Exits non-zero (with a traceback) on the first difference.
"""
import base64
import http.server
import json
import os
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, s3_dir, actions = sys.argv[1], sys.argv[2], set(sys.argv[3:])
firehose = boto3.client(
    "firehose",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}),
)
role = "arn:aws:iam::000000000000:role/firehose"
called = set()


def call(action, **params):
    called.add(action)
    method = getattr(firehose, "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_"))
    return method(**params)


def refused(action, params, code, message=None):
    called.add(action)
    try:
        call(action, **params)
    except ClientError as error:
        got = error.response["Error"]
        assert got["Code"] == code, (action, params, got)
        if message is not None:
            assert got.get("Message") == message, (action, params, got)
        return
    raise AssertionError(f"{action} {params}: no error, expected {code}")


# A local HTTP endpoint: /ok answers as Firehose's protocol asks; /fail answers 500.
received = []


class Endpoint(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = json.loads(body)
        received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, request))
        if self.path == "/ok":
            answer = json.dumps({"requestId": request["requestId"], "timestamp": int(time.time() * 1000)}).encode()
            self.send_response(200)
        else:
            answer = b'{"errorMessage": "not today"}'
            self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"


def objects(bucket, prefix=""):
    root = os.path.join(s3_dir, bucket)
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".tmp"):
                continue
            path = os.path.join(directory, name)
            key = os.path.relpath(path, root)
            if key.startswith(prefix):
                with open(path, "rb") as f:
                    found.append((key, f.read()))
    return sorted(found)


def eventually(check, what, within=20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {within} s")


def http_destination(path, retry_secs, error_prefix=None, mode="FailedDataOnly"):
    s3 = {"RoleARN": role, "BucketARN": "arn:aws:s3:::backup"}
    if error_prefix:
        s3["ErrorOutputPrefix"] = error_prefix
    return {
        "EndpointConfiguration": {"Url": base + path, "Name": "local", "AccessKey": "endpoint-key"},
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "RetryOptions": {"DurationInSeconds": retry_secs},
        "S3BackupMode": mode,
        "S3Configuration": s3,
    }


# An endpoint that takes the records: one POST with every record, in order, and
# Firehose's headers.
call("CreateDeliveryStream", DeliveryStreamName="web", HttpEndpointDestinationConfiguration=http_destination("/ok", 60))
described = call("DescribeDeliveryStream", DeliveryStreamName="web")["DeliveryStreamDescription"]
http_description = described["Destinations"][0]["HttpEndpointDestinationDescription"]
assert http_description["EndpointConfiguration"] == {"Url": base + "/ok", "Name": "local"}, http_description
assert http_description["S3BackupMode"] == "FailedDataOnly", http_description
records = [f"web {i}\n".encode() for i in range(50)]
answer = call("PutRecordBatch", DeliveryStreamName="web", Records=[{"Data": r} for r in records])
assert answer["FailedPutCount"] == 0, answer
eventually(lambda: [r for r in received if r[0] == "/ok"], "a POST to the endpoint")
path, headers, request = [r for r in received if r[0] == "/ok"][0]
assert headers["x-amz-firehose-access-key"] == "endpoint-key", headers
assert headers["x-amz-firehose-protocol-version"] == "1.0", headers
assert headers["x-amz-firehose-request-id"] == request["requestId"], (headers, request)
assert headers["x-amz-firehose-source-arn"] == described["DeliveryStreamARN"], headers
assert [base64.b64decode(r["data"]) for r in request["records"]] == records
assert objects("backup") == [], "nothing is backed up when the endpoint takes the records"

# An endpoint that fails: retried for a second, then the records are backed up under
# the error prefix, one JSON line each with the raw data.
call("CreateDeliveryStream", DeliveryStreamName="broken", HttpEndpointDestinationConfiguration=http_destination("/fail", 1, "failed/"))
failing = [f"lost? {i}\n".encode() for i in range(20)]
call("PutRecordBatch", DeliveryStreamName="broken", Records=[{"Data": r} for r in failing])
backups = eventually(lambda: objects("backup", "failed/"), "a backup object under failed/")
lines = [json.loads(line) for _, body in backups for line in body.splitlines()]
assert [base64.b64decode(line["rawData"]) for line in lines] == failing, lines[:2]
assert all(line["errorCode"] == "HttpEndpoint.DestinationException" for line in lines), lines[0]
assert all(line["attemptsMade"] >= 2 for line in lines), lines[0]
assert "500" in lines[0]["errorMessage"], lines[0]
assert len([r for r in received if r[0] == "/fail"]) >= 2, "the endpoint was retried"

# UpdateDestination: the version must be the current one, and it moves on.
refused("UpdateDestination", {"DeliveryStreamName": "web", "CurrentDeliveryStreamVersionId": "7", "DestinationId": "destinationId-000000000001", "HttpEndpointDestinationUpdate": {"BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 5}}}, "ConcurrentModificationException")
call("UpdateDestination", DeliveryStreamName="web", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001", HttpEndpointDestinationUpdate={"BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 5}})
described = call("DescribeDeliveryStream", DeliveryStreamName="web")["DeliveryStreamDescription"]
assert described["VersionId"] == "2", described["VersionId"]
hints = described["Destinations"][0]["HttpEndpointDestinationDescription"]["BufferingHints"]
assert hints == {"SizeInMBs": 2, "IntervalInSeconds": 5}, hints
refused("UpdateDestination", {"DeliveryStreamName": "web", "CurrentDeliveryStreamVersionId": "2", "DestinationId": "destinationId-000000000009", "ExtendedS3DestinationUpdate": {"Prefix": "x/"}}, "InvalidArgumentException")

# Objects written after an UpdateDestination carry the new version in their key and
# follow the new prefix.
call("CreateDeliveryStream", DeliveryStreamName="versioned", ExtendedS3DestinationConfiguration={"RoleARN": role, "BucketARN": "arn:aws:s3:::versioned", "Prefix": "v1/", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
call("UpdateDestination", DeliveryStreamName="versioned", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001", ExtendedS3DestinationUpdate={"Prefix": "v2/"})
call("PutRecord", DeliveryStreamName="versioned", Record={"Data": b"after the update\n"})
(key, body), = eventually(lambda: objects("versioned"), "an object after UpdateDestination")
assert key.startswith("v2/") and key.rsplit("/", 1)[1].startswith("versioned-2-"), key
assert body == b"after the update\n", body
call("DeleteDeliveryStream", DeliveryStreamName="versioned")

# Tags.
call("TagDeliveryStream", DeliveryStreamName="web", Tags=[{"Key": "team", "Value": "logs"}, {"Key": "env", "Value": "test"}])
tags = call("ListTagsForDeliveryStream", DeliveryStreamName="web")
assert tags == {"Tags": [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "logs"}], "HasMoreTags": False, "ResponseMetadata": tags["ResponseMetadata"]}, tags
page = call("ListTagsForDeliveryStream", DeliveryStreamName="web", Limit=1)
assert page["Tags"] == [{"Key": "env", "Value": "test"}] and page["HasMoreTags"], page
call("UntagDeliveryStream", DeliveryStreamName="web", TagKeys=["env"])
assert call("ListTagsForDeliveryStream", DeliveryStreamName="web")["Tags"] == [{"Key": "team", "Value": "logs"}]
refused("TagDeliveryStream", {"DeliveryStreamName": "web", "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(50)]}, "LimitExceededException")

# Encryption.
call("StartDeliveryStreamEncryption", DeliveryStreamName="web", DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"})
encryption = call("DescribeDeliveryStream", DeliveryStreamName="web")["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"]
assert encryption["Status"] == "ENABLED" and encryption["KeyType"] == "AWS_OWNED_CMK", encryption
assert call("PutRecord", DeliveryStreamName="web", Record={"Data": b"sealed\n"})["Encrypted"] is True
call("StopDeliveryStreamEncryption", DeliveryStreamName="web")
encryption = call("DescribeDeliveryStream", DeliveryStreamName="web")["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"]
assert encryption["Status"] == "DISABLED", encryption
refused("StartDeliveryStreamEncryption", {"DeliveryStreamName": "web", "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "CUSTOMER_MANAGED_CMK"}}, "InvalidArgumentException")

listed = call("ListDeliveryStreams", DeliveryStreamType="DirectPut")
assert listed["DeliveryStreamNames"] == ["broken", "web"], listed
call("DeleteDeliveryStream", DeliveryStreamName="broken")
assert call("ListDeliveryStreams")["DeliveryStreamNames"] == ["web"]

# Invalid input, one row per mistake: Firehose's error types. (boto3 checks required
# members, types and minimums itself, so the rows are what only the service checks.)
s3 = {"RoleARN": role, "BucketARN": "arn:aws:s3:::bkt"}
for action, params, code in [
    ("CreateDeliveryStream", {"DeliveryStreamName": "bad name", "S3DestinationConfiguration": s3}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "x" * 65, "S3DestinationConfiguration": s3}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "two", "S3DestinationConfiguration": s3, "HttpEndpointDestinationConfiguration": http_destination("/ok", 1)}, "InvalidArgumentException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "none"}, "InvalidArgumentException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "src", "DeliveryStreamType": "KinesisStreamAsSource", "S3DestinationConfiguration": s3}, "InvalidArgumentException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "src", "DeliveryStreamType": "KinesisStreamAsSource", "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/missing", "RoleARN": role}, "S3DestinationConfiguration": s3}, "InvalidArgumentException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "kind", "DeliveryStreamType": "Sideways", "S3DestinationConfiguration": s3}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "big", "S3DestinationConfiguration": {**s3, "BufferingHints": {"SizeInMBs": 200}}}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "slow", "S3DestinationConfiguration": {**s3, "BufferingHints": {"IntervalInSeconds": 901}}}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "zip", "S3DestinationConfiguration": {**s3, "CompressionFormat": "RAR"}}, "ValidationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "bucket", "S3DestinationConfiguration": {**s3, "BucketARN": "arn:aws:sqs:::b"}}, "InvalidArgumentException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "web", "S3DestinationConfiguration": s3}, "ResourceInUseException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "retry", "HttpEndpointDestinationConfiguration": {**http_destination("/ok", 1), "RetryOptions": {"DurationInSeconds": 7201}}}, "ValidationException"),
    ("DescribeDeliveryStream", {"DeliveryStreamName": "nope"}, "ResourceNotFoundException"),
    ("DescribeDeliveryStream", {"DeliveryStreamName": "bad name"}, "ValidationException"),
    ("DeleteDeliveryStream", {"DeliveryStreamName": "nope"}, "ResourceNotFoundException"),
    ("ListDeliveryStreams", {"Limit": 10001}, "ValidationException"),
    ("PutRecord", {"DeliveryStreamName": "nope", "Record": {"Data": b"x"}}, "ResourceNotFoundException"),
    ("PutRecord", {"DeliveryStreamName": "web", "Record": {"Data": b"x" * (1000 * 1024 + 1)}}, "ValidationException"),
    ("PutRecordBatch", {"DeliveryStreamName": "web", "Records": [{"Data": b"x"}] * 501}, "ValidationException"),
    ("PutRecordBatch", {"DeliveryStreamName": "web", "Records": [{"Data": b"x" * 1000 * 1024}] * 5}, "InvalidArgumentException"),
    ("UpdateDestination", {"DeliveryStreamName": "nope", "CurrentDeliveryStreamVersionId": "1", "DestinationId": "destinationId-000000000001"}, "ResourceNotFoundException"),
    ("UpdateDestination", {"DeliveryStreamName": "web", "CurrentDeliveryStreamVersionId": "2", "DestinationId": "destinationId-000000000001"}, "InvalidArgumentException"),
    ("TagDeliveryStream", {"DeliveryStreamName": "web", "Tags": [{"Key": "k" * 129, "Value": "v"}]}, "ValidationException"),
    ("TagDeliveryStream", {"DeliveryStreamName": "nope", "Tags": [{"Key": "k", "Value": "v"}]}, "ResourceNotFoundException"),
    ("UntagDeliveryStream", {"DeliveryStreamName": "web", "TagKeys": [f"k{i}" for i in range(51)]}, "ValidationException"),
    ("ListTagsForDeliveryStream", {"DeliveryStreamName": "web", "Limit": 51}, "ValidationException"),
    ("StartDeliveryStreamEncryption", {"DeliveryStreamName": "web", "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "PLAINTEXT"}}, "ValidationException"),
    ("StopDeliveryStreamEncryption", {"DeliveryStreamName": "nope"}, "ResourceNotFoundException"),
]:
    refused(action, params, code)

missing = actions - called
assert not missing, f"actions never called: {sorted(missing)}"
server.shutdown()
print("firehose api ok")
