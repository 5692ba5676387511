"""boto3 against the shard server: what a Python producer and consumer do.

Usage: python boto3_roundtrip.py ENDPOINT_URL
Exits non-zero (with a traceback) if any step differs from Kinesis.
"""
import sys

import boto3
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
kinesis = boto3.client(
    "kinesis",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)

kinesis.create_stream(StreamName="py", ShardCount=2)
kinesis.get_waiter("stream_exists").wait(StreamName="py", WaiterConfig={"Delay": 1})

records = [{"Data": f"event {i}".encode(), "PartitionKey": f"user-{i}"} for i in range(100)]
put = kinesis.put_records(StreamName="py", Records=records)
assert put["FailedRecordCount"] == 0, put
shards = {r["ShardId"] for r in put["Records"]}
assert shards == {"shardId-000000000000", "shardId-000000000001"}, shards

read = []
for shard in kinesis.list_shards(StreamName="py")["Shards"]:
    iterator = kinesis.get_shard_iterator(
        StreamName="py", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
    read.extend(r["Data"].decode() for r in page["Records"])
assert sorted(read) == sorted(r["Data"].decode() for r in records), read

try:
    kinesis.describe_stream(StreamName="missing")
    raise AssertionError("describe_stream of a missing stream succeeded")
except ClientError as error:
    assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response

summary = kinesis.describe_stream_summary(StreamName="py")["StreamDescriptionSummary"]
assert summary["OpenShardCount"] == 2, summary
print("boto3 ok")
