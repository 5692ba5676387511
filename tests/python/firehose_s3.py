"""boto3's Firehose client against the shard server: DirectPut delivery streams
buffer records and deliver them as S3 objects under --s3-dir.

Usage: python firehose_s3.py ENDPOINT_URL S3_DIR
Exits non-zero (with a traceback) on the first difference.
"""
import gzip
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, s3_dir = sys.argv[1], sys.argv[2]
firehose = boto3.client(
    "firehose",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}),
)
role = "arn:aws:iam::000000000000:role/firehose"


def objects(bucket):
    """Every object file under a bucket directory, as (key, bytes), by key. Objects
    are written to a temporary file and renamed: one being written is not an object
    yet."""
    root = os.path.join(s3_dir, bucket)
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".tmp"):
                continue
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found.append((os.path.relpath(path, root), f.read()))
    return sorted(found)


def wait_for_objects(bucket, within=10.0, holding=lambda found: bool(found)):
    """The bucket's objects once `holding` says they are all there (by default: any)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = objects(bucket)
        if holding(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"{bucket} incomplete after {within} s: {[k for k, _ in objects(bucket)]}")


# GZIP, flushed by a 1 s interval: the object decompresses to exactly the records.
arn = firehose.create_delivery_stream(
    DeliveryStreamName="gz",
    DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={
        "RoleARN": role,
        "BucketARN": "arn:aws:s3:::gz-bucket",
        "Prefix": "events/",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "CompressionFormat": "GZIP",
    },
)["DeliveryStreamARN"]
assert arn == "arn:aws:firehose:us-east-1:000000000000:deliverystream/gz", arn
described = firehose.describe_delivery_stream(DeliveryStreamName="gz")["DeliveryStreamDescription"]
assert described["DeliveryStreamStatus"] == "ACTIVE", described
s3 = described["Destinations"][0]["ExtendedS3DestinationDescription"]
assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1} and s3["CompressionFormat"] == "GZIP", s3
records = [f"event {i}\n".encode() for i in range(300)]
answer = firehose.put_record_batch(DeliveryStreamName="gz", Records=[{"Data": r} for r in records[:200]])
assert answer["FailedPutCount"] == 0 and len(answer["RequestResponses"]) == 200, answer
for record in records[200:]:
    assert firehose.put_record(DeliveryStreamName="gz", Record={"Data": record})["RecordId"]
# The 1 s interval may run out while the single puts are still coming (a loaded
# machine), so the records may be split over more than one object: each object is
# whole GZIP, and together they hold every record once.
expected = sum(len(r) for r in records)
found = wait_for_objects(
    "gz-bucket", holding=lambda found: sum(len(gzip.decompress(b)) for _, b in found) >= expected
)
for key, _ in found:
    parts = key.split("/")
    assert parts[0] == "events" and len(parts) == 6 and parts[5].startswith("gz-1-") and key.endswith(".gz"), key
delivered = b"".join(gzip.decompress(body) for _, body in found)
assert sorted(delivered.splitlines(keepends=True)) == sorted(records), len(delivered)

# A size-triggered flush: 1 MiB buffered is delivered at once, the rest waits.
firehose.create_delivery_stream(
    DeliveryStreamName="sized",
    S3DestinationConfiguration={
        "RoleARN": role,
        "BucketARN": "arn:aws:s3:::sized-bucket",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 900},
    },
)
chunk = b"x" * 1000 + b"\n"
for _ in range(3):
    firehose.put_record_batch(DeliveryStreamName="sized", Records=[{"Data": chunk}] * 400)
found = wait_for_objects("sized-bucket")
assert len(found) == 1 and len(found[0][1]) == 1001 * 1200, [(k, len(b)) for k, b in found]

listed = firehose.list_delivery_streams()
assert listed["DeliveryStreamNames"] == ["gz", "sized"] and not listed["HasMoreDeliveryStreams"], listed
firehose.delete_delivery_stream(DeliveryStreamName="sized")
assert firehose.list_delivery_streams()["DeliveryStreamNames"] == ["gz"]

# Invalid input: Firehose's error types.
for call, params, code in [
    (firehose.describe_delivery_stream, {"DeliveryStreamName": "nope"}, "ResourceNotFoundException"),
    (firehose.put_record, {"DeliveryStreamName": "nope", "Record": {"Data": b"x"}}, "ResourceNotFoundException"),
    (firehose.create_delivery_stream, {"DeliveryStreamName": "gz", "S3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::gz-bucket"}}, "ResourceInUseException"),
    (firehose.create_delivery_stream, {"DeliveryStreamName": "bad", "S3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::b", "BufferingHints": {"SizeInMBs": 200}}}, "ValidationException"),
]:
    try:
        call(**params)
        raise AssertionError(f"{call.__name__} {params}: no error")
    except ClientError as error:
        assert error.response["Error"]["Code"] == code, (params, error.response["Error"])
print("firehose ok")
