// The AWS SDK for JavaScript v3 against the shard server: what a Node.js producer and
// consumer do. Kinesis's JS client speaks HTTP/2 by default and signs `:authority`.
// Usage: node roundtrip.mjs ENDPOINT_URL ACCESS_KEY SECRET
// Exits non-zero (with a stack) if any step differs from Kinesis.
import assert from "node:assert/strict";
import {
  KinesisClient, CreateStreamCommand, PutRecordsCommand, ListShardsCommand,
  GetShardIteratorCommand, GetRecordsCommand, ListStreamsCommand,
} from "@aws-sdk/client-kinesis";

const [endpoint, key, secret] = process.argv.slice(2);
const client = (secretAccessKey) => new KinesisClient({
  endpoint, region: "us-east-1", credentials: { accessKeyId: key, secretAccessKey },
});
const kinesis = client(secret);
await kinesis.send(new CreateStreamCommand({ StreamName: "js", ShardCount: 2 }));
const sent = [...Array(50).keys()].map((i) => `js event ${i}`);
const put = await kinesis.send(new PutRecordsCommand({
  StreamName: "js",
  Records: sent.map((text, i) => ({ PartitionKey: `user-${i}`, Data: new TextEncoder().encode(text) })),
}));
assert.equal(put.FailedRecordCount, 0);
assert.equal(put.Records[0].SequenceNumber.length, 56);
const read = [];
for (const shard of (await kinesis.send(new ListShardsCommand({ StreamName: "js" }))).Shards) {
  const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({
    StreamName: "js", ShardId: shard.ShardId, ShardIteratorType: "TRIM_HORIZON",
  }));
  const { Records } = await kinesis.send(new GetRecordsCommand({ ShardIterator }));
  read.push(...Records.map((r) => new TextDecoder().decode(r.Data)));
}
assert.deepEqual(read.sort(), [...sent].sort());
await assert.rejects(client("not-the-secret").send(new ListStreamsCommand({})), { name: "InvalidSignatureException" });
console.log("js sdk ok");
