"""boto3 calls every Kinesis Data Streams action against the shard server: each with
valid input gets a well-formed answer, and a table of invalid inputs gets Kinesis's
exact error type and message.

Usage: python all_actions.py ENDPOINT_URL ACCOUNT_ID ACTION [ACTION ...]
ACTION...: the actions the server says it answers; every one must be called.
Exits non-zero (with a traceback) on the first difference.
"""
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, account = sys.argv[1], sys.argv[2]
served = set(sys.argv[3:])


def client(validate):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # Invalid input has to reach the server, not stop in botocore.
        config=Config(parameter_validation=validate, retries={"max_attempts": 1}),
    )


kinesis = client(True)
raw = client(False)
called = set()


def call(action, **params):
    """Calls an action (CamelCase name) with valid input; records that it was called."""
    called.add(action)
    method = "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
    answer = getattr(kinesis, method)(**params)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200, (action, answer)
    return answer


arn = f"arn:aws:kinesis:us-east-1:{account}:stream/"

# --- every action with valid input -------------------------------------------------
call("CreateStream", StreamName="all", ShardCount=2)
call("CreateStream", StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
summary = call("DescribeStreamSummary", StreamName="all")["StreamDescriptionSummary"]
assert summary["StreamARN"] == arn + "all" and summary["OpenShardCount"] == 2, summary
assert summary["MaxRecordSizeInKiB"] == 1024, summary
described = call("DescribeStream", StreamName="all")["StreamDescription"]
assert [s["ShardId"] for s in described["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
assert len(described["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"]) == 56
listed = call("ListStreams")
assert listed["StreamNames"] == ["all", "od"] and not listed["HasMoreStreams"], listed
assert [s["StreamName"] for s in listed["StreamSummaries"]] == ["all", "od"]
limits = call("DescribeLimits")
assert limits["OpenShardCount"] == 6 and limits["OnDemandStreamCount"] == 1, limits

put = call("PutRecord", StreamName="all", PartitionKey="a", Data=b"one")
assert put["EncryptionType"] == "NONE" and len(put["SequenceNumber"]) == 56, put
puts = call("PutRecords", StreamName="all", Records=[{"PartitionKey": f"k{i}", "Data": b"x"} for i in range(10)])
assert puts["FailedRecordCount"] == 0 and len(puts["Records"]) == 10, puts
iterator = call("GetShardIterator", StreamName="all", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")
records = call("GetRecords", ShardIterator=iterator["ShardIterator"])
assert records["Records"][0]["Data"] == b"one" and records["Records"][0]["EncryptionType"] == "NONE", records
assert "NextShardIterator" in records and records["MillisBehindLatest"] == 0, records
shards = call("ListShards", StreamName="all")["Shards"]
assert len(shards) == 2, shards

call("IncreaseStreamRetentionPeriod", StreamName="all", RetentionPeriodHours=48)
call("DecreaseStreamRetentionPeriod", StreamName="all", RetentionPeriodHours=24)
call("AddTagsToStream", StreamName="all", Tags={"team": "logs"})
assert call("ListTagsForStream", StreamName="all")["Tags"] == [{"Key": "team", "Value": "logs"}]
call("RemoveTagsFromStream", StreamName="all", TagKeys=["team"])
call("TagResource", ResourceARN=arn + "all", Tags={"env": "test"})
assert call("ListTagsForResource", ResourceARN=arn + "all")["Tags"] == [{"Key": "env", "Value": "test"}]
call("UntagResource", ResourceARN=arn + "all", TagKeys=["env"])
assert call("ListTagsForResource", ResourceARN=arn + "all")["Tags"] == []

monitoring = call("EnableEnhancedMonitoring", StreamName="all", ShardLevelMetrics=["IncomingBytes"])
assert monitoring["DesiredShardLevelMetrics"] == ["IncomingBytes"], monitoring
monitoring = call("DisableEnhancedMonitoring", StreamName="all", ShardLevelMetrics=["ALL"])
assert monitoring["CurrentShardLevelMetrics"] == ["IncomingBytes"] and monitoring["DesiredShardLevelMetrics"] == []

call("StartStreamEncryption", StreamName="all", EncryptionType="KMS", KeyId="alias/aws/kinesis")
sealed = kinesis.put_record(StreamName="all", PartitionKey="a", Data=b"two")
assert sealed["EncryptionType"] == "KMS", sealed
after = kinesis.get_records(ShardIterator=records["NextShardIterator"])["Records"]
assert [(r["Data"], r["EncryptionType"]) for r in after] == [(b"two", "KMS")], after
call("StopStreamEncryption", StreamName="all", EncryptionType="KMS", KeyId="alias/aws/kinesis")

policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kinesis:DescribeStreamSummary","Resource":"%sall"}]}' % (account, arn)
call("PutResourcePolicy", ResourceARN=arn + "all", Policy=policy)
assert call("GetResourcePolicy", ResourceARN=arn + "all")["Policy"] == policy
call("DeleteResourcePolicy", ResourceARN=arn + "all")
assert call("GetResourcePolicy", ResourceARN=arn + "all")["Policy"] == "{}"

consumer = call("RegisterStreamConsumer", StreamARN=arn + "all", ConsumerName="reader")["Consumer"]
assert consumer["ConsumerARN"].startswith(arn + "all/consumer/reader:"), consumer
assert call("DescribeStreamConsumer", ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
assert [c["ConsumerName"] for c in call("ListStreamConsumers", StreamARN=arn + "all")["Consumers"]] == ["reader"]
called.add("SubscribeToShard")
subscription = kinesis.subscribe_to_shard(
    ConsumerARN=consumer["ConsumerARN"], ShardId=put["ShardId"], StartingPosition={"Type": "TRIM_HORIZON"}
)
pushed = []
for event in subscription["EventStream"]:
    pushed.extend(r["Data"] for r in event["SubscribeToShardEvent"]["Records"])
    if b"two" in pushed:
        break
assert pushed[0] == b"one" and pushed[-1] == b"two", pushed
subscription["EventStream"].close()
call("DeregisterStreamConsumer", StreamARN=arn + "all", ConsumerName="reader")

call("UpdateMaxRecordSize", StreamARN=arn + "all", MaxRecordSizeInKiB=10240)
assert kinesis.describe_stream_summary(StreamName="all")["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 10240

call("SplitShard", StreamName="all", ShardToSplit="shardId-000000000000", NewStartingHashKey="85070591730234615865843651857942052864")
call("MergeShards", StreamName="all", ShardToMerge="shardId-000000000002", AdjacentShardToMerge="shardId-000000000003")
scaled = call("UpdateShardCount", StreamName="all", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
assert scaled["CurrentShardCount"] == 2 and scaled["TargetShardCount"] == 4, scaled
open_shards = kinesis.list_shards(StreamName="all", ShardFilter={"Type": "AT_LATEST"})["Shards"]
assert len(open_shards) == 4, open_shards

settings = call("DescribeAccountSettings")["MinimumThroughputBillingCommitment"]
assert settings["Status"] == "DISABLED", settings
settings = call("UpdateAccountSettings", MinimumThroughputBillingCommitment={"Status": "ENABLED"})["MinimumThroughputBillingCommitment"]
assert settings["Status"] == "ENABLED" and "EarliestAllowedEndAt" in settings, settings
warm = call("UpdateStreamWarmThroughput", StreamName="od", WarmThroughputMiBps=8)
assert warm["WarmThroughput"] == {"TargetMiBps": 8, "CurrentMiBps": 8}, warm
assert kinesis.describe_stream_summary(StreamName="od")["StreamDescriptionSummary"]["OpenShardCount"] == 8
call("UpdateStreamMode", StreamARN=arn + "od", StreamModeDetails={"StreamMode": "PROVISIONED"})
call("DeleteStream", StreamName="od")

missing = served - called
assert not missing, f"not called: {sorted(missing)}"
assert len(called) == 39, sorted(called)

# --- invalid input: Kinesis's error type and message --------------------------------
# A row without a message checks the type only: its message is this server's own
# wording, where Kinesis's exact text is not known.
ACCOUNT = account
INVALID = [
    ("CreateStream", {"StreamName": "", "ShardCount": 0}, "ValidationException",
     "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; "
     "Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; "
     "Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("CreateStream", {"StreamName": "all", "ShardCount": 1}, "ResourceInUseException",
     f"Stream all under account {ACCOUNT} already exists."),
    ("CreateStream", {"StreamName": "x", "ShardCount": True}, "SerializationException",
     "class java.lang.Boolean can not be converted to an Integer"),
    ("DeleteStream", {"StreamName": "nope"}, "ResourceNotFoundException",
     f"Stream nope under account {ACCOUNT} not found."),
    ("DescribeStream", {"StreamName": "a" * 129}, "ValidationException",
     f"1 validation error detected: Value '{'a' * 129}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128"),
    ("DescribeStreamSummary", {"StreamName": "nope"}, "ResourceNotFoundException",
     f"Stream nope under account {ACCOUNT} not found."),
    ("ListStreams", {"Limit": 0}, "ValidationException",
     "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"),
    ("GetShardIterator", {"StreamName": "nope", "ShardId": "anything-5", "ShardIteratorType": "LATEST"}, "ResourceNotFoundException",
     f"Shard shardId-000000000005 in stream nope under account {ACCOUNT} does not exist"),
    ("GetShardIterator", {"StreamName": "all", "ShardId": "ABKLFD8", "ShardIteratorType": "LATEST"}, "ResourceNotFoundException",
     f"Could not find shard ABKLFD8 in stream all under account {ACCOUNT}."),
    ("GetShardIterator", {"StreamName": "all", "ShardId": "shardId-0", "ShardIteratorType": "LATEST", "StartingSequenceNumber": "5"}, "InvalidArgumentException",
     "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
     "Request specified LATEST and also a StartingSequenceNumber."),
    ("GetRecords", {"ShardIterator": "", "Limit": 0}, "ValidationException",
     "2 validation errors detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1; "
     "Value '' at 'shardIterator' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("PutRecord", {"StreamName": "all", "PartitionKey": "", "Data": b"x"}, "ValidationException",
     "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("PutRecords", {"StreamName": "all", "Records": []}, "ValidationException",
     "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("ListShards", {"StreamName": "all", "NextToken": "x"}, "InvalidArgumentException",
     "NextToken and StreamName cannot be provided together."),
    ("SplitShard", {"StreamName": "all", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1"}, "ResourceInUseException",
     f"Shard shardId-000000000000 in stream all under account {ACCOUNT} has already been merged or split, and thus is not eligible for splitting."),
    ("MergeShards", {"StreamName": "all", "ShardToMerge": "shardId-000000000099", "AdjacentShardToMerge": "shardId-000000000001"}, "ResourceNotFoundException",
     f"Could not find shard shardId-000000000099 in stream all under account {ACCOUNT}."),
    ("UpdateShardCount", {"StreamName": "all", "TargetShardCount": 9, "ScalingType": "UNIFORM_SCALING"}, "InvalidArgumentException",
     f"UpdateShardCount failed for stream all under account {ACCOUNT}. Cannot scale up over double your current open shard count. Current open shard count: 4 Target shard count: 9"),
    ("IncreaseStreamRetentionPeriod", {"StreamName": "all", "RetentionPeriodHours": 9000}, "InvalidArgumentException",
     "Maximum allowed retention period is 8760 hours. Requested retention period (9000 hours) is too long."),
    ("DecreaseStreamRetentionPeriod", {"StreamName": "all", "RetentionPeriodHours": 48}, "InvalidArgumentException",
     "Requested retention period (48 hours) for stream all can not be longer than existing retention period (24 hours). Use IncreaseRetentionPeriod API."),
    ("AddTagsToStream", {"StreamName": "all", "Tags": {}}, "ValidationException",
     "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("ListTagsForStream", {"StreamName": "nope"}, "ResourceNotFoundException", f"Stream nope under account {ACCOUNT} not found."),
    ("RemoveTagsFromStream", {"StreamName": "all", "TagKeys": []}, "ValidationException",
     "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("TagResource", {"ResourceARN": arn + "nope", "Tags": {"a": "b"}}, "ResourceNotFoundException",
     f"Stream nope under account {ACCOUNT} not found."),
    ("UntagResource", {"ResourceARN": arn + "all", "TagKeys": []}, "ValidationException",
     "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("ListTagsForResource", {"ResourceARN": "not-an-arn"}, "ValidationException",
     "1 validation error detected: Value 'not-an-arn' at 'resourceARN' failed to satisfy constraint: Member must satisfy regular expression pattern: "
     "arn:aws.*:kinesis:.*:\\d{12}:.*(stream|channel|queue)/\\S+"),
    ("EnableEnhancedMonitoring", {"StreamName": "all", "ShardLevelMetrics": ["Bytes"]}, "ValidationException",
     "1 validation error detected: Value 'Bytes' at 'shardLevelMetrics.1.member' failed to satisfy constraint: Member must satisfy enum value set: "
     "[IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]"),
    ("DisableEnhancedMonitoring", {"StreamName": "nope", "ShardLevelMetrics": ["ALL"]}, "ResourceNotFoundException", f"Stream nope under account {ACCOUNT} not found."),
    ("StartStreamEncryption", {"StreamName": "all", "EncryptionType": "AES", "KeyId": "k"}, "ValidationException",
     "1 validation error detected: Value 'AES' at 'encryptionType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, KMS]"),
    ("StopStreamEncryption", {"StreamName": "nope", "EncryptionType": "KMS", "KeyId": "k"}, "ResourceNotFoundException", f"Stream nope under account {ACCOUNT} not found."),
    ("PutResourcePolicy", {"ResourceARN": arn + "all", "Policy": "not json"}, "InvalidArgumentException", None),
    ("GetResourcePolicy", {"ResourceARN": arn + "nope"}, "ResourceNotFoundException", None),
    ("DeleteResourcePolicy", {"ResourceARN": arn + "all"}, "ResourceNotFoundException", None),
    ("RegisterStreamConsumer", {"StreamARN": arn + "all", "ConsumerName": ""}, "ValidationException",
     "2 validation errors detected: Value '' at 'consumerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; "
     "Value '' at 'consumerName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("DescribeStreamConsumer", {"ConsumerARN": arn + "all"}, "ValidationException",
     f"1 validation error detected: Value '{arn}all' at 'consumerARN' failed to satisfy constraint: Member must satisfy regular expression pattern: "
     "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+"),
    ("DeregisterStreamConsumer", {"StreamARN": arn + "all", "ConsumerName": "nobody"}, "ResourceNotFoundException", None),
    ("DescribeStreamConsumer", {"StreamARN": arn + "all", "ConsumerName": "nobody"}, "ResourceNotFoundException", None),
    ("ListStreamConsumers", {"StreamARN": arn + "nope"}, "ResourceNotFoundException", None),
    ("SubscribeToShard", {"ConsumerARN": arn + "all/consumer/nobody:1", "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}}, "ResourceNotFoundException", None),
    ("UpdateMaxRecordSize", {"StreamARN": arn + "all", "MaxRecordSizeInKiB": 20000}, "ValidationException",
     "1 validation error detected: Value '20000' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value less than or equal to 10240"),
    ("UpdateStreamMode", {"StreamARN": arn + "all", "StreamModeDetails": {"StreamMode": "FAST"}}, "ValidationException",
     "1 validation error detected: Value 'FAST' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"),
    ("UpdateStreamWarmThroughput", {"StreamName": "all", "WarmThroughputMiBps": 8}, "InvalidArgumentException", None),
    ("UpdateAccountSettings", {"MinimumThroughputBillingCommitment": {"Status": "MAYBE"}}, "ValidationException",
     "1 validation error detected: Value 'MAYBE' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"),
]

failures = []
for action, params, code, message in INVALID:
    method = "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
    try:
        answer = getattr(raw, method)(**params)
        if action == "SubscribeToShard":
            list(answer["EventStream"])
        failures.append(f"{action} {params}: no error")
        continue
    except ClientError as error:
        got = (error.response["Error"]["Code"], error.response["Error"].get("Message"))
    if code is None:
        continue
    if got[0] != code or (message is not None and got[1] != message):
        failures.append(f"{action} {params}:\n  want {code}: {message}\n  got  {got[0]}: {got[1]}")
assert not failures, "\n".join(failures)
print("all actions ok")
