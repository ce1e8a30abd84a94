// Drives the API with Microsoft's own AI Chat Protocol client, unchanged, as a web front end would.
// Usage: node ai_chat_protocol.mjs <base URL, e.g. http://127.0.0.1:7071/api/chat>
// Prints one JSON document: what the client returned for a turn, a streamed turn and a bad request.
import { AIChatProtocolClient } from "@microsoft/ai-chat-protocol";

const client = new AIChatProtocolClient(process.argv[2]);
const result = {};

const first = await client.getCompletion([{ role: "user", content: "Hello from the protocol client" }]);
result.completion = first;

const chunks = [];
const stream = await client.getStreamedCompletion(
  [
    { role: "user", content: "Hello from the protocol client" },
    first.message,
    { role: "user", content: "And a streamed follow-up" },
  ],
  { sessionState: first.sessionState },
);
for await (const chunk of stream) {
  chunks.push(chunk);
}
result.chunks = chunks;

try {
  await client.getCompletion([{ role: "assistant", content: "not a user turn" }]);
  result.error = null;
} catch (error) {
  result.error = error;
}

process.stdout.write(JSON.stringify(result));
