"""A presigned GetRecords call, made with botocore's own query-string signer.

Usage: python presigned.py ENDPOINT_URL ACCESS_KEY SECRET
Signs the call ten minutes in the past: with a 900-second lifetime it must still be
served, with a 300-second one it must be refused as expired. Exits non-zero (with a
traceback) if either differs.
"""
import base64
import datetime
import json
import sys
import urllib.error
import urllib.request

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

endpoint, key, secret = sys.argv[1:4]
kinesis = boto3.client(
    "kinesis",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key,
    aws_secret_access_key=secret,
)
kinesis.create_stream(StreamName="presigned", ShardCount=1)
kinesis.get_waiter("stream_exists").wait(StreamName="presigned", WaiterConfig={"Delay": 1})
kinesis.put_record(StreamName="presigned", Data=b"read through a presigned url", PartitionKey="k")
iterator = kinesis.get_shard_iterator(
    StreamName="presigned", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
)["ShardIterator"]

ten_minutes_ago = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=10)
botocore.auth.get_current_datetime = lambda: ten_minutes_ago


def presigned_get_records(expires):
    request = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=json.dumps({"ShardIterator": iterator, "Limit": 10}),
        headers={
            "X-Amz-Target": "Kinesis_20131202.GetRecords",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    botocore.auth.SigV4QueryAuth(Credentials(key, secret), "kinesis", "us-east-1", expires=expires).add_auth(request)
    assert "X-Amz-Signature=" in request.url and not request.data, request.url
    sent = urllib.request.Request(request.url, data=b"", method="POST", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


status, body = presigned_get_records(900)
assert status == 200, (status, body)
assert [base64.b64decode(r["Data"]) for r in body["Records"]] == [b"read through a presigned url"], body

status, body = presigned_get_records(300)
assert status == 400, (status, body)
assert body["__type"] == "InvalidSignatureException", body
assert body["message"].startswith("Signature expired: "), body
print("presigned ok")
