// Enhanced fan-out with the AWS SDK for JavaScript v3: a registered consumer's
// SubscribeToShard pushes records over HTTP/2 (the SDK's event-stream transport),
// keeps pushing as records arrive, and across a split ends with the children named;
// subscriptions to the children push what came after.
// Usage: node subscribe.mjs ENDPOINT_URL ACCESS_KEY SECRET
import assert from "node:assert/strict";
import {
  KinesisClient, CreateStreamCommand, PutRecordsCommand, RegisterStreamConsumerCommand,
  SubscribeToShardCommand, SplitShardCommand,
} from "@aws-sdk/client-kinesis";

const [endpoint, key, secret] = process.argv.slice(2);
const kinesis = new KinesisClient({
  endpoint, region: "us-east-1", credentials: { accessKeyId: key, secretAccessKey: secret },
});
const stream = "jsefo";
const text = (bytes) => new TextDecoder().decode(bytes);
const put = (from, to) => kinesis.send(new PutRecordsCommand({
  StreamName: stream,
  Records: [...Array(to - from).keys()].map((i) => ({
    PartitionKey: `key ${from + i}`, Data: new TextEncoder().encode(`event ${from + i}`),
  })),
}));
const events = (from, to) => [...Array(to - from).keys()].map((i) => `event ${from + i}`);

await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
await put(0, 20);
const { Consumer } = await kinesis.send(new RegisterStreamConsumerCommand({
  StreamARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`, ConsumerName: "js",
}));
// Leaving a `for await` does not end the HTTP/2 stream; aborting the call does, so
// the server stops pushing and Node can exit.
const open = [];
const subscribe = async (shardId) => {
  const abort = new AbortController();
  open.push(abort);
  const answer = await kinesis.send(new SubscribeToShardCommand({
    ConsumerARN: Consumer.ConsumerARN, ShardId: shardId, StartingPosition: { Type: "TRIM_HORIZON" },
  }), { abortSignal: abort.signal });
  return answer.EventStream;
};

// The parent: what is stored, then what arrives while subscribed, then the split.
const parent = [];
let children = [];
let split = false;
for await (const event of await subscribe("shardId-000000000000")) {
  const pushed = event.SubscribeToShardEvent;
  assert.ok(pushed, `unexpected event ${JSON.stringify(event)}`);
  parent.push(...pushed.Records.map((r) => text(r.Data)));
  if (pushed.ChildShards?.length) {
    children = pushed.ChildShards.map((c) => c.ShardId);
    break;
  }
  if (parent.length === 20 && !split) {
    split = true;
    await put(20, 30);
  }
  if (parent.length === 30 && split) {
    await kinesis.send(new SplitShardCommand({
      StreamName: stream, ShardToSplit: "shardId-000000000000",
      NewStartingHashKey: "170141183460469231731687303715884105728",
    }));
    await put(30, 40);
  }
}
assert.deepEqual(parent, events(0, 30));
assert.deepEqual(children, ["shardId-000000000001", "shardId-000000000002"]);

// The children: everything after the split, each child's records at once, then a
// heartbeat with none.
const after = [];
for (const child of children) {
  for await (const event of await subscribe(child)) {
    const records = event.SubscribeToShardEvent.Records;
    if (records.length === 0) break;
    after.push(...records.map((r) => text(r.Data)));
  }
}
assert.deepEqual(after.sort(), events(30, 40).sort());
open.forEach((abort) => abort.abort());
kinesis.destroy();
console.log("js efo ok");
